"""The review queue's flow: the card moderators decide on, and what Approve and Reject do.

With review on (``/kling-admin review channel:...``) a request is validated, its images uploaded and its
credits held, then :func:`post_review_card` puts it in front of the moderators. The buttons
(:mod:`cogs.views`) are ``DynamicItem``s whose custom_id carries the job id, so a card posted before a
restart still works.

Every decision is a compare-and-set in storage (``pending_review -> queued|rejected``): when two
moderators press at once, one decision is taken and the other moderator is told who was first. The
card is then redrawn from the database, never from what the presser saw, so a stale card heals itself.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import discord

from cogs import audit as audit_lines
from cogs import cards, views
from cogs.audit import audit
from cogs.common import NO_MENTIONS, UserFacingError, answer_ephemeral, mention_only
from generation.blocklist import find_blocked_term
from storage import InvalidTransition, Job, JobNotFound

if TYPE_CHECKING:
    from bot import KlingBot

log = logging.getLogger(__name__)

#: What the member reads when Approve meets a prompt the blocklist refuses now (it names no term).
BLOCKED_REASON = "the prompt contains something this server does not allow"


def may_review(permissions: discord.Permissions) -> bool:
    """Moderators review: Manage Messages or Manage Server (administrators have both)."""
    return permissions.administrator or permissions.manage_guild or permissions.manage_messages


async def allow_moderators(interaction: discord.Interaction[Any]) -> bool:
    """``interaction_check`` of every review control: anyone else gets one ephemeral sentence."""
    if may_review(interaction.permissions):
        return True
    await interaction.response.send_message(
        "Only moderators (Manage Messages or Manage Server) can review video requests.",
        ephemeral=True,
        allowed_mentions=NO_MENTIONS,
    )
    return False


async def post_review_card(bot: KlingBot, job: Job, channel_id: int) -> Job:
    """Put a pending job in front of the moderators and remember the card on the job.

    Raises :class:`discord.HTTPException` when the review channel refuses the card; the request flow
    then gives the member their credits back (a job nobody can see would wait forever).
    """
    assert job.id is not None
    channel = bot.get_partial_messageable(channel_id, guild_id=job.guild_id)
    message = await channel.send(
        embeds=cards.review_card(job), view=views.review_view(job), allowed_mentions=NO_MENTIONS
    )
    return await bot.storage.set_job_messages(job.id, review_message_id=message.id)


async def refresh_review_card(bot: KlingBot, job: Job) -> None:
    """Redraw the card without an interaction (the member's Cancel): it lives in the review channel.

    If the review channel changed since the card was posted, the old card cannot be found and keeps its
    buttons; pressing one there answers with the real outcome and redraws that card then.
    """
    if job.review_message_id is None:
        return
    settings = await bot.storage.get_guild_settings(job.guild_id)
    if settings.review_channel_id is None:
        return
    channel = bot.get_partial_messageable(settings.review_channel_id, guild_id=job.guild_id)
    try:
        await channel.get_partial_message(job.review_message_id).edit(
            embeds=cards.review_card(job), view=views.review_view(job), allowed_mentions=NO_MENTIONS
        )
    except discord.HTTPException as error:
        log.info("Review card of job %s not updated: %s", job.id, error)


async def redraw_pressed_card(interaction: discord.Interaction[Any], job: Job) -> None:
    """Redraw the card the moderator pressed on, through the interaction (no channel permission needed)."""
    try:
        await interaction.edit_original_response(
            embeds=cards.review_card(job), view=views.review_view(job), allowed_mentions=NO_MENTIONS
        )
    except discord.HTTPException as error:
        log.info("Review card of job %s not updated: %s", job.id, error)


async def load_for_review(interaction: discord.Interaction[Any], job_id: int) -> Job:
    """The job behind a pressed card, refusing a card from another server (custom_ids can be forged)."""
    bot: KlingBot = interaction.client
    job = await bot.storage.get_job(job_id)
    if job is None or job.guild_id != interaction.guild_id:
        raise UserFacingError("I no longer have this request, so there is nothing to decide.")
    return job


def already_decided_text(job: Job) -> str:
    outcome = cards.review_outcome(job)
    if outcome == "withdrawn":
        return "Nothing to decide: the member cancelled this request."
    if outcome == "rejected":
        return f"Already decided: rejected by <@{job.reviewed_by}>."
    return f"Already decided: approved by <@{job.reviewed_by}>."


async def answer_already_decided(interaction: discord.Interaction[Any], job_id: int) -> None:
    """The loser of a race (or a press on a stale card): say who decided, and show it on the card."""
    bot: KlingBot = interaction.client
    job = await bot.storage.get_job(job_id)
    if job is None:
        await answer_ephemeral(interaction, "I no longer have this request, so there is nothing to decide.")
        return
    await redraw_pressed_card(interaction, job)
    await answer_ephemeral(interaction, already_decided_text(job))


async def tell_requester_rejected(bot: KlingBot, job: Job) -> None:
    """Tell the member in the channel they asked in, replying to their status card, pinging only them."""
    reason = f" (“{job.error}”)" if job.error else ""
    text = (
        f"<@{job.user_id}> a moderator turned down your video request{reason}. "
        f"Your {job.estimate_credits} credits are back."
    )
    reference = cards.card_reference(job)
    channel = bot.get_partial_messageable(job.channel_id, guild_id=job.guild_id)
    try:
        await channel.send(
            text,
            reference=reference,  # type: ignore[arg-type]
            allowed_mentions=mention_only(discord.Object(job.user_id)),
        )
    except discord.HTTPException as error:
        log.warning("Could not tell the member job %s was rejected: %s", job.id, error)


async def approve(interaction: discord.Interaction[Any], job_id: int) -> None:
    """Queue the job (the delivery worker takes it from there) and show who approved it.

    The prompt is checked again against the blocklist as it is now: a term added while the request
    waited turns the approval into a rejection with the credits given back.
    """
    bot: KlingBot = interaction.client
    job = await load_for_review(interaction, job_id)
    terms = (await bot.storage.get_guild_settings(job.guild_id)).blocklist_terms
    if (term := find_blocked_term(job.prompt, terms)) is not None:
        await reject_blocked(interaction, job_id, term)
        return
    try:
        job = await bot.storage.approve(job_id, moderator_id=interaction.user.id)
    except (InvalidTransition, JobNotFound):
        await answer_already_decided(interaction, job_id)
        return
    await redraw_pressed_card(interaction, job)
    await cards.refresh_status_card(bot, job)
    await audit(bot, job.guild_id, audit_lines.approved(job))


async def reject_blocked(interaction: discord.Interaction[Any], job_id: int, term: str) -> None:
    """Approve pressed on a prompt the blocklist now refuses: reject it, and tell the moderator why.

    The member's notice gives a reason without the term (members must not learn the list); the
    moderator and the audit line name it.
    """
    job = await reject(interaction, job_id, BLOCKED_REASON, audited=False)
    if job is None:
        return
    shown = discord.utils.escape_markdown(term)
    await answer_ephemeral(
        interaction,
        f"Not approved: the prompt now contains the blocklisted term “{shown}”, so I rejected the request "
        f"and gave the member their {job.estimate_credits} credits back.",
    )
    await audit(interaction.client, job.guild_id, audit_lines.blocked_on_approval(job, term))


async def reject(
    interaction: discord.Interaction[Any], job_id: int, reason: str | None, *, audited: bool = True
) -> Job | None:
    """Release the credits, show who rejected it, and tell the member why; ``None`` when someone else
    decided first (the moderator is told). ``audited=False`` leaves the audit line to the caller."""
    bot: KlingBot = interaction.client
    await load_for_review(interaction, job_id)
    try:
        job = await bot.storage.reject(job_id, moderator_id=interaction.user.id, reason=reason)
    except (InvalidTransition, JobNotFound):
        await answer_already_decided(interaction, job_id)
        return None
    await redraw_pressed_card(interaction, job)
    await cards.refresh_status_card(bot, job)
    await tell_requester_rejected(bot, job)
    if audited:
        await audit(bot, job.guild_id, audit_lines.rejected(job))
    return job
