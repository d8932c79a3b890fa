"""Bans, the moderators' list of jobs in flight, and low-balance alerts, through the real bot."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from cogs.admin import ADMIN_REFUSAL
from storage import JobState
from tests.cogs.test_delivery import FAST, request, wait_state
from tests.fakes.discord_api import FakeMessage, Permission
from tests.harness import Harness, running_bot
from tests.storage.helpers import check_ledger

BANNED = "An admin has stopped you from making videos in this server (reason: spamming the channel)."


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    async with running_bot(tmp_path, worker=False) as h:  # jobs stay where the commands leave them
        await h.storage.update_guild_settings(h.guild_id, audit_channel_id=h.general)
        yield h


async def admin(h: Harness, subcommand: str, **options: Any) -> FakeMessage:
    answer: FakeMessage = await h.answer(
        await h.command("kling-admin", subcommand, user_id=h.admin_id, **options)
    )
    assert answer.ephemeral
    assert answer.allowed_mentions == {"parse": []}
    return answer


async def ask(h: Harness, user_id: int | None = None) -> FakeMessage:
    options: dict[str, Any] = {"prompt": "A calm lake at dawn", "model": "kling-2.6"}
    answer: FakeMessage = await h.answer(await h.command("video", "text", user_id=user_id, **options))
    return answer


def audit_lines(h: Harness) -> list[str]:
    return [m.content for m in h.public_messages(h.general)]


async def audit_line(h: Harness, icon: str) -> str:
    """The newest audit line starting with ``icon`` (written just after the admin's answer)."""
    await h.fake.wait_for_message(h.general, lambda m: m.content.startswith(icon))
    return [line for line in audit_lines(h) if line.startswith(icon)][-1]


async def test_a_ban_refuses_every_request_and_button_and_unban_restores_them(harness: Harness) -> None:
    h = harness
    receipt = await ask(h)
    (queued,) = await h.storage.list_jobs(h.guild_id, h.member_id)
    assert queued.id is not None
    banned = await admin(h, "ban", member=h.member_id, reason="spamming the channel")
    assert banned.content.startswith(f"<@{h.member_id}> can no longer make videos here (reason: spamming")
    assert "Their 1 waiting request was cancelled and 55 credits given back." in banned.content
    job = await h.storage.get_job(queued.id)
    assert job is not None
    assert job.state is JobState.CANCELLED
    balance = await h.storage.balance(h.guild_id, h.member_id)
    assert (balance.reserved, balance.available) == (0, 300)
    card = next(m for m in h.public_messages() if m.embeds)
    assert card.embeds[0]["fields"][-1]["value"].startswith("↩️ Cancelled")
    assert await audit_line(h, "🔨") == (
        f"🔨 <@{h.admin_id}> banned <@{h.member_id}> from making videos. 1 waiting request cancelled, "
        "55 credits back to them. Reason: spamming the channel"
    )
    calls_before = len(h.sandbox.requests)
    public_before = len(h.public_messages())

    refused = await ask(h)  # /video text: one sentence, nothing else
    assert refused.content == BANNED
    assert refused.embeds == []
    regenerate = await h.fake.send_component(
        f"video:regen:{queued.id}", message_id=987_654, channel_id=h.videos, user_id=h.member_id
    )
    press = await regenerate.wait_callback()
    assert (press.type, press.ephemeral, press.content) == (4, True, BANNED)
    cancel = await h.fake.send_component(
        f"video:cancel:{queued.id}", message_id=receipt.id, user_id=h.member_id, validate=False
    )
    assert (await cancel.wait_callback()).type == 6  # Cancel acknowledges before any database read
    refusal = await cancel.wait_followup()
    assert (refusal.ephemeral, refusal.content) == (True, BANNED)
    assert len(h.sandbox.requests) == calls_before  # no provider call of any kind
    assert len(h.public_messages()) == public_before
    credits = await h.answer(await h.command("credits"))  # still answers
    assert credits.embeds
    settings = (await admin(h, "settings")).embeds[0]
    (bans,) = [f for f in settings["fields"] if f["name"] == "Banned (1)"]
    assert bans["value"].startswith(f"<@{h.member_id}> <t:")
    assert bans["value"].endswith(": spamming the channel")
    again = await admin(h, "ban", member=h.member_id)
    assert "already banned" in again.content

    lifted = await admin(h, "unban", member=h.member_id)
    assert lifted.content == f"<@{h.member_id}> can make videos here again."
    assert await audit_line(h, "🕊️") == f"🕊️ <@{h.admin_id}> lifted the video ban of <@{h.member_id}>."
    assert (await ask(h)).embeds  # a receipt again
    assert "is not banned" in (await admin(h, "unban", member=h.member_id)).content
    await check_ledger(h.storage)


async def test_only_manage_server_can_ban(harness: Harness) -> None:
    h = harness
    assert h.bot.metrics_server is None  # METRICS_PORT unset: no HTTP server at all
    moderator = h.fake.add_member(h.guild_id, name="mod", permissions=Permission.MANAGE_MESSAGES).user_id
    for user_id in (h.member_id, moderator):
        interaction = await h.command("kling-admin", "ban", user_id=user_id, member=h.admin_id)
        refusal = await interaction.wait_callback()
        assert (refusal.type, refusal.content) == (4, ADMIN_REFUSAL)
    assert await h.storage.get_ban(h.guild_id, h.admin_id) is None


async def test_moderators_see_the_jobs_in_flight_and_cancel_a_waiting_one(harness: Harness) -> None:
    h = harness
    await ask(h)
    (job,) = await h.storage.list_jobs(h.guild_id, h.member_id)
    answer = await admin(h, "jobs")
    (embed,) = answer.embeds
    assert embed["title"] == "Jobs in flight here (1)"
    assert embed["description"].startswith(
        f"**#{job.id}** <@{h.member_id}> · Kling 2.6 · 🕒 Queued · asked <t:"
    )
    assert embed["description"].endswith("· 55 credits")
    button = f"admin:cancel:{job.id}"
    assert answer.custom_ids() == [button]

    member = await h.fake.send_component(button, message_id=answer.id, user_id=h.member_id)
    refused = await member.wait_callback()
    assert refused.content == "Only moderators (Manage Messages or Manage Server) can review video requests."
    moderator = h.fake.add_member(h.guild_id, name="mod", permissions=Permission.MANAGE_MESSAGES).user_id
    press = await h.fake.send_component(button, message_id=answer.id, user_id=moderator)
    done = await press.wait_followup()
    assert done.content == f"Cancelled job #{job.id}; 55 credits went back to <@{h.member_id}>."
    cancelled = await h.storage.get_job(job.id or 0)
    assert cancelled is not None
    assert cancelled.state is JobState.CANCELLED
    assert (await h.storage.balance(h.guild_id, h.member_id)).available == 300
    notice = await h.fake.wait_for_message(h.videos, lambda m: "a moderator cancelled" in m.content)
    assert notice.allowed_mentions is not None
    assert [int(u) for u in notice.allowed_mentions.get("users", [])] == [h.member_id]
    assert await audit_line(h, "↩️") == (
        f"↩️ <@{moderator}> cancelled job #{job.id} of <@{h.member_id}>; 55 credits went back to them."
    )
    again = await h.fake.send_component(button, message_id=answer.id, user_id=moderator)
    assert "already started or ended" in (await again.wait_followup()).content
    assert (await admin(h, "jobs")).content == "No video is waiting or being made here."
    await check_ledger(h.storage)


async def test_a_low_balance_is_one_audit_line_per_crossing(tmp_path: Path) -> None:
    async with running_bot(tmp_path) as h:
        h.sandbox.estimated_time.update(FAST)
        await h.storage.update_guild_settings(h.guild_id, audit_channel_id=h.general, max_active_jobs=5)
        await h.storage.grant(h.guild_id, h.member_id, 1000, actor_id=None)
        answer = await admin(h, "alert", credits=500)
        assert answer.content.startswith(
            "The audit log gets one line each time UlazAI reports fewer than 500"
        )

        async def video(balance: int) -> None:
            h.sandbox.balance = balance
            await wait_state(h, await request(h), JobState.DELIVERED)

        await video(520)  # 465 left: below 500, one line
        await video(465)  # 410 left: still below, no new line
        await video(10_000)  # 9,945 left: above again
        await video(540)  # 485 left: a new crossing
        alerts = [line for line in audit_lines(h) if line.startswith("🪫 The bot's")]
        assert alerts == [
            "🪫 The bot's UlazAI account has 465 credits left, below this server's alert level of 500. "
            "Top it up before videos stop (`/kling-admin alert` changes the level).",
            "🪫 The bot's UlazAI account has 485 credits left, below this server's alert level of 500. "
            "Top it up before videos stop (`/kling-admin alert` changes the level).",
        ]
        settings = (await admin(h, "settings")).embeds[0]
        fields = {f["name"]: f["value"] for f in settings["fields"]}
        assert fields["Low-balance alert"] == "Below 500 credits"
        assert "UlazAI last reported 485 credits left on the account" in fields["Video line"]
        assert (await admin(h, "alert", credits=0)).content == "The low-balance alert is off."
