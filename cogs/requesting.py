"""A member's request, from an acknowledged interaction to the status card and the receipt.

Shared by ``/video text``, ``/video image``, the buttons under a posted video, Animate with Kling and
a quote's Confirm. The steps (each refusal is one
ephemeral sentence, and charges nothing):

1. the interaction is already acknowledged (an ephemeral defer), before any database, upload or
   provider call; a member an admin banned gets one sentence and nothing else;
2. the provider's rules for the chosen model (with stand-ins for the attachments, so nothing is
   uploaded for a request that cannot run), the attachments' declared sizes, then the rules of
   :mod:`generation.checks`: channel, blocklist, the bot's permissions here, active jobs and balance;
   then, when :func:`generation.quotes.needs_quote` says so, the flow stops here with a private quote
   (:mod:`cogs.quoting`): its Confirm comes back to step 2 with the agreed terms;
3. read and check the images (magic bytes) and upload them to the provider;
4. create the job with its reservation in one transaction (unique per interaction: the original one,
   for a confirmed quote, so a quote can never make two jobs);
5. answer the member with a receipt carrying a Cancel button, then (once no other request is waiting
   for its receipt: :mod:`cogs.front_desk`) post the public status card with
   ``channel.send`` (interaction tokens die after 15 minutes) and, with review on, the moderators'
   review card, and write the request to the audit log. A card Discord refuses cancels the job and
   returns the credits, and the receipt is replaced by the sentence that says so; a Cancel pressed
   before the card is out is shown on the card as soon as it is.

An upload answered 401/402 pauses the whole line like a generate would (:mod:`cogs.provider_line`);
a request queued while the line is paused says so on its card and receipt.
The receipt must follow the acknowledgement quickly even in a burst (``benchmarks/ack.py``), so
before it the flow does two units of work and one REST call: one read of the server's settings, the
member's ban and the line's pause (:mod:`storage.request_context`; the audit line uses the same
settings), the reservation (which refuses a request it cannot pay for and returns the balance the
receipt shows; the balance is read earlier only when there are images to upload or a quote to offer),
and the receipt itself. The card, its queue position and ETA, and the card's id come after it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import discord

from cogs import audit as audit_lines
from cogs import cards, provider_line, quoting, reviewing, views
from cogs.audit import audit
from cogs.common import NO_MENTIONS, UserFacingError, answer_ephemeral, refusal_text
from generation import checks, quotes, requesting
from generation.quotes import PendingImage, QuotedRequest, Terms
from generation.refusals import PromptBlocked
from generation.shapes import (
    Origin,
    VideoOptions,
    images_of_job,
    job_request,
    options_of_job,
    reservation_for,
)
from storage import InvalidTransition, Job, JobNotFound, JobState, Quote
from ulazai.errors import AuthenticationError, InsufficientCreditsError
from ulazai.images import check_declared_size, check_image
from ulazai.pricing import DIRECTORY_DISCOUNT
from ulazai.requests import KlingModel, VideoSpec

if TYPE_CHECKING:
    from bot import KlingBot

log = logging.getLogger(__name__)

Interaction = discord.Interaction[Any]


class ImageSource(Protocol):
    """An image read only after every check passed: a member's attachment (a ``discord.Attachment``),
    one whose link a quote kept (:class:`cogs.quoting.StoredImage`), or a picture the bot makes, such
    as the last frame of a video to continue (:class:`cogs.iterating.LastFrame`)."""

    @property
    def url(self) -> str:
        """Where it is read from (a quote keeps it, so Confirm reads the image then)."""

    @property
    def filename(self) -> str: ...

    @property
    def size(self) -> int:
        """The size Discord declared, checked before reading (0: not known before it is read)."""

    async def read(self) -> bytes:
        """The image's bytes (checked by magic bytes and size before the upload)."""


