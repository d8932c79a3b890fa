"""What the delivery worker needs to know about a server on another process's shard.

With several processes, any process may post any job's video (the worker is shard-independent), but a
process only has the servers of its own shards in its cache. The upload limit of another one (its boost
tier) is asked of Discord by REST and remembered for a while, so a video for a boosted server is still
attached, not linked, whichever process posts it.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Final

import discord

if TYPE_CHECKING:
    from bot import KlingBot

log = logging.getLogger(__name__)

#: How long a fetched upload limit is trusted (a boost tier rarely changes).
REMEMBER_SECONDS: Final = 600.0


class RemoteUploadLimits:
    """Upload limits of servers this process does not hold in its cache, from ``GET /guilds/{id}``."""

    def __init__(self, bot: KlingBot) -> None:
        self.bot = bot
        self._known: dict[int, tuple[float, int | None]] = {}

    async def of(self, guild_id: int) -> int | None:
        """The server's upload limit in bytes, or ``None`` when Discord would not say (the default then)."""
        known = self._known.get(guild_id)
        if known is not None and time.monotonic() - known[0] < REMEMBER_SECONDS:
            return known[1]
        limit: int | None
        try:
            limit = (await self.bot.fetch_guild(guild_id, with_counts=False)).filesize_limit
        except discord.HTTPException as error:
            log.info("Upload limit of server %s unknown (%s); using the default", guild_id, error)
            limit = None
        self._known[guild_id] = (time.monotonic(), limit)
        return limit
