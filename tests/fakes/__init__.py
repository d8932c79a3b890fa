"""Fakes of the services the bot talks to, served on 127.0.0.1 for end-to-end tests.

``discord_api`` is a fake Discord (gateway + REST) for the real discord.py client; the pytest
fixtures live in ``tests.fakes.fixtures`` so that importing the fake (e.g. from a bot subprocess)
does not import pytest.
"""

from __future__ import annotations

from tests.fakes.discord_api import (
    ALL_PERMISSIONS,
    AttachmentSpec,
    CallbackRecord,
    FakeChannel,
    FakeDiscord,
    FakeGuild,
    FakeInteraction,
    FakeMember,
    FakeMessage,
    FakeRole,
    FakeUser,
    Fault,
    Overwrite,
    Permission,
    RecordedCall,
    UploadedFile,
    point_discord_py_at,
)

__all__ = [
    "ALL_PERMISSIONS",
    "AttachmentSpec",
    "CallbackRecord",
    "FakeChannel",
    "FakeDiscord",
    "FakeGuild",
    "FakeInteraction",
    "FakeMember",
    "FakeMessage",
    "FakeRole",
    "FakeUser",
    "Fault",
    "Overwrite",
    "Permission",
    "RecordedCall",
    "UploadedFile",
    "point_discord_py_at",
]
