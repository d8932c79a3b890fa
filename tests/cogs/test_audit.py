"""The audit log through the real bot: one line per event, who did it, never a secret, never a ping.

Every test ends by checking every line in the audit channel: sent with ``allowed_mentions`` that parse
nothing, so the mentions in it (which make names clickable) ping nobody, and free of the bot token and
the provider key.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

import pytest

from storage import JobState
from tests.fakes.discord_api import FakeMessage
from tests.harness import API_KEY, TOKEN, Harness, running_bot

FAST: dict[Literal["kling-3.0", "kling-2.6"], str] = {"kling-3.0": "1-2 seconds", "kling-2.6": "1-2 seconds"}


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    async with running_bot(tmp_path) as h:  # with the worker: deliveries and failures are audited too
        h.sandbox.estimated_time.update(FAST)
        h.fake.add_channel(h.guild_id, "audit")
        h.fake.add_channel(h.guild_id, "mods")
        await admin(h, "audit", channel=audit_channel(h))
        yield h
        check_every_line(h)


def audit_channel(h: Harness) -> int:
    return next(c.id for c in h.fake.channels.values() if c.name == "audit")


def mods_channel(h: Harness) -> int:
    return next(c.id for c in h.fake.channels.values() if c.name == "mods")


def lines(h: Harness) -> list[str]:
    return [m.content for m in h.fake.messages_in(audit_channel(h), include_ephemeral=False)]


def check_every_line(h: Harness) -> None:
    messages: list[FakeMessage] = h.fake.messages_in(audit_channel(h), include_ephemeral=False)
    assert messages
    for message in messages:
        assert message.allowed_mentions == {"parse": []}, message.content
        assert message.payload["mentions"] == [], message.content  # nobody was pinged
        assert message.payload["mention_roles"] == []
        assert not message.payload["mention_everyone"]
        assert TOKEN not in message.content
        assert API_KEY not in message.content
        assert "\n" not in message.content  # one line per event


async def admin(h: Harness, subcommand: str, **options: Any) -> FakeMessage:
    answer: FakeMessage = await h.answer(
        await h.command("kling-admin", subcommand, user_id=h.admin_id, **options)
    )
    assert answer.ephemeral
    return answer


async def line(h: Harness, fragment: str, within: float = 20) -> str:
    message = await h.fake.wait_for_message(audit_channel(h), lambda m: fragment in m.content, timeout=within)
    return message.content


async def request(h: Harness, **options: Any) -> int:
    options = {"prompt": "A calm lake at dawn", "model": "kling-2.6", **options}
    receipt = await h.answer(await h.command("video", "text", **options))
    assert receipt.embeds, receipt.content
    (job, *_) = await h.storage.list_jobs(h.guild_id, h.member_id, limit=1)
    assert job.id is not None
    return job.id


async def test_settings_changes_and_grants_name_the_admin(harness: Harness) -> None:
    h = harness
    admin_ = f"<@{h.admin_id}>"
    await admin(h, "channel", channel=h.videos, enabled=True)
    await admin(h, "review", channel=mods_channel(h))
    await admin(h, "quota", credits=200, period="daily")
    await admin(h, "grant", member=h.member_id, credits=40)
    await admin(h, "blocklist", action="add", term="@everyone gore")
    await admin(h, "budget", credits=5000, period="monthly")
    await admin(h, "directory", enabled=True)
    await admin(h, "review")
    await admin(h, "blocklist", action="list")  # reading changes nothing: no line
    await admin(h, "settings")
    assert lines(h) == [
        f"📋 {admin_} made this channel the video bot's audit log.",
        f"⚙️ {admin_} allowed video generation in <#{h.videos}>. Videos can be made only in <#{h.videos}>.",
        f"⚙️ {admin_} turned review on in <#{mods_channel(h)}>.",
        f"⚙️ {admin_} set the allowance to 200 credits a day per member.",
        f"🎁 {admin_} granted 40 bonus credits to <@{h.member_id}>. They can spend 240 credits now.",
        f"⚙️ {admin_} added “@everyone gore” to the blocklist (1 term).",
        f"⚙️ {admin_} set the server budget to 5,000 credits a month.",
        f"⚙️ {admin_} turned the Prompt Directory discount on.",
        f"⚙️ {admin_} turned review off.",
    ]


async def test_a_reviewed_job_is_audited_from_request_to_delivery_and_deletion(harness: Harness) -> None:
    h = harness
    await admin(h, "review", channel=mods_channel(h))
    job_id = await request(h)
    requested = await line(h, "requested")
    assert requested == (
        f"📝 <@{h.member_id}> requested job #{job_id} in <#{h.videos}>: Kling 2.6 · 5 s · no sound, "
        "55 credits held. It waits for review."
    )
    job = await h.storage.get_job(job_id)
    assert job is not None
    card = h.fake.messages[job.review_message_id or 0]
    await (
        await h.fake.send_component(f"review:approve:{job_id}", message_id=card.id, user_id=h.admin_id)
    ).wait_callback()
    assert (
        await line(h, "approved")
        == f"✅ <@{h.admin_id}> approved job #{job_id} of <@{h.member_id}>; it is queued."
    )
    delivered = await line(h, "delivered")
    assert delivered == f"🎬 Job #{job_id} of <@{h.member_id}> delivered in <#{h.videos}>; 55 credits spent."

    video = await h.fake.wait_for_message(h.videos, lambda m: "your video is ready" in m.content)
    await (
        await h.fake.send_component(f"video:delete:{job_id}", message_id=video.id, user_id=h.admin_id)
    ).wait_callback()
    deleted = await line(h, "deleted")
    assert f"deleted the video of job #{job_id}, requested by <@{h.member_id}>" in deleted


async def test_a_rejection_is_audited_with_the_moderator_and_the_reason(harness: Harness) -> None:
    h = harness
    await admin(h, "review", channel=mods_channel(h))
    job_id = await request(h)
    job = await h.storage.get_job(job_id)
    assert job is not None
    card_id = job.review_message_id or 0
    await (
        await h.fake.send_component(f"review:reject:{job_id}", message_id=card_id, user_id=h.admin_id)
    ).wait_callback()
    await (
        await h.fake.send_modal_submit(
            f"review:reason:{job_id}", {"reason": "<@&1> not here"}, user_id=h.admin_id, message_id=card_id
        )
    ).wait_callback()
    assert await line(h, "rejected") == (
        f"🚫 <@{h.admin_id}> rejected job #{job_id} of <@{h.member_id}>; 55 credits went back to them. "
        "Reason: <@&1> not here"
    )


async def test_a_failed_job_is_audited_with_its_refund(harness: Harness) -> None:
    h = harness
    h.sandbox.fail_next_tasks(1, reason="content policy violation")
    job_id = await request(h)
    assert await line(h, "failed") == (
        f"❌ Job #{job_id} failed: content policy violation. 55 credits refunded to <@{h.member_id}>."
    )
    assert (await h.storage.get_job(job_id)).state is JobState.FAILED  # type: ignore[union-attr]


async def test_a_lost_job_is_audited_with_its_refund_and_what_to_check(harness: Harness) -> None:
    h = harness
    h.sandbox.inject("generate", status=500)
    job_id = await request(h)
    lost = await line(h, "lost")
    assert lost.startswith(
        f"⚠️ Job #{job_id} lost: UlazAI did not confirm the video started; nothing is charged. "
        f"55 credits refunded to <@{h.member_id}>. The generate call ended with "
    )
    assert lost.endswith("check the UlazAI dashboard for a task started at that time.")


async def test_a_refusal_by_the_provider_is_audited_as_failed(harness: Harness) -> None:
    h = harness
    h.sandbox.inject("generate", status=400)  # this job's fault (a 401/402 pauses the line instead)
    job_id = await request(h)
    assert await line(h, "failed") == (
        f"❌ Job #{job_id} failed: UlazAI refused the request: invalid payload. 55 credits refunded to "
        f"<@{h.member_id}>. UlazAI refused it (HTTP 400): invalid payload"
    )
