"""Forgetting a member: ``/video forget`` (the member) and ``/kling-admin forget`` (an admin, for a member
who asked a moderator).

Both answer with a private confirmation, *Forget everything* or *Keep*. Forgetting
(:meth:`storage.Storage.forget_member`) cancels and refunds the member's requests still waiting in the
queue or for review, erases the prompt, image and video links and delivery notes of every job of
theirs here (the rows stay, with their amounts and states, so the ledger still balances), and flags
the jobs the provider is making, which are posted and then erased when they end. Then the status and
review cards of the erased jobs are redrawn, so the prompt leaves Discord's copies too, and the answer
says what was erased. The audit line names who asked, never a prompt.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import discord

from cogs import cards, reviewing, views
from cogs.audit import audit, who
from cogs.common import NO_MENTIONS, Interaction, plural
from storage import ForgetReport

if TYPE_CHECKING:
    from bot import KlingBot


def is_admin(permissions: discord.Permissions) -> bool:
    return permissions.administrator or permissions.manage_guild


async def ask(interaction: Interaction, member: discord.abc.User) -> None:
    """The command: acknowledge, then ask whether to forget ``member`` (the caller, or an admin's pick)."""
    await interaction.response.defer(ephemeral=True)
    own = member.id == interaction.user.id
    who_, they, their = ("you", "you", "Your") if own else (member.mention, "they", "Their")
    text = (
        f"This erases, for good, what {who_} wrote and linked here: the prompt, image links and video link "
        f"of every video {they} asked for in this server, and the prompt on its status and review cards. "
        "Requests still queued or waiting for review are cancelled and their credits come back; videos "
        f"being made now are posted, then erased. {their} credits and their history stay. Videos already "
        "posted stay in the channel (their Delete button removes them)."
    )
    if member.bot:
        await interaction.followup.send(
            "Bots make no videos, so there is nothing to erase.", ephemeral=True, allowed_mentions=NO_MENTIONS
        )
        return
    await interaction.followup.send(
        text, view=views.forget_view(member.id), ephemeral=True, allowed_mentions=NO_MENTIONS
    )


async def allow(interaction: discord.Interaction[Any], member_id: int) -> bool:
    """``interaction_check`` of the confirmation: the member themselves, or an admin of the server."""
    if interaction.user.id == member_id or is_admin(interaction.permissions):
        return True
    await interaction.response.send_message(
        "Only that member, or an admin, can decide this.", ephemeral=True, allowed_mentions=NO_MENTIONS
    )
    return False


async def forget(interaction: discord.Interaction[Any], member_id: int) -> None:
    """*Forget everything* (acknowledged): erase, say what was erased, redraw the cards, audit."""
    bot: KlingBot = interaction.client
    assert interaction.guild_id is not None
    report = await bot.storage.forget_member(interaction.guild_id, member_id, actor_id=interaction.user.id)
    own = member_id == interaction.user.id
    await interaction.edit_original_response(
        content=summary(report, own=own),
        view=views.ended_view(member_id, "Erased"),
        allowed_mentions=NO_MENTIONS,
    )
    for job in report.erased:
        await cards.refresh_status_card(bot, job)
        await reviewing.refresh_review_card(bot, job)
    line = (
        f"🧹 {who(member_id)} erased their prompts and links: {counts(report)}."
        if own
        else f"🧹 {who(interaction.user.id)} erased the prompts and links of {who(member_id)}: {counts(report)}."
    )
    await audit(bot, interaction.guild_id, line)


async def keep(interaction: discord.Interaction[Any], member_id: int) -> None:
    await interaction.edit_original_response(
        content="Nothing was erased.", view=views.ended_view(member_id, "Kept"), allowed_mentions=NO_MENTIONS
    )


def counts(report: ForgetReport) -> str:
    parts = [f"{plural(len(report.erased), 'video')} erased"]
    if report.cancelled:
        parts.append(f"{len(report.cancelled)} cancelled ({report.refunded} credits refunded)")
    if report.pending:
        parts.append(f"{report.pending} erased when they end")
    return ", ".join(parts)


def summary(report: ForgetReport, *, own: bool) -> str:
    """What was erased, in counts (the member's own, or the admin's view of the member's)."""
    erased = len(report.erased)
    lines = [
        f"Erased the prompts, image links and video links of {plural(erased, 'video')}."
        if erased
        else "There were no prompts or links to erase."
    ]
    if report.cancelled:
        held = "was" if len(report.cancelled) == 1 else "were"
        lines.append(
            f"{plural(len(report.cancelled), 'request')} that had not started {held} cancelled; "
            f"{report.refunded} credits are back."
        )
    if report.pending:
        lines.append(f"{plural(report.pending, 'video')} being made now will be posted, then erased.")
    if report.quotes:
        lines.append(f"{plural(report.quotes, 'price quote')} deleted.")
    lines.append(f"{'Your' if own else 'Their'} credits and their history stay, so the numbers still add up.")
    return "\n".join(lines)
