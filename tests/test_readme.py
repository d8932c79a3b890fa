"""The README's operational facts agree with the code: the invite URL's permission integer is the
permissions it lists, every setting is named, and the commands it gives exist."""

from __future__ import annotations

import re
from pathlib import Path

import discord

from config import Settings

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_invite_url_grants_exactly_the_listed_permissions() -> None:
    listed = re.search(r"bot\s+permissions \*\*(.+?)\*\*", README, re.S)
    assert listed is not None
    names = [" ".join(name.split()) for name in listed[1].split(",")]
    flags = {name: name.lower().replace(" ", "_") for name in names}
    expected = discord.Permissions(**dict.fromkeys(flags.values(), True))
    (value,) = {int(v) for v in re.findall(r"permissions=(\d+)", README)}
    assert discord.Permissions(value) == expected, (value, expected.value)
    assert "Send Messages in Threads" in names  # /video may be used in a thread


def test_every_setting_is_named() -> None:
    for name in Settings.model_fields:
        if name.startswith("discord_") and name.endswith("_url"):
            continue  # test-only knobs
        assert f"`{name.upper()}`" in README, name
    assert "`HEARTBEAT_MAX_AGE`" in README


def test_the_operations_commands_exist() -> None:
    assert "docker run -d --name kling-bot --restart unless-stopped" in README
    assert "--format docker" in README
    assert "python -m storage.copy sqlite:///data/kling-bot.db postgresql://" in README
    assert (ROOT / "storage" / "copy.py").is_file()
    assert "make bench-update" in README
    assert "bench-update:" in (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "pg_dump" in README
    assert '".backup' in README
    assert "../shared" not in README  # nothing outside the repository
