"""What a member types into the Continue, Remix and Animate modals, the requests those make, and the
start frame of a continuation."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

import media
from generation import shapes
from generation.iterating import MAX_MODAL_PROMPT, last_frame_of, parse_duration, parse_prompt
from generation.refusals import BadDuration, EmptyPrompt, NoLastFrame, PromptTooLong
from sandbox import SAMPLE_PATH
from storage import Job, JobOrigin, JobState
from ulazai.requests import GenerationMode, KlingModel, build_request

# -- the modals' inputs -------------------------------------------------------------------------------


def test_a_prompt_is_trimmed_and_must_say_something() -> None:
    assert parse_prompt("  a fox runs \n") == "a fox runs"
    for empty in ("", "   ", "\n\t", None):
        with pytest.raises(EmptyPrompt):
            parse_prompt(empty)
    assert parse_prompt("x" * MAX_MODAL_PROMPT) == "x" * 2500
    with pytest.raises(PromptTooLong) as refused:
        parse_prompt("x" * 2501)
    assert (refused.value.length, refused.value.limit) == (2501, 2500)


@pytest.mark.parametrize(
    ("typed", "seconds"),
    [("", None), ("  ", None), (None, None), ("3", 3), ("15", 15), (" 8 ", 8), ("8s", 8), ("8 s", 8),
     ("10 seconds", 10), ("5 sec", 5)],
)  # fmt: skip
def test_a_duration_is_whole_seconds_from_3_to_15_or_nothing(typed: str | None, seconds: int | None) -> None:
    assert parse_duration(typed) == seconds


@pytest.mark.parametrize("typed", ["20", "2", "0", "16", "abc", "7.5", "-5", "５", "1e1", "s", "8 minutes"])
def test_anything_else_is_refused_saying_what_was_typed(typed: str) -> None:
    with pytest.raises(BadDuration) as refused:
        parse_duration(typed)
    assert (refused.value.low, refused.value.high) == (3, 15)
    assert refused.value.given == typed.strip()


@given(st.text(max_size=30))
def test_a_duration_is_either_refused_or_in_range(typed: str) -> None:
    try:
        seconds = parse_duration(typed)
    except BadDuration:
        return
    assert seconds is None or 3 <= seconds <= 15


# -- the requests they make ---------------------------------------------------------------------------


def job(**columns: Any) -> Job:
    values: dict[str, Any] = {
        "id": 7, "guild_id": 1, "user_id": 2, "channel_id": 3, "interaction_id": 4, "state": JobState.DELIVERED,
        "estimate_credits": 100, "model": "kling-3.0", "mode": "text_to_video", "prompt": "a fox", "duration": 6,
        "quality": "pro", "aspect_ratio": "9:16", "sound": True, "multi_shot": True,
    }  # fmt: skip
    return Job(**(values | columns))


def test_a_continuation_is_kling_30_from_a_start_frame_with_the_originals_quality_and_sound() -> None:
    options = shapes.continuation_of(job(), "it goes on", None)
    assert options.model == KlingModel.V3_0
    assert options.mode is GenerationMode.IMAGE_TO_VIDEO
    assert (options.duration, options.quality, options.sound) == (6, "pro", True)
    assert (options.aspect_ratio, options.multi_shot) == (None, False)  # a frame sets the shape
    assert shapes.continuation_of(job(), "p", 12).duration == 12
    spec = shapes.spec_of_options(
        options,
        {shapes.CONTINUE_SLOT: "https://u/frame.png"},
        default_model="kling-2.6",
        directory_optin=False,
    )
    payload = build_request(spec).to_payload()
    assert payload["startFrameUrl"] == "https://u/frame.png"
    assert "aspectRatio" not in payload
    assert not shapes.changes_model(job())


def test_a_kling_26_video_continues_on_kling_30_in_standard_quality() -> None:
    original = job(model="kling-2.6", quality=None, duration=10, sound=False, aspect_ratio="16:9")
    options = shapes.continuation_of(original, "p", None)
    assert (options.model, options.quality, options.duration, options.sound) == (
        "kling-3.0",
        "std",
        10,
        False,
    )
    assert shapes.changes_model(original)


def test_a_remix_is_the_same_request_with_another_prompt() -> None:
    original = job(mode="image_to_video", image_urls=["https://u/a.png"], end_frame_url="https://u/e.png")
    options, images = shapes.remix_of(original, "a wolf")
    assert options == dataclasses.replace(shapes.options_of_job(original), prompt="a wolf")
    assert images == {"image": "https://u/a.png", "end_frame": "https://u/e.png"}


def test_an_animation_is_image_to_video_on_the_servers_model() -> None:
    options = shapes.animation_of("it blinks", None)
    assert (options.mode, options.model, options.duration) == (GenerationMode.IMAGE_TO_VIDEO, None, None)
    spec = shapes.spec_of_options(
        options, {shapes.ANIMATE_SLOT: "https://u/a.png"}, default_model="kling-2.6", directory_optin=False
    )
    assert (spec.model, spec.image_urls, spec.duration) == (KlingModel.V2_6, ("https://u/a.png",), 5)


def test_the_stored_request_says_where_it_came_from() -> None:
    spec = shapes.spec_of_options(shapes.animation_of("p", None), {"image": "https://u/a.png"},
                                  default_model="kling-3.0", directory_optin=False)  # fmt: skip
    assert (shapes.job_request(spec).origin, shapes.job_request(spec).parent_job_id) == (None, None)
    request = shapes.job_request(spec, shapes.Origin(JobOrigin.REMIX, 7))
    assert (request.origin, request.parent_job_id) == (JobOrigin.REMIX, 7)
    assert request.columns()["origin"] is JobOrigin.REMIX


# -- the start frame ----------------------------------------------------------------------------------


@pytest.fixture
async def videos() -> AsyncIterator[str]:
    """A local server: ``/sample.mp4`` is the sandbox's clip, ``/broken.mp4`` is not a video."""
    app = web.Application()
    bodies = {"sample.mp4": SAMPLE_PATH.read_bytes(), "broken.mp4": b"not a video"}

    async def serve(request: web.Request) -> web.Response:
        body = bodies.get(request.match_info["name"])
        if body is None:
            raise web.HTTPNotFound
        return web.Response(body=body, content_type="video/mp4")

    app.router.add_get("/{name}", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_the_start_frame_is_the_last_frame_of_the_first_video_that_can_be_read(
    videos: str, tmp_path: Path
) -> None:
    expected = await media.last_frame(SAMPLE_PATH, dest=tmp_path / "expected.png")
    async with aiohttp.ClientSession() as session:
        urls = [f"{videos}/missing.mp4", f"{videos}/broken.mp4", f"{videos}/sample.mp4"]
        frame = await last_frame_of(session, urls, max_bytes=10_000_000, allow_private=True)
        assert frame == await asyncio.to_thread(expected.path.read_bytes)
        with pytest.raises(NoLastFrame):
            await last_frame_of(session, urls[:2], max_bytes=10_000_000, allow_private=True)
        with pytest.raises(NoLastFrame):  # a local address is refused unless the provider is local
            await last_frame_of(session, urls[2:], max_bytes=10_000_000, allow_private=False)
        with pytest.raises(NoLastFrame):  # too big to download
            await last_frame_of(session, urls[2:], max_bytes=100, allow_private=True)
