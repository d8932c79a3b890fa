"""What start-up checks before the bot runs, and how it waits for Discord.

Two failures a fresh deployment meets, each answered with a sentence instead of a traceback:

* **A folder the bot cannot write** (a bind-mounted host folder owned by someone other than the
  container's uid 10001, typically): :func:`unwritable_folder` names the folder, what lives there and
  the uid to give it, and ``bot.py`` exits with status 2 like any other configuration error.
* **Discord out of reach** (the container starts before its network or DNS, or Discord answers 5xx):
  :func:`login_with_retries` logs one line per failed attempt and tries again after a capped,
  jittered exponential pause, for ``STARTUP_RETRY_MINUTES``; then :class:`DiscordUnreachable` carries
  the one line ``bot.py`` prints before exiting with status 1, so an orchestrator's restart policy
  takes over. A refused token is not a network failure: it still ends start-up at once (status 2).

Only logging in is retried here; once connected, discord.py reconnects the gateway by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

import aiohttp
import discord

from config import Settings
from storage.database import sqlite_file

log = logging.getLogger(__name__)

#: The first pause between attempts, and the longest (seconds).
RETRY_FIRST_DELAY: Final = 1.0
RETRY_MAX_DELAY: Final = 60.0
#: The uid the Docker image runs as (``Dockerfile``); named in the advice for bind mounts.
IMAGE_UID: Final = 10001


class DiscordUnreachable(Exception):
    """Start-up gave up reaching Discord; ``str()`` is the one line to print."""


def retry_delays(
    first: float = RETRY_FIRST_DELAY,
    cap: float = RETRY_MAX_DELAY,
    rng: Callable[[], float] = random.random,
) -> Iterator[float]:
    """Pauses between attempts: ``first`` doubling up to ``cap``, each drawn between half of that and all
    of it, so bots restarted together by one outage do not all knock at the same moment."""
    ceiling = first
    while True:
        yield ceiling / 2 + rng() * ceiling / 2
        ceiling = min(cap, ceiling * 2)


def network_failure(error: BaseException) -> str | None:
    """A short reason when ``error`` is a failure to reach Discord that a later attempt may not meet
    (DNS, connect, a dropped connection, a timeout, a 5xx), else ``None``."""
    if isinstance(error, discord.HTTPException):
        return f"Discord answered HTTP {error.status}" if error.status >= 500 else None
    if isinstance(error, aiohttp.ClientResponseError):
        return f"Discord answered HTTP {error.status}" if error.status >= 500 else None
    if isinstance(error, TimeoutError):
        return "timed out"
    if isinstance(error, aiohttp.ClientError | OSError):
        return str(error) or type(error).__name__
    return None


async def _reset_discord_http(bot: discord.Client) -> None:
    """Make a failed login retryable on the same bot.

    discord.py's ``static_login`` opens a new session on the HTTP client's connector each time and
    never closes the previous one. Closing the client closes its session and, with it, the connector
    it owns; clearing the connector makes the next login create a fresh one, as the first login did.
    """
    await bot.http.close()
    bot.http.connector = discord.utils.MISSING


async def login_with_retries(
    bot: discord.Client,
    token: str,
    *,
    minutes: float,
    stopping: asyncio.Event,
    delays: Iterator[float] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> bool:
    """``bot.login(token)``, retried on network failures for ``minutes``.

    Returns ``True`` once logged in, ``False`` when ``stopping`` was set meanwhile (SIGTERM: stop
    quietly). Raises :class:`DiscordUnreachable` when the time is up, and anything else (a refused
    token: :class:`discord.LoginFailure`) as it comes.
    """
    pauses = delays if delays is not None else retry_delays()
    deadline = clock() + minutes * 60
    attempt = 0
    while True:
        attempt += 1
        try:
            await bot.login(token)
        except discord.LoginFailure:
            raise
        except Exception as error:
            if stopping.is_set():
                return False
            reason = network_failure(error)
            if reason is None:
                raise
            remaining = deadline - clock()
            if remaining <= 0:
                raise DiscordUnreachable(
                    f"Could not reach Discord in {attempt} attempt(s) over {minutes:g} minute(s) "
                    f"(STARTUP_RETRY_MINUTES); the last one failed: {reason}. Check this machine's network "
                    "and DNS, and https://discordstatus.com; exiting."
                ) from None
            pause = min(next(pauses), remaining)
            log.warning("Cannot reach Discord (attempt %d: %s); retrying in %.1f s", attempt, reason, pause)
            await _reset_discord_http(bot)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), pause)
            if stopping.is_set():
                return False
        else:
            if attempt > 1:
                log.info("Reached Discord at attempt %d", attempt)
            return True


def _probe_folder(folder: Path) -> None:
    """Raise ``OSError`` unless a file can be created (and removed) in ``folder``, creating it if needed."""
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
        pass


def unwritable_folder(settings: Settings) -> str | None:
    """The one-line configuration error when a folder the bot writes is not writable, else ``None``.

    The folders are the SQLite database's (the database, its ``-wal`` and ``-shm`` files) and the
    heartbeat file's; an existing database file must be writable too. Synchronous: it runs in
    :func:`bot.main` before the event loop starts.
    """
    places: list[tuple[Path, str, str]] = []
    database = sqlite_file(settings.database_url)
    if database is not None:
        places.append((database.parent, "the SQLite database", "DATABASE_URL"))
    places.append((settings.heartbeat_file.parent, "the heartbeat file", "HEARTBEAT_FILE"))
    for folder, what, variable in places:
        try:
            _probe_folder(folder)
            if what == "the SQLite database" and database is not None and database.exists():
                with database.open("ab"):
                    pass
        except OSError as error:
            uid = os.getuid() if hasattr(os, "getuid") else None
            runs_as = f"uid {uid}" if uid is not None else "this user"
            return (
                f"Configuration error: cannot write {what} in {folder.absolute()} "
                f"({error.strerror or error}): make that folder writable by the user the bot runs as "
                f"({runs_as}; for a Docker bind mount of a host folder: sudo chown -R {IMAGE_UID} "
                f"<host folder>), or set {variable} to a writable place."
            )
    return None
