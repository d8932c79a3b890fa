"""The provider client against the strict sandbox, over real HTTP on 127.0.0.1.

Every documented answer and error of both models, the 429 retry, and the rule that a generate call is
never retried after a timeout or 5xx (the provider has no idempotency key: the operator would pay twice).
"""

from __future__ import annotations

import asyncio
import logging
import struct
import zlib
from collections.abc import AsyncIterator

import aiohttp
import pytest
from pydantic import SecretStr

from sandbox import Sandbox
from ulazai.client import RetryPolicy, UlazAIClient
from ulazai.errors import (
    AuthenticationError,
    BadRequestError,
    InsufficientCreditsError,
    InvalidRequestError,
    MalformedResponseError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitedError,
    UpstreamError,
)
from ulazai.requests import AspectRatio, GenerationMode, KlingModel, Quality, VideoSpec, build_request
from ulazai.results import EstimatedTime, TaskResult, TaskStatus

API_KEY = "sandbox-key-0123456789"


def png_bytes() -> bytes:
    """A real 1x1 PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
        + chunk(b"IEND", b"")
    )


class Sleeps:
    """Records the client's back-off delays instead of waiting them out."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    sb = Sandbox(api_key=API_KEY, task_seconds=0.4)
    await sb.start("127.0.0.1", 0)
    try:
        yield sb
    finally:
        await sb.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def client(sandbox: Sandbox, session: aiohttp.ClientSession, sleeps: Sleeps) -> UlazAIClient:
    return make_client(sandbox.base_url, session, sleeps)


def make_client(
    base_url: str, session: aiohttp.ClientSession, sleeps: Sleeps, key: str = API_KEY
) -> UlazAIClient:
    return UlazAIClient(
        session,
        base_url=base_url,
        api_key=SecretStr(key),
        timeout=aiohttp.ClientTimeout(total=0.5),
        retry=RetryPolicy(
            max_rate_limit_retries=3, max_transient_retries=2, base_backoff=0.2, max_backoff=5.0
        ),
        sleep=sleeps,
    )


def calls(sandbox: Sandbox, route: str) -> int:
    return sum(1 for r in sandbox.requests if r.route == route)


async def wait_final(client: UlazAIClient, model: KlingModel, task_id: str) -> list[TaskResult]:
    seen = []
    for _ in range(100):
        result = await client.status(model, task_id)
        seen.append(result)
        if result.status.is_final:
            return seen
        await asyncio.sleep(0.05)
    raise AssertionError("the task never finished")


TEXT_30 = VideoSpec(
    model=KlingModel.V3_0,
    prompt="A cyclist in a rainy neon city",
    duration=8,
    quality=Quality.PRO,
    sound=True,
)
TEXT_26 = VideoSpec(model=KlingModel.V2_6, prompt="A dog running through a field at sunset")


async def test_kling30_text_to_video_round_trip(
    client: UlazAIClient, sandbox: Sandbox, session: aiohttp.ClientSession
) -> None:
    started = await client.generate(build_request(TEXT_30))
    assert started.model is KlingModel.V3_0
    assert started.status is TaskStatus.PROCESSING
    assert started.credits_used == 8 * 40
    assert started.estimated_time == EstimatedTime(60, 180)

    seen = await wait_final(client, KlingModel.V3_0, started.task_id)
    final = seen[-1]
    assert final.status is TaskStatus.COMPLETED
    assert final.credits_charged == 320
    assert final.video_url is not None
    async with session.get(final.video_url) as response:
        assert response.status == 200
        assert (await response.read())[4:8] == b"ftyp"

    body = next(r for r in sandbox.requests if r.route == "generate").json_body
    assert body["prompt_directory_optin"] is False  # always explicit, never the provider's default


async def test_kling26_wrapped_201_answer_and_progress(client: UlazAIClient, sandbox: Sandbox) -> None:
    sandbox.balance = 1000
    started = await client.generate(build_request(TEXT_26))
    assert started.model is KlingModel.V2_6
    assert started.status is TaskStatus.PROCESSING
    assert started.credits_used == 55
    assert started.credits_remaining == 945
    assert started.estimated_time == EstimatedTime(60, 90)

    seen = await wait_final(client, KlingModel.V2_6, started.task_id)
    assert any(r.status is TaskStatus.PROCESSING and r.progress is not None for r in seen)
    assert seen[-1].status is TaskStatus.COMPLETED
    assert seen[-1].video_url is not None
    body = next(r for r in sandbox.requests if r.route == "generate").json_body
    assert body["duration"] == "5"
    assert body["prompt_directory_optin"] is False


