"""The review queue through the real bot: the card, Approve, Reject with its modal, races, Cancel, restarts.

Button presses go in as component interactions and the reason as a modal submit, exactly as Discord's
client sends them; the tests assert on the callbacks, the edited cards, the member's notice, the
allowed mentions of every message and the ledger.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from storage import Job, JobState
from tests.fakes.discord_api import AttachmentSpec, FakeDiscord, FakeMessage, Permission
from tests.harness import Harness, png, running_bot
from tests.storage.helpers import check_ledger

PNG = png()


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    async with running_bot(tmp_path, worker=False) as h:
        await h.storage.update_guild_settings(h.guild_id, review_channel_id=h.general)
        yield h


def field(embed: dict[str, Any], name: str) -> str:
    return str(next(f["value"] for f in embed["fields"] if f["name"] == name))


def buttons(message: FakeMessage) -> dict[str, bool]:
    """custom_id -> disabled, for every button on a message."""
    return {
        c["custom_id"]: bool(c.get("disabled"))
        for row in message.components
        for c in row.get("components", [])
        if "custom_id" in c
    }


def users_allowed(message: FakeMessage) -> list[int]:
    mentions = message.allowed_mentions or {}
    assert mentions.get("parse") == [], mentions
    assert not mentions.get("roles")
    return [int(u) for u in mentions.get("users", [])]


async def request(h: Harness, *, user_id: int | None = None, **options: Any) -> tuple[Job, FakeMessage]:
    """A member's /video text with review on: the job and its review card."""
    options = {"prompt": "A calm lake at dawn", "model": "kling-2.6", **options}
    receipt = await h.answer(await h.command("video", "text", user_id=user_id, **options))
    assert receipt.embeds[0]["title"] == "Sent for review", receipt.content
    (job,) = await h.storage.list_jobs(h.guild_id, user_id or h.member_id, limit=1)
    assert job.review_message_id is not None
    return job, h.fake.messages[job.review_message_id]


async def decided(h: Harness, card: FakeMessage, fragment: str) -> dict[str, Any]:
    """The review card once its Decision field contains ``fragment``."""
    await h.fake._wait(
        lambda: True if fragment in field(card.embeds[0], "Decision") else None, 5, f"decision {fragment!r}"
    )
    return card.embeds[0]


async def press(h: Harness, custom_id: str, card: FakeMessage, user_id: int, **kwargs: Any) -> Any:
    return await h.fake.send_component(custom_id, message_id=card.id, user_id=user_id, **kwargs)


async def reject(h: Harness, job: Job, card: FakeMessage, user_id: int, reason: str) -> Any:
    """Press Reject, check the modal, submit it; returns the submit interaction."""
    opened = await (await press(h, f"review:reject:{job.id}", card, user_id)).wait_callback()
    assert opened.type == 9  # the modal is the acknowledgement
    assert opened.data["custom_id"] == f"review:reason:{job.id}"
    return await h.fake.send_modal_submit(
        f"review:reason:{job.id}", {"reason": reason}, user_id=user_id, message_id=card.id
    )


# -- the card ------------------------------------------------------------------------------------------


async def test_a_request_waits_on_a_review_card_with_everything_a_moderator_needs(harness: Harness) -> None:
    h = harness
    receipt = await h.answer(
        await h.command(
            "video",
            "image",
            prompt="It starts to run",
            model="kling-3.0",
            attachments={
                "start_frame": AttachmentSpec(PNG, "a.png"),
                "end_frame": AttachmentSpec(PNG, "b.png"),
            },
        )
    )
    assert "A moderator reviews every request" in receipt.embeds[0]["description"]
    (job,) = await h.storage.list_jobs(h.guild_id, h.member_id)
    assert job.state is JobState.PENDING_REVIEW
    (card,) = h.public_messages(h.general)
    assert job.review_message_id == card.id
    assert card.allowed_mentions == {"parse": []}
    embed, second = card.embeds
    assert embed["description"] == "It starts to run"
    assert field(embed, "Requested by") == f"<@{h.member_id}> in <#{h.videos}>"
    assert field(embed, "Settings") == "Kling 3.0 · 5 s · Standard · no sound · 2 images"
    assert field(embed, "Cost").startswith(f"{job.estimate_credits} credits")
    assert field(embed, "Decision") == "⏳ Waiting for a moderator"
    # The source images, at the provider's public URLs: shown, and linked by what they are.
    assert embed["image"]["url"] == job.start_frame_url
    assert second["image"]["url"] == job.end_frame_url
    assert second["url"] == embed["url"]  # one gallery in Discord's clients
    assert f"[start frame]({job.start_frame_url})" in field(embed, "Source images")
    assert f"/{h.guild_id}/{h.videos}/{job.status_message_id}" in embed["url"]
    assert buttons(card) == {f"review:approve:{job.id}": False, f"review:reject:{job.id}": False}
    # The public status card says it waits; nothing was sent to the provider but the uploads.
    (status,) = h.public_messages(h.videos)
    assert field(status.embeds[0], "Status") == "⏳ Waiting for a moderator's review"
    assert [c.route for c in h.provider_calls()] == ["upload", "upload"]


