"""The bot skeleton, run for real: the real KlingBot and discord.py against the fake Discord.

In-process for the command tree's one ``on_error`` (domain errors become ephemeral text, the unexpected
is logged), the cog loading and the heartbeat; as a subprocess (``python bot.py``) for the entry point:
it connects, beats, stops cleanly on SIGTERM, and exits 2 with one line when Discord refuses the token.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import discord
import pytest
from discord import app_commands
from pydantic import SecretStr

import bot as bot_module
from bot import KlingBot
from config import Settings
from storage import Storage
from tests.fakes import fixtures as fake_fixtures
from tests.fakes.discord_api import FakeDiscord
from tests.harness import connected
from ulazai.errors import InsufficientCreditsError, InvalidRequestError

fake_discord = fake_fixtures.fake_discord

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "MTIzNDU2Nzg5MDEy.GhIjKl.fake-token-for-tests_only"
API_KEY = "sandbox-key-for-bot-tests"


def make_settings(tmp_path: Path, fake: FakeDiscord) -> Settings:
    return Settings(
        _env_file=None,
        discord_token=SecretStr(TOKEN),
        ulazai_api_key=SecretStr(API_KEY),
        ulazai_base_url="http://127.0.0.1:9",
        heartbeat_file=tmp_path / "heartbeat",
        database_url=f"sqlite+aiosqlite:///{tmp_path}/bot.db",
        dev_guild_id=fake.guild_id,
        discord_api_base_url=fake.api_base,
        discord_gateway_url=fake.gateway_url,
    )


def add_probe_commands(bot: KlingBot, guild: discord.Object) -> None:
    """Commands that fail in each way the tree must handle (test-only; the real cogs come later)."""
    probe = app_commands.Group(name="probe", description="Fail on purpose")

    @probe.command(description="Refuse before answering")
    async def invalid(interaction: discord.Interaction[KlingBot]) -> None:
        raise InvalidRequestError("Kling 2.6 makes 5 s or 10 s videos; you asked for 7 s.", field="duration")

    @probe.command(description="Refuse after deferring")
    async def deferred(interaction: discord.Interaction[KlingBot]) -> None:
        await interaction.response.defer(ephemeral=True)
        raise InsufficientCreditsError("insufficient credits", status=402)

    @probe.command(description="Crash")
    async def crash(interaction: discord.Interaction[KlingBot]) -> None:
        raise RuntimeError(f"bug near {TOKEN}")

    @probe.command(description="Need Manage Server")
    @app_commands.checks.has_permissions(manage_guild=True)
    async def admin(interaction: discord.Interaction[KlingBot]) -> None:
        await interaction.response.send_message("ok", ephemeral=True)

    bot.tree.add_command(probe, guild=guild)


@pytest.fixture
async def running_bot(fake_discord: FakeDiscord, tmp_path: Path) -> AsyncIterator[KlingBot]:
    settings = make_settings(tmp_path, fake_discord)
    async with Storage(settings.database_url) as storage, aiohttp.ClientSession() as session:
        await storage.migrate()
        bot_module.point_discord_at(fake_discord.api_base, fake_discord.gateway_url)
        # The skeleton's own tests: the delivery worker has its suite (tests/cogs/test_delivery.py).
        extensions = [e for e in bot_module.INITIAL_EXTENSIONS if e != "cogs.delivery"]
        bot = KlingBot(settings, session, storage, extensions=extensions, guild_ready_timeout=0.05)
        add_probe_commands(bot, discord.Object(fake_discord.guild_id))
        async with connected(bot, fake_discord, TOKEN):  # setup_hook loads the cogs and syncs to DEV_GUILD_ID
            yield bot


async def test_cogs_load_and_resources_are_injected(running_bot: KlingBot) -> None:
    assert "Health" in running_bot.cogs
    assert running_bot.ulazai.base_url == "http://127.0.0.1:9"
    assert API_KEY not in repr(running_bot.ulazai)
    assert running_bot.allowed_mentions is not None
    mentions = running_bot.allowed_mentions
    assert (mentions.everyone, mentions.roles, mentions.users, mentions.replied_user) == (
        False,
        False,
        False,
        False,
    )


async def test_domain_error_becomes_ephemeral_text(fake_discord: FakeDiscord, running_bot: KlingBot) -> None:
    interaction = await fake_discord.send_command(
        "probe",
        subcommand="invalid",
        options={},
        user_id=fake_discord.member_id,
        channel_id=fake_discord.channel_ids["videos"],
    )
    callback = await interaction.wait_callback()
    assert callback.type == 4
    assert callback.ephemeral
    assert callback.content == "Kling 2.6 makes 5 s or 10 s videos; you asked for 7 s."
    assert callback.data["allowed_mentions"] == {"parse": []}


async def test_error_after_defer_goes_to_the_followup(
    fake_discord: FakeDiscord, running_bot: KlingBot
) -> None:
    interaction = await fake_discord.send_command(
        "probe",
        subcommand="deferred",
        options={},
        user_id=fake_discord.member_id,
        channel_id=fake_discord.channel_ids["videos"],
    )
    callback = await interaction.wait_callback()
    assert callback.type == 5
    assert callback.ephemeral
    followup = await interaction.wait_followup()
    assert "video credits are used up" in followup.content
    assert (
        "Nothing was made or charged" in followup.content or "nothing was made or charged" in followup.content
    )
    assert followup.ephemeral


async def test_unexpected_error_is_logged_and_answered_politely(
    fake_discord: FakeDiscord, running_bot: KlingBot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    interaction = await fake_discord.send_command(
        "probe",
        subcommand="crash",
        options={},
        user_id=fake_discord.member_id,
        channel_id=fake_discord.channel_ids["videos"],
    )
    callback = await interaction.wait_callback()
    assert callback.ephemeral
    assert "Something went wrong on my side" in (callback.content or "")
    (record,) = [r for r in caplog.records if "/probe crash" in r.getMessage()]
    assert record.exc_info is not None
    assert "/probe crash" in record.getMessage()


async def test_permission_check_failure_is_explained(
    fake_discord: FakeDiscord, running_bot: KlingBot
) -> None:
    interaction = await fake_discord.send_command(
        "probe",
        subcommand="admin",
        options={},
        user_id=fake_discord.member_id,
        channel_id=fake_discord.channel_ids["videos"],
    )
    refusal = await interaction.wait_callback()
    assert refusal.ephemeral
    assert refusal.content == "You need the Manage Guild permission for this command."

    allowed = await fake_discord.send_command(
        "probe",
        subcommand="admin",
        options={},
        user_id=fake_discord.admin_id,
        channel_id=fake_discord.channel_ids["videos"],
    )
    assert (await allowed.wait_callback()).content == "ok"


async def test_heartbeat_is_written_once_connected(running_bot: KlingBot) -> None:
    path = running_bot.settings.heartbeat_file
    for _ in range(100):
        if path.exists():
            break
        await asyncio.sleep(0.1)
    stamp, shards = path.read_text().splitlines()
    assert stamp.isdigit()
    assert json.loads(shards)["shards"]["0"]["state"] == "connected"  # each shard, for the health check


async def test_a_broken_extension_is_logged_and_the_rest_still_load(
    fake_discord: FakeDiscord, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(tmp_path, fake_discord)
    async with Storage(settings.database_url) as storage, aiohttp.ClientSession() as session:
        await storage.migrate()
        bot_module.point_discord_at(fake_discord.api_base, fake_discord.gateway_url)
        bot = KlingBot(
            settings,
            session,
            storage,
            extensions=("cogs.does_not_exist", "cogs.health"),
            guild_ready_timeout=0.05,
        )
        async with connected(bot, fake_discord, TOKEN):  # runs setup_hook
            assert "Health" in bot.cogs
            assert any(
                "cogs.does_not_exist" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR
            )


def bot_env(fake: FakeDiscord, tmp_path: Path, token: str = TOKEN) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "ULAZAI_"))}
    env.update(
        PYTHONPATH=str(ROOT),
        DISCORD_TOKEN=token,
        ULAZAI_API_KEY=API_KEY,
        ULAZAI_BASE_URL="http://127.0.0.1:9",
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/bot.db",
        HEARTBEAT_FILE=str(tmp_path / "heartbeat"),
        DISCORD_API_BASE_URL=fake.api_base,
        DISCORD_GATEWAY_URL=fake.gateway_url,
        LOG_LEVEL="DEBUG",
    )
    return env


async def test_python_bot_py_connects_beats_and_stops_on_sigterm(
    fake_discord: FakeDiscord, tmp_path: Path
) -> None:
    log_path = tmp_path / "bot.log"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "bot.py"),
        cwd=tmp_path,
        env=bot_env(fake_discord, tmp_path),
        stdout=asyncio.subprocess.DEVNULL,
        # A file, not a pipe: at DEBUG a busy bot can fill a pipe's buffer and block on writing its log.
        stderr=log_path.open("wb"),
    )
    try:
        await fake_discord.wait_until_ready(timeout=30)
        assert fake_discord.identify_payloads[0]["token"] == TOKEN
        heartbeat = tmp_path / "heartbeat"
        for _ in range(200):
            if heartbeat.exists():
                break
            await asyncio.sleep(0.05)
        assert heartbeat.exists()
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    log = log_path.read_text(encoding="utf-8", errors="replace")
    assert process.returncode == 0, log
    assert "SIGTERM received" in log
    assert "Connected as" in log
    assert TOKEN not in log  # DEBUG logging, and still no secret
    assert API_KEY not in log
    assert "Traceback" not in log


async def test_a_refused_token_is_one_line_and_exit_2(tmp_path: Path) -> None:
    wrong = "MTIzNDU2Nzg5MDEy.GhIjKl.not-the-token-the-fake-knows"
    async with FakeDiscord(token=TOKEN) as fake:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "bot.py"),
            cwd=tmp_path,
            env={**bot_env(fake, tmp_path, token=wrong), "LOG_LEVEL": "CRITICAL"},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    (line,) = stderr.decode().strip().splitlines()
    assert "Discord refused DISCORD_TOKEN" in line
    assert wrong not in line
