"""Start-up without Discord, and folders the bot cannot write: the real ``python bot.py``, as a subprocess.

Discord out of reach (a closed port, or the fake Discord answering 503 at login): one log line per
failed attempt, capped and jittered exponential pauses, then either the bot comes up (503 twice, then
the fake answers) or, after ``STARTUP_RETRY_MINUTES``, exit 1 with one line and no traceback. SIGTERM
during the wait stops it at once; a refused token is still exit 2 at once. An unwritable data folder
is one line and exit 2.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import discord
import pytest
from aiohttp.client_reqrep import ConnectionKey
from pydantic import SecretStr

from config import Settings
from startup import network_failure, retry_delays, unwritable_folder
from tests.fakes import fixtures as fake_fixtures
from tests.fakes.discord_api import FakeDiscord

fake_discord = fake_fixtures.fake_discord

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "MTIzNDU2Nzg5MDEy.GhIjKl.fake-token-for-tests_only"
API_KEY = "sandbox-key-for-startup-tests"
ATTEMPT = re.compile(r"Cannot reach Discord \(attempt (\d+): (.*)\); retrying in ([\d.]+) s")


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A local port nothing listens on (held bound, so nothing else takes it meanwhile)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def env_for(tmp_path: Path, api_base: str, gateway: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "ULAZAI_", "STARTUP_"))}
    env.update(
        PYTHONPATH=str(ROOT),
        DISCORD_TOKEN=TOKEN,
        ULAZAI_API_KEY=API_KEY,
        ULAZAI_BASE_URL="http://127.0.0.1:9",
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/data/bot.db",
        HEARTBEAT_FILE=str(tmp_path / "data" / "heartbeat"),
        DISCORD_API_BASE_URL=api_base,
        DISCORD_GATEWAY_URL=gateway,
        LOG_LEVEL="WARNING",
    )
    env.update(extra)
    return env


async def start_bot(tmp_path: Path, env: dict[str, str]) -> tuple[asyncio.subprocess.Process, Path]:
    log_path = tmp_path / "bot.log"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "bot.py"),
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=log_path.open("wb"),  # a file: a pipe could fill up and block the bot
    )
    return process, log_path


async def wait_for_line(log_path: Path, needle: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while needle not in (log := await asyncio.to_thread(log_path.read_text, errors="replace")):
        assert time.monotonic() < deadline, f"no {needle!r} in:\n{log}"
        await asyncio.sleep(0.05)


async def finish(process: asyncio.subprocess.Process, seconds: float) -> int:
    try:
        return await asyncio.wait_for(process.wait(), seconds)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_unreachable_discord_is_retried_then_one_line_and_exit_1(
    tmp_path: Path, closed_port: int
) -> None:
    minutes = 0.1
    env = env_for(
        tmp_path,
        f"http://127.0.0.1:{closed_port}/api/v10",
        f"ws://127.0.0.1:{closed_port}/gateway",
        STARTUP_RETRY_MINUTES=str(minutes),
    )
    started = time.monotonic()
    process, log_path = await start_bot(tmp_path, env)
    status = await finish(process, 60)
    elapsed = time.monotonic() - started
    log = log_path.read_text(errors="replace")
    assert status == 1, log
    assert "Traceback" not in log
    *attempts, last = log.strip().splitlines()
    numbers = []
    for line in attempts:  # at WARNING, nothing but one line per failed attempt
        match = ATTEMPT.search(line)
        assert match, line
        numbers.append(int(match[1]))
        assert f"127.0.0.1:{closed_port}" in match[2]
        assert 0 < float(match[3]) <= 60
    assert len(numbers) >= 3, log  # 1 s doubling, halved by the jitter at most: >= 3 pauses in 6 s
    assert numbers == list(range(1, len(numbers) + 1))
    assert last.startswith(f"Could not reach Discord in {len(numbers) + 1} attempt(s) over 0.1 minute(s)")
    assert "exiting" in last
    assert elapsed >= minutes * 60
    assert TOKEN not in log


async def test_503_at_login_is_retried_and_the_bot_comes_up(
    fake_discord: FakeDiscord, tmp_path: Path
) -> None:
    """discord.py's login asks ``GET /users/@me`` (a plain ``Client`` never asks ``/gateway/bot``)."""
    fault = fake_discord.fail_next("GET /users/@me", 503, times=2)
    process, log_path = await start_bot(
        tmp_path, env_for(tmp_path, fake_discord.api_base, fake_discord.gateway_url)
    )
    try:
        await fake_discord.wait_until_ready(timeout=60)
        process.send_signal(signal.SIGTERM)
    finally:
        status = await finish(process, 30)
    log = log_path.read_text(errors="replace")
    assert status == 0, log
    assert len(fault.hits) == 2
    attempts = [ATTEMPT.search(line) for line in log.splitlines() if "Cannot reach Discord" in line]
    assert [(int(m[1]), m[2]) for m in attempts if m] == [
        (1, "Discord answered HTTP 503"),
        (2, "Discord answered HTTP 503"),
    ]
    assert "Traceback" not in log
    assert fake_discord.identify_payloads[0]["token"] == TOKEN


