"""Discord-side helpers every cog shares: the interaction alias, safe mentions, user-facing errors."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

import discord

if TYPE_CHECKING:
    from bot import KlingBot

Interaction: TypeAlias = "discord.Interaction[KlingBot]"

#: The bot-wide default: nobody is pinged unless a message names them explicitly.
NO_MENTIONS = discord.AllowedMentions(everyone=False, users=False, roles=False, replied_user=False)


def mention_only(user: discord.abc.Snowflake) -> discord.AllowedMentions:
    """Allow a ping to this one user and nobody else, whatever the text around it says."""
    return discord.AllowedMentions(everyone=False, roles=False, users=[user], replied_user=False)


class UserFacingError(Exception):
    """A refusal whose message is written for the member; the tree answers it ephemerally."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
