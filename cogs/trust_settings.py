"""The admins' side of issue 13: ``/kling-admin confirm``, ``retention`` and ``forget``.

The commands are declared in :mod:`cogs.admin` (which checks Manage Server); their bodies live here.
They change settings through the admin cog's own ``update`` and answer through its ``done`` (the
private answer and the audit line), passed in as :class:`AdminActions`.
"""

from __future__ import annotations

from typing import Protocol, Unpack

import discord

from cogs import forgetting
from cogs.common import Interaction
from storage import GuildSettings, GuildSettingsChanges
from ulazai.pricing import DIRECTORY_DISCOUNT


class AdminActions(Protocol):
    """What the admin cog offers its commands' bodies."""

    async def update(self, guild_id: int, **changes: Unpack[GuildSettingsChanges]) -> GuildSettings: ...

    async def done(
        self, interaction: Interaction, answer: str, audit_line: str | None = None, *, icon: str = "⚙️"
    ) -> None: ...


def confirm_text(settings: GuildSettings) -> str:
    """When members are shown the price first (the settings embed, the admins' answers)."""
    if settings.directory_discount:
        return "Every request (the Prompt Directory discount is on)"
    if settings.confirm_above_credits == 0:
        return "Never"
    return f"Above {settings.confirm_above_credits:,} credits"


def retention_text(settings: GuildSettings) -> str:
    days = settings.retention_days
    return "Forever" if days == 0 else f"{days:,} day{'s' if days != 1 else ''} after a video ends"


async def confirm(admin: AdminActions, interaction: Interaction, credits: int) -> None:
    await interaction.response.defer(ephemeral=True)
    assert interaction.guild_id is not None
    settings = await admin.update(interaction.guild_id, confirm_above_credits=credits)
    if credits:
        answer = (
            f"A request estimated above {credits:,} credits now shows its member the price first, with "
            "Confirm and Cancel; nothing is held or sent until they confirm."
        )
        line = f"set price confirmation for requests above {credits:,} credits."
    else:
        answer = "Members are no longer asked to confirm a price."
        line = "turned price confirmation off."
    if settings.directory_discount:
        answer += (
            f" While the Prompt Directory discount is on ({DIRECTORY_DISCOUNT} credits off, published), every "
            "request is confirmed anyway: publishing a member's prompt needs their click."
        )
    await admin.done(interaction, answer, line)


async def retention(admin: AdminActions, interaction: Interaction, days: int) -> None:
    await interaction.response.defer(ephemeral=True)
    assert interaction.guild_id is not None
    await admin.update(interaction.guild_id, retention_days=days)
    if days:
        answer = (
            f"Prompts, image links, video links and delivery notes of videos that ended more than {days:,} "
            "days ago are erased from now on, a few at a time (amounts and states stay)."
        )
        line = f"set retention to {days:,} days."
    else:
        answer = (
            "Prompts and links are kept forever now (members can still erase theirs with `/video forget`)."
        )
        line = "set retention to forever."
    await admin.done(interaction, answer, line)


async def forget(interaction: Interaction, member: discord.Member) -> None:
    """The same confirmation as ``/video forget``, for a member who asked a moderator."""
    await forgetting.ask(interaction, member)
