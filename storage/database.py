"""Engines, sessions and migrations.

SQLite (through aiosqlite) is the embedded default; PostgreSQL (through asyncpg) is for operators who
run several bot processes or want a real server. Both get the same schema (Alembic, ``migrations/``)
and the same code paths; the differences are confined to this module and a couple of dialect-aware
statements (``INSERT ... ON CONFLICT DO NOTHING``, ``FOR UPDATE SKIP LOCKED``).

SQLite set-up, and why:

* ``journal_mode=WAL`` so readers never block the writer;
* ``busy_timeout`` so a second *process* waits for the lock instead of failing at once;
* ``foreign_keys=ON`` because SQLite ignores declared foreign keys otherwise;
* ``synchronous=NORMAL`` (safe with WAL: a power cut may lose the last commits, never corrupt);
* ``secure_delete=ON``: SQLite overwrites what a row update or delete removes with zeros, instead of
  leaving it in free space, so an erased prompt is gone from the file, not merely unreferenced (and
  :func:`checkpoint` then moves the erased pages out of the WAL and empties it);
* every transaction starts with ``BEGIN IMMEDIATE``. A deferred transaction that reads and then
  writes cannot wait for the lock without risking deadlock, so SQLite fails it with "database is
  locked" at once; taking the write lock up front lets ``busy_timeout`` work.
* the driver connection is :class:`storage._sqlite.LeanConnection` (an aiosqlite connection handed
  to SQLAlchemy through ``async_creator``): it applies the pragmas above when it opens, starts
  every transaction with ``BEGIN IMMEDIATE`` in the same trip to SQLite's thread as the first
  statement, and makes one trip per statement instead of four; the hot units of work
  (:func:`run_on_connection`) go to SQLite's thread whole, together with whatever other units are
  waiting (:mod:`storage._sqlite_units`);
* the ``named`` parameter style, so a parameter used several times in a statement (the budget
  ``UPDATE`` uses each period start four times) is converted once, not once per use;
* one pooled connection per process by default: SQLite has one writer anyway, and queueing in the
  pool is first come first served, whereas waiting in ``busy_timeout`` sleeps in growing steps.

Migrations run at every start, and several processes may start at once on one database. On
PostgreSQL the migration transaction first takes an advisory lock (:func:`hold_migration_lock`), so
one process migrates while the others wait, then find the schema at head and do nothing; without it
two processes create the same tables together and one fails (``pg_type_typname_nsp_index``). On
SQLite the migration transaction starts with ``BEGIN IMMEDIATE``, which already admits one writer.

PostgreSQL's pooled connections are tested before use only after they sat idle in the pool for
:data:`PING_AFTER_IDLE_SECONDS` (:func:`ping_when_idle`), not at every checkout as SQLAlchemy's
``pool_pre_ping`` does: its ping on asyncpg is three round trips (``BEGIN``, ``;``, ``ROLLBACK``),
which on a busy worker doubled the trips of a one-statement transaction, and a connection in
constant use is tested by that use anyway. A server restart is found by the first statement on a
busy connection, which fails once; SQLAlchemy then treats every connection opened before it as
stale, so the next checkouts open new ones. An idle bot (the usual moment for database
maintenance) still never sees an error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import event, make_url, text
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, NullPool

from storage import _sqlite, _sqlite_units

log = logging.getLogger(__name__)

A = TypeVar("A")
T = TypeVar("T")

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///data/kling-bot.db"
SQLITE_BUSY_TIMEOUT_MS = 30_000
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
#: The PostgreSQL advisory lock key held while migrating (any constant 64-bit number works; this is
#: the bytes of "klingmig", so it is recognisable in ``pg_locks``).
MIGRATION_LOCK_KEY: Final = int.from_bytes(b"klingmig", "big")
#: A pooled PostgreSQL connection idle for longer than this is pinged before it is handed out.
PING_AFTER_IDLE_SECONDS = 10.0


def is_sqlite(url: str | URL) -> bool:
    """Whether ``url`` points at SQLite."""
    return make_url(url).get_backend_name() == "sqlite"


def sqlite_file(url: str | URL) -> Path | None:
    """The database file of a SQLite URL, or ``None`` for in-memory databases and other engines."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def ensure_sqlite_directory(url: str | URL) -> None:
    """Create the folder of a SQLite database file, so a newcomer's first start just works."""
    path = sqlite_file(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)


def sqlite_pragmas(*, foreign_keys: bool = True) -> tuple[str, ...]:
    """The pragmas every SQLite connection gets when it opens (see the module docstring)."""
    return (
        f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}",
        "PRAGMA journal_mode = WAL",
        "PRAGMA synchronous = NORMAL",
        f"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}",
        "PRAGMA secure_delete = ON",
    )


async def checkpoint(engine: AsyncEngine) -> None:
    """On SQLite, copy the WAL into the database file and truncate it, so the page images an erasure
    left in the WAL (the rows as they were) leave the disk now rather than at the next automatic
    checkpoint. Elsewhere nothing (PostgreSQL's old row versions go at its next vacuum)."""
    if engine.dialect.name != "sqlite":
        return
    async with engine.connect() as connection:
        driver = (await connection.get_raw_connection()).driver_connection
        if isinstance(driver, _sqlite.LeanConnection):
            busy, _, _ = await driver.checkpoint()
            if busy:
                log.info("the WAL checkpoint after an erasure was busy; SQLite finishes it later")