async def test_only_moderators_may_press(harness: Harness) -> None:
    h = harness
    job, card = await request(h)
    for custom_id in (f"review:approve:{job.id}", f"review:reject:{job.id}"):
        refusal = await (await press(h, custom_id, card, h.member_id)).wait_callback()
        assert refusal.type == 4
        assert refusal.ephemeral
        assert (
            refusal.content == "Only moderators (Manage Messages or Manage Server) can review video requests."
        )
        assert refusal.data["allowed_mentions"] == {"parse": []}
    assert (await h.storage.get_job(job.id or 0)).state is JobState.PENDING_REVIEW  # type: ignore[union-attr]


# -- approve -----------------------------------------------------------------------------------------


async def test_approve_queues_the_job_and_shows_who_approved(harness: Harness) -> None:
    h = harness
    moderator = h.fake.add_member(h.guild_id, name="mod", permissions=Permission.MANAGE_MESSAGES).user_id
    job, card = await request(h)
    approval = await press(h, f"review:approve:{job.id}", card, moderator)
    ack = await approval.wait_callback()
    assert ack.type == 6  # acknowledged first, then the card is edited
    embed = await decided(h, card, "Approved")
    assert field(embed, "Decision") == f"✅ Approved by <@{moderator}>"
    assert buttons(card) == {f"review:approve:{job.id}": True, f"review:reject:{job.id}": True}
    assert users_allowed(card) == []
    approved = await h.storage.get_job(job.id or 0)
    assert approved is not None
    assert (approved.state, approved.reviewed_by) == (JobState.QUEUED, moderator)
    (status,) = h.public_messages(h.videos)
    await h.fake.wait_for_call(lambda c: c.method == "PATCH" and c.path.endswith(f"/messages/{status.id}"))
    assert field(status.embeds[0], "Status") == "🕒 Queued (position 1) · ready in about 2 min"
    assert (await h.storage.balance(h.guild_id, h.member_id)).reserved == 55  # still held for the worker
    assert approval.followups == []  # the card says it all


async def test_two_moderators_approving_at_once_make_one_decision(harness: Harness) -> None:
    h = harness
    second = h.fake.add_member(h.guild_id, name="mod2", roles=[h.fake.role_ids["Admin"]]).user_id
    await h.storage.update_guild_settings(h.guild_id, audit_channel_id=h.general)
    job, card = await request(h)
    presses = await asyncio.gather(
        press(h, f"review:approve:{job.id}", card, h.admin_id),
        press(h, f"review:approve:{job.id}", card, second),
    )
    for interaction in presses:
        assert (await interaction.wait_callback()).type == 6
    loser_notice = await h.fake.wait_for_message(h.general, lambda m: "Already decided" in m.content)
    final = await h.storage.get_job(job.id or 0)
    assert final is not None
    assert final.state is JobState.QUEUED
    winner = final.reviewed_by
    assert winner in (h.admin_id, second)
    assert loser_notice.ephemeral
    assert loser_notice.content == f"Already decided: approved by <@{winner}>."
    assert users_allowed(loser_notice) == []
    loser = next(i for i in presses if i.user_id != winner)
    assert loser.followups == [loser_notice]
    await decided(h, card, "Approved")
    assert field(card.embeds[0], "Decision") == f"✅ Approved by <@{winner}>"
    await asyncio.sleep(0.3)  # let any late audit line land
    approvals = [m for m in h.public_messages(h.general) if "approved job" in m.content]
    assert len(approvals) == 1
    assert approvals[0].content.startswith(f"✅ <@{winner}> approved job #{job.id}")
    await check_ledger(h.storage)


