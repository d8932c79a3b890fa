"""The sandbox against the provider's pages, over real HTTP on 127.0.0.1.

These tests speak raw aiohttp, not the project's client: the sandbox is the yardstick the client is
measured with, so it is checked against the documentation directly.
"""

from __future__ import annotations

import asyncio
import json
import re
import struct
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sandbox import MAX_UPLOAD_BYTES, SAMPLE_PATH, Sandbox

KEY = "sandbox-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
GEN30 = "/kling30/api/generate/"
GEN26 = "/kling26/api/generate/"
UP30 = "/kling30/api/upload/"
UP26 = "/kling26/api/upload/"

T2V_30: dict[str, Any] = {
    "prompt": "A heroic wide shot of a spaceship entering orbit above Earth.",
    "generationMode": "text_to_video",
    "durationSeconds": 5,
    "qualityMode": "std",
}
T2V_26: dict[str, Any] = {
    "prompt": "A dog running through a field at sunset",
    "generationMode": "text_to_video",
}
IMG = "https://example.com/source.jpg"

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(20)
JPEG = b"\xff\xd8\xff\xe0" + bytes(20)
WEBP = b"RIFF" + struct.pack("<I", 24) + b"WEBPVP8 " + bytes(16)
GIF = b"GIF89a" + bytes(20)
ROOT = Path(__file__).resolve().parents[2]
SAMPLE = SAMPLE_PATH.read_bytes()


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox(task_seconds=0.3) as sb:
        yield sb


@pytest.fixture
async def http(sandbox: Sandbox) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=sandbox.base_url, headers=AUTH) as session:
        yield session


async def call(
    http: aiohttp.ClientSession, method: str, path: str, **kwargs: Any
) -> tuple[int, Any, aiohttp.ClientResponse]:
    async with http.request(method, path, **kwargs) as response:
        raw = await response.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")
        return response.status, body, response


