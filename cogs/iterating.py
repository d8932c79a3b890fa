"""Continue, Remix and Animate with Kling: new videos from one already there, or from a posted image.

Each is a modal (opened by a button under a posted video, or by the message menu) whose submission
becomes an ordinary request through :func:`cogs.requesting.request_video`, so every guarantee of
``/video`` holds: every check before anything is uploaded or held, a price on the receipt, the review
queue when it is on, the same worker and the same exactly-once posting. What the member typed is
checked first (:mod:`generation.iterating`); the request shapes are :mod:`generation.shapes`'.

* **Continue** takes the last frame of the posted video (from the message's attachment, else the
  provider's link while it lives), only once the checks passed, and makes it the start frame of a
  Kling 3.0 image-to-video job (the only model with frames, so a Kling 2.6 video continues on 3.0:
  the receipt says so).
* **Remix** is the same video's model, settings and images with the edited prompt.
* **Animate with Kling** reads the image from the message again when the modal is submitted (a link
  Discord gave minutes ago may have expired, and an image its author deleted is not animated), and the
  status card replies to that message. Without the Message Content intent Discord leaves other
  members' attachments out of a fetched message; the image the menu was used on is then taken from
  what the menu's own interaction carried (kept in memory by the cog, so not across a restart).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

import discord

from cogs import requesting
from cogs.common import UserFacingError, answer_ephemeral
from generation import checks
from generation.iterating import last_frame_of, parse_duration, parse_prompt
from generation.refusals import ImageUnreadable, NoImage
from generation.shapes import (
    ANIMATE_SLOT,
    CONTINUE_SLOT,
    Origin,
    animation_of,
    changes_model,
    continuation_of,
    remix_of,
)
from storage import Job, JobOrigin
from ulazai.download import host_is_private

if TYPE_CHECKING:
    from bot import KlingBot

log = logging.getLogger(__name__)

Interaction = discord.Interaction[Any]

#: What Animate with Kling takes, by the attachment's declared type (its bytes are checked later).
IMAGE_TYPES: Final = frozenset({"image/jpeg", "image/png", "image/webp"})
IMAGE_SUFFIXES: Final = (".jpg", ".jpeg", ".png", ".webp")
CONTINUES_ON_3_0: Final = (
    "Kling 2.6 videos continue on Kling 3.0, the only model that can start from a frame; "
    "the price is Kling 3.0's."
)


async def job_to_follow(interaction: Interaction, job_id: int) -> Job | None:
    """The job a Continue or Remix button is about, or ``None`` after answering why not."""
    bot: KlingBot = interaction.client
    job = await bot.storage.get_job(job_id)
    if interaction.guild_id is None:
        await answer_ephemeral(interaction, "Continue and Remix work in the server the video was made in.")
        return None
    if job is None or job.guild_id != interaction.guild_id:
        await answer_ephemeral(interaction, "I no longer have the details of that video.")
        return None
    return job


async def original_of(interaction: Interaction, job_id: int) -> Job:
    bot: KlingBot = interaction.client
    job = await bot.storage.get_job(job_id)
    if interaction.guild_id is None or job is None or job.guild_id != interaction.guild_id:
        raise UserFacingError("I no longer have the details of that video, so nothing was made or charged.")
    return job


# -- Continue ------------------------------------------------------------------------------------------


class LastFrame:
    """The start frame of a continuation, made only when the request has passed every check (and,
    when it is quoted, only once the member confirms: the quote keeps ``frame_of``)."""

    size = 0  # not known before it is made; its bytes are checked like any image
    filename = "last frame"

    def __init__(self, bot: KlingBot, urls: Sequence[str]) -> None:
        self.bot = bot
        self.urls = list(urls)
        self.frame_of = tuple(self.urls)
        self.url = self.urls[0] if self.urls else ""

    async def read(self) -> bytes:
        settings = self.bot.settings
        return await last_frame_of(
            self.bot.http_session,
            self.urls,
            max_bytes=settings.max_video_bytes,
            allow_private=await host_is_private(settings.ulazai_base_url),
        )


def video_urls(message: discord.Message | None, job: Job) -> list[str]:
    """Where the video to continue is: the posted message's file first, then the provider's link."""
    urls = []
    if message is not None and message.id == job.posted_message_id:
        urls += [
            a.url
            for a in message.attachments
            if (a.content_type or "").startswith("video/") or a.filename.lower().endswith(".mp4")
        ]
    if job.video_url:
        urls.append(job.video_url)
    return urls


async def continue_video(interaction: Interaction, job_id: int, values: Mapping[str, str]) -> None:
    prompt = parse_prompt(values.get("prompt"))
    duration = parse_duration(values.get("duration"))
    job = await original_of(interaction, job_id)
    await requesting.request_video(
        interaction,
        continuation_of(job, prompt, duration),
        attachments={CONTINUE_SLOT: LastFrame(interaction.client, video_urls(interaction.message, job))},
        origin=Origin(JobOrigin.CONTINUE, job_id),
        notes=[CONTINUES_ON_3_0] if changes_model(job) else [],
    )


# -- Remix ---------------------------------------------------------------------------------------------


async def remix(interaction: Interaction, job_id: int, values: Mapping[str, str]) -> None:
    prompt = parse_prompt(values.get("prompt"))
    job = await original_of(interaction, job_id)
    options, images = remix_of(job, prompt)
    await requesting.request_video(
        interaction, options, uploaded=images, origin=Origin(JobOrigin.REMIX, job_id)
    )


# -- Animate with Kling --------------------------------------------------------------------------------


def is_image(attachment: discord.Attachment) -> bool:
    declared = (attachment.content_type or "").split(";")[0].strip().lower()
    return declared in IMAGE_TYPES or attachment.filename.lower().endswith(IMAGE_SUFFIXES)


def first_image(message: discord.Message) -> int:
    """The index of the message's first JPEG, PNG or WebP attachment, or :class:`NoImage`."""
    for index, attachment in enumerate(message.attachments):
        if is_image(attachment):
            return index
    raise NoImage


