"""Moderation of the video bot: bans (``/kling-admin ban``, ``unban``), and the list of jobs in flight
with a Cancel button for each waiting one (``/kling-admin jobs``).

A banned member's requests and button presses get one ephemeral sentence, with the admin's reason,
and nothing else (:func:`refuse_banned` for buttons; ``generation.checks.check_not_banned`` in the
request flow); their ``/credits`` and ``/video jobs`` still answer. Banning cancels their requests still
waiting for review or in the queue and gives the credits back, in one transaction with the ban; a video
the provider is already making is still posted (it cannot be called back).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import discord

from cogs import audit as audit_lines
from cogs import cards, provider_line, reviewing, views
from cogs.audit import audit, who
from cogs.common import (
    NO_MENTIONS,
    UserFacingError,
    answer_ephemeral,
    mention_only,
    plural,
    refusal_text,
    when,
)
from generation.refusals import MemberBanned
from storage import InvalidTransition, Job, JobNotFound, JobState, Storage

if TYPE_CHECKING:
    from bot import KlingBot

log = logging.getLogger(__name__)

#: The most jobs one ``/kling-admin jobs`` answer lists (Discord allows 25 buttons on a message).
MAX_LISTED = 20
MAX_REASON = 200
CANCELLABLE = (JobState.PENDING_REVIEW, JobState.QUEUED)


# -- bans -----------------------------------------------------------------------------------------


async def refuse_banned(interaction: discord.Interaction[Any]) -> bool:
    """For a member's button (in ``interaction_check``, or after its acknowledgement): ``True`` when they
    are banned here, after telling them so in one ephemeral sentence."""
    if interaction.guild_id is None:
        return False
    bot: KlingBot = interaction.client
    ban = await bot.storage.get_ban(interaction.guild_id, interaction.user.id)
    if ban is None:
        return False
    await answer_ephemeral(interaction, refusal_text(MemberBanned(ban.reason)))
    return True


async def ban(interaction: discord.Interaction[Any], member: discord.Member, reason: str | None) -> None:
    bot: KlingBot = interaction.client
    assert interaction.guild_id is not None
    if member.bot:
        raise UserFacingError("Bots can't make videos, so there is nothing to ban.")
    reason = (reason or "").strip()[:MAX_REASON] or None
    result = await bot.storage.ban(
        interaction.guild_id, member.id, reason=reason, actor_id=interaction.user.id
    )
    if result is None:
        existing = await bot.storage.get_ban(interaction.guild_id, member.id)
        said = f" (reason: {existing.reason})" if existing and existing.reason else ""
        raise UserFacingError(
            f"{member.mention} is already banned from making videos here{said}. "
            "Unban them first to change the reason."
        )
    _, cancelled = result
    for job in cancelled:
        await cards.refresh_status_card(bot, job)
        await reviewing.refresh_review_card(bot, job)
    released = sum(job.estimate_credits for job in cancelled)
    notes = [
        f"{member.mention} can no longer make videos here" + (f" (reason: {reason})." if reason else ".")
    ]
    if cancelled:
        notes.append(
            f"Their {plural(len(cancelled), 'waiting request')} {'were' if len(cancelled) != 1 else 'was'} "
            f"cancelled and {released:,} credits given back."
        )
    notes.append("A video already being made is still posted. `/kling-admin unban` lifts the ban.")
    await interaction.followup.send(" ".join(notes), ephemeral=True, allowed_mentions=NO_MENTIONS)
    line = audit_lines.banned(interaction.user.id, member.id, reason, len(cancelled), released)
    await audit(bot, interaction.guild_id, line)


async def unban(interaction: discord.Interaction[Any], member: discord.Member) -> None:
    bot: KlingBot = interaction.client
    assert interaction.guild_id is not None
    if await bot.storage.unban(interaction.guild_id, member.id) is None:
        raise UserFacingError(f"{member.mention} is not banned from making videos here.")
    await interaction.followup.send(
        f"{member.mention} can make videos here again.", ephemeral=True, allowed_mentions=NO_MENTIONS
    )
    await audit(bot, interaction.guild_id, audit_lines.unbanned(interaction.user.id, member.id))


def bans_text(bans: list[Any], limit: int = 1024) -> str:
    """The settings embed's list of bans (``storage.models.Ban`` rows)."""
    if not bans:
        return "None"
    lines = [
        f"<@{ban.user_id}> {when(ban.created_at)}"
        + (f": {discord.utils.escape_markdown(ban.reason)}" if ban.reason else "")
        for ban in bans
    ]
    text = "\n".join(lines)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- jobs in flight -------------------------------------------------------------------------------


