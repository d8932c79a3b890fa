"""No prompt in the logs above DEBUG, and none in the audit channel, along every path a request takes.

One run goes through quote, Confirm, review, approval, generation, posting, Regenerate, a failure, a
provider refusal, a blocklisted prompt, a rejection and forgetting, with every logger at DEBUG; then
no record above DEBUG and no audit line may contain any of the prompts. (discord.py's DEBUG lines carry
request bodies, embeds with prompts included: DEBUG is for a developer's own machine.)
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any, Literal

import pytest

from storage import JobState
from tests.fakes.discord_api import FakeMessage
from tests.harness import Harness, running_bot

FAST: dict[Literal["kling-3.0", "kling-2.6"], str] = {"kling-3.0": "1-2 seconds", "kling-2.6": "1-2 seconds"}


async def settled(h: Harness, user_id: int, count: int) -> None:
    """Until ``user_id`` has ``count`` jobs and none is still on its way."""
    for _ in range(400):
        jobs = await h.storage.list_jobs(h.guild_id, user_id)
        if len(jobs) == count and all(
            job.state not in (JobState.QUEUED, JobState.SUBMITTING, JobState.PROCESSING, JobState.COMPLETED)
            for job in jobs
        ):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"jobs of {user_id} did not settle: {[job.state for job in jobs]}")


async def ask(h: Harness, prompt: str, **options: Any) -> FakeMessage:
    answer: FakeMessage = await h.answer(
        await h.command("video", "text", prompt=prompt, model="kling-2.6", **options)
    )
    return answer


async def test_prompts_never_reach_the_logs_above_debug_nor_the_audit_channel(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    prompts = {
        "quoted": "pp-quoted-and-confirmed owl at night",
        "reviewed": "pp-reviewed owl at noon",
        "failed": "pp-failed owl in fog",
        "refused": "pp-refused-by-provider owl in smoke",
        "blocked": "pp-blocked gore owl",
        "rejected": "pp-rejected owl in a cage",
    }
    async with running_bot(tmp_path) as h:
        h.sandbox.estimated_time.update(FAST)
        audit, mods = h.general, h.fake.add_channel(h.guild_id, "mods").id
        await h.storage.update_guild_settings(
            h.guild_id,
            audit_channel_id=audit,
            max_active_jobs=10,
            allowance_credits=5000,
            blocklist_terms=["gore"],
        )

        await h.storage.update_guild_settings(h.guild_id, confirm_above_credits=50)
        assert (await h.confirmed(await ask(h, prompts["quoted"]))).embeds
        await h.storage.update_guild_settings(h.guild_id, confirm_above_credits=0)
        await settled(h, h.member_id, 1)
        video = next(m for m in h.public_messages() if not m.embeds)
        assert (await h.answer(await h.press(video, "video:regen:", user_id=h.admin_id))).embeds  # Regenerate
        await settled(h, h.admin_id, 1)

        h.sandbox.fail_next_tasks(1, reason="content policy violation")
        await ask(h, prompts["failed"])
        await settled(h, h.member_id, 2)
        assert (await h.storage.list_jobs(h.guild_id, h.member_id))[0].state is JobState.FAILED
        h.sandbox.inject("generate", status=400)
        await ask(h, prompts["refused"])
        await settled(h, h.member_id, 3)
        assert "does not allow" in (await ask(h, prompts["blocked"])).content

        await h.storage.update_guild_settings(h.guild_id, review_channel_id=mods)
        await ask(h, prompts["reviewed"])
        await ask(h, prompts["rejected"])
        reviewed, rejected = sorted(
            [
                j
                for j in await h.storage.list_jobs(h.guild_id, h.member_id)
                if j.state is JobState.PENDING_REVIEW
            ],
            key=lambda job: job.id or 0,
        )
        for job, action in ((reviewed, "approve"), (rejected, "reject")):
            card = h.fake.messages[job.review_message_id or 0]
            pressed = await h.fake.send_component(
                f"review:{action}:{job.id}", message_id=card.id, user_id=h.admin_id
            )
            await pressed.wait_callback()
        await h.fake.send_modal_submit(
            f"review:reason:{rejected.id}",
            {"reason": "not here"},
            user_id=h.admin_id,
            message_id=rejected.review_message_id,
        )
        for _ in range(200):  # both decisions taken
            states = {job.state for job in await h.storage.list_jobs(h.guild_id, h.member_id)}
            if JobState.PENDING_REVIEW not in states and JobState.REJECTED in states:
                break
            await asyncio.sleep(0.05)
        await settled(h, h.member_id, 5)

        question = await h.answer(await h.command("video", "forget"))
        forgot = await h.press(question, "privacy:forget:")
        await forgot.wait_callback()
        erased = await h.fake.wait_for_message(audit, lambda m: m.content.startswith("🧹"))
        assert erased.content.endswith("erased their prompts and links: 5 videos erased.")
        audit_lines = [m.content for m in h.public_messages(audit)]

    assert len(audit_lines) >= 10  # requests, deliveries, failures, the block, decisions, the erasure
    words = [prompt.split()[0] for prompt in prompts.values()]
    for line in audit_lines:
        assert not [word for word in words if word in line], line
    loud = [record for record in caplog.records if record.levelno > logging.DEBUG]
    assert any(record.levelno >= logging.ERROR for record in loud)  # the refusal was logged, loudly
    for record in loud:
        text = record.getMessage() + (record.exc_text or "")
        assert not [word for word in words if word in text], (record.name, text)
    assert any(words[0] in record.getMessage() for record in caplog.records)  # DEBUG may carry them