async def request_video(
    interaction: Interaction,
    options: VideoOptions,
    *,
    attachments: Mapping[str, ImageSource] | None = None,
    uploaded: Mapping[str, str] | None = None,
    origin: Origin | None = None,
    notes: Sequence[str] = (),
    reply_to: discord.MessageReference | None = None,
    agreed: Quote | None = None,
) -> None:
    """Steps 2–5 of the module docstring; every refusal is raised for the caller's error handler.

    ``attachments`` are images to read and upload, by slot; ``uploaded`` maps slots to images already
    at the provider (Regenerate and Remix reuse them). ``origin``: the job this one is made from;
    ``notes``: sentences for the receipt; ``reply_to``: the message the status card answers;
    ``agreed``: the quote the member just confirmed.
    """
    bot: KlingBot = interaction.client
    attachments, uploaded = dict(attachments or {}), dict(uploaded or {})
    guild_id, channel, member = interaction.guild_id, interaction.channel, interaction.user
    assert guild_id is not None
    assert isinstance(member, discord.Member)
    with bot.front_desk.until_receipt():  # cards wait for it (cogs.front_desk)
        context = await bot.storage.request_context(guild_id, member.id)  # settings, ban, pause: one read
        checks.check_not_banned(context.ban)
        if not isinstance(channel, discord.abc.Messageable) or interaction.channel_id is None:
            raise UserFacingError("I can only make videos in a server's text channels.")
        settings, paused = context.settings, context.paused

        spec = requesting.draft(options, settings, slots=attachments, uploaded=uploaded)
        for name, attachment in attachments.items():
            check_declared_size(attachment.size, field=name)
        in_thread = isinstance(channel, discord.Thread)
        checks.check_channel(where_asked(interaction), settings.allowed_channel_ids)
        try:
            checks.check_prompt(options.prompt, settings.blocklist_terms)
        except PromptBlocked as refusal:
            await audit(bot, guild_id, audit_lines.blocked(member.id, interaction.channel_id, refusal.term))
            raise
        granted = interaction.app_permissions
        checks.check_bot_permissions(lambda flag: bool(getattr(granted, flag)), in_thread=in_thread)

        role_ids = [role.id for role in member.roles]
        estimate = reservation_for(spec)
        review = settings.review_channel_id is not None
        quote = quotes.needs_quote(estimate, settings, agreed=None if agreed is None else Terms.of(agreed))
        if attachments or quote:  # an early answer, to spare uploads (or a quote) that could not be paid for
            balance = await bot.storage.balance(guild_id, member.id, role_ids)
            checks.check_room(balance, max_active_jobs=settings.max_active_jobs, cost=estimate)
        if quote:
            quoted = QuotedRequest(
                options,
                {slot: pending_image(source) for slot, source in attachments.items()},
                uploaded,
                directory_optin=spec.directory_optin,
                origin=origin,
                notes=tuple(notes),
                reply_to=None if reply_to is None else (reply_to.channel_id, reply_to.message_id or 0),
            )
            await quoting.offer(
                interaction,
                quoted,
                job_request(spec),
                estimate=estimate,
                available=balance.available,
                review=review,
            )
            return

        try:
            spec = await upload_images(bot, spec, attachments, uploaded)
        except (AuthenticationError, InsufficientCreditsError) as error:
            await provider_line.pause_after_upload(bot, guild_id, error)
            raise  # the member reads why (cogs.common.user_message_for); nothing was held
        job, available = await requesting.create_job(
            bot.storage,
            spec,
            interaction_id=interaction.id if agreed is None else agreed.interaction_id,
            guild_id=guild_id,
            user_id=member.id,
            channel_id=interaction.channel_id,
            estimate=estimate,
            role_ids=role_ids,
            review=review,
            settings=settings,
            origin=origin,
        )
        job_id = job.id
        assert job_id is not None
        await interaction.followup.send(
            embed=receipt(job, available, review=review, notes=notes, paused=paused),
            view=views.cancel_view(job_id),
            ephemeral=True,
            allowed_mentions=NO_MENTIONS,
        )
        bot.metrics.receipt(discord.utils.utcnow().timestamp() - interaction.created_at.timestamp())
    await bot.front_desk.after_receipts()
    try:
        job = await post_status_card(bot, channel, job, reply_to=reply_to, paused=paused)
        if settings.review_channel_id is not None and job.state is JobState.PENDING_REVIEW:
            job = await send_for_review(bot, job, settings.review_channel_id)
    except UserFacingError as refusal:  # the job is cancelled and refunded: the receipt says so instead
        await interaction.edit_original_response(
            content=refusal_text(refusal), embed=None, view=None, allowed_mentions=NO_MENTIONS
        )
        return
    if settings.audit_channel_id is not None:  # the settings read above: nothing more to read for it
        await audit(bot, guild_id, audit_lines.requested(job), channel_id=settings.audit_channel_id)
    if paused:
        await provider_line.tell_newcomer(bot, guild_id)


