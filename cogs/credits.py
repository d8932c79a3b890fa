"""``/credits``: a member's allowance, bonus credits, holds and next refill, privately."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from cogs import cards
from cogs.common import NO_MENTIONS, Interaction, UserFacingError

if TYPE_CHECKING:
    from bot import KlingBot


class Credits(commands.Cog):
    """Answers "how much can I still make?"."""

    def __init__(self, bot: KlingBot) -> None:
        self.bot = bot

    @app_commands.command(
        name="credits", description="Your video credits here: allowance, bonus and next refill"
    )
    @app_commands.guild_only()
    @app_commands.describe(member="Someone else's credits (needs the Manage Server permission)")
    async def credits(self, interaction: Interaction, member: discord.Member | None = None) -> None:
        await interaction.response.defer(ephemeral=True)
        assert interaction.guild_id is not None
        target = member or interaction.user
        if target.id != interaction.user.id and not interaction.permissions.manage_guild:
            raise UserFacingError("Looking at someone else's credits needs the Manage Server permission.")
        role_ids = [role.id for role in target.roles] if isinstance(target, discord.Member) else []
        balance = await self.bot.storage.balance(interaction.guild_id, target.id, role_ids)
        whose = "Your" if target.id == interaction.user.id else f"{target.display_name}'s"
        embed = discord.Embed(title=f"{whose} video credits", colour=cards.BRAND_COLOUR)
        embed.add_field(
            name="Allowance left",
            value=f"{balance.allowance_left} of {balance.allowance_total} ({balance.period})",
            inline=True,
        )
        embed.add_field(name="Bonus credits", value=str(balance.bonus), inline=True)
        embed.add_field(name="Held for videos in progress", value=str(balance.reserved), inline=True)
        embed.add_field(name="Available now", value=str(balance.available), inline=True)
        embed.add_field(
            name="Next refill",
            value=f"<t:{int(balance.next_refill_at.timestamp())}:R>",
            inline=True,
        )
        embed.set_footer(text="Bonus credits never expire; the allowance is spent first.")
        await interaction.followup.send(embed=embed, ephemeral=True, allowed_mentions=NO_MENTIONS)


async def setup(bot: KlingBot) -> None:
    await bot.add_cog(Credits(bot))
