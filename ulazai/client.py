"""The UlazAI Kling client: upload, generate and status for Kling 3.0 and Kling 2.6.

One small class on the bot's one shared :class:`aiohttp.ClientSession`, with explicit timeouts. Requests
are typed models (:mod:`ulazai.requests`) that have already enforced every documented rule, so a
payload the docs forbid is never sent. Answers are normalised into :class:`~ulazai.results.TaskResult`
(2.6 wraps them in ``data`` and creates with 201, 3.0 answers flat with 200).

Retries, and why they differ per call:

* **429** is retried on every route, honouring ``Retry-After`` when the provider sends it, otherwise
  with exponential backoff and jitter; bounded by ``max_rate_limit_retries`` and ``max_backoff``. A 429
  means the provider refused the call, so nothing was started or charged.
* **status and upload** calls are also retried on 5xx, timeouts and connection failures: asking twice
  costs nothing (an upload twice only leaves an unused image).
* **generate is never retried after a timeout, a 5xx or an unreadable 2xx.** The provider has no
  idempotency key and no task listing: such a call may have started a task, and a blind retry would make
  the operator pay twice. The caller gets :class:`~ulazai.errors.ProviderTimeoutError`,
  :class:`~ulazai.errors.UpstreamError` or :class:`~ulazai.errors.MalformedResponseError` and must treat
  the job as *lost* (refund the member, tell the operator). A connection that could not even be opened
  sent nothing, so that alone is retried.

The API key lives in a :class:`~pydantic.SecretStr`, goes only into the ``Authorization`` header of
each request, and never into a repr, an error or a log line.

Observers (:meth:`UlazAIClient.add_observer`) hear of every attempt: which endpoint, the HTTP status
(``None`` when no answer came) and how long it took; the bot counts them for its metrics.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import aiohttp
from pydantic import SecretStr

from ulazai.errors import (
    MalformedResponseError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitedError,
    UpstreamError,
    error_for_status,
)
from ulazai.images import check_image
from ulazai.ratelimit import Pace
from ulazai.requests import KlingModel, ProviderRequest
from ulazai.results import TaskResult, TaskStatus, parse_estimated_time

log = logging.getLogger(__name__)

#: The upload route is documented under 3.0 and serves both models.
UPLOAD_PATH = "/kling30/api/upload/"
_BODY_LOG_LIMIT = 500
_T = TypeVar("_T")
#: Told of each attempt: the endpoint ("upload", "generate", "status"), its status, its seconds.
CallObserver = Callable[[str, int | None, float], None]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard the client tries before giving up; tests shrink the delays."""

    max_rate_limit_retries: int = 4
    max_transient_retries: int = 3
    base_backoff: float = 1.0
    max_backoff: float = 30.0