async def test_approve_and_reject_at_once_make_one_decision(harness: Harness) -> None:
    h = harness
    second = h.fake.add_member(h.guild_id, name="mod2", roles=[h.fake.role_ids["Admin"]]).user_id
    job, card = await request(h)
    opened = await (await press(h, f"review:reject:{job.id}", card, second)).wait_callback()
    assert opened.type == 9
    approval, rejection = await asyncio.gather(
        press(h, f"review:approve:{job.id}", card, h.admin_id),
        h.fake.send_modal_submit(
            f"review:reason:{job.id}", {"reason": "no"}, user_id=second, message_id=card.id
        ),
    )
    await approval.wait_callback()
    await rejection.wait_callback()
    notice = await h.fake.wait_for_message(
        h.general, lambda m: m.ephemeral and "Already decided" in m.content
    )
    final = await h.storage.get_job(job.id or 0)
    assert final is not None
    assert final.state in (JobState.QUEUED, JobState.REJECTED)
    verb = "approved" if final.state is JobState.QUEUED else "rejected"
    assert notice.content == f"Already decided: {verb} by <@{final.reviewed_by}>."
    balance = await h.storage.balance(h.guild_id, h.member_id)
    assert balance.reserved == (55 if final.state is JobState.QUEUED else 0)
    await check_ledger(h.storage)


# -- reject ------------------------------------------------------------------------------------------


async def test_reject_with_a_reason_releases_the_credits_and_tells_the_member(harness: Harness) -> None:
    h = harness
    job, card = await request(h)
    assert (await h.storage.balance(h.guild_id, h.member_id)).available == 245
    submit = await reject(h, job, card, h.admin_id, "Please keep it @everyone friendly")
    assert (await submit.wait_callback()).type == 6

    notice = await h.fake.wait_for_message(h.videos, lambda m: "turned down" in m.content)
    assert notice.content == (
        f"<@{h.member_id}> a moderator turned down your video request (“Please keep it @everyone friendly”). "
        "Your 55 credits are back."
    )
    assert users_allowed(notice) == [h.member_id]  # the requester, and only them
    assert not notice.payload["mention_everyone"]
    assert notice.payload["message_reference"]["message_id"] == str(job.status_message_id)

    embed = await decided(h, card, "Rejected")
    assert field(embed, "Decision") == f"🚫 Rejected by <@{h.admin_id}>: Please keep it @everyone friendly"
    assert set(buttons(card).values()) == {True}
    rejected = await h.storage.get_job(job.id or 0)
    assert rejected is not None
    assert (rejected.state, rejected.reviewed_by, rejected.error) == (
        JobState.REJECTED,
        h.admin_id,
        "Please keep it @everyone friendly",
    )
    balance = await h.storage.balance(h.guild_id, h.member_id)
    assert (balance.reserved, balance.available, balance.active_jobs) == (0, 300, 0)
    await check_ledger(h.storage)
    status = h.fake.messages[job.status_message_id or 0]
    await h.fake.wait_for_call(lambda c: c.method == "PATCH" and c.path.endswith(f"/messages/{status.id}"))
    assert field(status.embeds[0], "Status").startswith("🚫 Rejected by a moderator")

    # /video jobs and /credits reflect it.
    jobs = await h.answer(await h.command("video", "jobs"))
    assert "🚫 Rejected by a moderator" in jobs.embeds[0]["description"]
    credits = await h.answer(await h.command("credits"))
    assert field(credits.embeds[0], "Available now") == "300"
    assert field(credits.embeds[0], "Held for videos in progress") == "0"


async def test_reject_without_a_reason(harness: Harness) -> None:
    h = harness
    job, card = await request(h)
    await (await reject(h, job, card, h.admin_id, "")).wait_callback()
    notice = await h.fake.wait_for_message(h.videos, lambda m: "turned down" in m.content)
    assert notice.content == (
        f"<@{h.member_id}> a moderator turned down your video request. Your 55 credits are back."
    )
    embed = await decided(h, card, "Rejected")
    assert field(embed, "Decision") == f"🚫 Rejected by <@{h.admin_id}> (no reason given)"


