"""The SQLite driver connection (:mod:`storage._sqlite`): trips to SQLite's thread and transactions.

These pin what the ledger benchmark depends on - one trip per statement, BEGIN and COMMIT riding
along with statements, no trip for a COMMIT or ROLLBACK with nothing to end - so an upgrade of
SQLAlchemy or aiosqlite that routes around the driver fails here, loudly, instead of making the bot
silently slower. They also pin the semantics that make it safe.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from storage import Storage
from storage._sqlite import LeanConnection
from storage.database import commit_with_next_statement, create_engine
from tests.storage.helpers import FakeClock, make_job

SCRATCH = sa.text("CREATE TABLE scratch (id INTEGER PRIMARY KEY, note TEXT UNIQUE)")
INSERT = sa.text("INSERT INTO scratch (note) VALUES (:note)")


@pytest.fixture
def db_path(sqlite_template: Path, tmp_path: Path) -> Path:
    path = tmp_path / "driver.db"
    shutil.copyfile(sqlite_template, path)
    return path


@pytest.fixture
async def engine(db_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{db_path}")
    async with engine.begin() as conn:
        await conn.execute(SCRATCH)
    try:
        yield engine
    finally:
        await engine.dispose()


async def _driver(conn: AsyncConnection) -> LeanConnection:
    driver = (await conn.get_raw_connection()).driver_connection
    assert isinstance(driver, LeanConnection), f"SQLAlchemy is not using our driver: {driver!r}"
    return driver


def _notes(path: Path) -> list[str]:
    """What another connection (another process, say) sees as committed."""
    other = sqlite3.connect(path)
    try:
        return [note for (note,) in other.execute("SELECT note FROM scratch ORDER BY id")]
    finally:
        other.close()


async def test_one_trip_per_statement_and_none_for_a_commit_with_nothing_to_end(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        driver = await _driver(conn)
        start = driver.trips
        await conn.execute(INSERT, {"note": "a"})  # BEGIN IMMEDIATE rides along
        rows = (await conn.execute(sa.text("SELECT note FROM scratch"))).all()  # rows come with the trip
        assert [row.note for row in rows] == ["a"]
        assert driver.trips - start == 2
        await conn.commit()
        assert driver.trips - start == 3
        await conn.rollback()  # nothing to end: no trip
        assert driver.trips - start == 3
    # Closing a connection whose transaction ended, and the pool's reset ROLLBACK: no trip either.
    async with engine.connect() as conn:
        assert await _driver(conn) is driver
    assert driver.trips - start == 3


async def test_every_transaction_is_begin_immediate(engine: AsyncEngine, db_path: Path) -> None:
    other = sqlite3.connect(db_path, timeout=0, isolation_level=None)
    try:
        async with engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))  # a read opens the transaction with the write lock
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
            await conn.commit()
            other.execute("BEGIN IMMEDIATE")  # released at commit
            other.execute("ROLLBACK")
            await conn.execute(sa.text("SELECT 1"))  # and the next transaction takes it again
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
    finally:
        other.close()


async def _insert(engine: AsyncEngine, *notes: str) -> None:
    async with engine.begin() as conn:
        for note in notes:
            await conn.execute(INSERT, {"note": note})


async def test_a_failed_transaction_rolls_back_everything(engine: AsyncEngine, db_path: Path) -> None:
    with pytest.raises(sa.exc.IntegrityError):
        await _insert(engine, "kept?", "kept?")  # the second is a unique violation
    assert _notes(db_path) == []


def _insert_last(conn: Connection, notes: list[str]) -> None:
    for note in notes[:-1]:
        conn.execute(INSERT, {"note": note})
    commit_with_next_statement(conn)
    conn.execute(INSERT, {"note": notes[-1]})


async def test_commit_with_the_last_statement(engine: AsyncEngine, db_path: Path) -> None:
    async with engine.begin() as conn:
        driver = await _driver(conn)
        trips = driver.trips
        await conn.run_sync(_insert_last, ["a", "b"])
        assert _notes(db_path) == ["a", "b"]  # committed by the last statement's trip
        assert driver.trips - trips == 2
        # Anything after the last statement would start a second transaction: refused, loudly.
        with pytest.raises(sa.exc.ProgrammingError, match="already committed"):
            await conn.execute(INSERT, {"note": "c"})
    assert _notes(db_path) == ["a", "b"]
    async with engine.begin() as conn:  # the block's own commit had nothing left to do
        assert (await _driver(conn)).trips - trips == 2
        await conn.execute(INSERT, {"note": "c"})
    assert _notes(db_path) == ["a", "b", "c"]


async def test_a_failing_last_statement_commits_nothing(engine: AsyncEngine, db_path: Path) -> None:
    with pytest.raises(sa.exc.IntegrityError):
        async with engine.begin() as conn:
            await conn.run_sync(_insert_last, ["x", "x"])
    assert _notes(db_path) == []


async def test_a_reservation_is_four_trips(db_path: Path, clock: FakeClock) -> None:
    """The ledger benchmark's unit of work: budget counter, debit, job, ledger row; BEGIN goes with
    the first, COMMIT with the last, nothing else goes to the thread."""
    async with Storage(f"sqlite+aiosqlite:///{db_path}", clock=clock) as storage:
        await make_job(storage, estimate=10)  # a new member: the general path creates the account
        async with storage.engine.connect() as conn:
            driver = await _driver(conn)
        trips = driver.trips
        await make_job(storage, estimate=10)
        assert driver.trips - trips == 4
        balance = await storage.balance(1, 10)
        assert (balance.reserved, balance.active_jobs) == (20, 2)


async def test_statements_cannot_bypass_the_cursor(engine: AsyncEngine) -> None:
    """aiosqlite's shortcuts would run outside the driver's transactions: they are refused."""
    async with engine.connect() as conn:
        driver = await _driver(conn)
        with pytest.raises(sqlite3.NotSupportedError):
            await driver.execute("DELETE FROM scratch")
        with pytest.raises(sqlite3.NotSupportedError):
            await driver.executescript("DELETE FROM scratch;")


def test_sqlite_needs_the_aiosqlite_driver(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="aiosqlite"):
        create_engine(f"sqlite+pysqlite:///{tmp_path}/x.db")