async def check_animate_here(interaction: Interaction) -> None:
    """The checks that can answer before the modal opens: a server, an allowed channel."""
    bot: KlingBot = interaction.client
    if interaction.guild_id is None or interaction.channel_id is None:
        raise UserFacingError("Animate with Kling works in a server's channels, not in direct messages.")
    settings = await bot.storage.get_guild_settings(interaction.guild_id)
    checks.check_channel(requesting.where_asked(interaction), settings.allowed_channel_ids)


async def source_image(
    interaction: Interaction, message_id: int, index: int, remembered: discord.Attachment | None
) -> discord.Attachment:
    """The image to animate, from the message as it is now (see the module docstring)."""
    channel = interaction.channel
    if not isinstance(channel, discord.abc.Messageable):
        raise NoImage(gone=True)
    try:
        message = await channel.fetch_message(message_id)
    except discord.NotFound:
        raise NoImage(gone=True) from None
    except discord.HTTPException as error:  # e.g. no Read Message History here
        log.info("Could not fetch message %s to animate: %s", message_id, error)
        message = None
    if message is not None and index < len(message.attachments) and is_image(message.attachments[index]):
        return message.attachments[index]
    stripped = message is None or not (message.content or message.attachments or message.embeds)
    if not stripped:
        raise NoImage(gone=True)  # the message is there, without that image
    if remembered is None:
        raise ImageUnreadable
    return remembered


async def animate(
    interaction: Interaction,
    ids: Mapping[str, int],
    values: Mapping[str, str],
    remembered: discord.Attachment | None,
) -> None:
    prompt = parse_prompt(values.get("prompt"))
    duration = parse_duration(values.get("duration"))
    if interaction.channel_id != ids["channel_id"] or interaction.guild_id is None:
        raise NoImage(gone=True)  # a modal is submitted where it was opened: this one is not ours
    image = await source_image(interaction, ids["message_id"], ids["index"], remembered)
    reply = discord.MessageReference(
        message_id=ids["message_id"],
        channel_id=ids["channel_id"],
        guild_id=interaction.guild_id,
        fail_if_not_exists=False,
    )
    await requesting.request_video(
        interaction,
        animation_of(prompt, duration),
        attachments={ANIMATE_SLOT: image},
        origin=Origin(JobOrigin.ANIMATE),
        reply_to=reply,
    )