async def test_directory_optin_is_sent_and_discounted(client: UlazAIClient, sandbox: Sandbox) -> None:
    spec = VideoSpec(
        model=KlingModel.V3_0, prompt="x", duration=8, quality=Quality.PRO, sound=True, directory_optin=True
    )
    started = await client.generate(build_request(spec))
    assert started.credits_used == 310  # the docs' own example


async def test_upload_then_image_to_video_on_both_models(
    client: UlazAIClient, sandbox: Sandbox, session: aiohttp.ClientSession
) -> None:
    image = png_bytes()
    url = await client.upload(image)
    assert url.startswith("http://127.0.0.1:")
    async with session.get(url) as response:
        assert await response.read() == image

    started = await client.generate(
        build_request(
            VideoSpec(
                model=KlingModel.V2_6, prompt="It runs", mode=GenerationMode.IMAGE_TO_VIDEO, image_urls=(url,)
            )
        )
    )
    assert started.status is TaskStatus.PROCESSING
    framed = VideoSpec(
        model=KlingModel.V3_0,
        prompt="Smile",
        mode=GenerationMode.IMAGE_TO_VIDEO,
        start_frame_url=url,
        end_frame_url=url,
    )
    assert (await client.generate(build_request(framed))).credits_used == 5 * 20


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"GIF89a" + b"\x00" * 100, "not a JPEG, PNG or WebP"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 10_000_000, ""),
    ],
)
async def test_upload_refuses_before_any_request(
    client: UlazAIClient, sandbox: Sandbox, data: bytes, reason: str
) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        await client.upload(data)
    assert reason in caught.value.message
    assert sandbox.requests == []


async def test_wrong_key_is_401_and_never_leaks(
    sandbox: Sandbox, session: aiohttp.ClientSession, sleeps: Sleeps
) -> None:
    bad_key = "wrong-key-abcdef123456"
    client = make_client(sandbox.base_url, session, sleeps, key=bad_key)
    with pytest.raises(AuthenticationError) as caught:
        await client.generate(build_request(TEXT_26))
    assert caught.value.status == 401
    for text in (str(caught.value), repr(caught.value), repr(client), str(caught.value.body)):
        assert bad_key not in text
    assert calls(sandbox, "generate") == 1


async def test_insufficient_credits_is_402(client: UlazAIClient, sandbox: Sandbox) -> None:
    sandbox.balance = 54
    with pytest.raises(InsufficientCreditsError) as caught:
        await client.generate(build_request(TEXT_26))
    assert caught.value.status == 402
    assert caught.value.message


async def test_provider_400_carries_its_message(client: UlazAIClient, sandbox: Sandbox) -> None:
    sandbox.inject("generate", status=400)
    with pytest.raises(BadRequestError) as caught:
        await client.generate(build_request(TEXT_30))
    assert caught.value.status == 400
    assert caught.value.message


async def test_429_is_retried_honouring_retry_after(
    client: UlazAIClient, sandbox: Sandbox, sleeps: Sleeps
) -> None:
    sandbox.inject("generate", status=429, retry_after=2, times=2)
    started = await client.generate(build_request(TEXT_30))
    assert started.status is TaskStatus.PROCESSING
    assert sleeps.delays == [2.0, 2.0]
    assert calls(sandbox, "generate") == 3


async def test_429_without_retry_after_backs_off_exponentially_with_jitter(
    client: UlazAIClient, sandbox: Sandbox, sleeps: Sleeps
) -> None:
    sandbox.inject("status", status=429, times=3)
    started = await client.generate(build_request(TEXT_30))
    await client.status(KlingModel.V3_0, started.task_id)
    assert len(sleeps.delays) == 3
    for attempt, delay in enumerate(sleeps.delays):
        ceiling = 0.2 * 2**attempt
        assert ceiling / 2 <= delay <= ceiling


async def test_429_retries_are_bounded(client: UlazAIClient, sandbox: Sandbox, sleeps: Sleeps) -> None:
    sandbox.inject("generate", status=429, retry_after=1, times=10)
    with pytest.raises(RateLimitedError) as caught:
        await client.generate(build_request(TEXT_30))
    assert caught.value.status == 429
    assert caught.value.retry_after == 1.0
    assert calls(sandbox, "generate") == 4  # the first call and three retries
    assert sandbox.balance == 1_000_000  # nothing was charged


async def test_a_retry_after_longer_than_we_wait_is_handed_back(
    client: UlazAIClient, sandbox: Sandbox, sleeps: Sleeps
) -> None:
    sandbox.inject("generate", status=429, retry_after=600)
    with pytest.raises(RateLimitedError) as caught:
        await client.generate(build_request(TEXT_30))
    assert caught.value.retry_after == 600
    assert sleeps.delays == []


