"""The SQLite driver connection (:mod:`storage._sqlite`): trips to SQLite's thread and transactions.

These pin what the ledger benchmark depends on - one trip per statement with BEGIN riding along,
one per reservation, no trip for a COMMIT or ROLLBACK with nothing to end - so an upgrade of
SQLAlchemy or aiosqlite that routes around the driver fails here, loudly, instead of making the bot
silently slower. They also pin the semantics that make it safe.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from storage import Storage
from storage._sqlite import LeanConnection
from storage.database import create_engine
from tests.storage.helpers import INSERT_NOTE, FakeClock, committed_notes, make_job


async def _driver(conn: AsyncConnection) -> LeanConnection:
    driver = (await conn.get_raw_connection()).driver_connection
    assert isinstance(driver, LeanConnection), f"SQLAlchemy is not using our driver: {driver!r}"
    return driver


async def test_one_trip_per_statement_and_none_for_a_commit_with_nothing_to_end(
    scratch_engine: AsyncEngine,
) -> None:
    async with scratch_engine.connect() as conn:
        driver = await _driver(conn)
        start = driver.trips
        await conn.execute(INSERT_NOTE, {"note": "a"})  # BEGIN IMMEDIATE rides along
        rows = (await conn.execute(sa.text("SELECT note FROM scratch"))).all()  # rows come with the trip
        assert [row.note for row in rows] == ["a"]
        assert driver.trips - start == 2
        await conn.commit()
        assert driver.trips - start == 3
        await conn.rollback()  # nothing to end: no trip
        assert driver.trips - start == 3
    # Closing a connection whose transaction ended, and the pool's reset ROLLBACK: no trip either.
    async with scratch_engine.connect() as conn:
        assert await _driver(conn) is driver
    assert driver.trips - start == 3


async def test_every_transaction_is_begin_immediate(scratch_engine: AsyncEngine, scratch_path: Path) -> None:
    other = sqlite3.connect(scratch_path, timeout=0, isolation_level=None)
    try:
        async with scratch_engine.connect() as conn:
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


async def _insert(scratch_engine: AsyncEngine, *notes: str) -> None:
    async with scratch_engine.begin() as conn:
        for note in notes:
            await conn.execute(INSERT_NOTE, {"note": note})


async def test_a_failed_transaction_rolls_back_everything(
    scratch_engine: AsyncEngine, scratch_path: Path
) -> None:
    with pytest.raises(sa.exc.IntegrityError):
        await _insert(scratch_engine, "kept?", "kept?")  # the second is a unique violation
    assert committed_notes(scratch_path) == []


async def test_a_reservation_is_one_trip(scratch_path: Path, clock: FakeClock) -> None:
    """The ledger benchmark's unit of work - budget counter, debit, job, ledger row, with BEGIN and
    COMMIT - goes to SQLite's thread whole: one trip (storage._sqlite_units)."""
    async with Storage(f"sqlite+aiosqlite:///{scratch_path}", clock=clock) as storage:
        await make_job(storage, estimate=10)  # a new member: the general path creates the account
        async with storage.engine.connect() as conn:
            driver = await _driver(conn)
        trips = driver.trips
        await make_job(storage, estimate=10)
        assert driver.trips - trips == 1
        balance = await storage.balance(1, 10)
        assert (balance.reserved, balance.active_jobs) == (20, 2)


async def test_statements_cannot_bypass_the_cursor(scratch_engine: AsyncEngine) -> None:
    """aiosqlite's shortcuts would run outside the driver's transactions: they are refused."""
    async with scratch_engine.connect() as conn:
        driver = await _driver(conn)
        with pytest.raises(sqlite3.NotSupportedError):
            await driver.execute("DELETE FROM scratch")
        with pytest.raises(sqlite3.NotSupportedError):
            await driver.executescript("DELETE FROM scratch;")


def test_sqlite_needs_the_aiosqlite_driver(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="aiosqlite"):
        create_engine(f"sqlite+pysqlite:///{tmp_path}/x.db")
