"""How a job looks on Discord: the public status card, the member's receipt, job links.

Pure rendering (a job in, an embed out), shared by the commands and, later, the delivery worker that
moves the card along. The prompt goes in the embed description: prompts reach 2,500 characters, more
than a message's 2,000, and text in an embed never pings anyone.
"""

from __future__ import annotations

from datetime import datetime

import discord

from storage import Job, JobState
from ulazai.polling import progress_share
from ulazai.requests import KlingModel
from ulazai.results import EstimatedTime

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


def processing_line(job: Job, now: datetime) -> str:
    """The progress bar: the provider's progress on Kling 2.6, else the elapsed share of the estimate."""
    started = job.submitted_at or job.updated_at
    elapsed = max(0.0, (now - started).total_seconds())
    estimate = (
        EstimatedTime(job.eta_low_seconds, job.eta_high_seconds)
        if job.eta_low_seconds is not None and job.eta_high_seconds is not None
        else None
    )
    provider_progress = job.progress if job.model == KlingModel.V2_6 else None
    share = progress_share(elapsed=elapsed, estimate=estimate, progress=provider_progress)
    return f"{STATE_LABELS[JobState.PROCESSING]} {progress_bar(share)} · {elapsed_text(elapsed)} elapsed"


def state_line(job: Job, queue_position: int | None = None, now: datetime | None = None) -> str:
    if job.state is JobState.PROCESSING and now is not None:
        return processing_line(job, now)
    label = STATE_LABELS.get(job.state, str(job.state))
    if job.state is JobState.QUEUED and queue_position is not None:
        label += f" (position {queue_position})"
    if job.state in (JobState.FAILED, JobState.REJECTED, JobState.LOST) and job.error:
        label += f": {job.error[:200]}"
    return label


def parameters(job: Job) -> str:
    """One line of the request's parameters, in the words the command used."""
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


def status_card(job: Job, *, queue_position: int | None = None, now: datetime | None = None) -> discord.Embed:
    """The public card in the channel; everyone sees the request move through its states."""
    embed = discord.Embed(
        title="Text to video" if job.mode == "text_to_video" else "Image to video",
        description=job.prompt,
        colour=STATE_COLOURS.get(job.state, BRAND_COLOUR),
    )
    embed.add_field(name="Requested by", value=f"<@{job.user_id}>", inline=True)
    embed.add_field(name="Settings", value=parameters(job), inline=True)
    embed.add_field(name="Cost", value=f"{job_cost(job)} credits", inline=True)
    embed.add_field(name="Status", value=state_line(job, queue_position, now), inline=False)
    if job.directory_optin:
        embed.add_field(
            name="Prompt Directory",
            value="This prompt and video are shared in UlazAI's public Prompt Directory (10 credits off).",
            inline=False,
        )
    embed.set_footer(text=f"Job #{job.id}")
    return embed


def jump_url(guild_id: int, channel_id: int, message_id: int) -> str:
    return f"https://discord.com/channels/{guild_id}/{channel_id}/{message_id}"


def job_link(job: Job) -> str | None:
    """Where to see the job: the posted video when there is one, else its status card."""
    if job.posted_message_id is not None and job.delivery_notes and "direct message" in job.delivery_notes:
        return job.video_url  # it went to the member's DMs: a channel link would lead nowhere
    message_id = job.posted_message_id or job.status_message_id
    return None if message_id is None else jump_url(job.guild_id, job.channel_id, message_id)
