"""The review queue's cog: it holds nothing, since the queue's state lives in the database.

The flow is in :mod:`cogs.reviewing`, the Approve and Reject buttons in :mod:`cogs.views`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from discord.ext import commands

if TYPE_CHECKING:
    from bot import KlingBot


class Review(commands.Cog):
    """Holds nothing but the registration: the queue's state lives in the database."""

    def __init__(self, bot: KlingBot) -> None:
        self.bot = bot


async def setup(bot: KlingBot) -> None:
    await bot.add_cog(Review(bot))
