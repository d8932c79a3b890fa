"""A member's request, from an acknowledged interaction to the status card and the receipt.

Shared by ``/video text``, ``/video image`` and the Regenerate button. The steps (each refusal is one
ephemeral sentence, and charges nothing):

1. the interaction is already acknowledged (an ephemeral defer), before any database, upload or
   provider call;
2. the provider's rules for the chosen model (with stand-ins for the attachments, so nothing is
   uploaded for a request that cannot run), the attachments' declared sizes, then the rules of
   :mod:`generation.checks`: channel, blocklist, the bot's permissions here, active jobs and balance;
3. read and check the images (magic bytes) and upload them to the provider;
4. create the job with its reservation in one transaction (unique per interaction);
5. post the public status card with ``channel.send`` (interaction tokens die after 15 minutes), and
   with review on the moderators' review card, then answer the member with a receipt carrying a Cancel
   button and write the request to the audit log.

The receipt must follow the acknowledgement quickly even in a burst (``benchmarks/ack.py``), so the
flow reads the server's settings once (the audit line uses them too), reads the balance only when
there are images to upload (the reservation refuses a request it cannot pay for with the same
refusal, and returns the balance the receipt shows); the queue position, the card's id and the
settings are each one Core statement (:mod:`storage`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import discord

from cogs import audit as audit_lines
from cogs import cards, reviewing, views
from cogs.audit import audit
from cogs.common import NO_MENTIONS, UserFacingError, answer_ephemeral
from generation import checks, requesting
from generation.refusals import PromptBlocked
from generation.shapes import VideoOptions, images_of_job, options_of_job, reservation_for
from storage import InvalidTransition, Job, JobNotFound, JobState
from ulazai.images import check_declared_size, check_image
from ulazai.pricing import DIRECTORY_DISCOUNT
from ulazai.requests import KlingModel, VideoSpec

if TYPE_CHECKING:
    from bot import KlingBot

log = logging.getLogger(__name__)

Interaction = discord.Interaction[Any]


async def request_video(
    interaction: Interaction,
    options: VideoOptions,
    *,
    attachments: Mapping[str, discord.Attachment] | None = None,
    uploaded: Mapping[str, str] | None = None,
) -> None:
    """Steps 2–5 of the module docstring; every refusal is raised for the caller's error handler.

    ``attachments`` are images the member attached, by slot; ``uploaded`` maps slots to images already
    at the provider (Regenerate reuses them).
    """
    bot: KlingBot = interaction.client
    attachments, uploaded = dict(attachments or {}), dict(uploaded or {})
    guild_id, channel, member = interaction.guild_id, interaction.channel, interaction.user
    assert guild_id is not None
    assert isinstance(member, discord.Member)
    if not isinstance(channel, discord.abc.Messageable) or interaction.channel_id is None:
        raise UserFacingError("I can only make videos in a server's text channels.")
    settings = await bot.storage.get_guild_settings(guild_id)

    spec = requesting.draft(options, settings, slots=attachments, uploaded=uploaded)
    for name, attachment in attachments.items():
        check_declared_size(attachment.size, field=name)
    in_thread = isinstance(channel, discord.Thread)
    where = [interaction.channel_id]
    if isinstance(channel, discord.Thread) and channel.parent_id:
        where.append(channel.parent_id)
    checks.check_channel(where, settings.allowed_channel_ids)
    try:
        checks.check_prompt(options.prompt, settings.blocklist_terms)
    except PromptBlocked as refusal:
        await audit(bot, guild_id, audit_lines.blocked(member.id, interaction.channel_id, refusal.term))
        raise
    granted = interaction.app_permissions
    checks.check_bot_permissions(lambda flag: bool(getattr(granted, flag)), in_thread=in_thread)

    role_ids = [role.id for role in member.roles]
    estimate = reservation_for(spec)
    if attachments:  # an early answer, to spare uploads that could not be paid for
        balance = await bot.storage.balance(guild_id, member.id, role_ids)
        checks.check_room(balance, max_active_jobs=settings.max_active_jobs, cost=estimate)

    spec = await upload_images(bot, spec, attachments, uploaded)
    review = settings.review_channel_id is not None
    job, available = await requesting.create_job(
        bot.storage,
        spec,
        interaction_id=interaction.id,
        guild_id=guild_id,
        user_id=member.id,
        channel_id=interaction.channel_id,
        estimate=estimate,
        role_ids=role_ids,
        review=review,
        settings=settings,
    )
    job_id = job.id
    assert job_id is not None
    job = await post_status_card(bot, channel, job)
    if settings.review_channel_id is not None and job.state is JobState.PENDING_REVIEW:
        job = await send_for_review(bot, job, settings.review_channel_id)
    await interaction.followup.send(
        embed=receipt(job, available, review=review),
        view=views.cancel_view(job_id),
        ephemeral=True,
        allowed_mentions=NO_MENTIONS,
    )
    if settings.audit_channel_id is not None:
        await audit(bot, guild_id, audit_lines.requested(job), channel_id=settings.audit_channel_id)


async def regenerate(interaction: Interaction, job_id: int) -> None:
    """The same video again, charged to whoever pressed, through every check of a new request."""
    bot: KlingBot = interaction.client
    job = await bot.storage.get_job(job_id)
    if job is None or interaction.guild_id != job.guild_id:
        raise UserFacingError("I no longer have the details of that video, so it can't be regenerated.")
    await request_video(interaction, options_of_job(job), uploaded=images_of_job(job))


async def upload_images(
    bot: KlingBot, spec: VideoSpec, attachments: Mapping[str, discord.Attachment], uploaded: Mapping[str, str]
) -> VideoSpec:
    """Read each attachment now (Discord's CDN links expire), check it, upload it, use its URL."""
    urls: dict[str, str] = dict(uploaded)
    for name, attachment in attachments.items():
        try:
            data = await attachment.read()
        except discord.HTTPException:
            raise UserFacingError(
                f"I couldn't download your {name.replace('_', ' ')} from Discord; please attach it again."
            ) from None
        check_image(data, field=name)
        urls[name] = await bot.ulazai.upload(data)
    return requesting.finalise(spec, urls)


async def post_status_card(bot: KlingBot, channel: discord.abc.Messageable, job: Job) -> Job:
    """Post the public card; if Discord refuses, give the credits back and say so."""
    assert job.id is not None
    position = await bot.storage.queue_position(job.id) if job.state is JobState.QUEUED else None
    try:
        message = await channel.send(
            embed=cards.status_card(job, queue_position=position), allowed_mentions=NO_MENTIONS
        )
    except discord.HTTPException as error:
        log.warning("Could not post the status card of job %s: %s", job.id, error)
        await bot.storage.cancel(job.id, actor_id=None, reason="the status card could not be posted")
        raise UserFacingError(
            "I couldn't post in this channel, so nothing was made and your credits are back. "
            "Ask an admin to check my permissions here."
        ) from None
    return await bot.storage.set_job_messages(job.id, status_message_id=message.id)


async def send_for_review(bot: KlingBot, job: Job, review_channel_id: int) -> Job:
    """Post the review card; if the review channel refuses it, give the credits back and say so."""
    assert job.id is not None
    try:
        return await reviewing.post_review_card(bot, job, review_channel_id)
    except discord.HTTPException as error:
        log.warning("Could not post the review card of job %s: %s", job.id, error)
        job = await bot.storage.cancel(job.id, actor_id=None, reason="the review card could not be posted")
        await cards.refresh_status_card(bot, job)
        raise UserFacingError(
            f"I couldn't post your request for review in <#{review_channel_id}>, so nothing was made "
            "and your credits are back. Ask an admin to check my permissions there."
        ) from None


async def cancel(interaction: Interaction, job_id: int) -> None:
    """The member's Cancel on their receipt (already acknowledged as an update of it): only the
    requester may; release the hold, say so on the receipt, and redraw the cards."""
    bot: KlingBot = interaction.client
    current = await bot.storage.get_job(job_id)
    if current is None or current.user_id != interaction.user.id:
        raise UserFacingError("Only the member who asked for this video can cancel it.")
    try:
        job = await bot.storage.cancel(job_id, actor_id=interaction.user.id, reason="cancelled by the member")
    except (InvalidTransition, JobNotFound):
        current = await bot.storage.get_job(job_id)
        started = current is not None and current.state in (
            JobState.SUBMITTING,
            JobState.PROCESSING,
            JobState.COMPLETED,
            JobState.DELIVERED,
        )
        await answer_ephemeral(
            interaction,
            "This video is already being made, so it can't be cancelled any more."
            if started
            else "This request has already ended; there is nothing to cancel.",
        )
        return
    await interaction.edit_original_response(
        content=f"Cancelled. Your {job.estimate_credits} credits are back.",
        embed=None,
        view=views.cancel_view(job_id, disabled=True),
    )
    await cards.refresh_status_card(bot, job)
    await reviewing.refresh_review_card(bot, job)  # a card still waiting for a moderator says so


def receipt(job: Job, available: int, *, review: bool) -> discord.Embed:
    """The member's private receipt: what they asked for, what it costs, what is left."""
    title = "Sent for review" if review else "Your video is queued"
    embed = discord.Embed(title=title, colour=cards.BRAND_COLOUR)
    embed.add_field(name="Model", value=cards.model_label(job.model), inline=True)
    embed.add_field(name="Duration", value=f"{job.duration} s", inline=True)
    if job.model == KlingModel.V3_0:
        embed.add_field(name="Quality", value=cards.quality_label(job.quality), inline=True)
    embed.add_field(name="Sound", value="On" if job.sound else "Off", inline=True)
    embed.add_field(name="Estimated cost", value=f"{job.estimate_credits} credits", inline=True)
    embed.add_field(name="Credits left", value=str(available), inline=True)
    notes = []
    if review:
        notes.append("A moderator reviews every request here first; your credits are held until then.")
    if job.directory_optin:
        notes.append(
            "This server uses UlazAI's Prompt Directory discount: your prompt and video will be published "
            f"in its public directory, and the video costs {DIRECTORY_DISCOUNT} credits less than reserved."
        )
    notes.append("You can cancel until generation starts.")
    embed.description = "\n".join(notes)
    embed.set_footer(text=f"Job #{job.id}")
    return embed
