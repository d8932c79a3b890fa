"""The provider line on Discord: telling servers it paused or resumed, low-balance alerts, and the
``/kling-admin resume`` and ``/kling-admin alert`` answers.

The decisions are :mod:`generation.breaker`'s and storage's (who starts or ends a pause, which servers
are told, which balance is a crossing); this module only words them and redraws the cards. It is shared
by the delivery worker's events (``cogs.delivery``) and the request flow (an upload answered 401/402).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import discord

from cogs import audit as audit_lines
from cogs import cards
from cogs.audit import audit, who
from cogs.common import NO_MENTIONS, when
from generation import breaker
from storage import AccountState, JobState, Resumed
from ulazai.errors import UlazAIError

if TYPE_CHECKING:
    from bot import KlingBot

log = logging.getLogger(__name__)

#: Cards redrawn when the line pauses or resumes (the first in line: the rest follow as they move up).
CARDS_TO_REDRAW = 100
#: How long ``/kling-admin resume`` waits to say how its probe went.
PROBE_WAIT_SECONDS = 8.0


async def tell_paused(bot: KlingBot, account: AccountState, guild_ids: list[int] | None = None) -> None:
    """One line in the audit log of each server not yet told of this pause (by default every server
    with jobs waiting)."""
    if account.since is None:
        return
    line = audit_lines.paused(account, bot.settings.provider_pause_probe_seconds)
    for guild_id in await bot.storage.tell_of_pause(account.since, guild_ids):
        await audit(bot, guild_id, line)


async def tell_resumed(bot: KlingBot, resumed: Resumed) -> None:
    for guild_id in resumed.guild_ids:
        await audit(bot, guild_id, audit_lines.resumed())


async def tell_low_credits(bot: KlingBot, crossings: list[tuple[int, int]], remaining: int) -> None:
    for guild_id, threshold in crossings:
        await audit(bot, guild_id, audit_lines.low_credits(remaining, threshold))


async def redraw_waiting_cards(bot: KlingBot) -> None:
    """Redraw the queued jobs' cards: they say whether the account needs attention."""
    try:
        for job_id in await bot.storage.queue_positions(limit=CARDS_TO_REDRAW):
            job = await bot.storage.get_job(job_id)
            if job is not None and job.state is JobState.QUEUED:
                await cards.refresh_status_card(bot, job)
    except Exception:
        log.exception("Could not redraw the queued cards after the provider line changed")


async def pause_after_upload(bot: KlingBot, guild_id: int, error: UlazAIError) -> None:
    """An upload answered 401/402: the account is at fault, so the line pauses like after a generate.
    The member's own request is refused with a sentence by the caller; this server hears of the pause
    even when it has nothing waiting."""
    pause = breaker.pause_for(error)
    if pause is None:
        return
    started = await bot.storage.pause_provider(status=pause.status, message=pause.message)
    account = started or await bot.storage.provider_account()
    if started is not None:
        log.warning("UlazAI answered %s to an upload; pausing every submission", pause.status)
        await tell_paused(bot, account)
        await redraw_waiting_cards(bot)
    await tell_paused(bot, account, [guild_id])


async def tell_newcomer(bot: KlingBot, guild_id: int) -> None:
    """A job was queued while the line is paused: its server hears of the pause, once."""
    account = await bot.storage.provider_account()
    if account.paused:
        await tell_paused(bot, account, [guild_id])


# -- /kling-admin resume and alert --------------------------------------------------------------------


def state_text(account: AccountState) -> str:
    """The provider line in one sentence, for the admins."""
    if not account.paused:
        return "Video generation is running."
    what, fix = audit_lines.PAUSE_FIXES[breaker.trouble_of(account.status)]
    since = f" since {when(account.since)}" if account.since else ""
    return f"Video generation is paused{since}: {what}. {fix}."


def balance_text(account: AccountState) -> str:
    if account.credits_remaining is None:
        return "UlazAI has not reported the account's balance yet (Kling 2.6 videos carry it)."
    seen = f" ({when(account.credits_seen_at)})" if account.credits_seen_at else ""
    return f"UlazAI last reported {account.credits_remaining:,} credits left on the account{seen}."


async def resume(interaction: discord.Interaction[Any]) -> None:
    """Make the next probe due at once, wait a moment for it, and say how it went."""
    bot: KlingBot = interaction.client
    account = await bot.storage.provider_account()
    if not account.paused:
        await interaction.followup.send(
            "Video generation is not paused; nothing to resume.", ephemeral=True, allowed_mentions=NO_MENTIONS
        )
        return
    await bot.storage.probe_soon()
    waiting = (await bot.storage.state_counts([JobState.QUEUED]))[JobState.QUEUED]
    if not waiting:
        answer = (
            "Nothing is waiting to be sent, so there is nothing to try yet: the next request will go to "
            "UlazAI at once, and if it is accepted, video generation resumes."
        )
    else:
        deadline = asyncio.get_running_loop().time() + PROBE_WAIT_SECONDS
        while (account := await bot.storage.provider_account()).paused:
            if asyncio.get_running_loop().time() >= deadline:
                break
            await asyncio.sleep(0.25)
        if not account.paused:
            answer = "UlazAI accepted the next video: video generation resumed for everyone."
        elif account.last_probe_at is not None:
            answer = f"UlazAI still refuses: {state_text(account)}"
        else:
            answer = "The next video is on its way to UlazAI; video generation resumes if it is accepted."
    await interaction.followup.send(answer, ephemeral=True, allowed_mentions=NO_MENTIONS)


async def set_alert(interaction: discord.Interaction[Any], credits: int) -> None:
    """Set (or turn off, with 0) this server's low-balance alert."""
    bot: KlingBot = interaction.client
    assert interaction.guild_id is not None
    await bot.storage.update_guild_settings(interaction.guild_id, credits_alert=credits)
    account = await bot.storage.provider_account()
    if credits:
        answer = (
            f"The audit log gets one line each time UlazAI reports fewer than {credits:,} credits left on "
            f"the bot's account. {balance_text(account)}"
        )
        line = f"set the low-balance alert to {credits:,} credits."
    else:
        answer = "The low-balance alert is off."
        line = "turned the low-balance alert off."
    await interaction.followup.send(answer, ephemeral=True, allowed_mentions=NO_MENTIONS)
    await audit(bot, interaction.guild_id, f"🪫 {who(interaction.user.id)} {line}")