async def test_generate_500_is_never_retried(client: UlazAIClient, sandbox: Sandbox) -> None:
    sandbox.inject("generate", status=500)
    with pytest.raises(UpstreamError) as caught:
        await client.generate(build_request(TEXT_30))
    assert caught.value.status == 500
    assert calls(sandbox, "generate") == 1


async def test_generate_timeout_is_never_retried(
    client: UlazAIClient, sandbox: Sandbox, sleeps: Sleeps
) -> None:
    sandbox.inject("generate", delay=2.0)
    with pytest.raises(ProviderTimeoutError) as caught:
        await client.generate(build_request(TEXT_30))
    assert caught.value.status is None
    assert sleeps.delays == []  # no second attempt
    await asyncio.sleep(2.0)  # let the slow answer finish on the sandbox's side
    assert len(sandbox.tasks) == 1  # the provider did start it: exactly why we never retry blindly


async def test_generate_malformed_answer_is_not_retried(client: UlazAIClient, sandbox: Sandbox) -> None:
    sandbox.inject("generate", raw_body="<html>gateway hiccup</html>")
    with pytest.raises(MalformedResponseError):
        await client.generate(build_request(TEXT_30))
    assert calls(sandbox, "generate") == 1


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 500},
        {"status": 503},
        {"delay": 2.0},
        {"raw_body": "not json"},
        {"raw_body": '{"success": true}'},
    ],
)
async def test_status_is_retried_on_transient_failures(
    client: UlazAIClient, sandbox: Sandbox, sleeps: Sleeps, fault: dict[str, object]
) -> None:
    started = await client.generate(build_request(TEXT_26))
    sandbox.inject("status", times=2, **fault)  # type: ignore[arg-type]
    result = await client.status(KlingModel.V2_6, started.task_id)
    assert result.task_id == started.task_id
    assert len(sleeps.delays) == 2  # two failures, two waits, then the answer
    if "delay" not in fault:  # a request the client abandoned is never recorded by the sandbox
        assert calls(sandbox, "status") == 3


async def test_status_gives_up_after_bounded_retries(client: UlazAIClient, sandbox: Sandbox) -> None:
    started = await client.generate(build_request(TEXT_26))
    sandbox.inject("status", status=500, times=5)
    with pytest.raises(UpstreamError):
        await client.status(KlingModel.V2_6, started.task_id)
    assert calls(sandbox, "status") == 3


async def test_failed_task_reports_its_reason(client: UlazAIClient, sandbox: Sandbox) -> None:
    sandbox.fail_next_tasks(1, reason="content policy")
    started = await client.generate(build_request(TEXT_30))
    final = (await wait_final(client, KlingModel.V3_0, started.task_id))[-1]
    assert final.status is TaskStatus.FAILED
    assert final.error is not None
    assert "content policy" in final.error


async def test_unknown_task_is_a_provider_error(client: UlazAIClient) -> None:
    with pytest.raises(ProviderError) as caught:
        await client.status(KlingModel.V3_0, "no-such-task")
    assert caught.value.status == 404


async def test_connection_refused_is_a_timeout_error(session: aiohttp.ClientSession, sleeps: Sleeps) -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    client = make_client(f"http://127.0.0.1:{port}", session, sleeps)
    with pytest.raises(ProviderTimeoutError):
        await client.generate(build_request(TEXT_30))
    assert len(sleeps.delays) == 2  # nothing was sent, so even generate may try again


async def test_the_key_never_reaches_a_log(
    client: UlazAIClient, sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sandbox.inject("generate", status=429, retry_after=0)
    sandbox.inject("status", status=500)
    started = await client.generate(build_request(TEXT_30))
    await client.status(KlingModel.V3_0, started.task_id)
    assert caplog.records, "the retries should have been logged"
    assert API_KEY not in caplog.text
    assert API_KEY not in repr(client)


def test_http_base_url_is_allowed_for_a_sandbox_but_nothing_else() -> None:
    session = object.__new__(aiohttp.ClientSession)
    assert (
        UlazAIClient(session, base_url="http://127.0.0.1:8080/", api_key=SecretStr("k")).base_url
        == "http://127.0.0.1:8080"
    )
    with pytest.raises(ValueError, match="http"):
        UlazAIClient(session, base_url="file:///etc/passwd", api_key=SecretStr("k"))


def test_aspect_ratio_rule_is_enforced_before_sending() -> None:
    spec = VideoSpec(
        model=KlingModel.V3_0,
        prompt="x",
        mode=GenerationMode.IMAGE_TO_VIDEO,
        start_frame_url="https://img.example/a.png",
        aspect_ratio=AspectRatio.SQUARE,
    )
    with pytest.raises(InvalidRequestError):
        build_request(spec)