def ping_when_idle(engine: AsyncEngine) -> None:
    """Ping each connection ``engine``'s pool hands out once it has been idle for longer than
    :data:`PING_AFTER_IDLE_SECONDS`; a failed ping makes the pool replace it (see the module
    docstring). Runs inside SQLAlchemy's checkout, where the driver's blocking ``ping`` is allowed."""

    def checked_in(_: Any, record: ConnectionPoolEntry) -> None:
        record.info["idle_since"] = time.monotonic()

    def checked_out(dbapi_connection: Any, record: ConnectionPoolEntry, _: Any) -> None:
        idle_since = record.info.pop("idle_since", None)
        if idle_since is None or time.monotonic() - idle_since <= PING_AFTER_IDLE_SECONDS:
            return
        try:
            dbapi_connection.ping()
        except Exception as error:
            log.info(
                "a pooled database connection was dead after %.0f s idle; replacing it",
                time.monotonic() - idle_since,
            )
            raise DisconnectionError() from error

    event.listen(engine.sync_engine, "checkin", checked_in)
    event.listen(engine.sync_engine, "checkout", checked_out)


def _then_close(connection: Connection, fn: Callable[[Connection, A], T], arg: A) -> T:
    try:
        return fn(connection, arg)
    finally:
        connection.close()  # back to the pool from the same greenlet


async def run_on_connection(engine: AsyncEngine, fn: Callable[[Connection, A], T], arg: A) -> T:
    """``fn(connection, arg)`` on a connection from ``engine``'s pool; ``fn`` is synchronous and runs
    its own transaction (``with connection.begin():``).

    On SQLite ``fn`` runs in SQLite's thread, in one trip with whatever other units of work are
    waiting for the connection (:mod:`storage._sqlite_units`). Elsewhere: what ``async with
    engine.connect() as c: await c.run_sync(fn, arg)`` does, minus a greenlet for the close and the
    task of its own in which ``async with`` closes the connection so that the close survives a second
    cancellation: together ~7% of a reservation, and here the close never waits on the database,
    since ``fn`` has ended its transaction. The ``sleep(0)`` keeps the pool fair: the task woken when
    the connection came back takes it before this one can come back.
    """
    line = _sqlite_units.shared_trips(engine)
    if line is not None:
        return await line.run(fn, arg)
    connection = await engine.connect().start()
    try:
        return await connection.run_sync(_then_close, fn, arg)
    finally:
        if not connection.closed:  # only if run_sync was interrupted before it could close
            await connection.close()
        await asyncio.sleep(0)


def create_engine(
    url: str | URL,
    *,
    pool_size: int | None = None,
    foreign_keys: bool = True,
    null_pool: bool = False,
    echo: bool = False,
) -> AsyncEngine:
    """An async engine for ``url`` with the engine-specific set-up described in the module docstring.

    ``pool_size`` defaults to 1 on SQLite and 10 on PostgreSQL. ``foreign_keys=False`` is for
    migrations on SQLite, whose batch mode rebuilds tables. ``null_pool`` opens a connection per use
    (for short-lived engines such as the migration runner).
    """
    parsed = make_url(url)
    # Parameters carry members' prompts: never in an error's text (a traceback in the logs) nor in echo.
    kwargs: dict[str, Any] = {"echo": echo, "hide_parameters": True}
    if null_pool:
        kwargs["poolclass"] = NullPool
    if parsed.get_backend_name() == "sqlite":
        ensure_sqlite_directory(parsed)
        if not null_pool and sqlite_file(parsed) is not None:
            kwargs.update(pool_size=pool_size or 1, max_overflow=0, pool_timeout=60)
        if parsed.get_driver_name() != "aiosqlite":
            raise ValueError(
                f"SQLite needs the aiosqlite driver: sqlite+aiosqlite://, not {parsed.drivername}://"
            )
        kwargs["async_creator"] = _sqlite.connector(
            parsed,
            pragmas=sqlite_pragmas(foreign_keys=foreign_keys),
            timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
        )
        sqlite_engine = create_async_engine(parsed, paramstyle="named", **kwargs)
        _sqlite_units.give_shared_trips(sqlite_engine)
        return sqlite_engine
    if null_pool:
        return create_async_engine(parsed, **kwargs)
    engine = create_async_engine(parsed, pool_size=pool_size or 10, max_overflow=5, **kwargs)
    ping_when_idle(engine)
    return engine


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """The one session factory: objects stay readable after commit, detached from the session."""
    return async_sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str | URL) -> Config:
    """An Alembic configuration for ``url`` that does not read ``alembic.ini`` or touch logging."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Passed as an attribute, not a main option: ini interpolation would mangle a '%' in a password.
    config.attributes["url"] = make_url(url).render_as_string(hide_password=False)
    return config


def hold_migration_lock(connection: Connection) -> None:
    """On PostgreSQL, wait for (and hold until the transaction ends) the one migration lock.

    Called by ``migrations/env.py`` as the first statement of the migration transaction, before
    Alembic reads the current revision: a process that had to wait then reads what the first one
    committed and finds nothing left to do. It is a transaction-level lock, so a crash or a rollback
    releases it too. Elsewhere nothing (see the module docstring for SQLite).
    """
    if connection.dialect.name != "postgresql":
        return
    key = {"key": MIGRATION_LOCK_KEY}
    if not connection.execute(text("SELECT pg_try_advisory_xact_lock(:key)"), key).scalar():
        log.info("another process is migrating the database; waiting for it to finish")
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), key)


def _upgrade(url: str | URL, revision: str) -> None:
    command.upgrade(alembic_config(url), revision)


async def upgrade_to_head(url: str | URL, revision: str = "head") -> None:
    """Migrate the database at ``url`` to ``revision`` (default: the newest).

    Safe to await from the bot's running event loop: Alembic is synchronous, so it runs in a worker
    thread, where ``migrations/env.py`` drives its own short-lived async engine. The SQLite folder is
    created first, so a fresh checkout needs no manual step.
    """
    ensure_sqlite_directory(url)
    log.info("migrating database to %s", revision)
    await asyncio.to_thread(_upgrade, url, revision)
