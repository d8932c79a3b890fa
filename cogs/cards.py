"""How a job looks on Discord: the public status card, the moderators' review card, job links.

Rendering (a job in, an embed out), shared by the commands, the review buttons and the delivery worker
that moves the card along; plus :func:`refresh_status_card`, the one re-render of the public card that
the commands and the review buttons share. The prompt goes in the embed description: prompts reach
2,500 characters, more than a message's 2,000, and text in an embed never pings anyone.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

import discord

from cogs.common import NO_MENTIONS
from generation.eta import Estimate
from storage import DeliveredVia, Job, JobOrigin, JobRequest, JobState
from ulazai.polling import progress_share
from ulazai.requests import KlingModel
from ulazai.results import EstimatedTime

if TYPE_CHECKING:
    from bot import KlingBot

log = logging.getLogger(__name__)

BRAND_COLOUR = discord.Colour(0x5865F2)

STATE_LABELS: dict[JobState, str] = {
    JobState.PENDING_REVIEW: "⏳ Waiting for a moderator's review",
    JobState.QUEUED: "🕒 Queued",
    JobState.SUBMITTING: "🚀 Starting",
    JobState.PROCESSING: "🎬 Generating",
    JobState.COMPLETED: "📤 Posting the video",
    JobState.DELIVERED: "✅ Delivered",
    JobState.FAILED: "❌ Failed, credits refunded",
    JobState.REJECTED: "🚫 Rejected by a moderator",
    JobState.CANCELLED: "↩️ Cancelled, credits returned",
    JobState.LOST: "⚠️ Lost in transit, credits refunded",
}

#: How a delivered video went, when it is not a plain attachment (the card and /video jobs say so).
DELIVERED_HOW: dict[DeliveredVia, str] = {
    DeliveredVia.FITTED: "(made smaller to play here; full quality linked)",
    DeliveredVia.LINK: "as a link",
    DeliveredVia.DIRECT_MESSAGE: "by direct message",
}

STATE_COLOURS: dict[JobState, discord.Colour] = {
    JobState.DELIVERED: discord.Colour.green(),
    JobState.FAILED: discord.Colour.red(),
    JobState.LOST: discord.Colour.red(),
    JobState.REJECTED: discord.Colour.dark_grey(),
    JobState.CANCELLED: discord.Colour.dark_grey(),
}


def model_label(model: str) -> str:
    try:
        return KlingModel(model).label
    except ValueError:
        return model


def quality_label(quality: str | None) -> str:
    return {"std": "Standard", "pro": "Pro"}.get(quality or "std", quality or "Standard")


def job_cost(job: Job) -> int:
    """What the job costs the member: what was settled once the provider answered, else the hold."""
    return job.member_charged if job.credits_used is not None else job.estimate_credits


def progress_bar(share: float, width: int = 12) -> str:
    filled = round(max(0.0, min(1.0, share)) * width)
    return "▰" * filled + "▱" * (width - filled) + f" {int(share * 100)}%"


def elapsed_text(seconds: float) -> str:
    """Coarse on purpose (10 s steps): a card whose text did not change is not edited."""
    seconds = int(seconds) // 10 * 10
    minutes, rest = divmod(seconds, 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


def eta_text(seconds: float) -> str:
    """When the video should be ready, coarser as it is further away (a card is edited only when its
    text changes)."""
    if seconds < 1:
        return "ready any moment now"
    if seconds < 60:
        return f"ready in about {round(seconds)} s"
    if seconds < 120:
        return f"ready in about {round(seconds / 5) * 5} s"
    return f"ready in about {round(seconds / 60)} min"


def processing_line(job: Job, now: datetime, eta: float | None = None) -> str:
    """The progress bar: the provider's progress on Kling 2.6, else the elapsed share of the estimated
    time (``eta``: seconds left, from :mod:`generation.eta`; else the provider's range), then when the
    video should be ready."""
    started = job.submitted_at or job.updated_at
    elapsed = max(0.0, (now - started).total_seconds())
    estimate = (
        EstimatedTime(job.eta_low_seconds, job.eta_high_seconds)
        if job.eta_low_seconds is not None and job.eta_high_seconds is not None
        else None
    )
    provider_progress = job.progress if job.model == KlingModel.V2_6 else None
    if provider_progress is None and eta is not None:
        share = min(0.95, elapsed / max(1.0, elapsed + eta))
    else:
        share = progress_share(elapsed=elapsed, estimate=estimate, progress=provider_progress)
    line = f"{STATE_LABELS[JobState.PROCESSING]} {progress_bar(share)} · {elapsed_text(elapsed)} elapsed"
    return line if eta is None else f"{line} · {eta_text(eta)}"


def state_line(
    job: Job, queue_position: int | None = None, now: datetime | None = None, eta: float | None = None
) -> str:
    if job.state is JobState.PROCESSING and now is not None:
        return processing_line(job, now, eta)
    label = STATE_LABELS.get(job.state, str(job.state))
    if job.state is JobState.QUEUED and queue_position is not None:
        label += f" (position {queue_position})"
    if job.state is JobState.QUEUED and eta is not None:
        label += f" · {eta_text(eta)}"
    if job.state in (JobState.FAILED, JobState.REJECTED, JobState.LOST) and job.error:
        label += f": {job.error[:200]}"
    if job.state is JobState.DELIVERED and job.delivered_via in DELIVERED_HOW:
        label += f" {DELIVERED_HOW[job.delivered_via]}"
    return label


def parameters(job: Job | JobRequest) -> str:
    """One line of the request's parameters, in the words the command used (a job's, or a request's
    not made yet: a quote's)."""
    parts = [model_label(job.model), f"{job.duration} s"]
    if job.model == KlingModel.V3_0:
        parts.append(quality_label(job.quality))
    parts.append("sound on" if job.sound else "no sound")
    if job.aspect_ratio:
        parts.append(job.aspect_ratio)
    if job.multi_shot:
        parts.append("multi-shot")
    images = len(job.image_urls) + (job.start_frame_url is not None) + (job.end_frame_url is not None)
    if images:
        parts.append(f"{images} image{'s' if images > 1 else ''}")
    return " · ".join(parts)


#: The finished card's thumbnail, attached to the card itself (``attachment://``).
POSTER_FILENAME = "poster.jpg"
#: While these last, the card shows the request's source image (when it has one).
IN_PROGRESS = (
    JobState.PENDING_REVIEW,
    JobState.QUEUED,
    JobState.SUBMITTING,
    JobState.PROCESSING,
    JobState.COMPLETED,
)
#: On a waiting job's card while the provider account is paused (issue 14: the circuit breaker).
PAUSED_NOTE = (
    "The server's video account needs attention, so videos wait in line with their credits held until "
    "an admin fixes it. The request can still be cancelled."
)


def status_card(
    job: Job,
    *,
    queue_position: int | None = None,
    now: datetime | None = None,
    poster: bool = False,
    eta: Estimate | None = None,
    paused: bool = False,
) -> discord.Embed:
    """The public card in the channel; everyone sees the request move through its states.

    While the video is made the card shows the source image (the first image, else the start frame);
    ``poster``: the finished card carries a still of the video, attached as :data:`POSTER_FILENAME`;
    ``eta``: the seconds until the video should be ready (queued or generating); ``paused``: the
    provider account needs attention (said on a queued job's card).
    """
    embed = discord.Embed(
        title="Text to video" if job.mode == "text_to_video" else "Image to video",
        description=job.prompt,
        colour=STATE_COLOURS.get(job.state, BRAND_COLOUR),
    )
    embed.add_field(name="Requested by", value=f"<@{job.user_id}>", inline=True)
    embed.add_field(name="Settings", value=parameters(job), inline=True)
    embed.add_field(name="Cost", value=f"{job_cost(job)} credits", inline=True)
    seconds = None if eta is None else eta.seconds
    embed.add_field(name="Status", value=state_line(job, queue_position, now, seconds), inline=False)
    if paused and job.state is JobState.QUEUED:
        embed.add_field(name="⚠️ Paused", value=PAUSED_NOTE, inline=False)
    if job.directory_optin:
        embed.add_field(
            name="Prompt Directory",
            value="This prompt and video are shared in UlazAI's public Prompt Directory (10 credits off).",
            inline=False,
        )
    embed.set_footer(text=f"Job #{job.id}{origin_text(job, ' · ')}")
    source = job.image_urls[0] if job.image_urls else job.start_frame_url
    if poster:
        embed.set_thumbnail(url=f"attachment://{POSTER_FILENAME}")
    elif source and job.state in IN_PROGRESS:
        embed.set_thumbnail(url=source)
    return embed


def card_reference(job: Job) -> discord.MessageReference | None:
    """A reply to the job's status card, so the thread reads request → result; a deleted card
    makes a plain message rather than an error (``fail_if_not_exists=False``)."""
    if job.status_message_id is None:
        return None
    return discord.MessageReference(
        message_id=job.status_message_id,
        channel_id=job.channel_id,
        guild_id=job.guild_id,
        fail_if_not_exists=False,
    )


def jump_url(guild_id: int, channel_id: int, message_id: int) -> str:
    return f"https://discord.com/channels/{guild_id}/{channel_id}/{message_id}"


#: How a job made from another one says so (issue 12), with the other job's number.
ORIGIN_WORDS: dict[JobOrigin, str] = {
    JobOrigin.CONTINUE: "continued from #{parent}",
    JobOrigin.REMIX: "remix of #{parent}",
}


def origin_text(job: Job, prefix: str = "", suffix: str = "") -> str:
    """ "continued from #12" / "remix of #12" between ``prefix`` and ``suffix`` for a job made by
    Continue or Remix, else ""."""
    words = ORIGIN_WORDS.get(job.origin) if job.origin is not None else None
    if words is None or job.parent_job_id is None:
        return ""
    return prefix + words.format(parent=job.parent_job_id) + suffix


def job_link(job: Job) -> str | None:
    """Where to see the job: the posted video when there is one (and it was not deleted), else its
    status card."""
    posted = job.posted_message_id if job.posted_deleted_at is None else None
    if posted is not None and job.delivered_via is DeliveredVia.DIRECT_MESSAGE:
        return job.video_url  # it went to the member's DMs: a channel link would lead nowhere
    message_id = posted or job.status_message_id
    return None if message_id is None else jump_url(job.guild_id, job.channel_id, message_id)


async def refresh_status_card(bot: KlingBot, job: Job) -> None:
    """Re-render the public card after a change; a card someone deleted is not worth failing over."""
    if job.status_message_id is None:
        return
    queued = job.state is JobState.QUEUED and job.id is not None
    position = await bot.storage.queue_position(job.id) if queued and job.id else None
    paused = queued and (await bot.storage.provider_account()).paused
    eta = await bot.eta.for_card(job, bot.storage.now(), queue_position=position)
    message = bot.get_partial_messageable(job.channel_id).get_partial_message(job.status_message_id)
    try:
        await message.edit(
            embed=status_card(job, queue_position=position, eta=eta, paused=paused),
            allowed_mentions=NO_MENTIONS,
        )
    except discord.HTTPException as error:
        log.warning("Could not update the status card of job %s: %s", job.id, error)
        return
    bot.eta.shown(eta)


# -- the review card -------------------------------------------------------------------------------

REVIEW_COLOURS: dict[str, discord.Colour] = {
    "pending": discord.Colour.gold(),
    "approved": discord.Colour.green(),
    "rejected": discord.Colour.red(),
    "withdrawn": discord.Colour.dark_grey(),
}


def source_images(job: Job) -> list[tuple[str, str]]:
    """The request's images as (what it is, the provider's public URL), in the order the member gave them."""
    images = [("image", url) for url in job.image_urls]
    if job.start_frame_url:
        images.append(("start frame", job.start_frame_url))
    if job.end_frame_url:
        images.append(("end frame", job.end_frame_url))
    return images


def review_outcome(job: Job) -> str:
    """Where the review stands: ``pending``, ``approved``, ``rejected`` or ``withdrawn``."""
    if job.state is JobState.PENDING_REVIEW:
        return "pending"
    if job.state is JobState.REJECTED:
        return "rejected"
    if job.state is JobState.CANCELLED and job.reviewed_by is None:
        return "withdrawn"
    return "approved"  # queued or anything after it: a moderator let it through


def review_decision(job: Job) -> str:
    outcome = review_outcome(job)
    if outcome == "pending":
        return "⏳ Waiting for a moderator"
    if outcome == "withdrawn":
        return "↩️ Cancelled before review; the credits went back to the member"
    if outcome == "rejected":
        reason = f": {job.error[:200]}" if job.error else " (no reason given)"
        return f"🚫 Rejected by <@{job.reviewed_by}>{reason}"
    return f"✅ Approved by <@{job.reviewed_by}>"


def review_card(job: Job) -> list[discord.Embed]:
    """The card moderators decide on: the request as the member made it, and the decision once taken.

    Every source image is shown: the first on the main embed, the others on image-only embeds that
    share its ``url``, which Discord's clients draw as one gallery under the card.
    """
    link = (
        jump_url(job.guild_id, job.channel_id, job.status_message_id)
        if job.status_message_id is not None
        else None
    )
    kind = "Text to video" if job.mode == "text_to_video" else "Image to video"
    embed = discord.Embed(
        title=f"Review: {kind.lower()}",
        description=job.prompt,
        url=link,
        colour=REVIEW_COLOURS[review_outcome(job)],
    )
    embed.add_field(name="Requested by", value=f"<@{job.user_id}> in <#{job.channel_id}>", inline=True)
    embed.add_field(name="Settings", value=parameters(job), inline=True)
    embed.add_field(
        name="Cost", value=f"{job.estimate_credits} credits (held until the decision)", inline=True
    )
    images = source_images(job)
    if images:
        embed.add_field(
            name="Source images",
            value=" · ".join(f"[{what}]({url})" for what, url in images)[:1024],
            inline=False,
        )
    embed.add_field(name="Decision", value=review_decision(job), inline=False)
    embed.set_footer(text=f"Job #{job.id}")
    embeds = [embed]
    for index, (_, url) in enumerate(images[:4]):
        if index == 0:
            embed.set_image(url=url)
        else:
            embeds.append(discord.Embed(url=link).set_image(url=url))
    return embeds
