"""The audit channel: one line per event, for the server's moderators and the operator.

Never a secret, never a ping (``NO_MENTIONS``); a missing channel or permission is logged, not raised,
because an audit line must never break the action it records.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord

from cogs.common import NO_MENTIONS

if TYPE_CHECKING:
    from bot import KlingBot

log = logging.getLogger(__name__)


async def audit(bot: KlingBot, guild_id: int, line: str) -> None:
    """Post ``line`` in the guild's audit channel, when one is set."""
    settings = await bot.storage.get_guild_settings(guild_id)
    if settings.audit_channel_id is None:
        return
    channel = bot.get_partial_messageable(settings.audit_channel_id, guild_id=guild_id)
    try:
        await channel.send(line[:2000], allowed_mentions=NO_MENTIONS)
    except discord.HTTPException as error:
        log.warning("Could not write to the audit channel of guild %s: %s", guild_id, error)
