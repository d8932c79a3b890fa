"""Issue 15's defects, through the real bot: servers only, buttons that acknowledge before the database,
a deleted video on record, and an interaction another process already answered.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from storage import JobState
from tests.cogs.test_delivery import FAST, posted, request, wait_state
from tests.harness import Harness, running_bot


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    async with running_bot(tmp_path) as h:
        h.sandbox.estimated_time.update(FAST)
        yield h


class SessionClock:
    """When a button's handler opened each database unit of work (``time.monotonic()``, the fake's
    clock); the worker's own units of work, in its own tasks, are left out."""

    def __init__(self, h: Harness) -> None:
        self.opened: list[float] = []
        storage: Any = h.storage
        maker = storage._maker

        def recording_maker(*args: Any, **kwargs: Any) -> Any:
            task = asyncio.current_task()
            if task is not None and task.get_name().startswith("discord-ui-"):
                self.opened.append(time.monotonic())
            return maker(*args, **kwargs)

        storage._maker = recording_maker

    def first_after(self, moment: float) -> float | None:
        return next((t for t in self.opened if t >= moment), None)


async def test_every_command_is_offered_in_servers_only(harness: Harness) -> None:
    synced = harness.fake.synced_commands(harness.guild_id)
    assert {c["name"] for c in synced} >= {"video", "credits", "kling-admin"}
    for command in synced:
        assert (command["contexts"], command["dm_permission"]) == ([0], False), command["name"]


async def test_cancel_acknowledges_before_reading_the_database(harness: Harness) -> None:
    h = harness
    await h.storage.update_guild_settings(h.guild_id, review_channel_id=h.general)  # so it stays cancellable
    receipt = await h.answer(await h.command("video", "text", prompt="A calm lake", model="kling-2.6"))
    (custom_id,) = [c for c in receipt.custom_ids() if c.startswith("video:cancel:")]
    clock = SessionClock(h)

    stranger = await h.fake.send_component(custom_id, message_id=receipt.id, user_id=h.admin_id)
    ack = await stranger.wait_callback()
    assert ack.type == 6  # a deferred update of the receipt: before the job is even looked up
    refusal = await stranger.wait_followup()
    assert refusal.ephemeral
    assert "Only the member who asked" in refusal.content
    first_read = clock.first_after(stranger.dispatched_at)
    assert first_read is not None
    assert first_read > ack.call.at

    press = await h.fake.send_component(custom_id, message_id=receipt.id, user_id=h.member_id)
    ack = await press.wait_callback()
    assert ack.type == 6
    edited = await press.wait_original(lambda m: "Cancelled" in m.content)
    first_read = clock.first_after(press.dispatched_at)
    assert first_read is not None
    assert first_read > ack.call.at
    assert edited.id == receipt.id
    assert edited.embeds == []
    (job,) = await h.storage.list_jobs(h.guild_id, h.member_id)
    assert job.state is JobState.CANCELLED


async def test_delete_acknowledges_first_and_the_job_remembers_the_video_is_gone(harness: Harness) -> None:
    h = harness
    job_id = await request(h)
    await wait_state(h, job_id, JobState.DELIVERED)
    (video,) = posted(h)
    clock = SessionClock(h)
    other = h.fake.add_member(h.guild_id, name="someone")

    refused = await h.fake.send_component(f"video:delete:{job_id}", message_id=video.id, user_id=other.id)
    ack = await refused.wait_callback()
    assert ack.type == 6
    assert "Only the member who asked" in (await refused.wait_followup()).content
    first_read = clock.first_after(refused.dispatched_at)
    assert first_read is not None
    assert first_read > ack.call.at
    assert not video.deleted

    delete = await h.fake.send_component(f"video:delete:{job_id}", message_id=video.id, user_id=h.member_id)
    ack = await delete.wait_callback()
    assert (await delete.wait_followup()).content == "Deleted."
    first_read = clock.first_after(delete.dispatched_at)
    assert first_read is not None
    assert first_read > ack.call.at
    assert h.fake.messages[video.id].deleted  # (read afresh: mypy took it for False above)
    job = await h.storage.get_job(job_id)
    assert job is not None
    assert job.posted_deleted_at is not None
    assert job.posted_message_id == video.id  # kept, for the record

    listing = await h.answer(await h.command("video", "jobs"))
    description = listing.embeds[0]["description"]
    assert "video deleted" in description
    assert f"/{video.id})" not in description  # no link to a message that is gone
    assert job.status_message_id is not None
    assert f"/{job.status_message_id})" in description


async def test_a_video_deleted_elsewhere_is_recorded_too(harness: Harness) -> None:
    h = harness
    job_id = await request(h)
    await wait_state(h, job_id, JobState.DELIVERED)
    (video,) = posted(h)
    video.deleted = True  # a moderator removed it in Discord's client before the button was pressed
    delete = await h.fake.send_component(f"video:delete:{job_id}", message_id=video.id, user_id=h.member_id)
    assert (await delete.wait_followup()).content == "That video was already deleted."
    job = await h.storage.get_job(job_id)
    assert job is not None
    assert job.posted_deleted_at is not None


async def test_an_interaction_another_process_answered_is_one_quiet_log_line(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    h = harness
    caplog.set_level(logging.INFO)
    h.fake.answer_elsewhere()
    interaction = await h.command("video", "text", prompt="A calm lake", model="kling-2.6")
    await h.fake.wait_for_call(
        lambda c: c.route.endswith("/callback") and c.params.get("webhook_id") == str(interaction.id)
    )
    await asyncio.sleep(0.5)  # whatever the bot would still do about it
    assert interaction.refused_callbacks == 1  # its one attempt; no second callback
    assert interaction.followups == []
    assert [c for c in h.fake.calls if f"/webhooks/{h.fake.application_id}/" in c.path] == []
    assert await h.storage.list_jobs(h.guild_id, h.member_id) == []
    assert h.public_messages() == []
    tracebacks = [r for r in caplog.records if r.exc_info is not None or r.levelno >= logging.ERROR]
    assert tracebacks == []
    lines = [
        r for r in caplog.records if "already" in r.getMessage() and str(interaction.id) in r.getMessage()
    ]
    assert len(lines) == 1, [r.getMessage() for r in caplog.records]