async def generate(http: aiohttp.ClientSession, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    status, answer, _ = await call(http, "POST", path, json=body)
    return status, answer


def is_uuid4(value: object) -> bool:
    return isinstance(value, str) and str(uuid.UUID(value)) == value and uuid.UUID(value).version == 4


def mp4_boxes(data: bytes) -> list[tuple[bytes, int]]:
    """Top-level boxes; asserts they tile the file exactly, which is what makes an MP4 readable."""
    boxes = []
    pos = 0
    while pos < len(data):
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if size == 1:
            (size,) = struct.unpack(">Q", data[pos + 8 : pos + 16])
        assert size >= 8
        boxes.append((kind, size))
        pos += size
    assert pos == len(data)
    return boxes


def form(data: bytes, name: str = "file", filename: str = "image.bin") -> aiohttp.FormData:
    payload = aiohttp.FormData()
    payload.add_field(name, data, filename=filename, content_type="application/octet-stream")
    return payload


# ----- generate: shapes, status codes, pricing ---------------------------------------------------------


async def test_generate_30_answers_200_flat_like_the_docs(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    body = {**T2V_30, "durationSeconds": 8, "qualityMode": "pro", "sound": True, "multiShots": True}
    body |= {"aspectRatio": "16:9", "prompt_directory_optin": True}
    status, answer = await generate(http, GEN30, body)
    assert status == 200
    assert set(answer) == {
        "success",
        "task_id",
        "provider_task_id",
        "status",
        "credits_used",
        "directory_discount_applied",
        "estimated_time",
    }
    assert answer["success"] is True
    assert is_uuid4(answer["task_id"])
    assert isinstance(answer["provider_task_id"], str)
    assert answer["provider_task_id"]
    assert answer["status"] == "processing"
    assert answer["credits_used"] == 310  # the page's own example: 8 x 40 - 10
    assert answer["directory_discount_applied"] == 10
    assert answer["estimated_time"] == "60-180 seconds"
    assert sandbox.balance == 1_000_000 - 310
    assert sandbox.tasks[answer["task_id"]].request == body


async def test_generate_26_answers_201_wrapped_in_data(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    status, answer = await generate(http, GEN26, {**T2V_26, "duration": "5", "aspectRatio": "16:9"})
    assert status == 201
    assert set(answer) == {"success", "data"}
    assert answer["success"] is True
    data = answer["data"]
    assert set(data) == {
        "task_id",
        "status",
        "credits_used",
        "credits_remaining",
        "estimated_time",
        "message",
    }
    assert is_uuid4(data["task_id"])
    assert data["status"] == "processing"
    assert data["credits_used"] == 45  # 55, and the opt-in defaults to true: -10
    assert data["credits_remaining"] == sandbox.balance == 1_000_000 - 45
    assert data["estimated_time"] == "60-90 seconds"
    assert data["message"] == "KLING 2.6 video generation started"


async def test_estimated_time_is_configurable(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    sandbox.estimated_time["kling-3.0"] = "1-2 seconds"
    sandbox.estimated_time["kling-2.6"] = "1 seconds"
    assert (await generate(http, GEN30, T2V_30))[1]["estimated_time"] == "1-2 seconds"
    assert (await generate(http, GEN26, T2V_26))[1]["data"]["estimated_time"] == "1 seconds"


@pytest.mark.parametrize(
    ("path", "extra", "price", "discount"),
    [
        (GEN30, {}, 100, 0),
        (GEN30, {"sound": True}, 150, 0),
        (GEN30, {"qualityMode": "pro"}, 135, 0),
        (GEN30, {"qualityMode": "pro", "sound": True}, 200, 0),
        (GEN30, {"durationSeconds": 3, "prompt_directory_optin": True}, 50, 10),
        (GEN30, {"durationSeconds": 15, "qualityMode": "pro", "sound": True}, 600, 0),
        (GEN30, {"prompt_directory_optin": False}, 100, 0),
        (GEN26, {}, 45, 10),
        (GEN26, {"prompt_directory_optin": False}, 55, 0),
        (GEN26, {"duration": "10", "prompt_directory_optin": False}, 110, 0),
        (GEN26, {"sound": True, "prompt_directory_optin": False}, 110, 0),
        (GEN26, {"duration": "10", "sound": True, "prompt_directory_optin": False}, 220, 0),
        (GEN26, {"duration": "10", "sound": True}, 210, 10),
    ],
)
async def test_prices_follow_the_tables(
    sandbox: Sandbox, http: aiohttp.ClientSession, path: str, extra: dict[str, Any], price: int, discount: int
) -> None:
    sandbox.balance = 1000
    status, answer = await generate(http, path, {**(T2V_30 if path == GEN30 else T2V_26), **extra})
    assert status in (200, 201)
    if path == GEN30:
        assert answer["credits_used"] == price
        assert answer["directory_discount_applied"] == discount
    else:
        assert answer["data"]["credits_used"] == price
        assert answer["data"]["credits_remaining"] == 1000 - price
    assert sandbox.balance == 1000 - price


async def test_insufficient_credits_is_402_and_charges_nothing(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    sandbox.balance = 99
    status, answer = await generate(http, GEN30, T2V_30)  # costs 100
    assert status == 402
    assert answer["success"] is False
    assert answer["error"].startswith("insufficient credits")
    assert sandbox.balance == 99
    assert sandbox.tasks == {}
    sandbox.balance = 100
    status, _ = await generate(http, GEN30, T2V_30)
    assert status == 200
    assert sandbox.balance == 0
    status, _ = await generate(http, GEN26, T2V_26)
    assert status == 402


# ----- validation ---------------------------------------------------------------------------------------

_DROP = object()


@pytest.mark.parametrize(
    ("path", "changes", "fragment"),
    [
        (GEN30, {"foo": 1}, "unknown field 'foo'"),
        (GEN26, {"qualityMode": "pro"}, "unknown field 'qualityMode'"),
        (GEN26, {"durationSeconds": 5}, "unknown field 'durationSeconds'"),
        (GEN26, {"multiShots": True}, "unknown field 'multiShots'"),
        (GEN26, {"startFrameUrl": IMG}, "unknown field 'startFrameUrl'"),
        (GEN30, {"prompt": _DROP}, "prompt is required"),
        (GEN30, {"prompt": 5}, "prompt must be a string"),
        (GEN30, {"prompt": "   "}, "prompt must not be blank"),
        (GEN30, {"prompt": "a" * 2501}, "at most 2500"),
        (GEN26, {"prompt": "a" * 2001}, "at most 2000"),
        (GEN30, {"generationMode": _DROP}, "generationMode is required"),
        (GEN26, {"generationMode": "video_to_video"}, "generationMode must be one of"),
        (GEN30, {"durationSeconds": _DROP}, "durationSeconds is required"),
        (GEN30, {"durationSeconds": 2}, "durationSeconds must be an integer from 3 to 15"),
        (GEN30, {"durationSeconds": 16}, "durationSeconds must be an integer from 3 to 15"),
        (GEN30, {"durationSeconds": "8"}, "durationSeconds must be an integer"),
        (GEN30, {"durationSeconds": True}, "durationSeconds must be an integer"),
        (GEN30, {"durationSeconds": 8.0}, "durationSeconds must be an integer"),
        (GEN30, {"qualityMode": _DROP}, "qualityMode is required"),
        (GEN30, {"qualityMode": "high"}, "qualityMode must be one of"),
        (GEN30, {"sound": "true"}, "sound must be a boolean"),
        (GEN30, {"sound": None}, "sound must be a boolean"),
        (GEN30, {"multiShots": 1}, "multiShots must be a boolean"),
        (GEN30, {"prompt_directory_optin": "yes"}, "prompt_directory_optin must be a boolean"),
        (GEN26, {"prompt_directory_optin": 0}, "prompt_directory_optin must be a boolean"),
        (GEN26, {"sound": "false"}, "sound must be a boolean"),
        (GEN30, {"aspectRatio": "4:3"}, "aspectRatio must be one of"),
        (
            GEN30,
            {"generationMode": "image_to_video", "startFrameUrl": IMG, "aspectRatio": "16:9"},
            "aspectRatio is not allowed when startFrameUrl or endFrameUrl is set",
        ),
        (
            GEN30,
            {"generationMode": "image_to_video", "endFrameUrl": IMG, "aspectRatio": "1:1"},
            "aspectRatio is not allowed",
        ),
        (GEN30, {"generationMode": "image_to_video"}, "image_to_video needs imageUrls"),
        (GEN30, {"generationMode": "image_to_video", "imageUrls": []}, "imageUrls must not be empty"),
        (GEN30, {"generationMode": "image_to_video", "imageUrls": IMG}, "imageUrls must be an array"),
        (
            GEN30,
            {"generationMode": "image_to_video", "imageUrls": ["ftp://example.com/a.jpg"]},
            "imageUrls[0] must be an http(s) URL",
        ),
        (
            GEN30,
            {"generationMode": "image_to_video", "imageUrls": [IMG, 7]},
            "imageUrls[1] must be a URL string",
        ),
        (
            GEN30,
            {"generationMode": "image_to_video", "startFrameUrl": "start.jpg"},
            "startFrameUrl must be an http(s) URL",
        ),
        (GEN30, {"imageUrls": [IMG]}, "text_to_video takes no images"),
        (GEN30, {"endFrameUrl": IMG}, "text_to_video takes no images: remove endFrameUrl"),
        (GEN26, {"duration": 5}, 'duration must be the string "5" or "10"'),
        (GEN26, {"duration": "7"}, 'duration must be "5" or "10"'),
        (GEN26, {"aspectRatio": "21:9"}, "aspectRatio must be one of"),
        (
            GEN26,
            {"generationMode": "image_to_video", "imageUrls": [IMG], "aspectRatio": "16:9"},
            "aspectRatio is only allowed for text_to_video",
        ),
        (GEN26, {"generationMode": "image_to_video"}, "image_to_video needs imageUrls with exactly 1 URL"),
        (
            GEN26,
            {"generationMode": "image_to_video", "imageUrls": [IMG, IMG]},
            "imageUrls must hold exactly 1 URL",
        ),
        (GEN26, {"imageUrls": [IMG]}, "text_to_video takes no images"),
    ],
)
async def test_every_documented_rule_is_a_400(
    sandbox: Sandbox, http: aiohttp.ClientSession, path: str, changes: dict[str, Any], fragment: str
) -> None:
    body = {**(T2V_30 if path == GEN30 else T2V_26), **changes}
    body = {key: value for key, value in body.items() if value is not _DROP}
    status, answer = await generate(http, path, body)
    assert status == 400, answer
    assert answer["success"] is False
    assert fragment in answer["error"]
    assert sandbox.tasks == {}
    assert sandbox.balance == 1_000_000


@pytest.mark.parametrize(
    ("path", "changes"),
    [
        (GEN30, {"durationSeconds": 3}),
        (GEN30, {"durationSeconds": 15, "prompt": "a" * 2500}),
        (GEN26, {"prompt": "a" * 2000, "duration": "10", "aspectRatio": "9:16"}),
        (GEN30, {"generationMode": "image_to_video", "imageUrls": [IMG], "aspectRatio": "1:1"}),
        (
            GEN30,
            {"generationMode": "image_to_video", "startFrameUrl": IMG, "endFrameUrl": "http://x.example/e"},
        ),
        (GEN30, {"generationMode": "image_to_video", "imageUrls": [IMG], "startFrameUrl": IMG}),
        (GEN26, {"generationMode": "image_to_video", "imageUrls": [IMG], "sound": True}),
    ],
)
async def test_documented_edges_are_accepted(
    http: aiohttp.ClientSession, path: str, changes: dict[str, Any]
) -> None:
    status, answer = await generate(http, path, {**(T2V_30 if path == GEN30 else T2V_26), **changes})
    assert status in (200, 201), answer


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"data": json.dumps(T2V_30)}, "Content-Type must be application/json"),
        ({"data": "{nope", "headers": {"Content-Type": "application/json"}}, "not valid JSON"),
        ({"json": [T2V_30]}, "must be a JSON object"),
        (
            {"data": '{"prompt": "a", "prompt": "b"}', "headers": {"Content-Type": "application/json"}},
            "duplicate",
        ),
    ],
)
async def test_the_body_must_be_a_json_object(
    http: aiohttp.ClientSession, kwargs: dict[str, Any], fragment: str
) -> None:
    status, answer, _ = await call(http, "POST", GEN30, **kwargs)
    assert status == 400
    assert fragment in answer["error"]


async def test_routes_are_exact(http: aiohttp.ClientSession) -> None:
    status, answer, _ = await call(http, "POST", "/kling30/api/generate", json=T2V_30)
    assert status == 404
    assert answer == {"success": False, "error": "not found: POST /kling30/api/generate"}
    status, answer, response = await call(http, "GET", GEN30)
    assert status == 405
    assert answer["success"] is False
    assert "POST" in response.headers["Allow"]


# ----- authentication ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": KEY}, {"Authorization": f"Token {KEY}"}, {"Authorization": "Bearer wrong-key"}],
)
@pytest.mark.parametrize(
    ("method", "path", "kind"),
    [
        ("POST", GEN30, "json"),
        ("POST", GEN26, "json"),
        ("GET", "/kling30/api/status/x/", None),
        ("GET", "/kling26/api/status/x/", None),
        ("POST", UP30, "form"),
    ],
)
async def test_a_missing_or_wrong_key_is_401(
    sandbox: Sandbox, headers: dict[str, str], method: str, path: str, kind: str | None
) -> None:
    async with aiohttp.ClientSession(base_url=sandbox.base_url, headers=headers) as session:
        kwargs: dict[str, Any] = {"json": T2V_30} if kind == "json" else {"data": form(PNG)} if kind else {}
        status, answer, _ = await call(session, method, path, **kwargs)
    assert status == 401
    assert answer["success"] is False
    assert answer["error"]
    assert sandbox.balance == 1_000_000
    assert sandbox.requests[-1].authorized is False


