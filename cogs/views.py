"""Every button, modal and view the bot posts, in one place.

Job buttons are ``DynamicItem``s whose custom_id carries the job id (``video:regen:<job_id>``), so a
button posted before a restart still works: :class:`JobButton` is their one base (template, id parsing,
the button itself), and :data:`DYNAMIC_ITEMS` is what the bot registers. The number a custom_id carries
is a job's id, or a quote's (``quote:confirm:<quote_id>``), or a member's (``privacy:forget:<user_id>``). A button's callback only
acknowledges and hands over to the flow it starts (:mod:`cogs.requesting`, :mod:`cogs.reviewing`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, ClassVar, Self

import discord

from cogs import forgetting, iterating, modals, moderation, quoting, requesting, reviewing
from cogs.audit import audit
from cogs.common import UserFacingError, answer_ephemeral, answer_error
from storage import Job, JobState

if TYPE_CHECKING:
    from bot import KlingBot

#: How long a moderator may take to fill in the reject reason before the modal stops listening.
REASON_TIMEOUT_SECONDS = 15 * 60
MAX_REASON_LENGTH = 200


class JobButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"(?!)"):
    """A button about one job; subclasses name their custom_id prefix and look.

    ``class Regenerate(JobButton, prefix="video:regen", label="Regenerate", emoji="🔁")`` gives the
    template ``video:regen:(?P<job_id>\\d+)`` and a button with custom_id ``video:regen:<job_id>``.
    """

    prefix: ClassVar[str]
    label: ClassVar[str]
    emoji: ClassVar[str | None]
    style: ClassVar[discord.ButtonStyle]

    def __init_subclass__(
        cls,
        *,
        prefix: str,
        label: str,
        emoji: str | None = None,
        style: discord.ButtonStyle = discord.ButtonStyle.secondary,
    ) -> None:
        super().__init_subclass__(template=rf"{re.escape(prefix)}:(?P<job_id>\d+)")
        cls.prefix, cls.label, cls.emoji, cls.style = prefix, label, emoji, style

    def __init__(self, job_id: int, *, disabled: bool = False) -> None:
        super().__init__(
            discord.ui.Button(
                label=self.label,
                emoji=self.emoji,
                style=self.style,
                custom_id=f"{self.prefix}:{job_id}",
                disabled=disabled,
            )
        )
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> Self:
        return cls(int(match["job_id"]))

    @staticmethod
    def bot_of(interaction: discord.Interaction[Any]) -> KlingBot:
        bot: KlingBot = interaction.client
        return bot


# -- under the member's receipt ---------------------------------------------------------------------


class CancelButton(JobButton, prefix="video:cancel", label="Cancel"):
    """Cancels a job that has not been submitted yet; only its requester may press it (checked by
    :func:`cogs.requesting.cancel` after the acknowledgement, since it needs the job from the database)."""

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        try:
            await interaction.response.defer()  # an update of the receipt, which follows the decision
            if await moderation.refuse_banned(interaction):
                return
            await requesting.cancel(interaction, self.job_id)
        except Exception as error:
            await answer_error(interaction, error, where=f"Cancel of job {self.job_id}")


def cancel_view(job_id: int, *, disabled: bool = False) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(CancelButton(job_id, disabled=disabled))
    return view


# -- under a posted video ---------------------------------------------------------------------------


class RegenerateButton(
    JobButton, prefix="video:regen", label="Regenerate", emoji="🔁", style=discord.ButtonStyle.primary
):
    """Makes the same video again, charged to whoever presses, through every check of a new request."""

    async def interaction_check(self, interaction: discord.Interaction[Any]) -> bool:
        return not await moderation.refuse_banned(interaction)

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        try:
            await interaction.response.defer(ephemeral=True, thinking=True)
            await requesting.regenerate(interaction, self.job_id)
        except Exception as error:
            await answer_error(interaction, error, where=f"Regenerate of job {self.job_id}")


class DeleteVideoButton(JobButton, prefix="video:delete", label="Delete", emoji="🗑️"):
    """Deletes a posted video: its requester, or anyone who may manage messages here. Who pressed is
    checked after the acknowledgement (it needs the job from the database); the job then records that
    its video is gone, so ``/video jobs`` no longer links to a deleted message."""

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        bot = self.bot_of(interaction)
        try:
            await interaction.response.defer(ephemeral=True)
            if await moderation.refuse_banned(interaction):
                return
            job = await bot.storage.get_job(self.job_id)
            requester = job is not None and job.user_id == interaction.user.id
            if not requester and not interaction.permissions.manage_messages:
                raise UserFacingError(
                    "Only the member who asked for this video, or a moderator, can delete it."
                )
            if interaction.message is None:
                raise UserFacingError("That message is already gone.")
            try:
                await interaction.message.delete()
                answer = "Deleted."
            except discord.NotFound:
                answer = "That video was already deleted."
            await bot.storage.mark_video_deleted(self.job_id, message_id=interaction.message.id)
        except Exception as error:
            await answer_error(interaction, error, where=f"Delete of job {self.job_id}")
            return
        await answer_ephemeral(interaction, answer)
        if job is not None and not requester and interaction.guild_id is not None:
            await audit(
                bot,
                interaction.guild_id,
                f"🗑️ {interaction.user} (moderator) deleted the video of job #{self.job_id}, requested by <@{job.user_id}>.",
            )


def posted_video_view(job_id: int) -> discord.ui.View:
    """The buttons under a posted video; they work after a restart (``DynamicItem``)."""
    view = discord.ui.View(timeout=None)
    view.add_item(RegenerateButton(job_id))
    view.add_item(ContinueButton(job_id))
    view.add_item(RemixButton(job_id))
    view.add_item(DeleteVideoButton(job_id))
    return view


# -- on the moderators' review card -----------------------------------------------------------------


class ApproveButton(
    JobButton, prefix="review:approve", label="Approve", emoji="✅", style=discord.ButtonStyle.success
):
    """Approves a pending request; only moderators may press it."""

    async def interaction_check(self, interaction: discord.Interaction[Any]) -> bool:
        return await reviewing.allow_moderators(interaction)

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        try:
            await interaction.response.defer()  # an update of the card, which follows the decision
            await reviewing.approve(interaction, self.job_id)
        except Exception as error:
            await answer_error(interaction, error, where=f"Approve of job {self.job_id}")


class RejectButton(
    JobButton, prefix="review:reject", label="Reject", emoji="🚫", style=discord.ButtonStyle.danger
):
    """Opens the reason modal; the rejection itself happens when the modal is submitted."""

    async def interaction_check(self, interaction: discord.Interaction[Any]) -> bool:
        return await reviewing.allow_moderators(interaction)

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        # The modal is the acknowledgement; whether the job is still pending is checked on submit.
        try:
            await interaction.response.send_modal(RejectReason(self.job_id))
        except Exception as error:
            await answer_error(interaction, error, where=f"Reject of job {self.job_id}")


class RejectReason(discord.ui.Modal):
    """The optional reason the member will read. Lives in memory only: a restart drops an open modal,
    and the moderator simply presses Reject again (the card's buttons survive restarts)."""

    reason: discord.ui.TextInput[RejectReason] = discord.ui.TextInput(
        label="Reason (optional; the member sees it)",
        custom_id="reason",
        style=discord.TextStyle.paragraph,
        required=False,
        max_length=MAX_REASON_LENGTH,
        placeholder="e.g. Please keep requests suitable for everyone here.",
    )

    def __init__(self, job_id: int) -> None:
        super().__init__(
            title=f"Reject job #{job_id}", custom_id=f"review:reason:{job_id}", timeout=REASON_TIMEOUT_SECONDS
        )
        self.job_id = job_id

    async def interaction_check(self, interaction: discord.Interaction[Any]) -> bool:
        return await reviewing.allow_moderators(interaction)

    async def on_submit(self, interaction: discord.Interaction[Any]) -> None:
        try:
            await interaction.response.defer()  # an update of the card the Reject button was on
            await reviewing.reject(interaction, self.job_id, self.reason.value.strip() or None)
        except Exception as error:
            await answer_error(interaction, error, where=f"Reject of job {self.job_id}")


def review_view(job: Job) -> discord.ui.View:
    """Approve / Reject while the job waits; the same buttons, disabled, once it is decided."""
    assert job.id is not None
    decided = job.state is not JobState.PENDING_REVIEW
    view = discord.ui.View(timeout=None)
    view.add_item(ApproveButton(job.id, disabled=decided))
    view.add_item(RejectButton(job.id, disabled=decided))
    return view


# -- issue 12: Continue and Remix under a posted video, and the modals of Animate with Kling ----------


class ContinueButton(JobButton, prefix="video:continue", label="Continue", emoji="⏭️"):
    """Opens the modal that carries the video on from its last frame (charged to whoever presses)."""

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        job = await iterating.job_to_follow(interaction, self.job_id)
        if job is not None:  # the modal is the acknowledgement; the request is checked on submit
            await interaction.response.send_modal(modals.ContinueModal(self.job_id, job.duration))


class RemixButton(JobButton, prefix="video:remix", label="Remix", emoji="🎛️"):
    """Opens the modal with the original prompt to edit: the same video settings, a new prompt."""

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        job = await iterating.job_to_follow(interaction, self.job_id)
        if job is not None:
            await interaction.response.send_modal(modals.RemixModal(self.job_id, job.prompt))


# -- issue 13: the price before anything is spent, and forgetting a member ---------------------------


class QuoteConfirmButton(
    JobButton, prefix="quote:confirm", label="Confirm", emoji="✅", style=discord.ButtonStyle.success
):
    """Confirms a quote: the request runs again through every check and proceeds; its member only."""

    async def interaction_check(self, interaction: discord.Interaction[Any]) -> bool:
        return await quoting.allow_asker(interaction, self.job_id)

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        await interaction.response.defer()  # an update of the quote, which follows the decision
        try:
            await quoting.confirm(interaction, self.job_id)
        except Exception as error:
            await answer_error(interaction, error, where=f"Confirm of quote {self.job_id}")


class QuoteCancelButton(JobButton, prefix="quote:cancel", label="Cancel"):
    """Cancels a quote (nothing was spent); its member only."""

    async def interaction_check(self, interaction: discord.Interaction[Any]) -> bool:
        return await quoting.allow_asker(interaction, self.job_id)

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        await interaction.response.defer()
        try:
            await quoting.cancel(interaction, self.job_id)
        except Exception as error:
            await answer_error(interaction, error, where=f"Cancel of quote {self.job_id}")


class QuoteView(discord.ui.View):
    """Confirm and Cancel under a quote. Its timeout is the quote's lifetime: unanswered by then, it
    expires the quote and says so on it. The buttons are ``DynamicItem``s, so after a restart (when
    this timer is gone) they still work, and a press after the time is up says it expired."""

    def __init__(self, bot: KlingBot, quote_id: int, *, lifetime: float) -> None:
        super().__init__(timeout=lifetime)
        self.bot, self.quote_id = bot, quote_id
        self.message: discord.WebhookMessage | None = None
        self.add_item(QuoteConfirmButton(quote_id))
        self.add_item(QuoteCancelButton(quote_id))

    async def on_timeout(self) -> None:
        if self.message is not None:
            await quoting.expire(self.bot, self.quote_id, self.message)


def ended_view(number: int, label: str) -> discord.ui.View:
    """One disabled button saying how a quote or a confirmation ended ("Quote expired", "Erased")."""
    view = discord.ui.View(timeout=None)
    view.add_item(discord.ui.Button(label=label, disabled=True, custom_id=f"ended:{number}"))
    view.stop()  # nothing to listen for: the bot keeps no state for it
    return view


class ForgetButton(
    JobButton, prefix="privacy:forget", label="Forget everything", style=discord.ButtonStyle.danger
):
    """Erases the member's prompts and links here: the member themselves, or an admin acting for them."""

    async def interaction_check(self, interaction: discord.Interaction[Any]) -> bool:
        return await forgetting.allow(interaction, self.job_id)

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        await interaction.response.defer()
        try:
            await forgetting.forget(interaction, self.job_id)
        except Exception as error:
            await answer_error(interaction, error, where=f"Forget of member {self.job_id}")


class KeepButton(JobButton, prefix="privacy:keep", label="Keep"):
    """Leaves everything as it is."""

    async def interaction_check(self, interaction: discord.Interaction[Any]) -> bool:
        return await forgetting.allow(interaction, self.job_id)

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        await interaction.response.defer()
        try:
            await forgetting.keep(interaction, self.job_id)
        except Exception as error:
            await answer_error(interaction, error, where=f"Keep of member {self.job_id}")


def forget_view(member_id: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(ForgetButton(member_id))
    view.add_item(KeepButton(member_id))
    return view


# -- issue 14: on the moderators' list of jobs in flight (/kling-admin jobs) --------------------------


class AdminCancelButton(JobButton, prefix="admin:cancel", label="Cancel", emoji="↩️"):
    """Cancels a waiting job (review or queue) and gives its credits back; moderators only."""

    def __init__(self, job_id: int, *, disabled: bool = False) -> None:
        super().__init__(job_id, disabled=disabled)
        self.item.label = f"Cancel #{job_id}"

    async def interaction_check(self, interaction: discord.Interaction[Any]) -> bool:
        return await reviewing.allow_moderators(interaction)

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        await interaction.response.defer(ephemeral=True)
        try:
            await moderation.cancel(interaction, self.job_id)
        except Exception as error:
            await answer_error(interaction, error, where=f"moderator's Cancel of job {self.job_id}")


def admin_jobs_view(job_ids: list[int]) -> discord.ui.View:
    """A Cancel button per waiting job of the list (Discord: at most 25 buttons on a message)."""
    view = discord.ui.View(timeout=None)
    for job_id in job_ids[:25]:
        view.add_item(AdminCancelButton(job_id))
    return view


#: Registered by the bot at start-up, so buttons posted before a restart are handled.
DYNAMIC_ITEMS: tuple[type[JobButton], ...] = (
    CancelButton,
    RegenerateButton,
    DeleteVideoButton,
    ApproveButton,
    RejectButton,
    ContinueButton,
    RemixButton,
    # -- issue 13
    QuoteConfirmButton,
    QuoteCancelButton,
    ForgetButton,
    KeepButton,
    # -- issue 14
    AdminCancelButton,
)
