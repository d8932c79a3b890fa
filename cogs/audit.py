"""The audit channel: one line per event, for the server's moderators and the operator.

Never a secret, never a ping: lines name people with mention syntax so moderators can click them, and
``NO_MENTIONS`` makes Discord render those as plain names. A missing channel or permission is logged,
not raised, because an audit line must never break the action it records.

The lines about jobs are written here, in one place, so every cog words the same event the same way.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord

from cogs import cards
from cogs.common import NO_MENTIONS
from generation.breaker import Trouble, trouble_of
from storage import AccountState, DeliveredVia, Job, JobState

if TYPE_CHECKING:
    from bot import KlingBot

log = logging.getLogger(__name__)

#: Discord's limit for a message's content.
MAX_LINE = 2000


async def audit(bot: KlingBot, guild_id: int, line: str, *, channel_id: int | None = None) -> None:
    """Post ``line`` in the guild's audit channel, when one is set (or in ``channel_id``, when given).

    ``channel_id`` lets a change of the audit channel itself be recorded where moderators last looked.
    """
    if channel_id is None:
        channel_id = (await bot.storage.get_guild_settings(guild_id)).audit_channel_id
    if channel_id is None:
        return
    channel = bot.get_partial_messageable(channel_id, guild_id=guild_id)
    try:
        await channel.send(line[:MAX_LINE], allowed_mentions=NO_MENTIONS)
    except discord.HTTPException as error:
        log.warning("Could not write to the audit channel of guild %s: %s", guild_id, error)


def who(user_id: int | None) -> str:
    """A person in an audit line: a clickable name that never pings (the channel sends NO_MENTIONS)."""
    return "someone" if user_id is None else f"<@{user_id}>"


def requested(job: Job) -> str:
    """A member asked for a video (who, where, model, cost, and whether it waits for review)."""
    waiting = " It waits for review." if job.state is JobState.PENDING_REVIEW else ""
    return (
        f"📝 {who(job.user_id)} requested job #{job.id}{cards.origin_text(job, ' (', ')')} in <#{job.channel_id}>: "
        f"{cards.parameters(job)}, {job.estimate_credits} credits held.{waiting}"
    )


def blocked(user_id: int, channel_id: int | None, term: str) -> str:
    """A prompt was refused for a blocklisted term: who and which term, never the prompt itself."""
    where = f" in <#{channel_id}>" if channel_id is not None else ""
    return (
        f"⛔ Refused a prompt from {who(user_id)}{where}: it contains the blocklisted term "
        f"“{discord.utils.escape_markdown(term)}”."
    )


def blocked_on_approval(job: Job, term: str) -> str:
    """Approve was pressed on a request whose prompt the blocklist refuses now: it was rejected instead."""
    return (
        f"⛔ Job #{job.id} of {who(job.user_id)} was rejected, not approved, when {who(job.reviewed_by)} "
        f"pressed Approve: its prompt contains the blocklisted term “{discord.utils.escape_markdown(term)}”. "
        f"{job.estimate_credits} credits went back to them."
    )


def approved(job: Job) -> str:
    return f"✅ {who(job.reviewed_by)} approved job #{job.id} of {who(job.user_id)}; it is queued."


def rejected(job: Job) -> str:
    reason = f" Reason: {job.error}" if job.error else " No reason given."
    return (
        f"🚫 {who(job.reviewed_by)} rejected job #{job.id} of {who(job.user_id)}; "
        f"{job.estimate_credits} credits went back to them.{reason}"
    )


def delivered(job: Job) -> str:
    where = f"<#{job.channel_id}>"
    if job.delivery_notes and job.delivered_via is not DeliveredVia.ATTACHMENT:
        where += f" ({job.delivery_notes})"
    return (
        f"🎬 Job #{job.id} of {who(job.user_id)} delivered in {where}; {cards.job_cost(job)} credits spent."
    )


def ended(job: Job, refunded: int, detail: str | None = None) -> str:
    """A job failed or was lost and its credits went back (``detail``: what the operator should know)."""
    label = "lost" if job.state is JobState.LOST else "failed"
    icon = "⚠️" if job.state is JobState.LOST else "❌"
    line = (
        f"{icon} Job #{job.id} {label}: {job.error or 'no reason given'}. "
        f"{refunded} credits refunded to {who(job.user_id)}."
    )
    return f"{line} {detail}" if detail else line


# -- issue 14: the provider account, bans, moderators' cancels --------------------------------------

#: What to do, by what the provider said (its message is quoted before it).
PAUSE_FIXES: dict[Trouble, tuple[str, str]] = {
    Trouble.OUT_OF_CREDITS: (
        "the bot's UlazAI account is out of credits",
        "Top up the UlazAI account, then run `/kling-admin resume`",
    ),
    Trouble.KEY_REFUSED: (
        "UlazAI refused the bot's API key",
        "Put a valid key in the bot's ULAZAI_API_KEY setting (or re-enable it on the UlazAI dashboard), "
        "then run `/kling-admin resume`",
    ),
}


def every(seconds: float) -> str:
    return f"{seconds / 60:.0f} minutes" if seconds >= 120 else f"{seconds:.0f} seconds"


def paused(account: AccountState, probe_seconds: float) -> str:
    """Submissions paused for the whole bot: why, and what to do (once per server per pause)."""
    what, fix = PAUSE_FIXES[trouble_of(account.status)]
    said = f" (HTTP {account.status}: “{discord.utils.escape_markdown((account.message or '')[:200])}”)"
    return (
        f"⏸️ Video generation is paused: {what}{said}. Queued videos wait in line with their credits held; "
        f"nobody is failed or refunded. {fix}; the bot also tries the next video on its own every "
        f"{every(probe_seconds)}."
    )


def resumed() -> str:
    return (
        "▶️ Video generation resumed: UlazAI accepted a video again, and the queued videos are on their way."
    )


def low_credits(remaining: int, threshold: int) -> str:
    return (
        f"🪫 The bot's UlazAI account has {remaining:,} credits left, below this server's alert level of "
        f"{threshold:,}. Top it up before videos stop (`/kling-admin alert` changes the level)."
    )


def banned(moderator_id: int, user_id: int, reason: str | None, cancelled: int, released: int) -> str:
    why = f" Reason: {reason}" if reason else " No reason given."
    jobs = (
        f" {cancelled} waiting request{'s' if cancelled != 1 else ''} cancelled, {released} credits back to them."
        if cancelled
        else ""
    )
    return f"🔨 {who(moderator_id)} banned {who(user_id)} from making videos.{jobs}{why}"


def unbanned(moderator_id: int, user_id: int) -> str:
    return f"🕊️ {who(moderator_id)} lifted the video ban of {who(user_id)}."


def cancelled_by_moderator(job: Job, moderator_id: int) -> str:
    return (
        f"↩️ {who(moderator_id)} cancelled job #{job.id} of {who(job.user_id)}; "
        f"{job.estimate_credits} credits went back to them."
    )