def job_line(job: Job) -> str:
    return (
        f"**#{job.id}** {who(job.user_id)} · {cards.model_label(job.model)} · "
        f"{cards.STATE_LABELS.get(job.state, job.state)} · asked {when(job.created_at)} · "
        f"{cards.job_cost(job)} credits"
    )


async def list_jobs(interaction: discord.Interaction[Any]) -> None:
    """The jobs waiting or running here, oldest first, with a Cancel button per waiting one."""
    bot: KlingBot = interaction.client
    assert interaction.guild_id is not None
    jobs = await bot.storage.unfinished_jobs_of(interaction.guild_id, limit=MAX_LISTED)
    if not jobs:
        await interaction.followup.send(
            "No video is waiting or being made here.", ephemeral=True, allowed_mentions=NO_MENTIONS
        )
        return
    total = sum((await bot.storage.unfinished_jobs(interaction.guild_id)).values())
    embed = discord.Embed(
        title=f"Jobs in flight here ({total})",
        description="\n".join(job_line(job) for job in jobs),
        colour=cards.BRAND_COLOUR,
    )
    if total > len(jobs):
        embed.set_footer(text=f"The oldest {len(jobs)} are shown.")
    waiting = [job.id for job in jobs if job.state in CANCELLABLE and job.id is not None]
    if (await bot.storage.provider_account()).paused:
        embed.add_field(name="⚠️ Paused", value=cards.PAUSED_NOTE, inline=False)
    await interaction.followup.send(
        embed=embed, view=views.admin_jobs_view(waiting), ephemeral=True, allowed_mentions=NO_MENTIONS
    )


async def cancel(interaction: discord.Interaction[Any], job_id: int) -> None:
    """A moderator's Cancel on the jobs list: release the hold, tell the member, redraw the cards."""
    bot: KlingBot = interaction.client
    job = await bot.storage.get_job(job_id)
    if job is None or job.guild_id != interaction.guild_id:
        await answer_ephemeral(interaction, "I no longer have this job.")
        return
    try:
        job = await bot.storage.cancel(
            job_id, actor_id=interaction.user.id, reason="cancelled by a moderator"
        )
    except (InvalidTransition, JobNotFound):
        await answer_ephemeral(
            interaction, f"Job #{job_id} has already started or ended, so it can't be cancelled any more."
        )
        return
    await answer_ephemeral(
        interaction,
        f"Cancelled job #{job_id}; {job.estimate_credits:,} credits went back to {who(job.user_id)}.",
    )
    await cards.refresh_status_card(bot, job)
    await reviewing.refresh_review_card(bot, job)
    channel = bot.get_partial_messageable(job.channel_id, guild_id=job.guild_id)
    try:
        await channel.send(
            f"<@{job.user_id}> a moderator cancelled your video request (job #{job_id}). "
            f"Your {job.estimate_credits} credits are back.",
            reference=cards.card_reference(job),  # type: ignore[arg-type]
            allowed_mentions=mention_only(discord.Object(job.user_id)),
        )
    except discord.HTTPException as error:
        log.warning("Could not tell the member job %s was cancelled: %s", job_id, error)
    await audit(bot, job.guild_id, audit_lines.cancelled_by_moderator(job, interaction.user.id))


# -- on the settings embed ------------------------------------------------------------------------


async def cockpit_fields(storage: Storage, guild_id: int) -> list[tuple[str, str]]:
    """The settings embed's fields of issue 14: the provider line, the low-balance alert, the bans."""
    settings = await storage.get_guild_settings(guild_id)
    account = await storage.provider_account()
    alert = f"Below {settings.credits_alert:,} credits" if settings.credits_alert else "Off"
    bans = await storage.list_bans(guild_id)
    return [
        ("Video line", f"{provider_line.state_text(account)} {provider_line.balance_text(account)}"[:1024]),
        ("Low-balance alert", alert),
        (f"Banned ({len(bans)})", bans_text(bans)),
    ]
