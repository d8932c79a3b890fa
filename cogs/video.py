"""``/video text``, ``/video image``, ``/video jobs`` and ``/video forget``: what members touch.

The commands acknowledge at once and hand the request to :mod:`cogs.requesting` (the flow shared
with the Regenerate button); ``/video jobs`` lists the member's recent videos; ``/video forget`` erases
their prompts and links here (:mod:`cogs.forgetting`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from cogs import cards, forgetting, requesting
from cogs.common import NO_MENTIONS, Interaction, when
from generation.shapes import VideoOptions
from storage import JobState
from ulazai.requests import MAX_PROMPT_LENGTH, AspectRatio, GenerationMode, KlingModel, Quality

if TYPE_CHECKING:
    from bot import KlingBot

MODEL_CHOICES = [
    app_commands.Choice(name=KlingModel.V3_0.label, value=KlingModel.V3_0.value),
    app_commands.Choice(name=KlingModel.V2_6.label, value=KlingModel.V2_6.value),
]
QUALITY_CHOICES = [
    app_commands.Choice(name="Standard", value=Quality.STD.value),
    app_commands.Choice(name="Pro (sharper, costs more)", value=Quality.PRO.value),
]
ASPECT_CHOICES = [
    app_commands.Choice(name="16:9 landscape", value=AspectRatio.LANDSCAPE.value),
    app_commands.Choice(name="9:16 portrait", value=AspectRatio.PORTRAIT.value),
    app_commands.Choice(name="1:1 square", value=AspectRatio.SQUARE.value),
]

_COMMON_DESCRIPTIONS: dict[str, str] = {
    "prompt": "What the video should show (Kling 3.0: up to 2,500 characters; Kling 2.6: 2,000)",
    "model": "Kling 3.0 (3–15 s, quality choice) or Kling 2.6 (5 or 10 s, cheapest); default: the server's",
    "duration": "Length in seconds: 3–15 on Kling 3.0, 5 or 10 on Kling 2.6 (default 5)",
    "quality": "Kling 3.0 only: Standard or Pro (default Standard)",
    "aspect_ratio": "Shape of the video (default 16:9)",
    "sound": "Generate native audio too (costs more)",
    "multi_shot": "Kling 3.0 only: tell the story in several shots",
}
_IMAGE_DESCRIPTIONS: dict[str, str] = {
    "image": "The image to animate (JPEG, PNG or WebP, up to 10 MB)",
    "start_frame": "Kling 3.0 only: the first frame of the video",
    "end_frame": "Kling 3.0 only: the last frame of the video",
}

PromptOption = app_commands.Range[str, 1, MAX_PROMPT_LENGTH[KlingModel.V3_0]]
DurationOption = app_commands.Range[int, 3, 15]


def choice_value(choice: app_commands.Choice[str] | None) -> str | None:
    return None if choice is None else choice.value


def typed_options(
    prompt: str,
    mode: GenerationMode,
    model: app_commands.Choice[str] | None,
    duration: int | None,
    quality: app_commands.Choice[str] | None,
    aspect_ratio: app_commands.Choice[str] | None,
    sound: bool | None,
    multi_shot: bool | None,
) -> VideoOptions:
    """The options both commands share, as the member typed them."""
    return VideoOptions(
        prompt=prompt,
        mode=mode,
        model=choice_value(model),
        duration=duration,
        quality=choice_value(quality),
        aspect_ratio=choice_value(aspect_ratio),
        sound=sound,
        multi_shot=multi_shot,
    )


def prompt_excerpt(prompt: str, length: int = 80) -> str:
    """A prompt on one short line, its markdown shown as typed ("[erased]" once it is erased)."""
    flat = " ".join(prompt.split())
    flat = flat if len(flat) <= length else flat[: length - 1] + "…"
    return discord.utils.escape_markdown(flat)


@app_commands.guild_only()  # on the group: Discord reads contexts from top-level commands only
class Video(commands.GroupCog, group_name="video", group_description="Make AI videos with Kling"):
    """The member-facing video commands (in servers only: the group is not offered in DMs)."""

    def __init__(self, bot: KlingBot) -> None:
        self.bot = bot
        super().__init__()

    @app_commands.command(name="text", description="Make a video from a text prompt")
    @app_commands.guild_only()
    @app_commands.describe(**_COMMON_DESCRIPTIONS)
    @app_commands.choices(model=MODEL_CHOICES, quality=QUALITY_CHOICES, aspect_ratio=ASPECT_CHOICES)
    async def text(
        self,
        interaction: Interaction,
        prompt: PromptOption,
        model: app_commands.Choice[str] | None = None,
        duration: DurationOption | None = None,
        quality: app_commands.Choice[str] | None = None,
        aspect_ratio: app_commands.Choice[str] | None = None,
        sound: bool | None = None,
        multi_shot: bool | None = None,
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        options = typed_options(
            prompt, GenerationMode.TEXT_TO_VIDEO, model, duration, quality, aspect_ratio, sound, multi_shot
        )
        await requesting.request_video(interaction, options)

    @app_commands.command(
        name="image", description="Animate an image, or go from a start frame to an end frame"
    )
    @app_commands.guild_only()
    @app_commands.describe(**_COMMON_DESCRIPTIONS, **_IMAGE_DESCRIPTIONS)
    @app_commands.choices(model=MODEL_CHOICES, quality=QUALITY_CHOICES, aspect_ratio=ASPECT_CHOICES)
    async def image(
        self,
        interaction: Interaction,
        prompt: PromptOption,
        image: discord.Attachment | None = None,
        start_frame: discord.Attachment | None = None,
        end_frame: discord.Attachment | None = None,
        model: app_commands.Choice[str] | None = None,
        duration: DurationOption | None = None,
        quality: app_commands.Choice[str] | None = None,
        aspect_ratio: app_commands.Choice[str] | None = None,
        sound: bool | None = None,
        multi_shot: bool | None = None,
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        options = typed_options(
            prompt, GenerationMode.IMAGE_TO_VIDEO, model, duration, quality, aspect_ratio, sound, multi_shot
        )
        given = {"image": image, "start_frame": start_frame, "end_frame": end_frame}
        attachments = {slot: file for slot, file in given.items() if file is not None}
        await requesting.request_video(interaction, options, attachments=attachments)

    @app_commands.command(name="jobs", description="Your recent videos in this server")
    @app_commands.guild_only()
    async def jobs(self, interaction: Interaction) -> None:
        await interaction.response.defer(ephemeral=True)
        assert interaction.guild_id is not None
        jobs = await self.bot.storage.list_jobs(interaction.guild_id, interaction.user.id, limit=10)
        if not jobs:
            await interaction.followup.send(
                "You have no videos here yet. Try `/video text`!",
                ephemeral=True,
                allowed_mentions=NO_MENTIONS,
            )
            return
        lines = []
        for job in jobs:
            link = cards.job_link(job)
            shown = "video" if job.posted_message_id and job.posted_deleted_at is None else "status"
            where = f" · [{shown}]({link})" if link else ""
            if job.posted_deleted_at is not None:
                where += " · video deleted"
            if job.state is JobState.FAILED and job.video_url:
                where += f" · [download]({job.video_url})"
            state = cards.STATE_LABELS.get(job.state, job.state)
            if job.state is JobState.DELIVERED and job.delivered_via in cards.DELIVERED_HOW:
                state = f"{state} {cards.DELIVERED_HOW[job.delivered_via]}"
            lines.append(
                f"**#{job.id}** {when(job.created_at)} · {state}"
                f" · {cards.model_label(job.model)} {job.duration} s · {cards.job_cost(job)} credits{where}"
                f"{cards.origin_text(job, ' · ')}"
                f"\n-# {prompt_excerpt(job.prompt)}"
            )
        embed = discord.Embed(
            title="Your recent videos", description="\n".join(lines), colour=cards.BRAND_COLOUR
        )
        await interaction.followup.send(embed=embed, ephemeral=True, allowed_mentions=NO_MENTIONS)

    # -- issue 13: privacy ---------------------------------------------------------------------------

    @app_commands.command(
        name="forget", description="Erase your prompts, image and video links in this server"
    )
    @app_commands.guild_only()
    async def forget(self, interaction: Interaction) -> None:
        await forgetting.ask(interaction, interaction.user)


async def setup(bot: KlingBot) -> None:
    await bot.add_cog(Video(bot))