async def test_the_request_log_never_holds_the_key(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    await generate(http, GEN30, T2V_30)
    await call(http, "GET", "/kling30/api/status/nope/")
    recorded = sandbox.requests
    assert [(r.method, r.route, r.model, r.status, r.authorized) for r in recorded] == [
        ("POST", "generate", "kling-3.0", 200, True),
        ("GET", "status", "kling-3.0", 404, True),
    ]
    assert recorded[0].json_body == T2V_30
    assert KEY not in repr(recorded)
    status, answer, _ = await call(http, "GET", "/_sandbox/requests")
    assert status == 200
    assert len(answer["requests"]) == 2
    assert KEY not in json.dumps(answer)


# ----- task life cycle -----------------------------------------------------------------------------------


async def poll_until_final(http: aiohttp.ClientSession, path: str, wrapped: bool) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        status, answer, _ = await call(http, "GET", path)
        assert status == 200
        assert answer["success"] is True
        info = answer["data"] if wrapped else answer
        seen.append(info)
        if info["status"] in ("completed", "failed"):
            return seen
        await asyncio.sleep(0.01)
    raise AssertionError("the task never finished")


def distinct(statuses: list[str]) -> list[str]:
    return [s for i, s in enumerate(statuses) if i == 0 or statuses[i - 1] != s]


async def test_26_goes_pending_processing_with_progress_completed(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    _, answer = await generate(http, GEN26, {**T2V_26, "duration": "10", "sound": True})
    task_id = answer["data"]["task_id"]
    seen = await poll_until_final(http, f"/kling26/api/status/{task_id}/", wrapped=True)
    assert distinct([info["status"] for info in seen]) == ["pending", "processing", "completed"]
    assert set(seen[0]) == {"task_id", "status"}
    progress = [info["progress"] for info in seen if info["status"] == "processing"]
    assert all(isinstance(p, int) and 0 <= p <= 99 for p in progress)
    assert progress == sorted(progress)
    assert progress[-1] > progress[0]
    done = seen[-1]
    assert set(done) == {"task_id", "status", "video_url", "duration", "has_audio"}
    assert done["task_id"] == task_id
    assert done["video_url"] == f"{sandbox.base_url}/media/videos/{task_id}.mp4"
    assert done["duration"] == 10
    assert done["has_audio"] is True


async def test_30_goes_pending_processing_completed(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    _, answer = await generate(http, GEN30, {**T2V_30, "prompt_directory_optin": True})
    task_id = answer["task_id"]
    seen = await poll_until_final(http, f"/kling30/api/status/{task_id}/", wrapped=False)
    assert distinct([info["status"] for info in seen]) == ["pending", "processing", "completed"]
    assert all(set(info) == {"success", "task_id", "status"} for info in seen[:-1])
    done = seen[-1]
    assert set(done) == {
        "success",
        "task_id",
        "status",
        "video_url",
        "credits_charged",
        "prompt_submission_id",
    }
    assert done["credits_charged"] == answer["credits_used"] == 90
    assert is_uuid4(done["prompt_submission_id"])


async def test_30_without_opt_in_has_no_prompt_submission_id(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    _, answer = await generate(http, GEN30, T2V_30)
    sandbox.complete_now(answer["task_id"])
    status, done, _ = await call(http, "GET", f"/kling30/api/status/{answer['task_id']}/")
    assert status == 200
    assert set(done) == {"success", "task_id", "status", "video_url", "credits_charged"}
    assert done["status"] == "completed"


async def test_a_failed_task_says_why_and_is_refunded_once(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    sandbox.fail_next_tasks(1, reason="content moderation")
    _, first = await generate(http, GEN26, {**T2V_26, "prompt_directory_optin": False})
    _, second = await generate(http, GEN30, T2V_30)
    assert sandbox.balance == 1_000_000 - 55 - 100
    seen = await poll_until_final(http, f"/kling26/api/status/{first['data']['task_id']}/", wrapped=True)
    assert seen[-1] == {
        "task_id": first["data"]["task_id"],
        "status": "failed",
        "error": "content moderation",
    }
    assert sandbox.balance == 1_000_000 - 100
    await call(http, "GET", f"/kling26/api/status/{first['data']['task_id']}/")
    assert sandbox.balance == 1_000_000 - 100  # refunded once, however often it is polled
    seen = await poll_until_final(http, f"/kling30/api/status/{second['task_id']}/", wrapped=False)
    assert seen[-1]["status"] == "completed"  # only the next one failed


async def test_a_failed_30_task(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    sandbox.fail_next_tasks()
    _, answer = await generate(http, GEN30, T2V_30)
    sandbox.complete_now(answer["task_id"])
    assert sandbox.balance == 1_000_000
    _, done, _ = await call(http, "GET", f"/kling30/api/status/{answer['task_id']}/")
    assert set(done) == {"success", "task_id", "status", "error"}
    assert done["status"] == "failed"
    status, _, _ = await call(http, "GET", f"/media/videos/{answer['task_id']}.mp4")
    assert status == 404


async def test_unknown_or_other_models_task_is_404(http: aiohttp.ClientSession) -> None:
    _, answer = await generate(http, GEN30, T2V_30)
    for path in (f"/kling26/api/status/{answer['task_id']}/", f"/kling30/api/status/{uuid.uuid4()}/"):
        status, body, _ = await call(http, "GET", path)
        assert status == 404
        assert body["success"] is False
        assert body["error"].startswith("task not found")


# ----- video ---------------------------------------------------------------------------------------------


async def finished_task(sandbox: Sandbox, http: aiohttp.ClientSession) -> str:
    _, answer = await generate(http, GEN30, T2V_30)
    sandbox.complete_now(answer["task_id"])
    return str(answer["task_id"])


async def test_video_is_the_sample_mp4_without_auth(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    task_id = await finished_task(sandbox, http)
    sample = SAMPLE
    assert len(sample) < 20_000
    async with aiohttp.ClientSession() as anonymous:
        async with anonymous.get(f"{sandbox.base_url}/media/videos/{task_id}.mp4") as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "video/mp4"
            assert response.headers["Content-Length"] == str(len(sample))
            data = await response.read()
        async with anonymous.head(f"{sandbox.base_url}/media/videos/{task_id}.mp4") as response:
            assert response.status == 200
            assert response.headers["Content-Length"] == str(len(sample))
    assert data == sample
    kinds = [kind for kind, _ in mp4_boxes(data)]
    assert kinds[0] == b"ftyp"
    assert {b"moov", b"mdat"} <= set(kinds)
    assert sandbox.requests[-2].route == "video"
    assert sandbox.requests[-2].model == "kling-3.0"


async def test_padded_video_is_exact_streamed_and_still_an_mp4(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    task_id = await finished_task(sandbox, http)
    sample = SAMPLE
    sandbox.video_bytes = 20_000_000
    head = b""
    total = 0
    tail_is_zero = True
    async with http.get(f"/media/videos/{task_id}.mp4") as response:
        assert response.headers["Content-Length"] == "20000000"
        async for chunk in response.content.iter_chunked(1 << 20):
            if len(head) < len(sample) + 8:
                head += chunk
            elif chunk.count(0) != len(chunk):
                tail_is_zero = False
            total += len(chunk)
    assert total == 20_000_000
    assert head.startswith(sample)
    assert head[4:8] == b"ftyp"
    assert struct.unpack(">I4s", head[len(sample) : len(sample) + 8]) == (20_000_000 - len(sample), b"free")
    assert tail_is_zero
    sandbox.video_bytes = len(sample) + 8  # the smallest padding: an empty free box
    async with http.get(f"/media/videos/{task_id}.mp4") as response:
        data = await response.read()
    assert mp4_boxes(data)[0][0] == b"ftyp"
    assert mp4_boxes(data)[-1] == (b"free", 8)


async def test_video_sizes_that_cannot_be_a_valid_mp4_are_refused(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    size = len(SAMPLE)
    for bad in (size + 1, size + 7, size - 1, 0):
        with pytest.raises(ValueError, match="video_bytes"):
            sandbox.video_bytes = bad
    status, answer, _ = await call(http, "POST", "/_sandbox/config", json={"video_bytes": size + 3})
    assert status == 400
    assert "video_bytes" in answer["error"]
    sandbox.video_bytes = size
    sandbox.video_bytes = None
    assert sandbox.video_bytes is None


async def test_video_of_an_unknown_or_unfinished_task_is_404(http: aiohttp.ClientSession) -> None:
    _, answer = await generate(http, GEN30, T2V_30)
    for task_id in (answer["task_id"], uuid.uuid4()):
        status, body, _ = await call(http, "GET", f"/media/videos/{task_id}.mp4")
        assert status == 404
        assert body["success"] is False


# ----- upload --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "content_type", "ext"),
    [(PNG, "image/png", "png"), (JPEG, "image/jpeg", "jpg"), (WEBP, "image/webp", "webp")],
)
@pytest.mark.parametrize("path", [UP30, UP26])
async def test_upload_accepts_images_by_magic_bytes_and_serves_them(
    sandbox: Sandbox, http: aiohttp.ClientSession, data: bytes, content_type: str, ext: str, path: str
) -> None:
    status, answer, _ = await call(http, "POST", path, data=form(data, filename="no-extension"))
    assert status == 200
    assert set(answer) == {"success", "url", "content_type", "size"}
    assert answer["success"] is True
    assert answer["content_type"] == content_type
    assert answer["size"] == len(data)
    assert re.fullmatch(rf"{re.escape(sandbox.base_url)}/media/uploads/[0-9a-f]{{32}}\.{ext}", answer["url"])
    async with aiohttp.ClientSession() as anonymous, anonymous.get(answer["url"]) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == content_type
        assert await response.read() == data


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        (lambda: form(GIF), "only JPEG, PNG and WebP"),
        (lambda: form(b"hello, I am text"), "only JPEG, PNG and WebP"),
        (lambda: form(b"RIFF\x00\x00\x00\x00WAVEfmt "), "only JPEG, PNG and WebP"),
        (lambda: form(b""), "the file is empty"),
        (lambda: form(PNG, name="image"), "unexpected part 'image'"),
        (lambda: form(PNG + bytes(MAX_UPLOAD_BYTES + 1 - len(PNG))), "larger than 10000000 bytes"),
        (lambda: PNG, "multipart/form-data"),
    ],
)
async def test_upload_refusals(
    sandbox: Sandbox, http: aiohttp.ClientSession, payload: Any, fragment: str
) -> None:
    status, answer, _ = await call(http, "POST", UP30, data=payload())
    assert status == 400
    assert fragment in answer["error"]
    assert sandbox.uploads == {}


async def test_upload_of_exactly_10_mb_and_of_two_parts(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    status, answer, _ = await call(http, "POST", UP30, data=form(PNG + bytes(MAX_UPLOAD_BYTES - len(PNG))))
    assert status == 200
    assert answer["size"] == MAX_UPLOAD_BYTES
    two = form(PNG)
    two.add_field("file", PNG, filename="b.png")
    status, answer, _ = await call(http, "POST", UP30, data=two)
    assert status == 400
    assert "exactly one" in answer["error"]


async def test_unknown_upload_is_404(http: aiohttp.ClientSession) -> None:
    status, _, _ = await call(http, "GET", "/media/uploads/nothing.png")
    assert status == 404


# ----- faults from Python --------------------------------------------------------------------------------


async def test_status_fault_with_retry_after_then_normal(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    sandbox.inject("generate", status=429, retry_after=2)
    sandbox.inject("generate", status=500, retry_after=0.25)
    status, answer, response = await call(http, "POST", GEN30, json=T2V_30)
    assert (status, answer) == (429, {"success": False, "error": "rate-limited"})
    assert response.headers["Retry-After"] == "2"
    status, answer, response = await call(http, "POST", GEN30, json=T2V_30)
    assert status == 500
    assert response.headers["Retry-After"] == "0.25"
    assert sandbox.tasks == {}
    assert sandbox.balance == 1_000_000
    status, _, response = await call(http, "POST", GEN30, json=T2V_30)
    assert status == 200
    assert "Retry-After" not in response.headers
    assert [(r.status, r.fault, r.json_body) for r in sandbox.requests] == [
        (429, True, T2V_30),
        (500, True, T2V_30),
        (200, False, T2V_30),
    ]


async def test_fault_times_and_model_filter(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    sandbox.inject("generate", status=503, times=2, model="kling-2.6")
    assert (await generate(http, GEN30, T2V_30))[0] == 200  # the other model is untouched
    assert (await generate(http, GEN26, T2V_26))[0] == 503
    assert (await generate(http, GEN26, T2V_26))[0] == 503
    assert (await generate(http, GEN26, T2V_26))[0] == 201
    assert sandbox.faults == []


async def test_raw_body_fault_sends_exact_text(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    _, answer = await generate(http, GEN30, T2V_30)
    sandbox.inject("status", raw_body='{"success": true, "task_id": ')
    sandbox.inject("status", raw_body="<html>Bad gateway</html>", status=502)
    async with http.get(f"/kling30/api/status/{answer['task_id']}/") as response:
        assert response.status == 200
        assert response.content_type == "application/json"
        assert await response.text() == '{"success": true, "task_id": '
    async with http.get(f"/kling30/api/status/{answer['task_id']}/") as response:
        assert response.status == 502
        assert await response.text() == "<html>Bad gateway</html>"


async def test_delay_fault_times_the_client_out_but_the_task_still_starts(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    sandbox.inject("generate", delay=0.3)
    with pytest.raises(asyncio.TimeoutError):
        await call(http, "POST", GEN30, json=T2V_30, timeout=aiohttp.ClientTimeout(total=0.05))
    for _ in range(100):
        if sandbox.tasks:
            break
        await asyncio.sleep(0.01)
    assert (
        len(sandbox.tasks) == 1
    )  # the provider acted although the caller gave up: why generate is never retried
    assert sandbox.balance == 1_000_000 - 100


async def test_delay_with_status(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    sandbox.inject("upload", delay=0.1, status=500)
    started = time.monotonic()
    status, _, _ = await call(http, "POST", UP30, data=form(PNG))
    assert status == 500
    assert time.monotonic() - started >= 0.1


async def test_video_and_upload_faults(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    task_id = await finished_task(sandbox, http)
    sandbox.inject("video", status=500, model="kling-2.6")  # not this task's model: skipped, stays queued
    sandbox.inject("video", status=403)
    sandbox.inject("upload", status=413)
    assert (await call(http, "GET", f"/media/videos/{task_id}.mp4"))[0] == 403
    assert (await call(http, "GET", f"/media/videos/{task_id}.mp4"))[0] == 200
    assert (await call(http, "POST", UP30, data=form(PNG)))[0] == 413
    assert [fault.model for fault in sandbox.faults] == ["kling-2.6"]


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"route": "download", "status": 500}, "route must be one of"),
        ({"route": "generate"}, "needs status, raw_body or delay"),
        ({"route": "generate", "status": 99}, "status must be"),
        ({"route": "generate", "status": 500, "times": 0}, "times must be"),
        ({"route": "generate", "status": 500, "model": "kling-9"}, "model must be one of"),
        ({"route": "generate", "delay": -1}, "delay must be"),
    ],
)
def test_inject_checks_its_arguments(kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValueError, match=re.escape(fragment)):
        Sandbox().inject(**kwargs)


# ----- control over HTTP ---------------------------------------------------------------------------------


async def test_faults_over_http(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    status, answer, _ = await call(
        http,
        "POST",
        "/_sandbox/faults",
        json={"route": "generate", "status": 429, "retry_after": 1, "times": 2},
    )
    assert status == 200
    assert answer["fault"]["times"] == 2
    await call(
        http, "POST", "/_sandbox/faults", json={"route": "status", "raw_body": "nope", "model": "kling-3.0"}
    )
    await call(http, "POST", "/_sandbox/faults", json={"route": "generate", "delay": 0.05})
    assert [fault.route for fault in sandbox.faults] == ["generate", "status", "generate"]
    _, listed, _ = await call(http, "GET", "/_sandbox/faults")
    assert len(listed["faults"]) == 3
    for _ in range(2):
        status, _, response = await call(http, "POST", GEN30, json=T2V_30)
        assert (status, response.headers["Retry-After"]) == (429, "1")
    started = time.monotonic()
    status, answer, _ = await call(http, "POST", GEN30, json=T2V_30)
    assert status == 200
    assert time.monotonic() - started >= 0.05
    assert (await call(http, "GET", f"/kling26/api/status/{uuid.uuid4()}/"))[0] == 404  # model filter
    assert (await call(http, "GET", f"/kling30/api/status/{answer['task_id']}/"))[1] == "nope"
    status, answer, _ = await call(
        http, "POST", "/_sandbox/faults", json={"route": "generate", "status": "500"}
    )
    assert status == 400
    assert "status must be" in answer["error"]
    status, answer, _ = await call(http, "POST", "/_sandbox/faults", json={"route": "generate", "code": 500})
    assert status == 400
    assert "unknown fault fields" in answer["error"]
    sandbox.inject("video", status=500)
    assert (await call(http, "DELETE", "/_sandbox/faults"))[0] == 200
    assert sandbox.faults == []


async def test_config_state_reset_and_complete_over_http(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    status, state, _ = await call(
        http,
        "POST",
        "/_sandbox/config",
        json={
            "balance": 500,
            "task_seconds": 30,
            "video_bytes": 100_000,
            "fail_next_tasks": 1,
            "fail_reason": "nope",
            "estimated_time": {"kling-2.6": "5-10 seconds"},
        },
    )
    assert status == 200
    assert (state["balance"], state["task_seconds"], state["video_bytes"]) == (500, 30.0, 100_000)
    assert sandbox.balance == 500
    assert sandbox.task_seconds == 30
    assert sandbox.video_bytes == 100_000
    _, answer = await generate(http, GEN26, T2V_26)
    task_id = answer["data"]["task_id"]
    assert answer["data"]["estimated_time"] == "5-10 seconds"
    assert answer["data"]["credits_remaining"] == 455
    _, state, _ = await call(http, "GET", "/_sandbox/state")
    assert state["balance"] == 455
    assert state["tasks"] == [
        {
            "task_id": task_id,
            "model": "kling-2.6",
            "status": "pending",
            "credits_used": 45,
            "refunded": False,
            "seconds": 30.0,
            "fail_reason": "nope",
        }
    ]
    status, answer, _ = await call(http, "POST", f"/_sandbox/tasks/{task_id}/complete")
    assert (status, answer) == (200, {"success": True, "status": "failed"})
    _, state, _ = await call(http, "GET", "/_sandbox/state")
    assert state["balance"] == 500
    status, answer, _ = await call(http, "POST", "/_sandbox/config", json={"balance": -1, "task_seconds": 1})
    assert status == 400
    assert "balance" in answer["error"]
    assert sandbox.task_seconds == 30  # nothing changed
    status, answer, _ = await call(http, "POST", "/_sandbox/config", json={"credits": 5})
    assert status == 400
    assert (await call(http, "POST", "/_sandbox/reset"))[0] == 200
    _, state, _ = await call(http, "GET", "/_sandbox/state")
    assert state["balance"] == 1_000_000
    assert state["task_seconds"] == 0.3
    assert state["tasks"] == []
    assert state["requests"] == 0
    assert state["video_bytes"] is None


def test_reset_from_python() -> None:
    sb = Sandbox(balance=10, task_seconds=2)
    sb.balance = 3
    sb.task_seconds = 5
    sb.inject("generate", status=500)
    sb.fail_next_tasks(2)
    sb.reset()
    assert (sb.balance, sb.task_seconds, sb.faults, sb.state()["pending_failures"]) == (10, 2.0, [], 0)
    with pytest.raises(ValueError, match="balance"):
        sb.balance = -5
    with pytest.raises(RuntimeError, match="not started"):
        _ = sb.base_url


# ----- command line --------------------------------------------------------------------------------------


async def test_cli_serves_until_terminated() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sandbox",
        "--port",
        "0",
        "--api-key",
        "cli-key",
        "--balance",
        "500",
        "--task-seconds",
        "0.1",
        cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    try:
        url = None
        while url is None:
            line = (await asyncio.wait_for(proc.stderr.readline(), 10)).decode()
            assert line, "the sandbox exited before it was ready"
            if match := re.search(r"ULAZAI_BASE_URL=(\S+) and ULAZAI_API_KEY=cli-key", line):
                url = match.group(1)
        headers = {"Authorization": "Bearer cli-key"}
        async with aiohttp.ClientSession(base_url=url, headers=headers) as session:
            status, _ = await generate(session, GEN30, T2V_30)
            assert status == 200
            _, state, _ = await call(session, "GET", "/_sandbox/state")
            assert state["balance"] == 400
            assert state["task_seconds"] == 0.1
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode == 0
