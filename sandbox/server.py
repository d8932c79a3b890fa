"""A strict local fake of UlazAI's Kling 3.0 and 2.6 API, over real HTTP.

Why it exists: the test suite drives the real bot and the real provider client against it on
127.0.0.1, and server admins use it to try the bot without spending credits
(``python -m sandbox --port 8080``, or ``make sandbox``, then point ``ULAZAI_BASE_URL`` at it).

Why it is written from the provider's developer pages alone, in a package of its own that imports
nothing of the product (no ``ulazai``, no ``storage``, nothing else of the bot) and stays out of the
bot's Docker image: a fake that shared the client's request models or price table would agree with the
client's bugs instead of catching them. It is at least as strict as the pages: every
documented rule is a 400 with a message naming the field, unknown fields are refused, and the two
models' differences (200 flat vs 201 ``data``, ``durationSeconds`` integer vs ``duration`` string,
2.6's directory opt-in defaulting to true) are enforced as written.

Where the pages are silent the sandbox decides, and says so:

* error bodies are ``{"success": false, "error": "<message>"}``;
* a failed task's status carries an ``error`` message, and the price is refunded once;
* a 3.0 task's ``prompt_submission_id`` appears only on completion of an opted-in task (the key is
  omitted otherwise, so a client that indexes it unconditionally fails here and not in production);
* uploads are ``multipart/form-data`` with one part named ``file``; the type is decided by magic bytes;
* injected faults are served before authentication, like a gateway in front of the API would;
* a task reads ``pending`` for min(0.5 s, 10 % of its duration), then ``processing`` (2.6 adds
  ``progress``), then ``completed`` or ``failed`` (generate itself answers ``processing``, as documented);
* a video URL answers 404 until its task has completed; media URLs need no key, like a public CDN.

Tests steer it from Python (:class:`Sandbox`) or, for a bot in another process, over HTTP under
``/_sandbox/`` (no authentication there: the sandbox binds only where it is told, 127.0.0.1 by default):

* ``POST /_sandbox/faults`` with the keyword arguments of :meth:`Sandbox.inject` (plus ``route``);
  ``GET`` lists the queued faults, ``DELETE`` drops them;
* ``POST /_sandbox/config`` with any of ``balance``, ``task_seconds``, ``video_bytes``,
  ``fail_next_tasks`` (+ ``fail_reason``), ``estimated_time`` (``{"kling-3.0": "..."}``); all or nothing;
* ``GET /_sandbox/state``, ``GET /_sandbox/requests``, ``POST /_sandbox/reset``,
  ``POST /_sandbox/tasks/{task_id}/complete``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import json
import logging
import math
import signal
import struct
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from http import HTTPStatus
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal, cast, get_args
from urllib.parse import urlsplit

from aiohttp import BodyPartReader, web
from aiohttp.typedefs import Handler

log = logging.getLogger(__name__)

Model = Literal["kling-3.0", "kling-2.6"]
FaultRoute = Literal["generate", "status", "upload", "video"]
#: Routes recorded in :attr:`Sandbox.requests`: the four above plus ``media`` (uploaded images served back).
RouteName = Literal["generate", "status", "upload", "video", "media"]

KLING_30: Final[Model] = "kling-3.0"
KLING_26: Final[Model] = "kling-2.6"
MODELS: Final[tuple[Model, ...]] = get_args(Model)
FAULT_ROUTES: Final[tuple[FaultRoute, ...]] = get_args(FaultRoute)

SAMPLE_PATH: Final = Path(__file__).with_name("assets") / "sample.mp4"

MAX_UPLOAD_BYTES: Final = 10_000_000
#: Room for the multipart envelope around a maximal upload; JSON bodies are far smaller.
CLIENT_MAX_SIZE: Final = MAX_UPLOAD_BYTES + 1024 * 1024
PROMPT_MAX_CHARS: Final[dict[Model, int]] = {KLING_30: 2500, KLING_26: 2000}
GENERATION_MODES: Final = ("text_to_video", "image_to_video")
ASPECT_RATIOS: Final = ("16:9", "9:16", "1:1")
QUALITY_MODES: Final = ("std", "pro")
DURATIONS_26: Final = ("5", "10")
DURATION_30_RANGE: Final = (3, 15)
#: Credits per second for Kling 3.0, by (qualityMode, sound).
PER_SECOND_30: Final[dict[tuple[str, bool], int]] = {
    ("std", False): 20,
    ("std", True): 30,
    ("pro", False): 27,
    ("pro", True): 40,
}
#: Credits per clip for Kling 2.6 without sound (sound doubles it).
PER_CLIP_26: Final[dict[str, int]] = {"5": 55, "10": 110}
DIRECTORY_DISCOUNT: Final = 10
DEFAULT_ESTIMATED_TIME: Final[dict[Model, str]] = {KLING_30: "60-180 seconds", KLING_26: "60-90 seconds"}
DEFAULT_FAIL_REASON: Final = "upstream generation failed (sandbox)"

_FIELDS_30: Final = frozenset(
    {
        "prompt",
        "generationMode",
        "durationSeconds",
        "qualityMode",
        "sound",
        "multiShots",
        "aspectRatio",
        "imageUrls",
        "startFrameUrl",
        "endFrameUrl",
        "prompt_directory_optin",
    }
)
_FIELDS_26: Final = frozenset(
    {"prompt", "generationMode", "duration", "aspectRatio", "imageUrls", "sound", "prompt_directory_optin"}
)
_MAX_URL_CHARS: Final = 2048
_PENDING_MAX_SECONDS: Final = 0.5
_PENDING_FRACTION: Final = 0.1
_STREAM_CHUNK: Final = 256 * 1024
_ZEROS: Final = bytes(_STREAM_CHUNK)
#: Messages of injected error statuses: the provider's documented meaning of each code.
_FAULT_MESSAGES: Final[dict[int, str]] = {
    400: "invalid payload",
    401: "invalid authentication",
    402: "insufficient credits",
    429: "rate-limited",
    500: "upstream/provider or internal failure",
}
_IMAGE_TYPES: Final[dict[str, str]] = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}


class _ApiError(Exception):
    """An answer other than success, raised anywhere in a handler and rendered by the middleware."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def _error_response(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """The error body the sandbox uses everywhere (the provider's pages do not show one)."""
    return web.json_response({"success": False, "error": message}, status=status, headers=headers)


def _is_int(value: object) -> bool:
    """JSON integers only: ``True`` is an ``int`` to Python but never to the provider."""
    return isinstance(value, int) and not isinstance(value, bool)


def _json_type(value: object) -> str:
    """The JSON name of a parsed value's type, for messages a client developer recognises."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _is_number(value: object) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(cast(float, value))


# --------------------------------------------------------------------------------------------------
# Validation and pricing: written from the pages, independent of the client's own rules.
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Order:
    """A validated generate request and what it costs."""

    model: Model
    credits: int
    discount: int
    video_seconds: int
    has_audio: bool
    opted_in: bool


def _invalid(message: str) -> _ApiError:
    return _ApiError(400, message)


def _check_fields(body: dict[str, Any], allowed: frozenset[str], model: Model) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        names = ", ".join(repr(name) for name in unknown)
        raise _invalid(
            f"unknown field{'s' if len(unknown) > 1 else ''} {names}: "
            f"Kling {model.removeprefix('kling-')} accepts {', '.join(sorted(allowed))}"
        )


def _prompt(body: dict[str, Any], model: Model) -> None:
    if "prompt" not in body:
        raise _invalid("prompt is required")
    prompt = body["prompt"]
    if not isinstance(prompt, str):
        raise _invalid(f"prompt must be a string (got {_json_type(prompt)})")
    if not prompt.strip():
        raise _invalid("prompt must not be blank")
    limit = PROMPT_MAX_CHARS[model]
    if len(prompt) > limit:
        raise _invalid(
            f"prompt is {len(prompt)} characters; Kling {model.removeprefix('kling-')} allows at most {limit}"
        )


def _choice(body: dict[str, Any], key: str, choices: Sequence[str], *, required: bool) -> str | None:
    if key not in body:
        if required:
            raise _invalid(f"{key} is required ({' or '.join(repr(c) for c in choices)})")
        return None
    value = body[key]
    if not isinstance(value, str) or value not in choices:
        raise _invalid(f"{key} must be one of {', '.join(repr(c) for c in choices)} (got {value!r})")
    return value


def _flag(body: dict[str, Any], key: str, default: bool) -> bool:
    if key not in body:
        return default
    value = body[key]
    if not isinstance(value, bool):
        raise _invalid(f"{key} must be a boolean true or false (got {value!r})")
    return value


def _check_url(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise _invalid(f"{name} must be a URL string (got {value!r})")
    try:
        parts = urlsplit(value)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        ok = False
    if not ok or any(ch.isspace() for ch in value) or len(value) > _MAX_URL_CHARS:
        raise _invalid(f"{name} must be an http(s) URL (got {value[:100]!r})")
    return value


def _url_list(body: dict[str, Any]) -> list[str] | None:
    if "imageUrls" not in body:
        return None
    value = body["imageUrls"]
    if not isinstance(value, list):
        raise _invalid("imageUrls must be an array of http(s) URLs")
    if not value:
        raise _invalid("imageUrls must not be empty")
    return [_check_url(item, f"imageUrls[{index}]") for index, item in enumerate(value)]


def validate_30(body: dict[str, Any]) -> _Order:
    """Kling 3.0's rules, from the 3.0 page's field reference; price per second."""
    _check_fields(body, _FIELDS_30, KLING_30)
    _prompt(body, KLING_30)
    mode = _choice(body, "generationMode", GENERATION_MODES, required=True)
    if "durationSeconds" not in body:
        raise _invalid("durationSeconds is required (an integer from 3 to 15)")
    seconds = body["durationSeconds"]
    low, high = DURATION_30_RANGE
    if not _is_int(seconds) or not low <= seconds <= high:
        raise _invalid(f"durationSeconds must be an integer from {low} to {high} (got {seconds!r})")
    quality = cast(str, _choice(body, "qualityMode", QUALITY_MODES, required=True))
    sound = _flag(body, "sound", False)
    _flag(body, "multiShots", False)
    opted_in = _flag(body, "prompt_directory_optin", False)
    _choice(body, "aspectRatio", ASPECT_RATIOS, required=False)
    images = _url_list(body)
    frames = [key for key in ("startFrameUrl", "endFrameUrl") if key in body]
    for key in frames:
        _check_url(body[key], key)
    if frames and "aspectRatio" in body:
        raise _invalid("aspectRatio is not allowed when startFrameUrl or endFrameUrl is set")
    if mode == "text_to_video":
        extra = (["imageUrls"] if images is not None else []) + frames
        if extra:
            raise _invalid(f"text_to_video takes no images: remove {', '.join(extra)}")
    elif images is None and not frames:
        raise _invalid("image_to_video needs imageUrls, startFrameUrl or endFrameUrl")
    discount = DIRECTORY_DISCOUNT if opted_in else 0
    credits = PER_SECOND_30[(quality, sound)] * seconds - discount
    return _Order(KLING_30, credits, discount, seconds, sound, opted_in)


def validate_26(body: dict[str, Any]) -> _Order:
    """Kling 2.6's rules, from the 2.6 page; price per clip, opt-in defaulting to true as documented."""
    _check_fields(body, _FIELDS_26, KLING_26)
    _prompt(body, KLING_26)
    mode = _choice(body, "generationMode", GENERATION_MODES, required=True)
    duration = "5"
    if "duration" in body:
        value = body["duration"]
        if not isinstance(value, str):
            raise _invalid(f'duration must be the string "5" or "10", not {_json_type(value)} {value!r}')
        if value not in DURATIONS_26:
            raise _invalid(f'duration must be "5" or "10" (got {value!r})')
        duration = value
    if "aspectRatio" in body:
        if mode != "text_to_video":
            raise _invalid("aspectRatio is only allowed for text_to_video")
        _choice(body, "aspectRatio", ASPECT_RATIOS, required=False)
    images = _url_list(body)
    if mode == "text_to_video" and images is not None:
        raise _invalid("text_to_video takes no images: remove imageUrls")
    if mode == "image_to_video":
        if images is None:
            raise _invalid("image_to_video needs imageUrls with exactly 1 URL")
        if len(images) != 1:
            raise _invalid(f"imageUrls must hold exactly 1 URL for Kling 2.6 (got {len(images)})")
    sound = _flag(body, "sound", False)
    opted_in = _flag(body, "prompt_directory_optin", True)
    discount = DIRECTORY_DISCOUNT if opted_in else 0
    credits = PER_CLIP_26[duration] * (2 if sound else 1) - discount
    return _Order(KLING_26, credits, discount, int(duration), sound, opted_in)


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _strict_json(raw: bytes) -> Any:
    """Parse like a strict server: UTF-8, no NaN/Infinity, no duplicate keys. Raises ValueError."""
    return json.loads(
        raw.decode("utf-8"), object_pairs_hook=_reject_duplicate_keys, parse_constant=_reject_constant
    )


# --------------------------------------------------------------------------------------------------
# State the tests look at.
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One call the sandbox answered (the ``/_sandbox`` control routes are not recorded).

    Never holds the ``Authorization`` value: ``authorized`` says whether it carried the right key.
    ``route`` is ``None`` for a path that matched nothing (answered 404/405). ``time`` is
    :func:`time.monotonic`, good for intervals (back-off) within one sandbox process.
    ``json_body`` is the parsed body of generate calls (``None`` when absent or not JSON).
    """

    method: str
    path: str
    route: RouteName | None
    model: Model | None
    json_body: Any
    status: int
    time: float
    authorized: bool
    fault: bool
    content_type: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class Fault:
    """One injected misbehaviour, consumed by the first ``times`` matching requests (FIFO)."""

    route: FaultRoute
    status: int | None = None
    times: int = 1
    retry_after: float | None = None
    delay: float = 0.0
    raw_body: str | None = None
    model: Model | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class SandboxTask:
    """A generation task; its status is a function of time since ``created_at`` (monotonic).

    ``pending`` for min(0.5 s, 10 % of ``seconds``), then ``processing``, then ``completed`` (or
    ``failed`` when ``fail_reason`` is set). ``finished`` short-cuts to the end (:meth:`Sandbox.complete_now`).
    """

    task_id: str
    model: Model
    created_at: float
    seconds: float
    credits_used: int
    discount: int
    video_seconds: int
    has_audio: bool
    opted_in: bool
    request: dict[str, Any]
    provider_task_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    prompt_submission_id: str | None = None
    fail_reason: str | None = None
    finished: bool = False
    refunded: bool = False

    def status_at(self, now: float) -> str:
        elapsed = now - self.created_at
        if not self.finished:
            if elapsed < min(_PENDING_MAX_SECONDS, _PENDING_FRACTION * self.seconds):
                return "pending"
            if elapsed < self.seconds:
                return "processing"
        return "failed" if self.fail_reason is not None else "completed"

    def progress_at(self, now: float) -> int:
        """0..99 while processing, in proportion to elapsed time (100 is never shown, as in the 2.6 page)."""
        if self.seconds <= 0:
            return 99
        return max(0, min(99, int(100 * (now - self.created_at) / self.seconds)))


# --------------------------------------------------------------------------------------------------
# The sandbox.
# --------------------------------------------------------------------------------------------------


class Sandbox:
    """The fake provider: an aiohttp app plus the state and knobs tests use.

    Use ``async with Sandbox(...) as sb`` (binds 127.0.0.1 on a free port) or :meth:`start` /
    :meth:`close`. Every knob is a plain attribute or method, also reachable over HTTP under
    ``/_sandbox/`` for a bot running in another process.
    """

    def __init__(
        self,
        *,
        api_key: str = "sandbox-key",
        balance: int = 1_000_000,
        task_seconds: float = 1.0,
        public_url: str | None = None,
    ) -> None:
        self.api_key = api_key
        self._initial_balance = self._checked_balance(balance)
        self._initial_task_seconds = self._checked_task_seconds(task_seconds)
        self._public_url = public_url.rstrip("/") if public_url else None
        self._base_url: str | None = None
        self._runner: web.AppRunner | None = None
        self._sample: bytes | None = None
        self._balance = self._initial_balance
        self._task_seconds = self._initial_task_seconds
        self._video_bytes: int | None = None
        self.estimated_time: dict[Model, str] = dict(DEFAULT_ESTIMATED_TIME)
        self.tasks: dict[str, SandboxTask] = {}
        self.requests: list[RecordedRequest] = []
        self.faults: list[Fault] = []
        self.uploads: dict[str, tuple[bytes, str]] = {}
        self._fail_reasons: list[str] = []
        #: aiohttp route name -> (route, model); filled by :meth:`_build_app`.
        self._routes: dict[str, tuple[RouteName, Model | None]] = {}

    # ----- life cycle ------------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Bind and serve; returns the base URL (``ULAZAI_BASE_URL``). Port 0 picks a free port."""
        if self._runner is not None:
            raise RuntimeError("the sandbox is already running")
        # Read once, off the event loop; every download streams from this buffer.
        self._sample = await asyncio.to_thread(SAMPLE_PATH.read_bytes)
        self._check_video_bytes(self._video_bytes)
        runner = web.AppRunner(self._build_app(), shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        bound_port = runner.addresses[0][1]
        url_host = "127.0.0.1" if host in ("", "0.0.0.0") else "::1" if host == "::" else host  # noqa: S104
        if ":" in url_host:
            url_host = f"[{url_host}]"
        self._base_url = f"http://{url_host}:{bound_port}"
        return self.base_url

    async def close(self) -> None:
        """Stop serving; state (tasks, requests) stays readable."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def base_url(self) -> str:
        """Where the sandbox listens (what the bot's ``ULAZAI_BASE_URL`` should be)."""
        if self._base_url is None:
            raise RuntimeError("the sandbox is not started")
        return self._base_url

    @property
    def public_url(self) -> str:
        """The prefix of the absolute video and upload URLs: ``public_url`` if given, else :attr:`base_url`."""
        return self._public_url or self.base_url

    # ----- knobs ----------------------------------------------------------------------------------

    @property
    def balance(self) -> int:
        """The account's credits, with refunds of tasks that have failed by now already applied."""
        self._settle_all()
        return self._balance

    @balance.setter
    def balance(self, value: int) -> None:
        self._settle_all()
        self._balance = self._checked_balance(value)

    @property
    def task_seconds(self) -> float:
        """How long new tasks take (existing tasks keep theirs)."""
        return self._task_seconds

    @task_seconds.setter
    def task_seconds(self, value: float) -> None:
        self._task_seconds = self._checked_task_seconds(value)

    def set_task_seconds(self, seconds: float) -> None:
        self.task_seconds = seconds

    @property
    def video_bytes(self) -> int | None:
        """Exact size of served videos; ``None`` serves the sample as is.

        A larger size appends an MP4 ``free`` box, so it must exceed the sample by at least 8 bytes
        (the smallest box); the file stays a valid MP4 of the same clip.
        """
        return self._video_bytes

    @video_bytes.setter
    def video_bytes(self, value: int | None) -> None:
        self._check_video_bytes(value)
        self._video_bytes = value

    def serve_video(self, data: bytes) -> None:
        """Serve ``data`` (a whole MP4, e.g. one a test made) as every finished task's video from now on,
        instead of the bundled sample; :attr:`video_bytes` goes back to "as is"."""
        if self._sample is None:
            raise RuntimeError("start the sandbox first")
        self._sample = data
        self._video_bytes = None

    @property
    def sample_size(self) -> int | None:
        """Size of the bundled MP4 (known once started)."""
        return None if self._sample is None else len(self._sample)

    def inject(
        self,
        route: str,
        *,
        status: int | None = None,
        times: int = 1,
        retry_after: float | None = None,
        delay: float = 0.0,
        raw_body: str | None = None,
        model: str | None = None,
    ) -> Fault:
        """Queue a fault for the next ``times`` requests to ``route`` (optionally of one ``model``).

        ``status`` answers that status with the error body; ``retry_after`` adds a ``Retry-After``
        header (fractions allowed, so tests stay fast); ``raw_body`` answers that exact text as JSON
        (status 200 unless ``status`` is given); ``delay`` sleeps first and, alone, then answers
        normally, so a delayed generate still creates and charges a task, as a real timed-out call may.
        """
        if route not in FAULT_ROUTES:
            raise ValueError(f"route must be one of {', '.join(FAULT_ROUTES)} (got {route!r})")
        if status is not None and (not _is_int(status) or not 200 <= status <= 599):
            raise ValueError(f"status must be an integer HTTP status 200..599 (got {status!r})")
        if not _is_int(times) or times < 1:
            raise ValueError(f"times must be a positive integer (got {times!r})")
        if retry_after is not None and (not _is_number(retry_after) or retry_after < 0):
            raise ValueError(f"retry_after must be a number of seconds >= 0 (got {retry_after!r})")
        if not _is_number(delay) or delay < 0:
            raise ValueError(f"delay must be a number of seconds >= 0 (got {delay!r})")
        if raw_body is not None and not isinstance(raw_body, str):
            raise ValueError("raw_body must be a string")
        if model is not None and model not in MODELS:
            raise ValueError(f"model must be one of {', '.join(MODELS)} (got {model!r})")
        if status is None and raw_body is None and delay == 0:
            raise ValueError("a fault needs status, raw_body or delay")
        fault = Fault(
            route=route,
            status=status,
            times=times,
            retry_after=None if retry_after is None else float(retry_after),
            delay=float(delay),
            raw_body=raw_body,
            model=model,
        )
        self.faults.append(fault)
        return fault

    def fail_next_tasks(self, n: int = 1, reason: str = DEFAULT_FAIL_REASON) -> None:
        """The next ``n`` created tasks end ``failed`` with ``reason`` (and are refunded)."""
        if not _is_int(n) or n < 0:
            raise ValueError(f"n must be an integer >= 0 (got {n!r})")
        if not isinstance(reason, str) or not reason:
            raise ValueError("reason must be a non-empty string")
        self._fail_reasons.extend([reason] * n)

    def complete_now(self, task_id: str) -> None:
        """Finish a task at once: ``completed``, or ``failed`` if it was marked to fail."""
        self.tasks[task_id].finished = True
        self._settle_all()

    def task_status(self, task_id: str) -> str:
        """The status the status route would answer now."""
        return self._settle(self.tasks[task_id], time.monotonic())

    def reset(self) -> None:
        """Back to the constructed state: balance, task_seconds, no tasks, requests, faults or uploads."""
        self._balance = self._initial_balance
        self._task_seconds = self._initial_task_seconds
        self._video_bytes = None
        self.estimated_time = dict(DEFAULT_ESTIMATED_TIME)
        self.tasks.clear()
        self.requests.clear()
        self.faults.clear()
        self.uploads.clear()
        self._fail_reasons.clear()

    def state(self) -> dict[str, Any]:
        """A JSON-ready summary (what ``GET /_sandbox/state`` answers)."""
        now = time.monotonic()
        tasks = [
            {
                "task_id": task.task_id,
                "model": task.model,
                "status": self._settle(task, now),
                "credits_used": task.credits_used,
                "refunded": task.refunded,
                "seconds": task.seconds,
                "fail_reason": task.fail_reason,
            }
            for task in self.tasks.values()
        ]
        return {
            "base_url": self._base_url,
            "public_url": self._public_url or self._base_url,
            "balance": self._balance,
            "task_seconds": self._task_seconds,
            "video_bytes": self._video_bytes,
            "sample_bytes": self.sample_size,
            "estimated_time": dict(self.estimated_time),
            "pending_failures": len(self._fail_reasons),
            "faults": [fault.as_dict() for fault in self.faults],
            "requests": len(self.requests),
            "uploads": len(self.uploads),
            "tasks": tasks,
        }

    # ----- checks -----------------------------------------------------------------------------------

    @staticmethod
    def _checked_balance(value: object) -> int:
        if not _is_int(value) or cast(int, value) < 0:
            raise ValueError(f"balance must be an integer >= 0 (got {value!r})")
        return cast(int, value)

    @staticmethod
    def _checked_task_seconds(value: object) -> float:
        if not _is_number(value) or cast(float, value) < 0:
            raise ValueError(f"task_seconds must be a number of seconds >= 0 (got {value!r})")
        return float(cast(float, value))

    def _check_video_bytes(self, value: object) -> None:
        if value is None:
            return
        if not _is_int(value):
            raise ValueError(f"video_bytes must be an integer or null (got {value!r})")
        size = cast(int, value)
        sample = self.sample_size
        if sample is None:
            return  # checked again by start(), once the sample is read
        if size != sample and size < sample + 8:
            raise ValueError(
                f"video_bytes must be the sample's {sample} bytes or at least {sample + 8} "
                f"(a padding box takes 8 bytes); got {size}"
            )

    def _settle(self, task: SandboxTask, now: float) -> str:
        """The task's status now, refunding a failed task exactly once."""
        status = task.status_at(now)
        if status == "failed" and not task.refunded:
            task.refunded = True
            self._balance += task.credits_used
        return status

    def _settle_all(self) -> None:
        now = time.monotonic()
        for task in self.tasks.values():
            self._settle(task, now)

    # ----- the app ----------------------------------------------------------------------------------

    def _build_app(self) -> web.Application:
        app = web.Application(client_max_size=CLIENT_MAX_SIZE, middlewares=[self._middleware])
        add = app.router
        self._routes.clear()
        for prefix, model in (("kling30", KLING_30), ("kling26", KLING_26)):
            for name, method, path, handler in (
                ("generate", "POST", f"/{prefix}/api/generate/", self._generate),
                ("status", "GET", f"/{prefix}/api/status/{{task_id}}/", self._status),
                ("upload", "POST", f"/{prefix}/api/upload/", self._upload),
            ):
                route_name = f"{prefix}_{name}"
                add.add_route(method, path, handler, name=route_name)
                self._routes[route_name] = (cast(RouteName, name), model)
        add.add_get("/media/videos/{task_id}.mp4", self._video, name="video")
        add.add_get("/media/uploads/{name}", self._media, name="media")
        self._routes["video"] = ("video", None)
        self._routes["media"] = ("media", None)
        add.add_post("/_sandbox/faults", self._ctl_add_fault)
        add.add_get("/_sandbox/faults", self._ctl_faults)
        add.add_delete("/_sandbox/faults", self._ctl_clear_faults)
        add.add_post("/_sandbox/config", self._ctl_config)
        add.add_get("/_sandbox/requests", self._ctl_requests)
        add.add_get("/_sandbox/state", self._ctl_state)
        add.add_post("/_sandbox/reset", self._ctl_reset)
        add.add_post("/_sandbox/tasks/{task_id}/complete", self._ctl_complete)
        return app

    def _classify(self, request: web.Request) -> tuple[RouteName | None, Model | None]:
        name = request.match_info.route.name
        if name is None or name not in self._routes:
            return None, None
        route, model = self._routes[name]
        if route == "video":
            task = self.tasks.get(request.match_info.get("task_id", ""))
            model = task.model if task is not None else None
        return route, model

    def _model_of(self, request: web.Request) -> Model:
        name = request.match_info.route.name
        return cast(Model, self._routes[cast(str, name)][1])

    def _take_fault(self, route: RouteName, model: Model | None) -> Fault | None:
        for index, fault in enumerate(self.faults):
            if fault.route == route and (fault.model is None or fault.model == model):
                fault.times -= 1
                if fault.times <= 0:
                    del self.faults[index]
                return fault
        return None

    @staticmethod
    async def _fault_response(fault: Fault) -> web.Response | None:
        if fault.delay:
            await asyncio.sleep(fault.delay)
        headers: dict[str, str] = {}
        if fault.retry_after is not None:
            seconds = fault.retry_after
            headers["Retry-After"] = str(int(seconds)) if seconds.is_integer() else str(seconds)
        if fault.raw_body is not None:
            return web.Response(
                status=fault.status or 200,
                text=fault.raw_body,
                content_type="application/json",
                headers=headers,
            )
        if fault.status is not None:
            message = _FAULT_MESSAGES.get(fault.status) or HTTPStatus(fault.status).phrase.lower()
            return _error_response(fault.status, message, headers)
        return None

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.encode(), self.api_key.encode())

    def _authorize(self, request: web.Request) -> None:
        header = request.headers.get("Authorization")
        if header is None:
            raise _ApiError(401, "missing Authorization header (expected 'Bearer <API key>')")
        if header.partition(" ")[0].lower() != "bearer":
            raise _ApiError(401, "the Authorization header must use the Bearer scheme")
        if not self._authorized(request):
            raise _ApiError(401, "invalid API key")

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Faults, authentication, JSON error bodies and the request log, for every route."""
        if request.path.startswith("/_sandbox/"):
            try:
                return await handler(request)
            except _ApiError as exc:
                return _error_response(exc.status, exc.message, exc.headers)
            except web.HTTPException as exc:
                return self._http_error(request, exc)
        route, model = self._classify(request)
        body: Any = None
        faulted = False
        try:
            if route == "generate":
                # Parsed leniently here only for the record; the handler parses strictly.
                with contextlib.suppress(ValueError):
                    body = _strict_json(await request.read())
            fault = self._take_fault(route, model) if route is not None and route != "media" else None
            response: web.StreamResponse | None = None
            if fault is not None:
                response = await self._fault_response(fault)
                faulted = response is not None
            if response is None:
                if route in ("generate", "status", "upload"):
                    self._authorize(request)
                response = await handler(request)
        except _ApiError as exc:
            response = _error_response(exc.status, exc.message, exc.headers)
        except web.HTTPException as exc:
            response = self._http_error(request, exc)
        self.requests.append(
            RecordedRequest(
                method=request.method,
                path=request.path,
                route=route,
                model=model,
                json_body=body,
                status=response.status,
                time=time.monotonic(),
                authorized=self._authorized(request),
                fault=faulted,
                content_type=request.headers.get("Content-Type"),
            )
        )
        return response

    @staticmethod
    def _http_error(request: web.Request, exc: web.HTTPException) -> web.Response:
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        if exc.status == 404:
            message = f"not found: {request.method} {request.path}"
        elif exc.status == 413:
            message = f"request body too large (uploads are at most {MAX_UPLOAD_BYTES} bytes)"
        else:
            message = exc.reason.lower()
        return _error_response(exc.status, message, headers)

    # ----- provider routes ------------------------------------------------------------------------

    @staticmethod
    async def _json_object(request: web.Request) -> dict[str, Any]:
        if request.content_type != "application/json":
            raise _invalid(f"Content-Type must be application/json (got {request.content_type!r})")
        try:
            value = _strict_json(await request.read())
        except UnicodeDecodeError:
            raise _invalid("the body is not UTF-8") from None
        except ValueError as exc:
            raise _invalid(f"the body is not valid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise _invalid(f"the body must be a JSON object (got {_json_type(value)})")
        return value

    async def _generate(self, request: web.Request) -> web.StreamResponse:
        model = self._model_of(request)
        body = await self._json_object(request)
        order = validate_30(body) if model == KLING_30 else validate_26(body)
        balance = self.balance
        if balance < order.credits:
            raise _ApiError(
                402, f"insufficient credits: this video costs {order.credits}, the balance is {balance}"
            )
        self._balance -= order.credits
        task = SandboxTask(
            task_id=str(uuid.uuid4()),
            model=model,
            created_at=time.monotonic(),
            seconds=self._task_seconds,
            credits_used=order.credits,
            discount=order.discount,
            video_seconds=order.video_seconds,
            has_audio=order.has_audio,
            opted_in=order.opted_in,
            request=body,
            prompt_submission_id=str(uuid.uuid4()) if order.opted_in else None,
            fail_reason=self._fail_reasons.pop(0) if self._fail_reasons else None,
        )
        self.tasks[task.task_id] = task
        if model == KLING_30:
            return web.json_response(
                {
                    "success": True,
                    "task_id": task.task_id,
                    "provider_task_id": task.provider_task_id,
                    "status": "processing",
                    "credits_used": task.credits_used,
                    "directory_discount_applied": task.discount,
                    "estimated_time": self.estimated_time[KLING_30],
                },
                status=200,
            )
        return web.json_response(
            {
                "success": True,
                "data": {
                    "task_id": task.task_id,
                    "status": "processing",
                    "credits_used": task.credits_used,
                    "credits_remaining": self._balance,
                    "estimated_time": self.estimated_time[KLING_26],
                    "message": "KLING 2.6 video generation started",
                },
            },
            status=201,
        )

    async def _status(self, request: web.Request) -> web.StreamResponse:
        model = self._model_of(request)
        task_id = request.match_info["task_id"]
        task = self.tasks.get(task_id)
        if task is None or task.model != model:
            raise _ApiError(404, f"task not found: {task_id}")
        now = time.monotonic()
        status = self._settle(task, now)
        info: dict[str, Any] = {"task_id": task.task_id, "status": status}
        video_url = f"{self.public_url}/media/videos/{task.task_id}.mp4"
        if status == "failed":
            info["error"] = task.fail_reason
        if model == KLING_30:
            if status == "completed":
                info["video_url"] = video_url
                info["credits_charged"] = task.credits_used
                if task.prompt_submission_id is not None:
                    info["prompt_submission_id"] = task.prompt_submission_id
            return web.json_response({"success": True, **info})
        if status == "processing":
            info["progress"] = task.progress_at(now)
        elif status == "completed":
            info["video_url"] = video_url
            info["duration"] = task.video_seconds
            info["has_audio"] = task.has_audio
        return web.json_response({"success": True, "data": info})

    async def _upload(self, request: web.Request) -> web.StreamResponse:
        if request.content_type != "multipart/form-data":
            raise _invalid(
                f"uploads must be multipart/form-data with one part named 'file' (got {request.content_type!r})"
            )
        try:
            reader = await request.multipart()
            part = await reader.next()
            if part is None:
                raise _invalid("no file: send one multipart part named 'file'")
            if not isinstance(part, BodyPartReader) or part.name != "file":
                name = getattr(part, "name", None)
                raise _invalid(f"unexpected part {name!r}: send one multipart part named 'file'")
            chunks: list[bytes] = []
            size = 0
            while chunk := await part.read_chunk(64 * 1024):
                size += len(chunk)
                if size > MAX_UPLOAD_BYTES:
                    raise _invalid(f"the file is larger than {MAX_UPLOAD_BYTES} bytes (10 MB)")
                chunks.append(chunk)
            if await reader.next() is not None:
                raise _invalid("send exactly one multipart part, named 'file'")
        except (ValueError, AssertionError) as exc:  # aiohttp's complaints about a malformed envelope
            raise _invalid(f"malformed multipart body: {exc}") from None
        data = b"".join(chunks)
        if not data:
            raise _invalid("the file is empty")
        content_type = _sniff_image(data)
        if content_type is None:
            raise _invalid("unsupported file type: only JPEG, PNG and WebP images are accepted")
        name = f"{uuid.uuid4().hex}.{_IMAGE_TYPES[content_type]}"
        self.uploads[name] = (data, content_type)
        return web.json_response(
            {
                "success": True,
                "url": f"{self.public_url}/media/uploads/{name}",
                "content_type": content_type,
                "size": len(data),
            }
        )

    # ----- media ----------------------------------------------------------------------------------

    async def _media(self, request: web.Request) -> web.StreamResponse:
        upload = self.uploads.get(request.match_info["name"])
        if upload is None:
            raise _ApiError(404, "no such upload")
        data, content_type = upload
        return web.Response(body=data, content_type=content_type)

    async def _video(self, request: web.Request) -> web.StreamResponse:
        """The sample clip, padded to :attr:`video_bytes`, streamed so a 200 MB video costs no memory."""
        task = self.tasks.get(request.match_info["task_id"])
        if task is None:
            raise _ApiError(404, "no such video")
        if self._settle(task, time.monotonic()) != "completed":
            raise _ApiError(404, "the video is not ready")
        sample = cast(bytes, self._sample)
        size = self._video_bytes if self._video_bytes is not None else len(sample)
        response = web.StreamResponse(status=200)
        response.content_type = "video/mp4"
        response.content_length = size
        await response.prepare(request)
        if request.method != "HEAD":
            with contextlib.suppress(ConnectionError):  # the downloader hung up: nothing to do
                await self._write_video(response, sample, size)
        return response

    @staticmethod
    async def _write_video(response: web.StreamResponse, sample: bytes, size: int) -> None:
        await response.write(sample)
        padding = size - len(sample)
        if padding:
            # A top-level ``free`` box is legal anywhere in an MP4; a 64-bit size past 4 GiB.
            header = (
                struct.pack(">I4s", padding, b"free")
                if padding <= 0xFFFFFFFF
                else struct.pack(">I4sQ", 1, b"free", padding)
            )
            await response.write(header)
            left = padding - len(header)
            while left > 0:
                step = min(left, _STREAM_CHUNK)
                await response.write(_ZEROS if step == _STREAM_CHUNK else _ZEROS[:step])
                left -= step
        await response.write_eof()

    # ----- control routes (/_sandbox) -------------------------------------------------------------

    @staticmethod
    async def _ctl_body(request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        if not raw.strip():
            return {}
        try:
            value = _strict_json(raw)
        except ValueError as exc:
            raise _invalid(f"the body is not valid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise _invalid("the body must be a JSON object")
        return value

    async def _ctl_add_fault(self, request: web.Request) -> web.StreamResponse:
        body = await self._ctl_body(request)
        allowed = {"route", "status", "times", "retry_after", "delay", "raw_body", "model"}
        unknown = sorted(set(body) - allowed)
        if unknown:
            raise _invalid(f"unknown fault fields {unknown}; use {sorted(allowed)}")
        if "route" not in body:
            raise _invalid("route is required")
        try:
            fault = self.inject(**body)
        except (TypeError, ValueError) as exc:
            raise _invalid(str(exc)) from None
        return web.json_response({"success": True, "fault": fault.as_dict(), "pending": len(self.faults)})

    async def _ctl_faults(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"faults": [fault.as_dict() for fault in self.faults]})

    async def _ctl_clear_faults(self, request: web.Request) -> web.StreamResponse:
        self.faults.clear()
        return web.json_response({"success": True})

    async def _ctl_config(self, request: web.Request) -> web.StreamResponse:
        body = await self._ctl_body(request)
        allowed = {
            "balance",
            "task_seconds",
            "video_bytes",
            "fail_next_tasks",
            "fail_reason",
            "estimated_time",
        }
        unknown = sorted(set(body) - allowed)
        if unknown:
            raise _invalid(f"unknown config fields {unknown}; use {sorted(allowed)}")
        # Check everything before changing anything, so a 400 leaves the sandbox as it was.
        try:
            balance = self._checked_balance(body["balance"]) if "balance" in body else None
            seconds = self._checked_task_seconds(body["task_seconds"]) if "task_seconds" in body else None
            if "video_bytes" in body:
                self._check_video_bytes(body["video_bytes"])
            fail_count = body.get("fail_next_tasks", 0)
            fail_reason = body.get("fail_reason", DEFAULT_FAIL_REASON)
            if not _is_int(fail_count) or fail_count < 0:
                raise ValueError(f"fail_next_tasks must be an integer >= 0 (got {fail_count!r})")
            if not isinstance(fail_reason, str) or not fail_reason:
                raise ValueError("fail_reason must be a non-empty string")
            estimates = body.get("estimated_time", {})
            if not isinstance(estimates, dict) or any(
                key not in MODELS or not isinstance(value, str) for key, value in estimates.items()
            ):
                raise ValueError(f"estimated_time must map {' and/or '.join(MODELS)} to strings")
        except ValueError as exc:
            raise _invalid(str(exc)) from None
        if balance is not None:
            self.balance = balance
        if seconds is not None:
            self.task_seconds = seconds
        if "video_bytes" in body:
            self.video_bytes = body["video_bytes"]
        self.fail_next_tasks(fail_count, fail_reason)
        self.estimated_time.update(estimates)
        return web.json_response({"success": True, **self.state()})

    async def _ctl_requests(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"requests": [recorded.as_dict() for recorded in self.requests]})

    async def _ctl_state(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.state())

    async def _ctl_reset(self, request: web.Request) -> web.StreamResponse:
        self.reset()
        return web.json_response({"success": True})

    async def _ctl_complete(self, request: web.Request) -> web.StreamResponse:
        task_id = request.match_info["task_id"]
        if task_id not in self.tasks:
            raise _ApiError(404, f"task not found: {task_id}")
        self.complete_now(task_id)
        return web.json_response({"success": True, "status": self.task_status(task_id)})


def _sniff_image(data: bytes) -> str | None:
    """The image type by magic bytes; the declared Content-Type of a part is not trusted."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


# --------------------------------------------------------------------------------------------------
# Command line.
# --------------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox",
        description="A local fake of UlazAI's Kling API: try the bot without spending credits.",
    )
    parser.add_argument("--port", type=int, default=8080, help="port to listen on (0 picks a free one)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--api-key", default="sandbox-key", help="the key the bot must send")
    parser.add_argument("--balance", type=int, default=1_000_000, help="starting credits")
    parser.add_argument(
        "--task-seconds", type=float, default=20.0, help="how long each video takes (default 20)"
    )
    parser.add_argument(
        "--public-url",
        default=None,
        help="base of video/upload URLs, when the bot reaches the sandbox under another address",
    )
    return parser


async def _serve(sandbox: Sandbox, host: str, port: int) -> int:
    try:
        url = await sandbox.start(host, port)
    except OSError as exc:
        log.error("the sandbox cannot listen on %s:%s: %s", host, port, exc)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # Windows has no loop signal handlers
            loop.add_signal_handler(sig, stop.set)
    # One line that says how to point the bot here (the key is the sandbox's own, not a secret).
    log.info(
        "UlazAI sandbox ready: put ULAZAI_BASE_URL=%s and ULAZAI_API_KEY=%s in .env (Ctrl-C stops it)",
        url,
        sandbox.api_key,
    )
    try:
        await stop.wait()
    finally:
        await sandbox.close()
        log.info("UlazAI sandbox stopped")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sandbox until Ctrl-C (or SIGTERM)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.api_key or any(ch.isspace() for ch in args.api_key):
        parser.error("--api-key must be one word with no spaces")
    try:
        sandbox = Sandbox(
            api_key=args.api_key,
            balance=args.balance,
            task_seconds=args.task_seconds,
            public_url=args.public_url,
        )
    except ValueError as exc:
        parser.error(str(exc))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return asyncio.run(_serve(sandbox, args.host, args.port))
    except KeyboardInterrupt:
        return 0
