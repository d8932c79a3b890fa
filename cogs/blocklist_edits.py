"""``/kling-admin blocklist``'s body: add, remove or list the terms prompts may not contain.

The rules of the list (what counts as the same term, what can never match, how full it may be) are
:mod:`generation.server_settings`'; this module words the answers and the audit line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import discord

from cogs.common import Interaction, UserFacingError
from cogs.settings_card import blocklist_text
from generation import server_settings
from storage import GuildSettings, GuildSettingsChanges


class BlocklistAdmin(Protocol):
    """What the admin cog lends: its settings edit (locked, refusals worded) and its answer."""

    async def edit(
        self, guild_id: int, change: Callable[[GuildSettings], GuildSettingsChanges]
    ) -> GuildSettings: ...

    async def done(
        self, interaction: Interaction, answer: str, audit_line: str | None = None, *, icon: str = "⚙️"
    ) -> None: ...


async def blocklist(admin: BlocklistAdmin, interaction: Interaction, action: str, term: str | None) -> None:
    """``action`` is ``add``, ``remove`` or ``list`` (the interaction is acknowledged already)."""
    bot = interaction.client
    assert interaction.guild_id is not None  # the admin group is guild-only
    guild_id = interaction.guild_id
    if action == "list":
        terms = (await bot.storage.get_guild_settings(guild_id)).blocklist_terms
        await admin.done(interaction, f"Blocklist ({len(terms)}): {blocklist_text(terms, 1900)}")
        return
    term = (term or "").strip()
    if not term:
        raise UserFacingError(f"Say which term to {action}: fill in `term`.")
    shown = f"“{discord.utils.escape_markdown(term)}”"
    edit = server_settings.add_term if action == "add" else server_settings.remove_term
    try:
        settings = await admin.edit(
            guild_id, lambda current: {"blocklist_terms": edit(current.blocklist_terms, term)}
        )
    except server_settings.TermRefused as refused:
        raise UserFacingError(f"{shown} {refused.message}.") from None
    count = f"{len(settings.blocklist_terms)} term{'s' if len(settings.blocklist_terms) != 1 else ''}"
    if action == "add":
        answer = f"Added {shown}: prompts containing it are refused from now on. The blocklist has {count}."
        line = f"added {shown} to the blocklist ({count})."
    else:
        answer = f"Removed {shown}. The blocklist has {count}."
        line = f"removed {shown} from the blocklist ({count})."
    await admin.done(interaction, answer, line)