def pending_image(source: ImageSource) -> PendingImage:
    """What a quote keeps of an image not read yet: its link (or, for a continuation's start frame,
    the videos to take the last frame of) and declared size."""
    return PendingImage(
        source.url, source.size, source.filename, frame_of=tuple(getattr(source, "frame_of", ()))
    )


def where_asked(interaction: Interaction) -> list[int]:
    """Where a request is made, for the channel allowlist: the channel, and a thread's parent too."""
    assert interaction.channel_id is not None
    where = [interaction.channel_id]
    channel = interaction.channel
    if isinstance(channel, discord.Thread) and channel.parent_id:
        where.append(channel.parent_id)
    return where


async def regenerate(interaction: Interaction, job_id: int) -> None:
    """The same video again, charged to whoever pressed, through every check of a new request."""
    bot: KlingBot = interaction.client
    if interaction.guild_id is not None:
        checks.check_not_banned(await bot.storage.get_ban(interaction.guild_id, interaction.user.id))
    job = await bot.storage.get_job(job_id)
    if job is None or interaction.guild_id != job.guild_id or job.erased_at is not None:
        raise UserFacingError("I no longer have the details of that video, so it can't be regenerated.")
    await request_video(interaction, options_of_job(job), uploaded=images_of_job(job))


async def upload_images(
    bot: KlingBot, spec: VideoSpec, attachments: Mapping[str, ImageSource], uploaded: Mapping[str, str]
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


async def post_status_card(
    bot: KlingBot,
    channel: discord.abc.Messageable,
    job: Job,
    *,
    reply_to: discord.MessageReference | None = None,
    paused: bool = False,
) -> Job:
    """Post the public card (``reply_to``: as a reply to that message, pinging nobody; ``paused``: the
    provider account needs attention); if Discord refuses, give the credits back and say so."""
    assert job.id is not None
    position = await bot.storage.queue_position(job.id) if job.state is JobState.QUEUED else None
    eta = await bot.eta.for_card(job, bot.storage.now(), queue_position=position)
    try:
        message = await channel.send(
            embed=cards.status_card(job, queue_position=position, eta=eta, paused=paused),
            allowed_mentions=NO_MENTIONS,
            reference=reply_to,  # type: ignore[arg-type]  # discord.py's stub wants no None here
        )
    except discord.HTTPException as error:
        log.warning("Could not post the status card of job %s: %s", job.id, error)
        await bot.storage.cancel(job.id, actor_id=None, reason="the status card could not be posted")
        raise UserFacingError(
            "I couldn't post in this channel, so nothing was made and your credits are back. "
            "Ask an admin to check my permissions here."
        ) from None
    bot.eta.shown(eta)
    current = await bot.storage.set_job_messages(job.id, status_message_id=message.id)
    if current.state is not job.state:  # changed while the card was on its way (a Cancel on the receipt)
        await cards.refresh_status_card(bot, current)
    return current


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


def receipt(
    job: Job, available: int, *, review: bool, notes: Sequence[str] = (), paused: bool = False
) -> discord.Embed:
    """The member's private receipt: what they asked for, what it costs, what is left (``notes``: what
    else the member should know about this request, first; ``paused``: the line waits for an admin)."""
    title = "Sent for review" if review else "Your video is queued"
    embed = discord.Embed(title=title, colour=cards.BRAND_COLOUR)
    embed.add_field(name="Model", value=cards.model_label(job.model), inline=True)
    embed.add_field(name="Duration", value=f"{job.duration} s", inline=True)
    if job.model == KlingModel.V3_0:
        embed.add_field(name="Quality", value=cards.quality_label(job.quality), inline=True)
    embed.add_field(name="Sound", value="On" if job.sound else "Off", inline=True)
    embed.add_field(name="Estimated cost", value=f"{job.estimate_credits} credits", inline=True)
    embed.add_field(name="Credits left", value=str(available), inline=True)
    notes = list(notes)
    if review:
        notes.append("A moderator reviews every request here first; your credits are held until then.")
    if job.directory_optin:
        notes.append(
            "This server uses UlazAI's Prompt Directory discount: your prompt and video will be published "
            f"in its public directory, and the video costs {DIRECTORY_DISCOUNT} credits less than reserved."
        )
    if paused:
        notes.append(cards.PAUSED_NOTE)
    notes.append("You can cancel until generation starts.")
    embed.description = "\n".join(notes)
    embed.set_footer(text=f"Job #{job.id}")
    return embed