async def test_a_decided_card_answers_who_decided(harness: Harness) -> None:
    h = harness
    job, card = await request(h)
    await (await reject(h, job, card, h.admin_id, "off topic")).wait_callback()
    await decided(h, card, "Rejected")
    late = await press(h, f"review:approve:{job.id}", card, h.admin_id, validate=False)  # a stale client
    notice = await late.wait_followup()
    assert notice.ephemeral
    assert notice.content == f"Already decided: rejected by <@{h.admin_id}>."
    assert (await h.storage.get_job(job.id or 0)).state is JobState.REJECTED  # type: ignore[union-attr]


# -- cancel, failures, restarts -------------------------------------------------------------------------


async def test_the_members_cancel_shows_on_the_review_card(harness: Harness) -> None:
    h = harness
    interaction = await h.command("video", "text", prompt="A calm lake", model="kling-2.6")
    receipt = await h.answer(interaction)
    (job,) = await h.storage.list_jobs(h.guild_id, h.member_id)
    card = h.fake.messages[job.review_message_id or 0]
    cancel = await h.fake.send_component(
        f"video:cancel:{job.id}", message_id=receipt.id, user_id=h.member_id, channel_id=h.videos
    )
    assert (await cancel.wait_callback()).type == 6  # a deferred update; the receipt is edited after
    embed = await decided(h, card, "Cancelled")
    assert field(embed, "Decision") == "↩️ Cancelled before review; the credits went back to the member"
    assert set(buttons(card).values()) == {True}
    assert (await h.storage.balance(h.guild_id, h.member_id)).available == 300

    late = await press(h, f"review:approve:{job.id}", card, h.admin_id, validate=False)
    notice = await late.wait_followup()
    assert notice.content == "Nothing to decide: the member cancelled this request."
    assert (await h.storage.get_job(job.id or 0)).state is JobState.CANCELLED  # type: ignore[union-attr]


async def test_a_review_channel_the_bot_cannot_post_in_gives_the_credits_back(harness: Harness) -> None:
    h = harness
    bot_role = h.fake.role_ids["bot"]
    h.fake.set_channel_overwrite(h.general, bot_role, deny=Permission.SEND_MESSAGES)
    interaction = await h.command("video", "text", prompt="A calm lake", model="kling-2.6")
    receipt = await h.answer(interaction)  # the receipt comes first, then the cards
    refused = await interaction.wait_original(lambda m: not m.embeds)  # and is replaced by why not
    assert refused.id == receipt.id
    assert refused.content == (
        f"I couldn't post your request for review in <#{h.general}>, so nothing was made and your credits "
        "are back. Ask an admin to check my permissions there."
    )
    assert refused.components == []  # no Cancel left on it
    (job,) = await h.storage.list_jobs(h.guild_id, h.member_id)
    assert job.state is JobState.CANCELLED
    balance = await h.storage.balance(h.guild_id, h.member_id)
    assert (balance.reserved, balance.available) == (0, 300)
    await check_ledger(h.storage)


async def test_review_buttons_work_after_a_restart(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/bot.db"
    async with FakeDiscord() as fake:
        fake.add_default_guild()
        async with running_bot(tmp_path, fake=fake, database_url=url, worker=False) as h:
            await h.storage.update_guild_settings(h.guild_id, review_channel_id=h.general)
            job, card = await request(h)
        async with running_bot(tmp_path, fake=fake, database_url=url, worker=False) as h:
            await (await press(h, f"review:approve:{job.id}", card, h.admin_id)).wait_callback()
            embed = await decided(h, card, "Approved")
            assert field(embed, "Decision") == f"✅ Approved by <@{h.admin_id}>"
            assert (await h.storage.get_job(job.id or 0)).state is JobState.QUEUED  # type: ignore[union-attr]


async def test_an_approved_job_is_made_and_delivered(tmp_path: Path) -> None:
    async with running_bot(tmp_path) as h:  # with the worker: approval hands the job over
        h.sandbox.estimated_time.update({"kling-3.0": "1-2 seconds", "kling-2.6": "1-2 seconds"})
        await h.storage.update_guild_settings(h.guild_id, review_channel_id=h.general)
        job, card = await request(h)
        await asyncio.sleep(1.5)
        assert h.provider_calls("generate") == []  # nothing starts before a moderator says so
        await (await press(h, f"review:approve:{job.id}", card, h.admin_id)).wait_callback()
        video = await h.fake.wait_for_message(
            h.videos, lambda m: "your video is ready" in m.content, timeout=20
        )
        assert users_allowed(video) == [h.member_id]
        assert len(h.provider_calls("generate")) == 1