class UlazAIClient:
    """Talks to UlazAI's Kling endpoints on a shared session. See the module docstring for retries."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        api_key: SecretStr,
        timeout: aiohttp.ClientTimeout | None = None,
        upload_timeout: aiohttp.ClientTimeout | None = None,
        retry: RetryPolicy | None = None,
        rate_limiter: Pace | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("base_url must be an http(s) URL")
        self._session = session
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._timeout = timeout or aiohttp.ClientTimeout(total=60, connect=10, sock_read=45)
        self._upload_timeout = upload_timeout or aiohttp.ClientTimeout(total=120, connect=10, sock_read=60)
        self._retry = retry or RetryPolicy()
        self._limiter = rate_limiter
        self._sleep = sleep
        self._observers: list[CallObserver] = []

    def __repr__(self) -> str:
        return f"UlazAIClient(base_url={self._base_url!r})"

    @property
    def base_url(self) -> str:
        return self._base_url

    def add_observer(self, observer: CallObserver) -> None:
        """Have ``observer`` told of every attempt from now on (it must not raise or block)."""
        self._observers.append(observer)

    # -- public API -------------------------------------------------------------------------------

    async def upload(self, data: bytes) -> str:
        """Upload one JPEG/PNG/WebP image (checked by magic bytes, at most 10 MB); returns its public URL.

        Raises :class:`~ulazai.errors.InvalidRequestError` before any request for anything else.
        """
        kind = check_image(data)

        def form() -> aiohttp.FormData:
            # A FormData can be sent once; a retry needs a fresh one.
            payload = aiohttp.FormData()
            payload.add_field("file", data, filename=f"image.{kind.extension}", content_type=kind.mime_type)
            return payload

        return await self._call(
            "upload",
            "POST",
            UPLOAD_PATH,
            form=form,
            parse=_upload_url,
            retry_transient=True,
            request_timeout=self._upload_timeout,
        )

    async def generate(self, request: ProviderRequest) -> TaskResult:
        """Start a generation. Never retried after a timeout, 5xx or unreadable answer (see module doc)."""
        model = request.model
        return await self._call(
            "generate",
            "POST",
            f"/{model.api_prefix}/api/generate/",
            json_body=request.to_payload(),
            parse=lambda body: _task_result(model, body),
            retry_transient=False,
            request_timeout=self._timeout,
        )

    async def status(self, model: KlingModel, task_id: str) -> TaskResult:
        """The task's current state; retried on 5xx, timeouts and unreadable answers, safe for a read."""
        if not task_id:
            raise ValueError("task_id is empty")
        return await self._call(
            "status",
            "GET",
            f"/{model.api_prefix}/api/status/{quote(task_id, safe='')}/",
            parse=lambda body: _task_result(model, body),
            retry_transient=True,
            request_timeout=self._timeout,
        )

    # -- transport --------------------------------------------------------------------------------

    async def _call(
        self,
        endpoint: str,
        method: str,
        path: str,
        *,
        json_body: Mapping[str, Any] | None = None,
        form: Callable[[], aiohttp.FormData] | None = None,
        parse: Callable[[Any], _T],
        retry_transient: bool,
        request_timeout: aiohttp.ClientTimeout,
    ) -> _T:
        url = self._base_url + path
        rate_limited = 0
        transient = 0
        while True:
            try:
                status, text, retry_after = await self._send(
                    endpoint, method, url, json_body, form, request_timeout
                )
            except aiohttp.ClientConnectorError as exc:
                # The connection was never opened, so nothing reached the provider: safe for every route.
                error: ProviderError = ProviderTimeoutError(f"Could not connect to UlazAI ({exc.os_error})")
                if transient < self._retry.max_transient_retries:
                    transient += 1
                    await self._backoff(transient, None, method, path, error)
                    continue
                raise error from exc
            except (TimeoutError, aiohttp.ClientError) as exc:
                error = ProviderTimeoutError(f"UlazAI did not answer in time ({type(exc).__name__})")
                if retry_transient and transient < self._retry.max_transient_retries:
                    transient += 1
                    await self._backoff(transient, None, method, path, error)
                    continue
                raise error from None

            if 200 <= status < 300:
                try:
                    return parse(json.loads(text))
                except MalformedResponseError as malformed:
                    error = malformed
                except ValueError:
                    error = MalformedResponseError(
                        "UlazAI sent an unreadable answer", status=status, body=_clip(text)
                    )
                if retry_transient and transient < self._retry.max_transient_retries:
                    transient += 1
                    await self._backoff(transient, None, method, path, error)
                    continue
                raise error

            error = error_for_status(status, _provider_message(text, status), _clip(text))
            if status == 429:
                if isinstance(error, RateLimitedError):
                    error.retry_after = retry_after
                wait_cap_ok = retry_after is None or retry_after <= self._retry.max_backoff
                if rate_limited < self._retry.max_rate_limit_retries and wait_cap_ok:
                    rate_limited += 1
                    await self._backoff(rate_limited, retry_after, method, path, error)
                    continue
                raise error
            if (
                isinstance(error, UpstreamError)
                and retry_transient
                and transient < self._retry.max_transient_retries
            ):
                transient += 1
                await self._backoff(transient, None, method, path, error)
                continue
            raise error

    async def _send(
        self,
        endpoint: str,
        method: str,
        url: str,
        json_body: Mapping[str, Any] | None,
        form: Callable[[], aiohttp.FormData] | None,
        request_timeout: aiohttp.ClientTimeout,
    ) -> tuple[int, str, float | None]:
        if self._limiter is not None:
            await self._limiter.acquire()  # every attempt counts against the provider's rate
        headers = {
            "Authorization": f"Bearer {self._api_key.get_secret_value()}",
            "Accept": "application/json",
        }
        started = time.perf_counter()
        status: int | None = None
        try:
            async with self._session.request(
                method,
                url,
                json=json_body,
                data=form() if form is not None else None,
                headers=headers,
                timeout=request_timeout,
                allow_redirects=False,
            ) as response:
                text = await response.text(errors="replace")
                status = response.status
                return response.status, text, _retry_after(response.headers.get("Retry-After"))
        finally:
            self._observed(endpoint, status, time.perf_counter() - started)

    def _observed(self, endpoint: str, status: int | None, seconds: float) -> None:
        for observer in self._observers:
            try:
                observer(endpoint, status, seconds)
            except Exception:
                log.exception("A provider call observer failed")

    async def _backoff(
        self, attempt: int, retry_after: float | None, method: str, path: str, error: ProviderError
    ) -> None:
        if retry_after is not None:
            delay = max(0.0, retry_after)
        else:
            ceiling = min(self._retry.max_backoff, self._retry.base_backoff * 2 ** (attempt - 1))
            delay = random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not cryptography
        log.warning("UlazAI %s %s: %r; retry %d in %.2fs", method, path, error, attempt, delay)
        await self._sleep(delay)


