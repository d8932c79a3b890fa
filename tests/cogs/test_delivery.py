"""The delivery worker through the real bot: launch, follow, post, exactly once, and every failure path.

The sandbox provider's tasks take about a second here (and announce "1-2 seconds"), so the worker's
adaptive polling finds them done at its first status call.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import pytest

from sandbox import SAMPLE_PATH
from storage import DeliveredVia, Job, JobRequest, JobState, Storage
from tests.fakes.discord_api import FakeDiscord, FakeMessage
from tests.harness import Harness, running_bot
from tests.storage.helpers import check_ledger

SAMPLE = SAMPLE_PATH.read_bytes()
FAST: dict[Literal["kling-3.0", "kling-2.6"], str] = {"kling-3.0": "1-2 seconds", "kling-2.6": "1-2 seconds"}


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    async with running_bot(tmp_path) as h:
        h.sandbox.estimated_time.update(FAST)
        yield h


async def request(h: Harness, *, user_id: int | None = None, **options: Any) -> int:
    """Ask for a video the way a member does; returns the job id."""
    options = {"prompt": "A calm lake at dawn", "model": "kling-2.6", **options}
    receipt = await h.answer(await h.command("video", "text", user_id=user_id, **options))
    assert receipt.embeds, receipt.content
    jobs = await h.storage.list_jobs(h.guild_id, user_id or h.member_id, limit=1)
    assert jobs[0].id is not None
    return jobs[0].id


async def wait_state(h: Harness, job_id: int, *states: JobState, within: float = 20) -> Job:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        job = await h.storage.get_job(job_id)
        assert job is not None
        if job.state in states:
            return job
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"job {job_id} is {job.state}, not {states}")
        await asyncio.sleep(0.05)


def posted(h: Harness, channel_id: int | None = None) -> list[FakeMessage]:
    """The bot's public messages that are not status cards."""
    return [m for m in h.public_messages(channel_id) if not m.embeds]


def users_allowed(message: FakeMessage) -> list[int]:
    mentions = message.allowed_mentions or {}
    assert mentions.get("parse") == []
    return [int(u) for u in mentions.get("users", [])]


@pytest.mark.parametrize(("model", "cost"), [("kling-2.6", 55), ("kling-3.0", 100)])
async def test_a_video_is_posted_once_as_a_reply_to_its_card(harness: Harness, model: str, cost: int) -> None:
    h = harness
    job_id = await request(h, model=model)
    job = await wait_state(h, job_id, JobState.DELIVERED)
    # The card is edited once the job is marked delivered, so the state can be read before the edit lands.
    await h.fake.wait_for_message(
        h.videos, lambda m: bool(m.embeds) and m.embeds[0]["fields"][-1]["value"] == "✅ Delivered"
    )

    (card,) = [m for m in h.public_messages() if m.embeds]
    (video,) = posted(h)
    assert video.id == job.posted_message_id
    assert video.content.startswith(f"<@{h.member_id}> your video is ready")
    assert users_allowed(video) == [h.member_id]
    assert video.payload["message_reference"]["message_id"] == str(card.id)
    (upload,) = video.files
    assert upload.data == SAMPLE
    assert job.delivered_via is DeliveredVia.ATTACHMENT
    assert video.custom_ids() == [
        f"video:regen:{job_id}",
        f"video:continue:{job_id}",
        f"video:remix:{job_id}",
        f"video:delete:{job_id}",
    ]
    assert card.embeds[0]["fields"][-1]["value"] == "✅ Delivered"

    (generate,) = h.provider_calls("generate")
    assert generate.json_body["prompt_directory_optin"] is False
    assert job.provider_task_id
    assert job.credits_used == cost
    balance = await h.storage.balance(h.guild_id, h.member_id)
    assert (balance.reserved, balance.available) == (0, 300 - cost)
    await check_ledger(h.storage)
    await asyncio.sleep(1.5)  # a few more worker passes: nothing is posted again
    assert len(posted(h)) == 1


async def test_a_failed_task_is_refunded_and_the_member_told(harness: Harness) -> None:
    h = harness
    h.sandbox.fail_next_tasks(1, reason="content policy violation")
    job_id = await request(h)
    job = await wait_state(h, job_id, JobState.FAILED)
    assert job.error == "content policy violation"
    notice = await h.fake.wait_for_message(h.videos, lambda m: "could not be made" in m.content)
    assert posted(h) == [notice]
    assert notice.content == (
        f"<@{h.member_id}> your video could not be made: content policy violation. Your 55 credits are back."
    )
    assert users_allowed(notice) == [h.member_id]
    balance = await h.storage.balance(h.guild_id, h.member_id)
    assert (balance.reserved, balance.available) == (0, 300)
    await check_ledger(h.storage)
    card = next(m for m in h.public_messages() if m.embeds)
    assert card.embeds[0]["fields"][-1]["value"] == "❌ Failed, credits refunded: content policy violation"


