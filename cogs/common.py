"""Discord-side helpers every cog shares: the interaction alias, safe mentions, user-facing errors."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeAlias

import discord
from discord import app_commands

from generation import checks
from generation.refusals import (
    AlreadyReceived,
    BadDuration,
    BotLacksPermissions,
    BudgetSpent,
    ChannelNotAllowed,
    EmptyPrompt,
    ImageUnreadable,
    MemberBanned,
    NoImage,
    NoLastFrame,
    NotEnoughCredits,
    PromptBlocked,
    PromptTooLong,
    Refusal,
    TooManyJobs,
)
from ulazai.errors import (
    AuthenticationError,
    InsufficientCreditsError,
    InvalidRequestError,
    ProviderError,
    RateLimitedError,
)

if TYPE_CHECKING:
    from bot import KlingBot

log = logging.getLogger(__name__)

Interaction: TypeAlias = "discord.Interaction[KlingBot]"

#: The bot-wide default: nobody is pinged unless a message names them explicitly.
NO_MENTIONS = discord.AllowedMentions(everyone=False, users=False, roles=False, replied_user=False)


def mention_only(user: discord.abc.Snowflake) -> discord.AllowedMentions:
    """Allow a ping to this one user and nobody else, whatever the text around it says."""
    return discord.AllowedMentions(everyone=False, roles=False, users=[user], replied_user=False)


class UserFacingError(Refusal):
    """A refusal the cogs word themselves; the tree answers it ephemerally."""


def when(moment: datetime, style: str = "R") -> str:
    """A time every member reads in their own time zone ("in 3 hours")."""
    return f"<t:{int(moment.timestamp())}:{style}>"


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'s' if count != 1 else ''}"


def refusal_text(refusal: Refusal) -> str:
    """The one sentence a member reads for a refused request: what to change, and that nothing was charged."""
    if isinstance(refusal, ChannelNotAllowed):
        where = ", ".join(f"<#{channel_id}>" for channel_id in refusal.allowed[:5])
        return f"Videos can't be made in this channel; try {where}."
    if isinstance(refusal, BotLacksPermissions):
        return (
            f"I can't post videos in this channel: I need the {', '.join(refusal.missing)} permission"
            f"{'s' if len(refusal.missing) > 1 else ''} here. Ask an admin, or use another channel."
        )
    if isinstance(refusal, PromptBlocked):  # never the term: the list must not be learnt by probing
        return "Your prompt contains something this server does not allow; rephrase it and try again."
    if isinstance(refusal, TooManyJobs):
        return (
            f"You already have {plural(refusal.active, 'video')} in progress and this server allows "
            f"{refusal.limit} at a time; wait for one to finish (see `/video jobs`)."
        )
    if isinstance(refusal, NotEnoughCredits):
        return (
            f"This video costs {refusal.needed} credits and you have {refusal.available}. Try a shorter or "
            f"Standard-quality video, or wait for your allowance to refill {when(refusal.next_refill)}."
        )
    if isinstance(refusal, BudgetSpent):
        return (
            f"This server has used its video budget for now ({refusal.spent} of {refusal.budget} credits); "
            f"it renews {when(refusal.resets_at)}."
        )
    if isinstance(refusal, AlreadyReceived):
        return "This request was already received; see `/video jobs`."
    if isinstance(refusal, MemberBanned):
        reason = f" (reason: {discord.utils.escape_markdown(refusal.reason)})" if refusal.reason else ""
        return f"An admin has stopped you from making videos in this server{reason}."
    return iteration_refusal_text(refusal) or refusal.message


def iteration_refusal_text(refusal: Refusal) -> str | None:
    """The sentences of Continue, Remix and Animate with Kling (issue 12), or ``None``."""
    if isinstance(refusal, EmptyPrompt):
        return "The prompt is empty; describe what the video should show. Nothing was charged."
    if isinstance(refusal, PromptTooLong):
        return (
            f"Your prompt is {refusal.length:,} characters and the limit is {refusal.limit:,}; "
            "shorten it and try again. Nothing was charged."
        )
    if isinstance(refusal, BadDuration):
        typed = discord.utils.escape_markdown(refusal.given.replace("`", ""))
        return (
            f"The duration must be a whole number of seconds from {refusal.low} to {refusal.high} "
            f"(you typed “{typed}”), or left empty; nothing was charged."
        )
    if isinstance(refusal, NoLastFrame):
        return (
            "I couldn't read that video any more (its message and the provider's link are gone), "
            "so nothing was made or charged."
        )
    if isinstance(refusal, ImageUnreadable):
        return "I can no longer read that image; use Animate with Kling on the message again. Nothing was charged."
    if isinstance(refusal, NoImage):
        if refusal.gone:
            return "That image is no longer there (the message was deleted or changed), so nothing was made or charged."
        return "That message has no JPEG, PNG or WebP image to animate; use it on a message with one."
    return None


#: The command to use instead, when the provider's rules say the request needs the other kind.
INSTEAD: dict[str, str] = {
    "image_to_video": " Use `/video image` to start from an image or frames.",
    "text_to_video": " Or use `/video text` to start from the prompt alone.",
    "either": " Use `/video text` or `/video image`.",
}


def user_message_for(error: BaseException) -> str | None:
    """The member-facing text for a domain error, or ``None`` when it is unexpected (a bug)."""
    if isinstance(error, Refusal):
        return refusal_text(error)
    if isinstance(error, InvalidRequestError):
        return error.message + INSTEAD.get(error.instead or "", "")
    if isinstance(error, InsufficientCreditsError):
        return "This server's UlazAI video credits are used up, so nothing was made or charged. Ask an admin to top up."
    if isinstance(error, AuthenticationError):
        return "The bot is misconfigured: UlazAI refused its API key. Nothing was charged; the admins can see why in the log."
    if isinstance(error, RateLimitedError):
        return "UlazAI is busy right now. Nothing was charged; please try again in a minute."
    if isinstance(error, ProviderError):
        return "UlazAI could not be reached just now. Nothing was charged; please try again in a minute."
    if isinstance(error, app_commands.MissingPermissions):
        missing = ", ".join(p.replace("_", " ").title() for p in error.missing_permissions)
        return f"You need the {missing} permission for this command."
    if isinstance(error, app_commands.BotMissingPermissions):
        missing = ", ".join(p.replace("_", " ").title() for p in error.missing_permissions)
        return f"I need the {missing} permission in this channel; ask an admin to grant it."
    if isinstance(error, app_commands.NoPrivateMessage):
        return "This command works in a server, not in direct messages."
    if isinstance(error, app_commands.CommandOnCooldown):
        return f"Slow down a little: try again in {error.retry_after:.0f} s."
    if isinstance(error, app_commands.CheckFailure):
        return "You cannot use this command here."
    return None


def check_bot_can_post(channel: discord.abc.GuildChannel) -> None:
    """Refuse a review or audit channel the bot could not post in, now rather than at the first request."""
    granted = channel.permissions_for(channel.guild.me)  # GUILD_CREATE always carries the bot's member
    missing = checks.missing_posting_permissions(lambda flag: bool(getattr(granted, flag)))
    if missing:
        raise UserFacingError(
            f"I can't post in {channel.mention}: I need the {', '.join(missing)} permission"
            f"{'s' if len(missing) > 1 else ''} there. Grant {'them' if len(missing) > 1 else 'it'}, "
            "or pick another channel."
        )


async def answer_ephemeral(interaction: discord.Interaction[Any], text: str) -> None:
    """Answer through ``response`` or ``followup``, whichever is still open, never pinging anyone."""
    try:
        if interaction.response.is_done():
            await interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_MENTIONS)
        else:
            await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_MENTIONS)
    except discord.HTTPException:
        log.warning("Could not deliver an error message to interaction %s", interaction.id, exc_info=True)


#: Discord's error for a second callback to one interaction.
ALREADY_ACKNOWLEDGED = 40060


def answered_elsewhere(error: BaseException) -> bool:
    """Whether Discord refused the acknowledgement because the interaction was already acknowledged:
    another process received it too (two processes running the same shard) and answered first."""
    return isinstance(error, discord.HTTPException) and error.code == ALREADY_ACKNOWLEDGED


async def answer_error(interaction: discord.Interaction[Any], error: BaseException, *, where: str) -> None:
    """What the tree's ``on_error`` does, for buttons and modals (their errors never reach the tree).

    An interaction someone else already acknowledged is theirs: one quiet line, and no second attempt
    at answering it (which would only fail the same way).
    """
    if answered_elsewhere(error):
        log.info("Interaction %s (%s) was already acknowledged elsewhere; leaving it", interaction.id, where)
        return
    text = user_message_for(error)
    if text is None:
        log.error("Unexpected error in %s", where, exc_info=error)
        text = (
            "Something went wrong on my side and it has been logged. Nothing was charged; please try again."
        )
    elif isinstance(error, ProviderError):
        log.warning("Provider error answered to a member: %r", error)
    await answer_ephemeral(interaction, text)
