"""Videos stay in the channel: a real 12 MiB clip from the provider is fitted under the server's limit.

The clips are made here by the bundled ffmpeg (moving noise, which compresses badly: the hardest case),
served by the sandbox as the finished task's video, and posted by the real bot through the fake Discord.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import media
from storage import DeliveredVia, JobState
from tests.cogs.test_delivery import FAST, posted, request, users_allowed, wait_state
from tests.fakes.discord_api import AttachmentSpec
from tests.harness import Harness, png, running_bot
from tests.media.clips import MiB, noisy_clip

TIER_2 = 2  # 50 MiB per file


@pytest.fixture(scope="module")
def big_clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """4 s of moving noise at 1280×720 with sound: 12 to 14 MiB."""
    path = noisy_clip(tmp_path_factory.mktemp("fit") / "big.mp4", seconds=4, bit_rate=23_500_000, audio=True)
    data = path.read_bytes()
    assert 12 * MiB <= len(data) <= 14 * MiB
    return data


@pytest.fixture
async def harness(tmp_path: Path, big_clip: bytes) -> AsyncIterator[Harness]:
    async with running_bot(tmp_path) as h:
        h.sandbox.estimated_time.update(FAST)
        h.sandbox.serve_video(big_clip)
        yield h


async def test_a_12_mib_video_is_attached_fitted_under_the_limit_with_the_original_linked(
    harness: Harness, tmp_path: Path
) -> None:
    h = harness
    job_id = await request(h)
    job = await wait_state(h, job_id, JobState.DELIVERED, within=90)
    (message,) = posted(h)
    (upload,) = message.files
    assert len(upload.data) <= 10 * MiB
    fitted = tmp_path / "posted.mp4"
    fitted.write_bytes(upload.data)
    info = await media.probe(fitted)  # it plays
    assert info.has_audio
    assert abs(info.duration - 4.0) <= 0.2
    assert info.width * 720 == info.height * 1280
    assert f"Full quality: {job.video_url}" in message.content
    assert users_allowed(message) == [h.member_id]
    assert job.delivered_via is DeliveredVia.FITTED
    card = next(m for m in h.public_messages() if m.embeds)
    # The finished card's thumbnail is a still of the video, attached to the card once the video is out.
    await h.fake.wait_for_message(
        h.videos, lambda m: m.id == card.id and "thumbnail" in m.embeds[0], timeout=10
    )
    assert "/poster.jpg" in card.embeds[0]["thumbnail"]["url"]
    assert [a["filename"] for a in card.payload["attachments"]] == ["poster.jpg"]
    assert "made smaller to play here" in card.embeds[0]["fields"][-1]["value"]
    jobs = await h.answer(await h.command("video", "jobs"))
    assert "made smaller to play here" in jobs.embeds[0]["description"]


async def test_a_boosted_server_gets_the_original_untouched(harness: Harness, big_clip: bytes) -> None:
    h = harness
    h.fake.set_premium_tier(h.guild_id, TIER_2)
    await asyncio.sleep(0.2)  # the GUILD_UPDATE reaches the bot
    job_id = await request(h)
    job = await wait_state(h, job_id, JobState.DELIVERED, within=60)
    (message,) = posted(h)
    (upload,) = message.files
    assert upload.data == big_clip
    assert "Full quality" not in message.content
    assert job.delivered_via is DeliveredVia.ATTACHMENT


async def test_interactions_are_acknowledged_while_a_video_is_encoded(harness: Harness) -> None:
    h = harness
    await request(h)
    runner = media.default_runner()
    deadline = time.monotonic() + 60
    while runner.running == 0:  # wait until ffmpeg is at work on this video
        assert time.monotonic() < deadline, "no encode started"
        await asyncio.sleep(0.02)
    sent = time.monotonic()
    interaction = await h.command("credits")
    callback = await interaction.wait_callback()
    assert callback.type == 5
    assert time.monotonic() - sent < 3.0
    await interaction.wait_followup()


async def test_the_card_shows_the_source_image_while_the_video_is_made(tmp_path: Path) -> None:
    async with running_bot(tmp_path, worker=False) as h:
        interaction = await h.command(
            "video",
            "image",
            prompt="It starts to run",
            model="kling-2.6",
            attachments={"image": AttachmentSpec(png(), "dog.png")},
        )
        await h.answer(interaction)
        (job,) = await h.storage.list_jobs(h.guild_id, h.member_id)
        (card,) = [m for m in h.public_messages() if m.embeds]
        assert card.embeds[0]["thumbnail"]["url"] == job.image_urls[0]
