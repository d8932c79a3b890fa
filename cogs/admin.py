"""``/kling-admin``: everything a server's admins decide, from Discord, without a restart.

Where it runs (``channel``), whether requests wait for a moderator (``review``), who gets how much
(``quota``, ``grant``), what may not be asked for (``blocklist``), where the audit log goes (``audit``),
what the whole server may spend (``budget``), the Prompt Directory discount (``directory``), and all of
it on one embed (``settings``); the price shown first, retention and forgetting (:mod:`cogs.trust_settings`);
the operator's cockpit (``usage``, ``resume``, ``alert``, ``jobs``, ``ban``, ``unban``: bodies in
``cogs.usage_report``, ``cogs.provider_line``, ``cogs.moderation``).

The group carries ``default_permissions(manage_guild=True)``, but a server's admins can hand any
command to anyone in Server Settings > Integrations, so every subcommand also checks the member's
permissions at run time (:meth:`Admin.interaction_check`). Every answer is ephemeral and sent with
``NO_MENTIONS``: admins type terms, reasons and pick roles, and none of it may ping anybody. Each change
is written to the audit log with who made it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Unpack

import discord
from discord import app_commands
from discord.ext import commands

from cogs import blocklist_edits, moderation, provider_line, trust_settings, usage_report
from cogs.audit import audit, who
from cogs.common import NO_MENTIONS, Interaction, UserFacingError, check_bot_can_post
from cogs.settings_card import (
    ALLOWANCE_PERIODS,
    BLOCKLIST_ACTIONS,
    BUDGET_PERIODS,
    EVERY,
    budget_text,
    grant_texts,
    settings_embed,
    where_videos_may_be_made,
)
from generation import server_settings
from storage import (
    DuplicateOperation,
    GuildSettings,
    GuildSettingsChanges,
    InvalidSetting,
    JobState,
)
from ulazai.pricing import DIRECTORY_DISCOUNT

if TYPE_CHECKING:
    from bot import KlingBot

log = logging.getLogger(__name__)

ADMIN_REFUSAL = "Only members with the Manage Server permission can change how the video bot runs here."
MAX_TERM_LENGTH = 100
MAX_CREDITS = 1_000_000
MAX_BUDGET = 100_000_000

BanReason = app_commands.Range[str, 1, moderation.MAX_REASON]


class NotAnAdmin(UserFacingError, app_commands.CheckFailure):
    """The run-time permission check failed. A ``CheckFailure`` so discord.py hands it to the tree's
    ``on_error``, and a ``UserFacingError`` so the member reads this sentence, not a generic one."""


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class Admin(
    commands.GroupCog,
    group_name="kling-admin",
    group_description="Run the video bot in this server (needs Manage Server)",
):
    """The admins' commands; see the module docstring."""

    def __init__(self, bot: KlingBot) -> None:
        self.bot = bot
        super().__init__()

    async def interaction_check(self, interaction: Interaction, /) -> bool:  # type: ignore[override]
        """Runs before every subcommand: the default permission can be overridden by the server."""
        permissions = interaction.permissions
        if permissions.administrator or permissions.manage_guild:
            return True
        raise NotAnAdmin(ADMIN_REFUSAL)

    # -- helpers -------------------------------------------------------------------------------------

    @staticmethod
    def guild_id(interaction: Interaction) -> int:
        assert interaction.guild_id is not None  # guild_only
        return interaction.guild_id

    async def update(self, guild_id: int, **changes: Unpack[GuildSettingsChanges]) -> GuildSettings:
        """Change settings; a value storage refuses becomes one sentence for the admin."""
        return await self.edit(guild_id, lambda _: changes)

    async def edit(
        self, guild_id: int, change: Callable[[GuildSettings], GuildSettingsChanges]
    ) -> GuildSettings:
        """A change computed from the current settings under the row's lock (no lost concurrent edits)."""
        try:
            return await self.bot.storage.edit_guild_settings(guild_id, change)
        except InvalidSetting as error:
            raise UserFacingError(
                f"That can't be set: {error.field.replace('_', ' ')} {error.message}."
            ) from None

    async def done(
        self, interaction: Interaction, answer: str, audit_line: str | None = None, *, icon: str = "⚙️"
    ) -> None:
        """Answer the admin privately, then record the change (who did it) in the audit log."""
        await interaction.followup.send(answer, ephemeral=True, allowed_mentions=NO_MENTIONS)
        if audit_line is not None:
            line = f"{icon} {who(interaction.user.id)} {audit_line}"
            await audit(self.bot, self.guild_id(interaction), line)

    # -- where and whether -----------------------------------------------------------------------------

    @app_commands.command(name="channel", description="Allow or stop video generation in a channel")
    @app_commands.describe(
        channel="The text channel to open or close",
        enabled="True: videos may be made there; False: not any more. With none allowed, every channel is open",
    )
    async def channel(self, interaction: Interaction, channel: discord.TextChannel, enabled: bool) -> None:
        await interaction.response.defer(ephemeral=True)
        guild_id = self.guild_id(interaction)

        try:
            settings = await self.edit(
                guild_id,
                lambda current: {
                    "allowed_channel_ids": server_settings.set_channel(
                        current.allowed_channel_ids, channel.id, enabled=enabled
                    )
                },
            )
        except server_settings.NoChange:
            current = (await self.bot.storage.get_guild_settings(guild_id)).allowed_channel_ids
            state = "open" if enabled else "closed"
            await self.done(
                interaction, f"{channel.mention} is already {state}. {where_videos_may_be_made(current)}"
            )
            return
        except server_settings.NothingSingledOut:
            raise UserFacingError(
                "No channel is singled out yet, so videos can be made everywhere. To limit them, allow "
                "the channels you want with `enabled: True`: every other channel then closes."
            ) from None
        now = where_videos_may_be_made(settings.allowed_channel_ids)
        verb = "allowed" if enabled else "stopped"
        await self.done(
            interaction,
            f"{'Opened' if enabled else 'Closed'} {channel.mention}. {now}",
            f"{verb} video generation in {channel.mention}. {now}",
        )

    @app_commands.command(name="review", description="Make every request wait for a moderator, or stop that")
    @app_commands.describe(
        channel="Where requests wait for a moderator's Approve or Reject; leave empty to turn review off"
    )
    async def review(self, interaction: Interaction, channel: discord.TextChannel | None = None) -> None:
        await interaction.response.defer(ephemeral=True)
        guild_id = self.guild_id(interaction)
        if channel is not None:
            check_bot_can_post(channel)
        before = await self.bot.storage.get_guild_settings(guild_id)
        await self.update(guild_id, review_channel_id=None if channel is None else channel.id)
        waiting = (await self.bot.storage.unfinished_jobs(guild_id)).get(JobState.PENDING_REVIEW, 0)
        leftover = ""
        if waiting and before.review_channel_id and before.review_channel_id != getattr(channel, "id", None):
            leftover = (
                f" {waiting} request{'s' if waiting != 1 else ''} already waiting keep their cards in "
                f"<#{before.review_channel_id}>: decide them there."
            )
        if channel is None:
            answer = "Review is off: new requests go straight to the queue." + leftover
            line = "turned review off."
        else:
            answer = (
                f"Review is on: every new request waits in {channel.mention} until a moderator (Manage "
                "Messages or Manage Server) approves or rejects it. The member's credits are held meanwhile."
                + leftover
            )
            line = f"turned review on in {channel.mention}."
        await self.done(interaction, answer, line)

    # -- who gets how much -------------------------------------------------------------------------------

    @app_commands.command(name="quota", description="Set the credits each member (or a role) gets per period")
    @app_commands.describe(
        credits="Credits per member each period; with a role, 0 removes that role's own allowance",
        period="How often allowances refill (one schedule for the whole server)",
        role="Only for members with this role; a member gets the largest allowance that applies",
    )
    @app_commands.choices(period=ALLOWANCE_PERIODS)
    async def quota(
        self,
        interaction: Interaction,
        credits: app_commands.Range[int, 0, MAX_CREDITS],
        period: app_commands.Choice[str],
        role: discord.Role | None = None,
    ) -> None:
        await interaction.response.defer(ephemeral=True)
        guild_id = self.guild_id(interaction)
        if role is not None and role.is_default():
            role = None  # @everyone's allowance is the server's allowance
        before = await self.bot.storage.get_guild_settings(guild_id)
        if role is None:
            settings = await self.update(guild_id, allowance_credits=credits, allowance_period=period.value)
            what = f"Every member now gets {credits:,} credits {EVERY[period.value]}."
            line = f"set the allowance to {credits:,} credits {EVERY[period.value]} per member."
        else:
            await self.bot.storage.set_role_allowance(guild_id, role.id, credits or None)
            settings = await self.update(guild_id, allowance_period=period.value)
            if credits:
                what = f"Members with {role.mention} now get {credits:,} credits {EVERY[period.value]}."
                line = f"set the allowance of {role.mention} to {credits:,} credits {EVERY[period.value]}."
            else:
                what = f"{role.mention} no longer has an allowance of its own."
                line = f"removed the allowance of {role.mention}."
        notes = [what, "A higher allowance applies at once; a lower one at each member's next refill."]
        if before.allowance_period != settings.allowance_period:
            notes.append(
                f"Every allowance now refills {period.value} (one schedule for the whole server), "
                f"from the next {period.value} boundary."
            )
        if role is not None:
            notes.append("A member gets the largest allowance that applies.")
        await self.done(interaction, " ".join(notes), line)

    @app_commands.command(name="grant", description="Give a member bonus credits (negative takes them away)")
    @app_commands.describe(
        member="Who gets the credits",
        credits="Bonus credits to add (they never expire); negative takes bonus credits away, never below 0",
    )
    async def grant(
        self,
        interaction: Interaction,
        member: discord.Member,
        credits: app_commands.Range[int, -MAX_CREDITS, MAX_CREDITS],
    ) -> None:
        await interaction.response.defer(ephemeral=True)
        guild_id = self.guild_id(interaction)
        if credits == 0:
            raise UserFacingError("Give a number of credits other than 0.")
        if member.bot:
            raise UserFacingError("Bots can't make videos, so they have no credits.")
        try:
            result = await self.bot.storage.grant(
                guild_id,
                member.id,
                credits,
                actor_id=interaction.user.id,
                reason="/kling-admin grant",
                idempotency_key=str(interaction.id),
                role_ids=[role.id for role in member.roles],
            )
        except DuplicateOperation:
            raise UserFacingError("This grant was already applied; see `/credits member:`.") from None
        answer, line = grant_texts(member.mention, result, asked=credits)
        await self.done(interaction, answer, line, icon="🎁")

    # -- what may be asked for ---------------------------------------------------------------------------

    @app_commands.command(
        name="blocklist", description="Add, remove or list the terms prompts may not contain"
    )
    @app_commands.describe(
        action="Add a term, remove one, or list them all",
        term="A word or phrase, matched on whole words however disguised; end it with * for word starts",
    )
    @app_commands.choices(action=BLOCKLIST_ACTIONS)
    async def blocklist(
        self,
        interaction: Interaction,
        action: app_commands.Choice[str],
        term: app_commands.Range[str, 1, MAX_TERM_LENGTH] | None = None,
    ) -> None:
        await interaction.response.defer(ephemeral=True)
        await blocklist_edits.blocklist(self, interaction, action.value, term)

    # -- the audit log -------------------------------------------------------------------------------------

    @app_commands.command(name="audit", description="Choose where the audit log goes, or turn it off")
    @app_commands.describe(
        channel="Where one line per request, decision, delivery and change goes; empty: off"
    )
    async def audit_log(self, interaction: Interaction, channel: discord.TextChannel | None = None) -> None:
        await interaction.response.defer(ephemeral=True)
        guild_id = self.guild_id(interaction)
        if channel is not None:
            check_bot_can_post(channel)
        before = (await self.bot.storage.get_guild_settings(guild_id)).audit_channel_id
        admin = who(interaction.user.id)
        if before is not None and before != getattr(channel, "id", None):
            # Said where the moderators were reading until now, before the log moves or stops.
            farewell = (
                f"moved the audit log to {channel.mention}." if channel else "turned the audit log off."
            )
            await audit(self.bot, guild_id, f"📋 {admin} {farewell}", channel_id=before)
        await self.update(guild_id, audit_channel_id=None if channel is None else channel.id)
        if channel is None:
            await self.done(interaction, "The audit log is off.")
            return
        if before != channel.id:
            line = f"📋 {admin} made this channel the video bot's audit log."
            await audit(self.bot, guild_id, line, channel_id=channel.id)
        await self.done(
            interaction,
            f"The audit log goes to {channel.mention}: one line per request, review decision, delivery, "
            "failure and refund, grant and settings change.",
        )

    # -- money ---------------------------------------------------------------------------------------------

    @app_commands.command(name="budget", description="Cap what the whole server may spend per period")
    @app_commands.describe(
        credits="The most credits the whole server may spend per period; 0 removes the cap",
        period="When the budget starts over",
    )
    @app_commands.choices(period=BUDGET_PERIODS)
    async def budget(
        self,
        interaction: Interaction,
        credits: app_commands.Range[int, 0, MAX_BUDGET],
        period: app_commands.Choice[str],
    ) -> None:
        await interaction.response.defer(ephemeral=True)
        guild_id = self.guild_id(interaction)
        await self.update(guild_id, budget_credits=credits or None, budget_period=period.value)
        spend = await self.bot.storage.guild_spend(guild_id)
        if spend.budget is None:
            answer = f"The server budget has no cap now; allowances still apply. {budget_text(spend)}."
            line = f"removed the server budget cap (budget period: {period.value})."
        else:
            answer = f"Server budget: {budget_text(spend)}."
            if spend.remaining == 0:
                answer += " New requests are refused until then."
            line = f"set the server budget to {spend.budget:,} credits {EVERY[period.value]}."
        await self.done(interaction, answer, line)

    @app_commands.command(name="directory", description="Turn the Prompt Directory discount on or off")
    @app_commands.describe(
        enabled=f"True: {DIRECTORY_DISCOUNT} credits off every video, and its prompt and video are published "
        "in UlazAI's public Prompt Directory"
    )
    async def directory(self, interaction: Interaction, enabled: bool) -> None:
        await interaction.response.defer(ephemeral=True)
        await self.update(self.guild_id(interaction), directory_discount=enabled)
        if enabled:
            answer = (
                f"The Prompt Directory discount is on: every new video costs {DIRECTORY_DISCOUNT} credits less, "
                "and its prompt and video are published in UlazAI's public Prompt Directory. Every receipt "
                "and status card says so."
            )
        else:
            answer = (
                "The Prompt Directory discount is off: new prompts and videos stay private, at full price."
            )
        await self.done(
            interaction, answer, f"turned the Prompt Directory discount {'on' if enabled else 'off'}."
        )

    # -- everything at once ------------------------------------------------------------------------------

    @app_commands.command(
        name="settings", description="See every video bot setting, this period's spend and jobs in flight"
    )
    async def settings(self, interaction: Interaction) -> None:
        await interaction.response.defer(ephemeral=True)
        guild_id = self.guild_id(interaction)
        settings = await self.bot.storage.get_guild_settings(guild_id)
        spend = await self.bot.storage.guild_spend(guild_id)
        counts = await self.bot.storage.unfinished_jobs(guild_id)
        more = await moderation.cockpit_fields(self.bot.storage, guild_id)
        await interaction.followup.send(
            embed=settings_embed(settings, spend, counts, more), ephemeral=True, allowed_mentions=NO_MENTIONS
        )

    # -- issue 13: the price before anything is spent, retention, forgetting a member ----------------------
    @app_commands.command(name="confirm", description="Show members the price first above this many credits")
    @app_commands.describe(credits="Requests estimated above this many credits ask Confirm first; 0: never")
    async def confirm(self, interaction: Interaction, credits: app_commands.Range[int, 0, 100_000]) -> None:
        await trust_settings.confirm(self, interaction, credits)

    @app_commands.command(name="retention", description="How long prompts and links are kept after a video")
    @app_commands.describe(days="Days after a video ends until its prompt and links are erased; 0: forever")
    async def retention(self, interaction: Interaction, days: app_commands.Range[int, 0, 3650]) -> None:
        await trust_settings.retention(self, interaction, days)

    @app_commands.command(name="forget", description="Erase a member's prompts and links, at their request")
    @app_commands.describe(member="The member whose prompts, image and video links are erased")
    async def forget(self, interaction: Interaction, member: discord.Member) -> None:
        await trust_settings.forget(interaction, member)

    # -- issue 14: the operator's cockpit ------------------------------------------------------------

    @app_commands.command(name="usage", description="Where the credits went here: a summary, a chart, a CSV")
    @app_commands.describe(period="How far back: the last 24 hours, 7 days (the default) or 30 days")
    @app_commands.choices(period=usage_report.PERIOD_CHOICES)
    async def usage(self, interaction: Interaction, period: app_commands.Choice[str] | None = None) -> None:
        await interaction.response.defer(ephemeral=True)
        await usage_report.answer(interaction, period.value if period else "week")

    @app_commands.command(name="resume", description="Try the paused video line now (the account is fixed)")
    async def resume(self, interaction: Interaction) -> None:
        await interaction.response.defer(ephemeral=True)
        await provider_line.resume(interaction)

    @app_commands.command(name="alert", description="An audit line when the UlazAI account runs low")
    @app_commands.describe(credits="Below this many credits left on the account, one audit line; 0: off")
    async def alert(self, interaction: Interaction, credits: app_commands.Range[int, 0, MAX_BUDGET]) -> None:
        await interaction.response.defer(ephemeral=True)
        await provider_line.set_alert(interaction, credits)

    @app_commands.command(name="jobs", description="The videos waiting or being made here, to cancel")
    async def jobs(self, interaction: Interaction) -> None:
        await interaction.response.defer(ephemeral=True)
        await moderation.list_jobs(interaction)

    @app_commands.command(name="ban", description="Stop a member from making videos here")
    @app_commands.describe(member="Who may no longer make videos here", reason="Why (the member reads it)")
    async def ban(
        self, interaction: Interaction, member: discord.Member, reason: BanReason | None = None
    ) -> None:
        await interaction.response.defer(ephemeral=True)
        await moderation.ban(interaction, member, reason)

    @app_commands.command(name="unban", description="Let a banned member make videos here again")
    @app_commands.describe(member="Who may make videos here again")
    async def unban(self, interaction: Interaction, member: discord.Member) -> None:
        await interaction.response.defer(ephemeral=True)
        await moderation.unban(interaction, member)


async def setup(bot: KlingBot) -> None:
    await bot.add_cog(Admin(bot))
