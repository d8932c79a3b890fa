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
* every transaction starts with ``BEGIN IMMEDIATE`` (SQLAlchemy's documented recipe: switch off the
  driver's own transaction handling and emit BEGIN in a ``begin`` event). A deferred transaction
  that reads and then writes cannot wait for the lock without risking deadlock, so SQLite fails it
  with "database is locked" at once; taking the write lock up front lets ``busy_timeout`` work.
* a leaner aiosqlite shim (:mod:`storage._sqlite`): one thread hop per statement, ``BEGIN``
  sent with the first statement, no ``ROLLBACK`` hop when no transaction is open;
* one pooled connection per process by default: SQLite has one writer anyway, and queueing in the
  pool is first come first served, whereas waiting in ``busy_timeout`` sleeps in growing steps.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event, make_url
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

from storage import _sqlite

log = logging.getLogger(__name__)

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///data/kling-bot.db"
SQLITE_BUSY_TIMEOUT_MS = 30_000
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


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


def _install_sqlite_recipe(engine: AsyncEngine, *, foreign_keys: bool) -> None:
    """Pragmas on every new connection, and ``BEGIN IMMEDIATE`` for every transaction."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Stop the driver from issuing its own (deferred) BEGIN; we emit ours in _on_begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute(f"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        driver_connection = connection.connection.driver_connection
        if isinstance(driver_connection, _sqlite.LeanConnection):
            driver_connection.defer_begin("BEGIN IMMEDIATE")  # sent with the first statement
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")


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
    kwargs: dict[str, Any] = {"echo": echo}
    if null_pool:
        kwargs["poolclass"] = NullPool
    if parsed.get_backend_name() == "sqlite":
        ensure_sqlite_directory(parsed)
        if not null_pool and sqlite_file(parsed) is not None:
            kwargs.update(pool_size=pool_size or 1, max_overflow=0, pool_timeout=60)
        connect_args = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        if parsed.get_driver_name() == "aiosqlite":
            kwargs["async_creator"] = _sqlite.connector(parsed, **connect_args)
        else:
            kwargs["connect_args"] = connect_args
        engine = create_async_engine(parsed, **kwargs)
        _install_sqlite_recipe(engine, foreign_keys=foreign_keys)
        return engine
    if not null_pool:
        kwargs.update(pool_size=pool_size or 10, max_overflow=5, pool_pre_ping=True)
    return create_async_engine(parsed, **kwargs)


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
