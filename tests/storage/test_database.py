"""Engine set-up: SQLite pragmas and BEGIN IMMEDIATE, PostgreSQL's ping of idle connections, URLs, and
the aware-UTC column type."""

from __future__ import annotations

import shutil
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection
from sqlalchemy.ext.asyncio import AsyncEngine

from storage import database
from storage.database import create_engine, ensure_sqlite_directory, is_sqlite, sqlite_file
from storage.models import UTCDateTime


async def test_sqlite_pragmas(sqlite_template: Path, tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    shutil.copyfile(sqlite_template, path)
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        async with engine.connect() as conn:
            values = {
                name: (await conn.exec_driver_sql(f"PRAGMA {name}")).scalar()
                for name in ("journal_mode", "foreign_keys", "busy_timeout", "synchronous", "secure_delete")
            }
    finally:
        await engine.dispose()
    assert values == {
        "journal_mode": "wal",
        "foreign_keys": 1,
        "busy_timeout": 30_000,
        "synchronous": 1,
        "secure_delete": 1,  # erased words are overwritten, not left in free space
    }


async def test_every_transaction_takes_the_write_lock_at_begin(sqlite_template: Path, tmp_path: Path) -> None:
    """Without BEGIN IMMEDIATE a transaction that reads first would only lock when it writes, and a
    concurrent writer would then fail with "database is locked" instead of waiting."""
    path = tmp_path / "lock.db"
    shutil.copyfile(sqlite_template, path)
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text("SELECT 1"))  # only a read so far ...
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")  # ... yet the write lock is already ours
        other.execute("BEGIN IMMEDIATE")  # released at commit
        other.execute("ROLLBACK")
    finally:
        other.close()
        await engine.dispose()


def test_url_helpers(tmp_path: Path) -> None:
    assert is_sqlite("sqlite+aiosqlite:///data/x.db")
    assert not is_sqlite("postgresql+asyncpg://u@h/db")
    assert sqlite_file("sqlite+aiosqlite:///data/x.db") == Path("data/x.db")
    assert sqlite_file("sqlite+aiosqlite://") is None
    assert sqlite_file("sqlite+aiosqlite:///:memory:") is None
    assert sqlite_file("postgresql+asyncpg://u@h/db") is None
    ensure_sqlite_directory(f"sqlite+aiosqlite:///{tmp_path}/a/b/c.db")
    assert (tmp_path / "a" / "b").is_dir()


def test_utc_datetime_type() -> None:
    column = UTCDateTime()
    sqlite_dialect = sa.create_engine("sqlite://").dialect
    paris = datetime(2025, 6, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    assert column.process_bind_param(paris, sqlite_dialect) == datetime(2025, 6, 1, 12, 0)
    loaded = column.process_result_value(datetime(2025, 6, 1, 12, 0), sqlite_dialect)
    assert loaded == datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    assert loaded is not None
    assert loaded.tzinfo is UTC
    with pytest.raises(ValueError, match="naive"):
        column.process_bind_param(datetime(2025, 6, 1), sqlite_dialect)


async def test_statement_errors_never_show_their_parameters(sqlite_template: Path, tmp_path: Path) -> None:
    """A failed statement's text reaches the logs in a traceback; its parameters (prompts) must not."""
    path = tmp_path / "hidden.db"
    shutil.copyfile(sqlite_template, path)
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        async with engine.connect() as conn:
            with pytest.raises(sa.exc.DBAPIError) as failed:
                await conn.execute(
                    sa.text("INSERT INTO no_such_table VALUES (:prompt)"), {"prompt": "a secret"}
                )
    finally:
        await engine.dispose()
    assert "no_such_table" in str(failed.value)
    assert "a secret" not in str(failed.value)


async def _backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one())


async def _terminate(url: str, pid: int) -> None:
    """End the server's side of connection ``pid`` from a connection of another engine."""
    killer = create_engine(url, null_pool=True)
    try:
        async with killer.connect() as connection:
            await connection.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        await killer.dispose()


@pytest.mark.postgres
async def test_an_idle_connection_the_server_dropped_is_replaced_unseen(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server ends the pooled connection while it is idle (a restart, an idle timeout): the
    next use gets a new one, no error; a connection in use is not pinged first."""
    pings: list[object] = []
    ping = AsyncAdapt_asyncpg_connection.ping

    def counted(connection: AsyncAdapt_asyncpg_connection) -> None:
        pings.append(connection)
        ping(connection)  # type: ignore[no-untyped-call]

    monkeypatch.setattr(AsyncAdapt_asyncpg_connection, "ping", counted)
    engine = create_engine(postgres_url, pool_size=1)
    try:
        first = await _backend_pid(engine)
        assert await _backend_pid(engine) == first  # used again at once: the same connection ...
        assert pings == []  # ... not pinged
        await _terminate(postgres_url, first)
        monkeypatch.setattr(database, "PING_AFTER_IDLE_SECONDS", 0.0)
        replaced = await _backend_pid(engine)
        assert replaced != first
        assert len(pings) == 1  # the dead one's failed ping (the new connection is not pinged)
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_without_the_idle_ping_a_dropped_connection_fails_once(postgres_url: str) -> None:
    """What the ping saves an idle bot from (and what a busy one sees once after a restart): the
    first statement on the dead connection fails, and the pool then opens a new one."""
    engine = create_engine(postgres_url, pool_size=1)
    try:
        first = await _backend_pid(engine)
        await _terminate(postgres_url, first)
        with pytest.raises(sa.exc.DBAPIError):
            await _backend_pid(engine)
        assert await _backend_pid(engine) != first
    finally:
        await engine.dispose()
