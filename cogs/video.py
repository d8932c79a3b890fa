"""``/video text``, ``/video image`` and ``/video jobs``: what members touch.

The flow of one request (each step refuses with one ephemeral sentence and charges nothing):

1. acknowledge at once (an ephemeral defer), before any database, upload or provider call;
2. the provider's rules for the chosen model (the client's own validation, with stand-in URLs for
   the attachments, so nothing is uploaded for a request that cannot run), attachments' declared sizes,
   the channel allowlist, the blocklist, the bot's permissions here, the member's active jobs and
   balance;
3. read and check the images (magic bytes) and upload them to the provider;
4. create the job with its reservation in one transaction (unique per interaction);
5. post the public status card with ``channel.send`` (interaction tokens die after 15 minutes), and
   with review on the moderators' review card (:mod:`cogs.review`), then answer the member with a
   receipt carrying a Cancel button and write the request to the audit log.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from cogs import audit as audit_lines
from cogs import cards, review
from cogs.audit import audit
from cogs.common import NO_MENTIONS, Interaction, UserFacingError, answer_ephemeral, answer_error
from generation.blocklist import find_blocked_term
from storage import (
    BudgetExceeded,
    DuplicateInteraction,
    InsufficientCredits,
    InvalidTransition,
    Job,
    JobNotFound,
    JobRequest,
    JobState,
    TooManyActiveJobs,
)
from ulazai.images import check_declared_size, check_image
from ulazai.pricing import DIRECTORY_DISCOUNT, estimate_credits
from ulazai.requests import (
    MAX_PROMPT_LENGTH,
    AspectRatio,
    GenerationMode,
    KlingModel,
    Quality,
    VideoSpec,
    build_request,
)

if TYPE_CHECKING:
    from bot import KlingBot

log = logging.getLogger(__name__)

#: What the bot needs in a channel to post a status card and, later, the video.
REQUIRED_PERMISSIONS: tuple[tuple[str, str], ...] = (
    ("view_channel", "View Channel"),
    ("send_messages", "Send Messages"),
    ("embed_links", "Embed Links"),
    ("attach_files", "Attach Files"),
)

#: Stands in for an attachment's URL while the provider's rules are checked, before any upload.
_PENDING_UPLOAD = "https://upload.pending.invalid/image"

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


@dataclasses.dataclass(frozen=True, slots=True)
class VideoOptions:
    """The options of one ``/video text`` or ``/video image``, as the member typed them."""

    prompt: str
    mode: GenerationMode
    model: str | None = None
    duration: int | None = None
    quality: str | None = None
    aspect_ratio: str | None = None
    sound: bool | None = None
    multi_shot: bool | None = None
    image: discord.Attachment | None = None
    start_frame: discord.Attachment | None = None
    end_frame: discord.Attachment | None = None

    def attachments(self) -> dict[str, discord.Attachment]:
        found = {"image": self.image, "start_frame": self.start_frame, "end_frame": self.end_frame}
        return {name: attachment for name, attachment in found.items() if attachment is not None}


def choice_value(choice: app_commands.Choice[str] | None) -> str | None:
    return None if choice is None else choice.value


def timestamp(moment: Any, style: str = "R") -> str:
    return f"<t:{int(moment.timestamp())}:{style}>"


class CancelButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"video:cancel:(?P<job_id>\d+)"):
    """Cancels a job that has not been submitted yet. Works after a restart: the id is in custom_id."""

    def __init__(self, job_id: int, *, disabled: bool = False) -> None:
        super().__init__(
            discord.ui.Button(
                label="Cancel",
                style=discord.ButtonStyle.secondary,
                custom_id=f"video:cancel:{job_id}",
                disabled=disabled,
            )
        )
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> CancelButton:
        return cls(int(match["job_id"]))

    async def interaction_check(self, interaction: discord.Interaction[Any]) -> bool:
        bot: KlingBot = interaction.client
        job = await bot.storage.get_job(self.job_id)
        if job is None or job.user_id != interaction.user.id:
            await interaction.response.send_message(
                "Only the member who asked for this video can cancel it.",
                ephemeral=True,
                allowed_mentions=NO_MENTIONS,
            )
            return False
        return True

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        bot: KlingBot = interaction.client
        try:
            job = await bot.storage.cancel(
                self.job_id, actor_id=interaction.user.id, reason="cancelled by the member"
            )
        except (InvalidTransition, JobNotFound):
            current = await bot.storage.get_job(self.job_id)
            state = current.state if current else None
            text = (
                "This video is already being made, so it can't be cancelled any more."
                if state in (JobState.SUBMITTING, JobState.PROCESSING, JobState.COMPLETED, JobState.DELIVERED)
                else "This request has already ended; there is nothing to cancel."
            )
            await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_MENTIONS)
            return
        view = discord.ui.View(timeout=None)
        view.add_item(CancelButton(job.id or self.job_id, disabled=True))
        await interaction.response.edit_message(
            content=f"Cancelled. Your {job.estimate_credits} credits are back.", embed=None, view=view
        )
        await cards.refresh_status_card(bot, job)
        await review.refresh_review_card(bot, job)  # a card still waiting for a moderator says so


class RegenerateButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"video:regen:(?P<job_id>\d+)"
):
    """Makes the same video again, charged to whoever presses, through every check of a new request."""

    def __init__(self, job_id: int) -> None:
        super().__init__(
            discord.ui.Button(
                label="Regenerate",
                emoji="🔁",
                style=discord.ButtonStyle.primary,
                custom_id=f"video:regen:{job_id}",
            )
        )
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> RegenerateButton:
        return cls(int(match["job_id"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        bot: KlingBot = interaction.client
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            job = await bot.storage.get_job(self.job_id)
            cog = bot.get_cog("Video")
            if job is None or not isinstance(cog, Video) or interaction.guild_id != job.guild_id:
                raise UserFacingError(
                    "I no longer have the details of that video, so it can't be regenerated."
                )
            uploaded = {"image": job.image_urls[0]} if job.image_urls else {}
            if job.start_frame_url:
                uploaded["start_frame"] = job.start_frame_url
            if job.end_frame_url:
                uploaded["end_frame"] = job.end_frame_url
            options = VideoOptions(
                prompt=job.prompt,
                mode=GenerationMode(job.mode),
                model=job.model,
                duration=job.duration,
                quality=job.quality,
                aspect_ratio=job.aspect_ratio,
                sound=job.sound,
                multi_shot=job.multi_shot,
            )
            await cog.request_video(interaction, options, uploaded=uploaded)
        except Exception as error:
            await answer_error(interaction, error, where=f"Regenerate of job {self.job_id}")


class DeleteVideoButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"video:delete:(?P<job_id>\d+)"
):
    """Deletes a posted video: its requester, or anyone who may manage messages here."""

    def __init__(self, job_id: int) -> None:
        super().__init__(
            discord.ui.Button(
                label="Delete",
                emoji="🗑️",
                style=discord.ButtonStyle.secondary,
                custom_id=f"video:delete:{job_id}",
            )
        )
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> DeleteVideoButton:
        return cls(int(match["job_id"]))

    async def interaction_check(self, interaction: discord.Interaction[Any]) -> bool:
        bot: KlingBot = interaction.client
        job = await bot.storage.get_job(self.job_id)
        if job is not None and job.user_id == interaction.user.id:
            return True
        if interaction.permissions.manage_messages:
            return True
        await interaction.response.send_message(
            "Only the member who asked for this video, or a moderator, can delete it.",
            ephemeral=True,
            allowed_mentions=NO_MENTIONS,
        )
        return False

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        bot: KlingBot = interaction.client
        await interaction.response.defer(ephemeral=True)
        try:
            if interaction.message is None:
                raise UserFacingError("That message is already gone.")
            await interaction.message.delete()
        except discord.NotFound:
            await answer_ephemeral(interaction, "That video was already deleted.")
            return
        except Exception as error:
            await answer_error(interaction, error, where=f"Delete of job {self.job_id}")
            return
        await answer_ephemeral(interaction, "Deleted.")
        job = await bot.storage.get_job(self.job_id)
        if job is not None and job.user_id != interaction.user.id and interaction.guild_id is not None:
            await audit(
                bot,
                interaction.guild_id,
                f"🗑️ {interaction.user} (moderator) deleted the video of job #{self.job_id}, requested by <@{job.user_id}>.",
            )


def posted_video_view(job_id: int) -> discord.ui.View:
    """The buttons under a posted video; they work after a restart (``DynamicItem``)."""
    view = discord.ui.View(timeout=None)
    view.add_item(RegenerateButton(job_id))
    view.add_item(DeleteVideoButton(job_id))
    return view


class Video(commands.GroupCog, group_name="video", group_description="Make AI videos with Kling"):
    """The member-facing video commands."""

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
        options = VideoOptions(
            prompt=prompt,
            mode=GenerationMode.TEXT_TO_VIDEO,
            model=choice_value(model),
            duration=duration,
            quality=choice_value(quality),
            aspect_ratio=choice_value(aspect_ratio),
            sound=sound,
            multi_shot=multi_shot,
        )
        await self.request_video(interaction, options)

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
        options = VideoOptions(
            prompt=prompt,
            mode=GenerationMode.IMAGE_TO_VIDEO,
            model=choice_value(model),
            duration=duration,
            quality=choice_value(quality),
            aspect_ratio=choice_value(aspect_ratio),
            sound=sound,
            multi_shot=multi_shot,
            image=image,
            start_frame=start_frame,
            end_frame=end_frame,
        )
        await self.request_video(interaction, options)

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
            where = f" · [{'video' if job.posted_message_id else 'status'}]({link})" if link else ""
            if job.state is JobState.FAILED and job.video_url:
                where += f" · [download]({job.video_url})"
            lines.append(
                f"**#{job.id}** {timestamp(job.created_at)} · {cards.STATE_LABELS.get(job.state, job.state)}"
                f" · {cards.model_label(job.model)} {job.duration} s · {cards.job_cost(job)} credits{where}"
            )
        embed = discord.Embed(
            title="Your recent videos", description="\n".join(lines), colour=cards.BRAND_COLOUR
        )
        await interaction.followup.send(embed=embed, ephemeral=True, allowed_mentions=NO_MENTIONS)

    # -- the request flow ------------------------------------------------------------------------

    async def request_video(
        self, interaction: Interaction, options: VideoOptions, *, uploaded: dict[str, str] | None = None
    ) -> None:
        """Steps 2–5 of the module docstring; every refusal is a :class:`UserFacingError`.

        ``uploaded`` maps option names to images already at the provider (Regenerate reuses them).
        """
        uploaded = uploaded or {}
        bot = self.bot
        guild_id, channel = interaction.guild_id, interaction.channel
        member = interaction.user
        assert guild_id is not None
        assert isinstance(member, discord.Member)
        if not isinstance(channel, discord.abc.Messageable) or interaction.channel_id is None:
            raise UserFacingError("I can only make videos in a server's text channels.")
        settings = await bot.storage.get_guild_settings(guild_id)

        attachments = options.attachments()
        present = set(attachments) | set(uploaded)
        spec = VideoSpec(
            model=KlingModel(options.model or settings.default_model),
            prompt=options.prompt,
            mode=options.mode,
            duration=options.duration if options.duration is not None else 5,
            quality=Quality(options.quality) if options.quality else None,
            aspect_ratio=AspectRatio(options.aspect_ratio) if options.aspect_ratio else None,
            sound=bool(options.sound),
            multi_shot=bool(options.multi_shot),
            image_urls=(_PENDING_UPLOAD,) if "image" in present else (),
            start_frame_url=_PENDING_UPLOAD if "start_frame" in present else None,
            end_frame_url=_PENDING_UPLOAD if "end_frame" in present else None,
            directory_optin=settings.directory_discount,
        )
        build_request(spec)  # the provider's rules, before anything is downloaded or uploaded
        for name, attachment in attachments.items():
            check_declared_size(attachment.size, field=name)

        self.check_channel(interaction, settings.allowed_channel_ids)
        if (term := find_blocked_term(options.prompt, settings.blocklist_terms)) is not None:
            # The member is not told which term: probing must not reveal the list. The moderators are.
            await audit(bot, guild_id, audit_lines.blocked(member.id, interaction.channel_id, term))
            raise UserFacingError(
                "Your prompt contains something this server does not allow; rephrase it and try again."
            )
        self.check_bot_permissions(interaction)

        role_ids = [role.id for role in member.roles]
        estimate = estimate_credits(spec, include_discount=False)
        balance = await bot.storage.balance(guild_id, member.id, role_ids)
        if balance.active_jobs >= settings.max_active_jobs:
            raise too_many_jobs(balance.active_jobs, settings.max_active_jobs)
        if balance.available < estimate:
            raise not_enough_credits(balance.available, estimate, balance.next_refill_at)

        spec = await self.upload_images(spec, attachments, uploaded)
        request = JobRequest(
            model=spec.model.value,
            mode=spec.mode.value,
            prompt=spec.prompt.strip(),
            duration=spec.duration,
            quality=(spec.quality or Quality.STD).value if spec.model is KlingModel.V3_0 else None,
            aspect_ratio=spec.aspect_ratio.value if spec.aspect_ratio else None,
            sound=spec.sound,
            multi_shot=spec.multi_shot,
            directory_optin=spec.directory_optin,
            image_urls=spec.image_urls,
            start_frame_url=spec.start_frame_url,
            end_frame_url=spec.end_frame_url,
        )
        review = settings.review_channel_id is not None
        try:
            job = await bot.storage.create_job(
                interaction_id=interaction.id,
                guild_id=guild_id,
                user_id=member.id,
                channel_id=interaction.channel_id,
                request=request,
                estimate=estimate,
                role_ids=role_ids,
                review=review,
            )
        except TooManyActiveJobs as error:
            raise too_many_jobs(error.active, error.limit) from None
        except InsufficientCredits as error:
            raise not_enough_credits(error.available, error.needed, balance.next_refill_at) from None
        except BudgetExceeded as error:
            raise UserFacingError(
                f"This server has used its video budget for now ({error.spent} of {error.budget} credits); "
                f"it renews {timestamp(error.resets_at)}."
            ) from None
        except DuplicateInteraction:
            raise UserFacingError("This request was already received; see `/video jobs`.") from None
        job_id = job.id
        assert job_id is not None

        job = await self.post_status_card(channel, job)
        if settings.review_channel_id is not None and job.state is JobState.PENDING_REVIEW:
            job = await self.send_for_review(job, settings.review_channel_id)
        after = await bot.storage.balance(guild_id, member.id, role_ids)
        await interaction.followup.send(
            embed=receipt(job, after.available, review=review),
            view=cancel_view(job_id),
            ephemeral=True,
            allowed_mentions=NO_MENTIONS,
        )
        await audit(bot, guild_id, audit_lines.requested(job))

    def check_channel(self, interaction: Interaction, allowed: list[int]) -> None:
        if not allowed:
            return
        channel = interaction.channel
        ids = {interaction.channel_id}
        if isinstance(channel, discord.Thread) and channel.parent_id:
            ids.add(channel.parent_id)
        if ids.isdisjoint(allowed):
            where = ", ".join(f"<#{channel_id}>" for channel_id in allowed[:5])
            raise UserFacingError(f"Videos can't be made in this channel; try {where}.")

    def check_bot_permissions(self, interaction: Interaction) -> None:
        granted = interaction.app_permissions
        missing = [label for flag, label in REQUIRED_PERMISSIONS if not getattr(granted, flag)]
        if missing:
            raise UserFacingError(
                f"I can't post videos in this channel: I need the {', '.join(missing)} permission"
                f"{'s' if len(missing) > 1 else ''} here. Ask an admin, or use another channel."
            )

    async def upload_images(
        self, spec: VideoSpec, attachments: dict[str, discord.Attachment], uploaded: dict[str, str]
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
            urls[name] = await self.bot.ulazai.upload(data)
        spec = dataclasses.replace(
            spec,
            image_urls=(urls["image"],) if "image" in urls else (),
            start_frame_url=urls.get("start_frame"),
            end_frame_url=urls.get("end_frame"),
        )
        build_request(spec)  # the real URLs obey the same rules as the stand-ins did
        return spec

    async def post_status_card(self, channel: discord.abc.Messageable, job: Job) -> Job:
        """Post the public card; if Discord refuses, give the credits back and say so."""
        assert job.id is not None
        position = await self.bot.storage.queue_position(job.id) if job.state is JobState.QUEUED else None
        try:
            message = await channel.send(
                embed=cards.status_card(job, queue_position=position), allowed_mentions=NO_MENTIONS
            )
        except discord.HTTPException as error:
            log.warning("Could not post the status card of job %s: %s", job.id, error)
            await self.bot.storage.cancel(job.id, actor_id=None, reason="the status card could not be posted")
            raise UserFacingError(
                "I couldn't post in this channel, so nothing was made and your credits are back. "
                "Ask an admin to check my permissions here."
            ) from None
        return await self.bot.storage.set_job_messages(job.id, status_message_id=message.id)

    async def send_for_review(self, job: Job, review_channel_id: int) -> Job:
        """Post the review card; if the review channel refuses it, give the credits back and say so."""
        assert job.id is not None
        try:
            return await review.post_review_card(self.bot, job, review_channel_id)
        except discord.HTTPException as error:
            log.warning("Could not post the review card of job %s: %s", job.id, error)
            job = await self.bot.storage.cancel(
                job.id, actor_id=None, reason="the review card could not be posted"
            )
            await cards.refresh_status_card(self.bot, job)
            raise UserFacingError(
                f"I couldn't post your request for review in <#{review_channel_id}>, so nothing was made "
                "and your credits are back. Ask an admin to check my permissions there."
            ) from None


def too_many_jobs(active: int, limit: int) -> UserFacingError:
    return UserFacingError(
        f"You already have {active} video{'s' if active != 1 else ''} in progress and this server allows {limit} "
        "at a time; wait for one to finish (see `/video jobs`)."
    )


def not_enough_credits(available: int, needed: int, next_refill: Any) -> UserFacingError:
    return UserFacingError(
        f"This video costs {needed} credits and you have {available}. Try a shorter or Standard-quality "
        f"video, or wait for your allowance to refill {timestamp(next_refill)}."
    )


def cancel_view(job_id: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(CancelButton(job_id))
    return view


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


async def setup(bot: KlingBot) -> None:
    bot.add_dynamic_items(CancelButton, RegenerateButton, DeleteVideoButton)
    await bot.add_cog(Video(bot))
