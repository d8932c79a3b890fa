"""Iterating on videos: the "Animate with Kling" message command, and the modals of Continue, Remix and
Animate with Kling.

The buttons that open Continue and Remix are in :mod:`cogs.views`; what each does is
:mod:`cogs.iterating`. This cog holds the two things that need one: the context menu (which cannot be a
cog method, so it is added to the tree when the cog loads and removed when it unloads), and the one
listener for those modals' submissions. discord.py keeps a modal only in memory, so these modals are
sent detached (:class:`cogs.modals.DetachedModal`) and every submission is handled here from its
custom_id and values: a modal opened before a restart is submitted after it the same way, once.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Final

import discord
from discord import app_commands
from discord.ext import commands

from cogs import iterating, modals
from cogs.common import Interaction, answer_error

if TYPE_CHECKING:
    from bot import KlingBot

#: The name members find in a message's Apps menu.
ANIMATE_NAME: Final = "Animate with Kling"
#: How many images the menu was used on are remembered, and for how long (see cogs.iterating).
REMEMBERED_IMAGES: Final = 500
REMEMBER_SECONDS: Final = 3600.0

ImageKey = tuple[int, int, int, int]  # member, channel, message, attachment index


class Iterate(commands.Cog):
    """Animate with Kling, and the submissions of the Continue, Remix and Animate modals."""

    def __init__(self, bot: KlingBot) -> None:
        self.bot = bot
        self.menu = app_commands.guild_only(
            app_commands.ContextMenu(name=ANIMATE_NAME, callback=self.animate_message)
        )
        self._images: OrderedDict[ImageKey, tuple[float, discord.Attachment]] = OrderedDict()

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.menu)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.menu.name, type=self.menu.type)

    async def animate_message(self, interaction: Interaction, message: discord.Message) -> None:
        """Check what can be checked at once, then ask for the prompt (the modal is the answer)."""
        await iterating.check_animate_here(interaction)
        index = iterating.first_image(message)
        self.remember(
            (interaction.user.id, message.channel.id, message.id, index), message.attachments[index]
        )
        await interaction.response.send_modal(modals.AnimateModal(message.channel.id, message.id, index))

    @commands.Cog.listener()
    async def on_interaction(self, interaction: Interaction) -> None:
        if interaction.type is not discord.InteractionType.modal_submit or interaction.data is None:
            return
        custom_id = str(interaction.data.get("custom_id", ""))
        for modal in modals.DETACHED_MODALS:
            if (ids := modal.match(custom_id)) is not None:
                break
        else:
            return  # not one of ours (the reject reason is handled by its own modal)
        await interaction.response.defer(ephemeral=True, thinking=True)
        values = modals.modal_values(interaction.data)
        try:
            if modal is modals.ContinueModal:
                await iterating.continue_video(interaction, ids["job_id"], values)
            elif modal is modals.RemixModal:
                await iterating.remix(interaction, ids["job_id"], values)
            else:
                key = (interaction.user.id, ids["channel_id"], ids["message_id"], ids["index"])
                await iterating.animate(interaction, ids, values, self.recall(key))
        except Exception as error:
            await answer_error(interaction, error, where=f"the submission of {custom_id}")

    def remember(self, key: ImageKey, attachment: discord.Attachment) -> None:
        self._images.pop(key, None)
        self._images[key] = (time.monotonic(), attachment)
        while len(self._images) > REMEMBERED_IMAGES:
            self._images.popitem(last=False)

    def recall(self, key: ImageKey) -> discord.Attachment | None:
        entry = self._images.get(key)
        if entry is None or time.monotonic() - entry[0] > REMEMBER_SECONDS:
            return None
        return entry[1]


async def setup(bot: KlingBot) -> None:
    await bot.add_cog(Iterate(bot))
