"""The price before anything is spent: the member's private quote, and what Confirm and Cancel do.

When :func:`generation.quotes.needs_quote` says so, the request flow (:mod:`cogs.requesting`) stops
after its checks and :func:`offer` stores the quote and answers with it: settings, cost, the balance
after, and the publication sentence while the Prompt Directory discount is on. Nothing has been read,
uploaded, held, queued or sent for review. The buttons (:mod:`cogs.views`) are ``DynamicItem``s whose
custom_id carries the quote's id, and the quote is in the database, so a quote survives a restart.

* **Confirm** takes the decision (a compare-and-set: pressed twice, it decides once), then runs the whole
  request again from the stored options, with the agreed terms, as the original interaction (the job's
  idempotency key), so it proceeds exactly like a request below the threshold - or is refused by a
  check whose answer changed meanwhile.
* **Cancel** ends it; nothing was spent.
* **Five minutes without an answer**: the view's timeout edits the quote to say it expired (the
  interaction's token can, for 15 minutes). After a restart that timer is gone: a press then finds the
  time up and says so on the quote, and the worker's housekeeping expires it in the database.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import aiohttp
import discord

from cogs import cards, iterating, requesting, views
from cogs.common import NO_MENTIONS, UserFacingError, answer_ephemeral, when
from generation import quotes
from generation.quotes import PendingImage, Press, QuotedRequest
from generation.refusals import AlreadyReceived
from storage import DuplicateInteraction, JobRequest, Quote, QuoteState
from ulazai.images import MAX_IMAGE_BYTES
from ulazai.pricing import DIRECTORY_DISCOUNT

if TYPE_CHECKING:
    from bot import KlingBot

log = logging.getLogger(__name__)

#: The sentence every quote carries while the server's Prompt Directory discount is on.
PUBLICATION = (
    "This server uses UlazAI's Prompt Directory discount: your prompt and video will be published in "
    "UlazAI's public directory."
)
CONFIRMED = "✅ Confirmed."
CANCELLED = "Cancelled: nothing was held or sent."
EXPIRED = "This quote expired: nothing was held or sent. Ask again for a new one."
DECIDED: dict[QuoteState, str] = {
    QuoteState.CONFIRMED: "You already confirmed this quote; see `/video jobs`.",
    QuoteState.CANCELLED: "You cancelled this quote; ask again for a new one.",
    QuoteState.EXPIRED: EXPIRED,
}
REFUSED: dict[Press, str] = {
    Press.GONE: "I no longer have this quote; ask for the video again if you still want it.",
    Press.NOT_YOURS: "Only the member who asked for this video can confirm or cancel it.",
}
ENDED_LABELS: dict[QuoteState, str] = {
    QuoteState.CONFIRMED: "Confirmed",
    QuoteState.CANCELLED: "Cancelled",
    QuoteState.EXPIRED: "Quote expired",
}


def quote_card(
    summary: JobRequest, quote: Quote, *, available: int, review: bool, directory: bool
) -> discord.Embed:
    """What the member decides on: the settings, the price held on Confirm, the balance after."""
    embed = discord.Embed(title="Confirm your video", colour=cards.BRAND_COLOUR)
    embed.add_field(name="Settings", value=cards.parameters(summary), inline=False)
    embed.add_field(name="Cost", value=f"{quote.estimate_credits} credits", inline=True)
    embed.add_field(name="Credits after", value=str(available - quote.estimate_credits), inline=True)
    notes = ["Nothing is held, queued or sent until you press **Confirm**."]
    if review:
        notes.append("A moderator then reviews the request; your credits are held until they decide.")
    if directory:
        notes.append(f"{PUBLICATION} The video then costs {DIRECTORY_DISCOUNT} credits less than shown.")
    notes.append(f"This quote expires {when(quote.expires_at)}.")
    embed.description = "\n".join(notes)
    embed.set_footer(text=f"Quote #{quote.id}")
    return embed


async def offer(
    interaction: discord.Interaction[Any],
    request: QuotedRequest,
    summary: JobRequest,
    *,
    estimate: int,
    available: int,
    review: bool,
) -> None:
    """Store the quote and answer the member with it (the interaction is already acknowledged)."""
    bot: KlingBot = interaction.client
    assert interaction.guild_id is not None
    assert interaction.channel_id is not None
    try:
        quote = await bot.storage.create_quote(
            interaction_id=interaction.id,
            guild_id=interaction.guild_id,
            user_id=interaction.user.id,
            channel_id=interaction.channel_id,
            request=request.payload(),
            estimate=estimate,
            lifetime=quotes.QUOTE_LIFETIME,
        )
    except DuplicateInteraction:
        raise AlreadyReceived from None
    assert quote.id is not None
    view = views.QuoteView(bot, quote.id, lifetime=quotes.QUOTE_LIFETIME.total_seconds())
    embed = quote_card(summary, quote, available=available, review=review, directory=request.directory_optin)
    view.message = await interaction.followup.send(
        embed=embed, view=view, ephemeral=True, allowed_mentions=NO_MENTIONS, wait=True
    )


async def allow_asker(interaction: discord.Interaction[Any], quote_id: int) -> bool:
    """``interaction_check`` of the quote's buttons: only the member who asked, in this server."""
    bot: KlingBot = interaction.client
    quote = await bot.storage.get_quote(quote_id)
    press = quotes.on_press(
        quote, guild_id=interaction.guild_id, user_id=interaction.user.id, now=bot.storage.now()
    )
    if press not in REFUSED:
        return True
    await interaction.response.send_message(REFUSED[press], ephemeral=True, allowed_mentions=NO_MENTIONS)
    return False