# -- parsing helpers ------------------------------------------------------------------------------


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds; the HTTP-date form is rare enough to treat as absent."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def _clip(body: object) -> str:
    text = body if isinstance(body, str) else json.dumps(body, default=str)
    return text[:_BODY_LOG_LIMIT]


def _provider_message(text: str, status: int) -> str:
    """The provider's own words about an error, or a plain description of the status."""
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict):
        for container in (body, body.get("data")):
            if isinstance(container, dict):
                for key in ("error", "message", "detail"):
                    value = container.get(key)
                    if isinstance(value, str) and value.strip():
                        return value.strip()[:300]
    return {
        400: "invalid payload",
        401: "invalid authentication",
        402: "insufficient credits",
        429: "rate-limited",
    }.get(status, "upstream or internal failure" if status >= 500 else f"unexpected HTTP {status}")


def _envelope(body: Any) -> dict[str, Any]:
    """2.6 wraps its answers in ``data``; 3.0 does not."""
    if not isinstance(body, dict):
        raise MalformedResponseError("UlazAI answered with something other than an object", body=_clip(body))
    inner = body.get("data")
    return inner if isinstance(inner, dict) else body


def _upload_url(body: Any) -> str:
    envelope = _envelope(body)
    for key in ("url", "image_url", "file_url", "public_url"):
        url = envelope.get(key)
        if isinstance(url, str) and urlsplit(url).scheme in ("http", "https") and urlsplit(url).hostname:
            return url
    raise MalformedResponseError("The upload answer carried no image URL", status=200, body=_clip(body))


def _int_or_none(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _task_result(model: KlingModel, body: Any) -> TaskResult:
    envelope = _envelope(body)
    if body.get("success") is False:
        raise MalformedResponseError(_provider_message(json.dumps(body), 200), status=200, body=_clip(body))
    task_id = envelope.get("task_id")
    raw_status = envelope.get("status")
    if not isinstance(task_id, str) or not task_id:
        raise MalformedResponseError("The answer carried no task id", status=200, body=_clip(body))
    try:
        status = TaskStatus(str(raw_status).lower())
    except ValueError:
        raise MalformedResponseError(
            f"The answer carried an unknown status {raw_status!r}", status=200, body=_clip(body)
        ) from None
    progress = _int_or_none(envelope.get("progress"))
    video_url = envelope.get("video_url")
    if status is TaskStatus.COMPLETED and not (isinstance(video_url, str) and video_url):
        raise MalformedResponseError(
            "A completed task came without a video URL", status=200, body=_clip(body)
        )
    error = envelope.get("error") or envelope.get("message") if status is TaskStatus.FAILED else None
    return TaskResult(
        model=model,
        task_id=task_id,
        status=status,
        credits_used=_int_or_none(envelope.get("credits_used")),
        credits_charged=_int_or_none(envelope.get("credits_charged")),
        credits_remaining=_int_or_none(envelope.get("credits_remaining")),
        estimated_time=parse_estimated_time(envelope["estimated_time"])
        if "estimated_time" in envelope
        else None,
        progress=max(0, min(100, progress)) if progress is not None else None,
        video_url=video_url if isinstance(video_url, str) and video_url else None,
        message=envelope.get("message") if isinstance(envelope.get("message"), str) else None,
        error=str(error)[:300] if error else None,
    )