async def test_a_refused_token_after_a_503_is_still_exit_2_at_once(tmp_path: Path) -> None:
    wrong = "MTIzNDU2Nzg5MDEy.GhIjKl.not-the-token-the-fake-knows"
    async with FakeDiscord(token=TOKEN) as fake:
        fake.fail_next("GET /users/@me", 503, times=1)
        env = env_for(tmp_path, fake.api_base, fake.gateway_url, DISCORD_TOKEN=wrong, LOG_LEVEL="ERROR")
        started = time.monotonic()
        process, log_path = await start_bot(tmp_path, env)
        status = await finish(process, 30)
    log = log_path.read_text(errors="replace")
    assert status == 2, log
    (line,) = log.strip().splitlines()
    assert "Discord refused DISCORD_TOKEN" in line
    assert wrong not in line
    assert time.monotonic() - started < 20  # one retry after the 503, none after the refusal


async def test_sigterm_while_waiting_for_discord_stops_at_once(tmp_path: Path, closed_port: int) -> None:
    env = env_for(
        tmp_path,
        f"http://127.0.0.1:{closed_port}/api/v10",
        f"ws://127.0.0.1:{closed_port}/gateway",
        LOG_LEVEL="INFO",
    )
    process, log_path = await start_bot(tmp_path, env)
    try:
        await wait_for_line(log_path, "Cannot reach Discord (attempt 2:")
    finally:
        process.send_signal(signal.SIGTERM)
    stopped = time.monotonic()
    status = await finish(process, 15)
    log = log_path.read_text(errors="replace")
    assert status == 0, log
    assert time.monotonic() - stopped < 5  # not after the next pause (2-4 s) or the 10 minutes
    assert "SIGTERM received" in log
    assert "Traceback" not in log
    assert "Could not reach Discord" not in log


def test_retry_pauses_double_up_to_the_cap_with_jitter() -> None:
    lows = retry_delays(first=1, cap=60, rng=lambda: 0.0)
    highs = retry_delays(first=1, cap=60, rng=lambda: 0.999999)
    assert [round(next(lows), 3) for _ in range(9)] == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]
    assert [round(next(highs), 3) for _ in range(9)] == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    jittered = retry_delays()
    assert len({round(next(jittered), 6) for _ in range(20)}) > 10


class _Response:
    status = 503
    reason = "Service Unavailable"


def test_network_failures_are_told_apart_from_the_rest() -> None:
    key = ConnectionKey("gateway.invalid", 443, True, True, None, None, None, None)
    dns = aiohttp.ClientConnectorDNSError(key, OSError(-2, "Name or service not known"))
    assert "Name or service not known" in (network_failure(dns) or "")
    assert (
        network_failure(ConnectionRefusedError(111, "Connection refused")) == "[Errno 111] Connection refused"
    )
    assert network_failure(aiohttp.ServerDisconnectedError()) is not None
    assert network_failure(TimeoutError()) == "timed out"
    assert network_failure(discord.DiscordServerError(_Response(), "")) == "Discord answered HTTP 503"
    not_found = _Response()
    not_found.status = 404
    assert network_failure(discord.NotFound(not_found, "")) is None
    assert network_failure(discord.LoginFailure("Improper token")) is None
    assert network_failure(ValueError("a bug")) is None


def _settings(database: Path, heartbeat: Path) -> Settings:
    return Settings(
        _env_file=None,
        discord_token=SecretStr(TOKEN),
        ulazai_api_key=SecretStr(API_KEY),
        database_url=f"sqlite+aiosqlite:///{database}",
        heartbeat_file=heartbeat,
    )


def _unwritable(tmp_path: Path) -> Path:
    """A folder the bot cannot write. Not as root, a folder without write permission (a bind mount
    owned by someone else); root ignores permissions, so then a folder that cannot be created because
    a regular file stands in its path. Both are the ``OSError`` the check turns into a sentence."""
    if os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o555)
        return folder
    (tmp_path / "a-file").write_text("not a folder")
    return tmp_path / "a-file" / "data"


def test_unwritable_folders_are_named_with_the_setting_to_change(tmp_path: Path) -> None:
    good = tmp_path / "good"
    assert unwritable_folder(_settings(good / "bot.db", good / "heartbeat")) is None
    assert [p.name for p in good.iterdir()] == []  # the probe leaves nothing behind
    bad = _unwritable(tmp_path)
    database = unwritable_folder(_settings(bad / "bot.db", good / "heartbeat"))
    assert database is not None
    assert database.startswith(f"Configuration error: cannot write the SQLite database in {bad}")
    assert "DATABASE_URL" in database
    assert "chown -R 10001" in database
    heartbeat = unwritable_folder(_settings(good / "bot.db", bad / "heartbeat"))
    assert heartbeat is not None
    assert "the heartbeat file" in heartbeat
    assert "HEARTBEAT_FILE" in heartbeat


async def test_python_bot_py_with_an_unwritable_data_folder_is_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = _unwritable(tmp_path)
    env = env_for(
        tmp_path,
        "http://127.0.0.1:9/api/v10",
        "ws://127.0.0.1:9/gateway",
        DATABASE_URL=f"sqlite+aiosqlite:///{bad}/kling-bot.db",
        HEARTBEAT_FILE=str(bad / "heartbeat"),
        LOG_LEVEL="DEBUG",
    )
    process, log_path = await start_bot(tmp_path, env)
    status = await finish(process, 30)
    log = log_path.read_text(errors="replace")
    assert status == 2, log
    (line,) = log.strip().splitlines()
    assert line.startswith("Configuration error: cannot write the SQLite database in"), line
    assert str(bad) in line