async def test_429_and_500_on_status_do_not_stop_delivery(harness: Harness) -> None:
    h = harness
    h.sandbox.inject("status", status=429, retry_after=0.05, times=2)
    h.sandbox.inject("status", status=500, times=2)
    job_id = await request(h)
    await wait_state(h, job_id, JobState.DELIVERED)
    statuses = [r.status for r in h.provider_calls("status")]
    assert statuses[:4] == [429, 429, 500, 500]
    assert len(posted(h)) == 1


async def test_400_on_generate_fails_and_refunds_only_that_job(harness: Harness) -> None:
    h = harness
    h.sandbox.inject("generate", status=400)
    job_id = await request(h)
    job = await wait_state(h, job_id, JobState.FAILED)
    assert job.error == "UlazAI refused the request: invalid payload"
    await h.fake.wait_for_message(h.videos, lambda m: "invalid payload" in m.content)
    assert len(h.provider_calls("generate")) == 1
    assert (await h.storage.balance(h.guild_id, h.member_id)).available == 300
    assert not (await h.storage.provider_account()).paused
    second = await request(h, user_id=h.admin_id)  # the next job goes through as usual
    await wait_state(h, second, JobState.DELIVERED)


async def test_500_on_generate_is_lost_refunded_audited_and_never_retried(harness: Harness) -> None:
    h = harness
    await h.storage.update_guild_settings(h.guild_id, audit_channel_id=h.general)
    h.sandbox.inject("generate", status=500)
    job_id = await request(h)
    job = await wait_state(h, job_id, JobState.LOST)
    assert "did not confirm" in (job.error or "")
    audit = await h.fake.wait_for_message(h.general, lambda m: "lost" in m.content)
    assert f"Job #{job_id} lost" in audit.content
    assert audit.allowed_mentions == {"parse": []}
    await h.fake.wait_for_message(h.videos, lambda m: "could not be made" in m.content)
    await asyncio.sleep(2)
    assert len(h.provider_calls("generate")) == 1  # the operator never pays twice
    assert (await h.storage.balance(h.guild_id, h.member_id)).available == 300
    await check_ledger(h.storage)


async def test_429_on_generate_goes_back_to_the_queue(harness: Harness) -> None:
    h = harness
    h.sandbox.inject("generate", status=429, retry_after=600)  # longer than the client waits itself
    job_id = await request(h)
    await asyncio.sleep(2.5)
    job = await wait_state(h, job_id, JobState.QUEUED)
    assert job.attempts == 1
    assert job.next_attempt_at is not None
    assert (job.next_attempt_at - h.storage.now()).total_seconds() > 500
    assert (await h.storage.balance(h.guild_id, h.member_id)).reserved == 55  # still held, not lost


async def test_a_video_over_the_servers_upload_limit_is_fitted_and_attached(harness: Harness) -> None:
    h = harness
    h.sandbox.video_bytes = 11 * 1024 * 1024  # unboosted servers take 10 MiB
    job_id = await request(h)
    job = await wait_state(h, job_id, JobState.DELIVERED, within=60)
    (message,) = posted(h)
    (upload,) = message.files  # a re-encoded copy, not the 11 MiB original
    assert len(upload.data) < 10 * 1024 * 1024
    assert job.video_url is not None
    assert f"Full quality: {job.video_url}" in message.content  # the original, linked
    assert users_allowed(message) == [h.member_id]
    assert job.delivered_via is DeliveredVia.FITTED


async def test_a_video_that_cannot_be_fitted_in_time_is_posted_as_a_link(tmp_path: Path) -> None:
    async with running_bot(tmp_path, media_timeout_seconds=0.01) as h:
        h.sandbox.estimated_time.update(FAST)
        h.sandbox.video_bytes = 11 * 1024 * 1024
        job_id = await request(h)
        job = await wait_state(h, job_id, JobState.DELIVERED, within=60)
        (message,) = posted(h)
        assert message.files == []
        assert job.video_url is not None
        assert job.video_url in message.content
        assert (
            "Posted as a link because making it small enough to attach here took too long" in message.content
        )
        assert users_allowed(message) == [h.member_id]
        assert "link" in (job.delivery_notes or "")
        assert job.delivered_via is DeliveredVia.LINK


async def test_a_too_large_answer_from_discord_falls_back_to_a_link(harness: Harness) -> None:
    h = harness
    h.fake.set_upload_limit(h.guild_id, 1000)  # Discord answers 40005 to the file
    job_id = await request(h)
    job = await wait_state(h, job_id, JobState.DELIVERED)
    (message,) = posted(h)
    assert message.files == []
    assert "too large" in message.content
    assert "40005" not in message.content
    assert "Discord refused the file" in (job.delivery_notes or "")
    assert job.delivered_via is DeliveredVia.LINK


