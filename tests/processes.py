"""Real bot processes (``python bot.py``) for the tests and benchmarks of several processes sharing one
PostgreSQL database: each is started with its own settings (shards, heartbeat file) against the fakes
of the test's own process, logs to a file (a pipe could fill and block a busy bot), and is stopped with
SIGTERM, or killed with SIGKILL as a crash would.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "MTIzNDU2Nzg5MDEy.GhIjKl.fake-token-for-tests_only"
#: Settings the test suite's environment might carry and a bot process must not inherit.
_INHERITED_PREFIXES = ("DISCORD_", "ULAZAI_", "SHARD_", "DATABASE_URL", "PROVIDER_", "MAX_", "WORKER_")


@dataclass
class BotProcess:
    """One running ``python bot.py``."""

    name: str
    process: asyncio.subprocess.Process
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process.returncode is None

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    async def stop(self, grace: float = 30.0) -> int:
        """SIGTERM (a clean stop), then SIGKILL if it is still running after ``grace`` s."""
        if self.running:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), grace)
            except TimeoutError:
                await self.kill()
        return await self.process.wait()

    async def kill(self) -> None:
        """``kill -9``: no clean-up, no goodbye to the gateway, leases left as they are."""
        if self.running:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
        await self.process.wait()


def bot_env(folder: Path, **settings: str) -> dict[str, str]:
    """The environment of a bot process: the test's own, minus any bot setting, plus ``settings``
    (``DATABASE_URL="..."``, ``SHARD_IDS="0"``...)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_INHERITED_PREFIXES)}
    env.update(
        PYTHONPATH=str(ROOT),
        DISCORD_TOKEN=TOKEN,
        HEARTBEAT_FILE=str(folder / "heartbeat"),
        LOG_LEVEL="INFO",
    )
    env.update(settings)
    return env


async def start_bot(name: str, folder: Path, env: dict[str, str]) -> BotProcess:
    folder.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - test set-up, before the bot exists
    log_path = folder / "bot.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "bot.py"),
            cwd=folder,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log,
        )
    return BotProcess(name, process, log_path)


@contextlib.asynccontextmanager
async def bot_processes(
    folder: Path, envs: Sequence[tuple[str, dict[str, str]]]
) -> AsyncIterator[list[BotProcess]]:
    """Start one process per ``(name, settings)``, each in its own sub-folder; stop them all at the end."""
    bots: list[BotProcess] = []
    try:
        for name, settings in envs:
            bots.append(await start_bot(name, folder / name, bot_env(folder / name, **settings)))
        yield bots
    finally:
        await asyncio.gather(*(bot.stop() for bot in bots), return_exceptions=True)


def most_in_a_second(times: list[float]) -> int:
    """The most of ``times`` (seconds) inside any one-second window: what a per-second budget counts."""
    ordered = sorted(times)
    start, best = 0, 0
    for end, moment in enumerate(ordered):
        while moment - ordered[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best
