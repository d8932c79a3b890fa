"""Entry point: ``python bot.py`` (or ``make run``) starts the bot.

Nothing happens at import time, so tests can import everything here. :func:`main` reads the settings
(exit status 2 with one line on a bad value or a folder it cannot write), configures logging with secret
redaction, then :func:`run` opens the HTTP session and the bot in one ``async with`` and starts. When
Discord cannot be reached, start-up retries for ``STARTUP_RETRY_MINUTES`` and then exits with status 1
and one line (:mod:`startup`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from functools import partial
from typing import Any, Final

import aiohttp
import discord
import yarl
from discord import app_commands
from discord.ext import commands
from pydantic import ValidationError

import media
from cogs import views
from cogs.common import NO_MENTIONS, Interaction, answer_error
from cogs.front_desk import FrontDesk
from config import Settings, describe_errors, load_settings
from generation import metering
from generation.eta import EtaBook
from generation.provider_pace import SharedPace
from logs import setup_logging
from startup import DiscordUnreachable, login_with_retries, unwritable_folder
from storage import COMMAND_TREE_HASH_KEY, JobState, Storage
from storage.models import MODELS
from telemetry.metrics import Metrics
from telemetry.server import MetricsServer, health_problem
from ulazai.client import UlazAIClient
from ulazai.ratelimit import RateLimiter

log = logging.getLogger(__name__)

#: The cogs loaded at start-up, in order. One user-facing area per cog.
INITIAL_EXTENSIONS: Final[tuple[str, ...]] = (
    "cogs.health",
    "cogs.review",
    "cogs.video",
    "cogs.credits",
    "cogs.admin",
    "cogs.delivery",
    "cogs.iterate",
)

EXIT_CONFIG_ERROR: Final = 2
EXIT_DISCORD_UNREACHABLE: Final = 1
RATE_HEADROOM: Final = 0.9
SHUTDOWN_GRACE_SECONDS: Final = 10.0
#: The gateway's close code for a token it does not accept.
GATEWAY_AUTHENTICATION_FAILED: Final = 4004


class KlingTree(app_commands.CommandTree["KlingBot"]):
    """The one place app-command errors end: domain errors become ephemeral text, the rest is logged."""

    async def on_error(self, interaction: Interaction, error: app_commands.AppCommandError) -> None:
        original: BaseException = (
            error.original if isinstance(error, app_commands.CommandInvokeError) else error
        )
        command = interaction.command.qualified_name if interaction.command else "?"
        await answer_error(interaction, original, where=f"/{command}")


class KlingBot(commands.AutoShardedBot):
    """The bot, with the resources it was given by :func:`run`.

    Sharded: it runs the gateway shards ``SHARD_IDS`` of ``SHARD_COUNT`` (with neither set, as many as
    Discord recommends, all in this process), so several processes can share the gateway, each
    receiving only its own servers' events and interactions. Everything else is shard-independent:
    the delivery worker takes any job from the shared database and posts by REST.
    """

    settings: Settings
    http_session: aiohttp.ClientSession
    storage: Storage
    ulazai: UlazAIClient
    eta: EtaBook
    metrics: Metrics
    metrics_server: MetricsServer | None

    def __init__(
        self,
        settings: Settings,
        http_session: aiohttp.ClientSession,
        storage: Storage,
        *,
        ulazai: UlazAIClient | None = None,
        extensions: Sequence[str] | None = None,
        guild_ready_timeout: float = 2.0,
    ) -> None:
        # A video bot never joins voice: the "PyNaCl/davey is not installed" warnings are noise.
        discord.VoiceClient.warn_nacl = False
        discord.VoiceClient.warn_dave = False
        intents = discord.Intents.none()
        intents.guilds = True  # channels, roles and permissions; slash commands need nothing privileged
        metrics = Metrics(models=MODELS)
        shards: dict[str, Any] = {"shard_count": settings.shard_count}
        if settings.shard_ids is not None:
            shards["shard_ids"] = list(settings.shard_ids)
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            tree_cls=KlingTree,
            allowed_mentions=NO_MENTIONS,
            help_command=None,
            guild_ready_timeout=guild_ready_timeout,
            http_trace=metrics.ack_trace(),  # times every interaction's acknowledgement
            **shards,
        )
        self.metrics = metrics
        self.metrics_server = None
        self.settings = settings
        self.extensions_to_load = tuple(INITIAL_EXTENSIONS if extensions is None else extensions)
        self.http_session = http_session
        self.storage = storage
        # A little headroom: a call released by the limiter may leave a moment later, behind a busy
        # loop, and must still land within the provider's per-second budget. On PostgreSQL the budget
        # is the deployment's, shared by every process through the database, and the shared pace
        # works out its own spacing from the errors it bounds (generation.provider_pace).
        rate = settings.provider_max_rps * RATE_HEADROOM
        self.ulazai = ulazai or UlazAIClient(
            http_session,
            base_url=settings.ulazai_base_url,
            api_key=settings.ulazai_api_key,
            rate_limiter=SharedPace(storage, settings.provider_max_rps)
            if storage.shared
            else RateLimiter(rate),
        )
        #: When videos should be ready, for their status cards (issue 12).
        self.eta = EtaBook(storage, max_in_flight=settings.max_concurrent_generations)
        #: Requests not yet answered with a receipt: status cards wait for them (cogs.front_desk).
        self.front_desk = FrontDesk()
        self.ulazai.add_observer(metrics.provider_call)
        self._unwatch = storage.watch(partial(metering.count, metrics))
        #: When the delivery worker last finished a pass (monotonic seconds); the heartbeat reads it.
        self.worker_heartbeat: float | None = None

    async def setup_hook(self) -> None:
        # One place for every ffmpeg child the bot starts: at most MEDIA_WORKERS at once, each time-limited.
        media.configure(workers=self.settings.media_workers, timeout=self.settings.media_timeout_seconds)
        # Buttons posted before a restart carry their job in their custom_id: register every kind first.
        self.add_dynamic_items(*views.DYNAMIC_ITEMS)
        for extension in self.extensions_to_load:
            try:
                await self.load_extension(extension)
            except Exception:
                log.exception("Failed to load extension %s", extension)
        await self.sync_commands()
        if self.settings.metrics_port is not None:
            self.metrics_server = MetricsServer(
                self.metrics,
                health=self.health_problem,
                refresh=self.refresh_gauges,
                host=self.settings.metrics_host,
                port=self.settings.metrics_port,
            )
            await self.metrics_server.start()
        # Everything loaded so far lives as long as the process: move it out of the collector's way,
        # so a full collection never pauses the loop for long while interactions wait to be acknowledged.
        gc.collect()
        gc.freeze()

    async def sync_commands(self) -> None:
        """Sync slash commands only when they changed since the last sync (Discord allows 200 a day).

        The hash of the command payloads and the target (``DEV_GUILD_ID`` or global) is kept in the
        database. Never from ``on_ready``, which fires on every reconnect.
        """
        guild = discord.Object(self.settings.dev_guild_id) if self.settings.dev_guild_id else None
        if guild is not None:
            self.tree.copy_global_to(guild=guild)
        payload = [command.to_dict(self.tree) for command in self.tree.get_commands(guild=guild)]
        target = str(guild.id) if guild is not None else "global"
        digest = hashlib.sha256(
            json.dumps({"target": target, "commands": payload}, sort_keys=True).encode()
        ).hexdigest()
        if await self.storage.get_bot_state(COMMAND_TREE_HASH_KEY) == digest:
            log.info("Slash commands unchanged; not syncing")
            return
        try:
            synced = await self.tree.sync(guild=guild)
        except discord.HTTPException:
            log.exception("Could not sync slash commands; the previous set stays in place")
            return
        await self.storage.set_bot_state(COMMAND_TREE_HASH_KEY, digest)
        log.info(
            "Synced %d slash command(s) to %s", len(synced), "the dev server" if guild else "all servers"
        )

    async def on_ready(self) -> None:
        # Fires on every reconnect: only log here, never set anything up.
        shards = ", ".join(str(shard) for shard in sorted(self.shards))
        log.info(
            "Connected as %s to %d server(s) on shard(s) %s of %s",
            self.user,
            len(self.guilds),
            shards,
            self.shard_count,
        )

    async def close(self) -> None:
        await super().close()
        if self.metrics_server is not None:
            await self.metrics_server.close()
        self._unwatch()

    # -- what /healthz and /metrics read ------------------------------------------------------------

    def health_problem(self) -> str | None:
        """Why the bot is unhealthy (``/healthz``), or ``None``: the gateway and the worker's passes."""
        beat = self.worker_heartbeat
        shards = self.shards.values()  # an AutoShardedBot: every shard this process runs must be up
        return health_problem(
            closed=self.is_closed(),
            connected=self.is_ready() and bool(shards) and not any(shard.is_closed() for shard in shards),
            worker_age=None if beat is None else time.monotonic() - beat,
        )

    async def refresh_gauges(self) -> None:
        """The gauges that come from the database (the whole bot's queue, the shared pause), read at
        scrape time."""
        counts = await self.storage.state_counts([JobState.QUEUED, JobState.SUBMITTING, JobState.PROCESSING])
        self.metrics.queue(
            queued=counts[JobState.QUEUED],
            in_flight=counts[JobState.SUBMITTING] + counts[JobState.PROCESSING],
        )
        self.metrics.paused((await self.storage.provider_account()).paused)