async def test_a_deleted_channel_sends_the_video_by_dm(harness: Harness) -> None:
    h = harness
    h.sandbox.set_task_seconds(2.0)
    job_id = await request(h)
    h.fake.delete_channel(h.videos)
    job = await wait_state(h, job_id, JobState.DELIVERED)
    assert "direct message" in (job.delivery_notes or "")
    assert job.delivered_via is DeliveredVia.DIRECT_MESSAGE
    message = h.fake.messages[job.posted_message_id or 0]
    assert message.channel_id != h.videos
    assert message.files[0].data == SAMPLE


async def test_processing_too_long_is_failed_and_refunded(tmp_path: Path) -> None:
    async with running_bot(tmp_path, processing_timeout_minutes=0.05) as h:
        h.sandbox.estimated_time.update(FAST)
        h.sandbox.set_task_seconds(60)
        job_id = await request(h)
        job = await wait_state(h, job_id, JobState.FAILED)
        assert job.error == "still not ready after 3 seconds"
        assert (await h.storage.balance(h.guild_id, h.member_id)).available == 300


async def test_regenerate_charges_the_presser_and_delete_is_for_the_requester_or_moderators(
    harness: Harness,
) -> None:
    h = harness
    job_id = await request(h)
    await wait_state(h, job_id, JobState.DELIVERED)
    (video,) = posted(h)
    other = h.fake.add_member(h.guild_id, name="someone")

    refused = await h.fake.send_component(
        f"video:delete:{job_id}", message_id=video.id, user_id=other.id, channel_id=h.videos
    )
    assert "Only the member who asked" in (await refused.wait_followup()).content

    again = await h.fake.send_component(
        f"video:regen:{job_id}", message_id=video.id, user_id=h.admin_id, channel_id=h.videos
    )
    receipt = await h.answer(again)
    assert receipt.embeds[0]["title"] == "Your video is queued"
    (copy,) = await h.storage.list_jobs(h.guild_id, h.admin_id)
    original = await h.storage.get_job(job_id)
    assert original is not None
    assert (copy.prompt, copy.model, copy.duration) == (original.prompt, original.model, original.duration)
    assert (await h.storage.balance(h.guild_id, h.admin_id)).available == 245
    assert (
        await h.storage.balance(h.guild_id, h.member_id)
    ).available == 245  # the presser pays, not the requester

    delete = await h.fake.send_component(
        f"video:delete:{job_id}", message_id=video.id, user_id=h.member_id, channel_id=h.videos
    )
    await delete.wait_callback()
    await h.fake.wait_for_call(lambda c: c.method == "DELETE" and c.path.endswith(f"/messages/{video.id}"))
    assert video.deleted


async def test_a_submission_left_by_a_dead_process_becomes_lost_and_refunded(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/bot.db"
    async with FakeDiscord() as fake:
        fake.add_default_guild()
        # What a process killed in the middle of a generate call leaves behind.
        async with Storage(url) as storage:
            await storage.migrate()
            job = await storage.create_job(
                interaction_id=1,
                guild_id=fake.guild_id,
                user_id=fake.member_id,
                channel_id=fake.channel_ids["videos"],
                request=JobRequest(model="kling-2.6", mode="text_to_video", prompt="a lake", duration=5),
                estimate=55,
            )
            assert job.id is not None
            await storage.claim_fair_for_submit("dead", limit=1, max_in_flight=10, lease=timedelta(seconds=1))
            await storage.mark_submitting(job.id, owner="dead")
        async with running_bot(tmp_path, fake=fake, database_url=url) as h:
            lost = await wait_state(h, job.id, JobState.LOST)
            assert "stopped while submitting" in (lost.error or "")
            notice = await h.fake.wait_for_message(h.videos, lambda m: "could not be made" in m.content)
            assert users_allowed(notice) == [h.member_id]
            assert h.provider_calls("generate") == []
            assert (await h.storage.balance(h.guild_id, h.member_id)).available == 300
            await check_ledger(h.storage)


async def test_a_server_on_another_processs_shard_keeps_its_boosted_upload_limit(harness: Harness) -> None:
    """With several processes, this one may post the video of a server it does not hold (another
    shard's): the limit comes from Discord by REST, so an 11 MB video is still attached there."""
    h = harness
    h.fake.set_premium_tier(h.guild_id, 2)  # 50 MiB
    h.sandbox.video_bytes = 11 * 1024 * 1024
    guild = h.bot.get_guild(h.guild_id)
    assert guild is not None
    h.bot._connection._remove_guild(guild)  # as if it lived on the other process's shard
    job_id = await request(h)
    job = await wait_state(h, job_id, JobState.DELIVERED)
    (message,) = posted(h)
    assert len(message.files) == 1
    assert job.delivered_via is DeliveredVia.ATTACHMENT
    assert h.fake.calls_to("GET", f"/guilds/{h.guild_id}")