async def decide(interaction: discord.Interaction[Any], quote_id: int, state: QuoteState) -> Quote | None:
    """Take the member's decision (the press is acknowledged); the quote as it was when this press
    decided it, or ``None`` when it was not open any more (the member is shown why, on the quote)."""
    bot: KlingBot = interaction.client
    quote = await bot.storage.get_quote(quote_id)
    press = quotes.on_press(
        quote, guild_id=interaction.guild_id, user_id=interaction.user.id, now=bot.storage.now()
    )
    if press is Press.EXPIRED:
        await bot.storage.decide_quote(quote_id, QuoteState.EXPIRED)
        await show_ended(interaction, quote_id, QuoteState.EXPIRED)
        return None
    if press is Press.OPEN and (decided := await bot.storage.decide_quote(quote_id, state)) is not None:
        await show_ended(interaction, quote_id, state)
        return decided
    current = await bot.storage.get_quote(quote_id)  # decided meanwhile, or just now by another press
    if current is None or current.state is QuoteState.OPEN:
        await answer_ephemeral(interaction, REFUSED[Press.GONE])
        return None
    await show_ended(interaction, quote_id, current.state)
    await answer_ephemeral(interaction, DECIDED[current.state])
    return None


async def show_ended(interaction: discord.Interaction[Any], quote_id: int, state: QuoteState) -> None:
    text = {QuoteState.CONFIRMED: CONFIRMED, QuoteState.CANCELLED: CANCELLED}.get(state, EXPIRED)
    try:
        await interaction.edit_original_response(
            content=text, view=views.ended_view(quote_id, ENDED_LABELS[state]), allowed_mentions=NO_MENTIONS
        )
    except discord.HTTPException as error:
        log.info("Quote %s not updated: %s", quote_id, error)


async def confirm(interaction: discord.Interaction[Any], quote_id: int) -> None:
    """Confirm (acknowledged): decide, then the whole request again from the stored options."""
    quote = await decide(interaction, quote_id, QuoteState.CONFIRMED)
    if quote is None:
        return
    bot: KlingBot = interaction.client
    request = QuotedRequest.from_payload(quote.request)
    attachments: dict[str, requesting.ImageSource] = {
        slot: iterating.LastFrame(bot, image.frame_of)
        if image.frame_of
        else StoredImage(bot.http_session, image)
        for slot, image in request.images.items()
    }
    reply_to = None
    if request.reply_to is not None and interaction.guild_id is not None:
        channel_id, message_id = request.reply_to
        reply_to = discord.MessageReference(
            message_id=message_id,
            channel_id=channel_id,
            guild_id=interaction.guild_id,
            fail_if_not_exists=False,
        )
    await requesting.request_video(
        interaction,
        request.options,
        attachments=attachments,
        uploaded=request.uploaded,
        origin=request.origin,
        notes=request.notes,
        reply_to=reply_to,
        agreed=quote,
    )


async def cancel(interaction: discord.Interaction[Any], quote_id: int) -> None:
    await decide(interaction, quote_id, QuoteState.CANCELLED)


async def expire(bot: KlingBot, quote_id: int, message: discord.WebhookMessage) -> None:
    """The quote's time is up unanswered (its view timed out): expire it and say so on it."""
    if await bot.storage.decide_quote(quote_id, QuoteState.EXPIRED) is None:
        return  # decided meanwhile
    try:
        await message.edit(
            content=EXPIRED,
            view=views.ended_view(quote_id, ENDED_LABELS[QuoteState.EXPIRED]),
            allowed_mentions=NO_MENTIONS,
        )
    except discord.HTTPException as error:
        log.info("Expired quote %s not updated: %s", quote_id, error)


class StoredImage:
    """An attachment a quote kept the Discord link of, read when the member confirms (the link lives
    for hours; a quote, minutes). It reads like :class:`discord.Attachment` to the request flow."""

    def __init__(self, session: aiohttp.ClientSession, image: PendingImage) -> None:
        self.session = session
        self.url, self.size, self.filename = image.url, image.size, image.filename

    async def read(self) -> bytes:
        """The image's bytes, cut at one more than the provider accepts (the check then refuses it)."""
        data = bytearray()
        try:
            async with self.session.get(self.url, timeout=aiohttp.ClientTimeout(total=60)) as response:
                response.raise_for_status()
                async for chunk in response.content.iter_chunked(64 * 1024):
                    data += chunk
                    if len(data) > MAX_IMAGE_BYTES:
                        break
        except (aiohttp.ClientError, TimeoutError):
            raise UserFacingError(
                f"I couldn't download {self.filename} from Discord any more; please ask again and attach it."
            ) from None
        return bytes(data[: MAX_IMAGE_BYTES + 1])
