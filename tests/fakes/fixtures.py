"""Pytest fixtures for the fake Discord; ``tests/conftest.py`` imports them from here.

Why a separate module: a bot subprocess imports ``tests.fakes.discord_api`` and should not need
pytest, and the root conftest stays the one place that decides which fixtures exist.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from discord.gateway import DiscordWebSocket
from discord.http import Route

from tests.fakes.discord_api import FakeDiscord, point_discord_py_at


@pytest.fixture
async def fake_discord() -> AsyncIterator[FakeDiscord]:
    """A started fake Discord with the default guild, and discord.py pointed at it.

    Attributes set: ``guild_id``, ``owner_id``, ``channel_ids["videos"|"general"]``,
    ``role_ids["@everyone"|"Admin"|"bot"]``, ``admin_id`` (Manage Server + Manage Messages),
    ``member_id`` (plain member), ``bot_id`` / ``application_id``, ``api_base``, ``gateway_url``.
    discord.py's ``Route.BASE`` and ``DEFAULT_GATEWAY`` are restored afterwards. Close any bot
    before this fixture tears down.
    """
    saved_base, saved_gateway = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
    async with FakeDiscord() as fake:
        fake.add_default_guild()
        point_discord_py_at(fake.api_base, fake.gateway_url)
        try:
            yield fake
        finally:
            Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = saved_base, saved_gateway