def point_discord_at(api_base: str | None, gateway: str | None) -> None:
    """Send discord.py's REST and gateway traffic elsewhere (only the test suite's fake Discord)."""
    if api_base:
        discord.http.Route.BASE = api_base
    if gateway:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway)


async def run(settings: Settings) -> None:
    """Open every resource in one ``async with`` and run the bot until it is closed."""
    point_discord_at(settings.discord_api_base_url, settings.discord_gateway_url)
    timeout = aiohttp.ClientTimeout(total=120, connect=15)
    async with (
        Storage(settings.database_url) as storage,
        aiohttp.ClientSession(timeout=timeout) as session,
        KlingBot(settings, session, storage) as bot,
    ):
        await storage.migrate()  # a newcomer's first run creates and migrates the database
        stopping = _close_on_sigterm(bot)
        # What bot.start() does, with the login retried while Discord is out of reach.
        if await login_with_retries(
            bot,
            settings.discord_token.get_secret_value(),
            minutes=settings.startup_retry_minutes,
            stopping=stopping,
        ):
            await bot.connect()
    _exit_if_cleanup_stalls()


def _exit_if_cleanup_stalls(grace: float = SHUTDOWN_GRACE_SECONDS) -> None:
    """Everything the bot owns is closed by now (gateway, HTTP session, database): the process must end.

    asyncio's own clean-up afterwards waits for every leftover task and executor thread without a
    limit, and a stuck one would keep a stopped bot alive until the orchestrator kills it. A daemon
    timer ends the process if that takes longer than ``grace`` seconds, saying what was still running.
    """

    def force_exit() -> None:
        stuck = [thread.name for thread in threading.enumerate() if thread is not threading.current_thread()]
        log.warning(
            "Shutdown clean-up stalled for %.0f s (threads: %s); exiting now", grace, ", ".join(stuck)
        )
        logging.shutdown()
        os._exit(0)

    timer = threading.Timer(grace, force_exit)
    timer.daemon = True
    timer.start()


