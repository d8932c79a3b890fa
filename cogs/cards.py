"""How a job looks on Discord: the public status card, the member's receipt, job links.

Pure rendering (a job in, an embed out), shared by the commands and, later, the delivery worker that
moves the card along. The prompt goes in the embed description: prompts reach 2,500 characters, more
than a message's 2,000, and text in an embed never pings anyone.
"""

from __future__ import annotations

import discord

from storage import Job, JobState
from ulazai.requests import KlingModel

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


def state_line(job: Job, queue_position: int | None = None) -> str:
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


def status_card(job: Job, *, queue_position: int | None = None) -> discord.Embed:
    """The public card in the channel; everyone sees the request move through its states."""
    embed = discord.Embed(
        title="Text to video" if job.mode == "text_to_video" else "Image to video",
        description=job.prompt,
        colour=STATE_COLOURS.get(job.state, BRAND_COLOUR),
    )
    embed.add_field(name="Requested by", value=f"<@{job.user_id}>", inline=True)
    embed.add_field(name="Settings", value=parameters(job), inline=True)
    embed.add_field(name="Cost", value=f"{job_cost(job)} credits", inline=True)
    embed.add_field(name="Status", value=state_line(job, queue_position), inline=False)
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
    message_id = job.posted_message_id or job.status_message_id
    return None if message_id is None else jump_url(job.guild_id, job.channel_id, message_id)
