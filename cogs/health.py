"""Liveness: a heartbeat file the Docker ``HEALTHCHECK`` reads (see ``healthcheck.py``).

The heartbeat is written only while every gateway shard of this process is connected and the delivery
worker keeps finishing its passes, so a bot that lost Discord (or one of its shards), or whose worker
is stuck, shows as unhealthy. The file is the one place a container orchestrator looks: its first line
is the time of the beat, its second the state and latency of each shard (the health check's answer
names them).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING

from discord.ext import commands, tasks

if TYPE_CHECKING:
    from bot import KlingBot

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 15
#: The worker finishes a pass several times a second; this long without one means it is stuck.
WORKER_STALE_SECONDS = 120


def _write_beat(path: Path, stamp: float, shards: dict[str, dict[str, object]] | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    detail = "" if shards is None else json.dumps({"shards": shards}, sort_keys=True) + "\n"
    tmp.write_text(f"{stamp:.0f}\n{detail}", encoding="utf-8")
    tmp.replace(path)  # atomic, so the health check never reads half a file


def shard_states(bot: KlingBot) -> dict[str, dict[str, object]]:
    """Each of this process's shards: ``connected`` or ``disconnected``, and its heartbeat latency."""
    states: dict[str, dict[str, object]] = {}
    for shard_id, shard in sorted(bot.shards.items()):
        latency = shard.latency
        states[str(shard_id)] = {
            "state": "disconnected" if shard.is_closed() else "connected",
            "latency_ms": None if math.isnan(latency) or math.isinf(latency) else round(latency * 1000, 1),
        }
    return states


class Health(commands.Cog):
    """Writes the heartbeat every ``HEARTBEAT_SECONDS`` while connected."""

    def __init__(self, bot: KlingBot) -> None:
        self.bot = bot
        self.path = bot.settings.heartbeat_file
        self.started = time.monotonic()

    async def cog_load(self) -> None:
        self.started = time.monotonic()
        self.beat.start()

    async def cog_unload(self) -> None:
        self.beat.cancel()

    @tasks.loop(seconds=HEARTBEAT_SECONDS)
    async def beat(self) -> None:
        if self.bot.is_closed() or not self.bot.is_ready():
            return
        # The worker's last finished pass (or, before its first, when this cog started) must be recent.
        worker = self.bot.worker_heartbeat or self.started
        if "Delivery" in self.bot.cogs and time.monotonic() - worker > WORKER_STALE_SECONDS:
            log.warning("The delivery worker has not finished a pass for a while; not writing the heartbeat")
            return
        shards = shard_states(self.bot)
        down = [shard for shard, state in shards.items() if state["state"] != "connected"]
        if down:
            log.warning("Shard(s) %s not connected; not writing the heartbeat", ", ".join(down))
            return
        try:
            await asyncio.to_thread(_write_beat, self.path, time.time(), shards)
        except OSError:
            log.exception("Could not write the heartbeat file %s", self.path)

    @beat.before_loop
    async def _wait_until_ready(self) -> None:
        await self.bot.wait_until_ready()


async def setup(bot: KlingBot) -> None:
    await bot.add_cog(Health(bot))