def _close_on_sigterm(bot: KlingBot) -> asyncio.Event:
    """``docker stop`` sends SIGTERM: close the gateway and the session cleanly instead of dying mid-write.

    Returns the event SIGTERM sets, which also ends a start-up still waiting to reach Discord.
    """
    loop = asyncio.get_running_loop()
    closing: set[asyncio.Task[None]] = set()
    stopping = asyncio.Event()

    def close() -> None:
        log.info("SIGTERM received; shutting down")
        stopping.set()
        task = loop.create_task(bot.close())
        closing.add(task)
        task.add_done_callback(closing.discard)

    with contextlib.suppress(NotImplementedError):  # not on Windows
        loop.add_signal_handler(signal.SIGTERM, close)
    return stopping


def main() -> int:
    """Read settings, set up logging, run; returns the process exit status."""
    try:
        settings = load_settings()
    except ValidationError as error:
        print(describe_errors(error), file=sys.stderr)
        return EXIT_CONFIG_ERROR
    problem = unwritable_folder(settings)
    if problem is not None:
        print(problem, file=sys.stderr)
        return EXIT_CONFIG_ERROR
    setup_logging(
        settings.log_level,
        secrets=(settings.discord_token.get_secret_value(), settings.ulazai_api_key.get_secret_value()),
    )
    try:
        asyncio.run(run(settings))
    except DiscordUnreachable as error:
        print(error, file=sys.stderr)
        return EXIT_DISCORD_UNREACHABLE
    except (discord.LoginFailure, discord.ConnectionClosed) as error:
        if isinstance(error, discord.ConnectionClosed) and error.code != GATEWAY_AUTHENTICATION_FAILED:
            raise
        print(
            "Configuration error: Discord refused DISCORD_TOKEN: reset the token in the Developer Portal "
            "(your application > Bot) and put the new one in .env.",
            file=sys.stderr,
        )
        return EXIT_CONFIG_ERROR
    except KeyboardInterrupt:
        log.info("Stopped by Ctrl-C")
    return 0


if __name__ == "__main__":
    sys.exit(main())
