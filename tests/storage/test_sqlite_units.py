"""Units of work on SQLite sharing trips to its thread (:mod:`storage._sqlite_units`).

What makes sharing safe is pinned here: the units that wait together go in one trip, yet each keeps
its own transaction (``BEGIN IMMEDIATE``, its commit, its rollback on error), its own result or error
and its place in line; a unit whose caller gave up before its trip is never run; a session waiting
for the connection is not overtaken; the engine's listeners still see every statement; and a line
never keeps an engine no longer used alive.
"""

from __future__ import annotations

import asyncio
import gc
import sqlite3
import threading
import weakref
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from storage import _sqlite_units
from storage.database import create_engine, run_on_connection
from tests.storage.helpers import INSERT_NOTE, committed_notes


def insert(connection: Connection, notes: tuple[str, ...]) -> int:
    """A unit of work: insert ``notes`` in one transaction; the id of the last."""
    with connection.begin():
        for note in notes:
            last = connection.execute(INSERT_NOTE, {"note": note}).lastrowid
    return int(last)


class Gate:
    """A unit of work that holds SQLite's thread until opened, so others queue up behind it."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.opened = threading.Event()

    def __call__(self, connection: Connection, note: str) -> str:
        with connection.begin():
            connection.execute(INSERT_NOTE, {"note": note})
            self.entered.set()
            assert self.opened.wait(timeout=10), "the test never opened the gate"
        return note

    async def wait_entered(self) -> None:
        for _ in range(500):
            if self.entered.is_set():
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the gate's unit never started")


async def held(engine: AsyncEngine, note: str) -> tuple[Gate, asyncio.Task[str]]:
    """A :class:`Gate` unit inserting ``note``, started and holding SQLite's thread."""
    gate = Gate()
    task = asyncio.create_task(run_on_connection(engine, gate, note))
    await gate.wait_entered()
    return gate, task


def line_of(engine: AsyncEngine) -> _sqlite_units.SharedTrips:
    line = _sqlite_units.shared_trips(engine)
    assert line is not None, "a SQLite engine from create_engine has its shared trips"
    return line


async def test_units_waiting_together_go_in_one_trip_in_their_order(
    scratch_engine: AsyncEngine, scratch_path: Path
) -> None:
    gate, first = await held(scratch_engine, "first")
    trips = line_of(scratch_engine).sent
    waiting = [asyncio.create_task(run_on_connection(scratch_engine, insert, (f"n{i}",))) for i in range(20)]
    await asyncio.sleep(0.05)  # all twenty are queued behind the gate
    gate.opened.set()
    assert await first == "first"
    ids = await asyncio.gather(*waiting)
    assert line_of(scratch_engine).sent - trips == 1  # the twenty shared one trip
    assert ids == sorted(ids)  # in the order they were asked for
    assert committed_notes(scratch_path) == ["first", *(f"n{i}" for i in range(20))]


async def test_a_units_error_is_its_own_and_rolls_back_only_its_transaction(
    scratch_engine: AsyncEngine, scratch_path: Path
) -> None:
    gate, first = await held(scratch_engine, "dup")
    before = asyncio.create_task(run_on_connection(scratch_engine, insert, ("a",)))
    failing = asyncio.create_task(run_on_connection(scratch_engine, insert, ("b", "dup")))  # its second fails
    after = asyncio.create_task(run_on_connection(scratch_engine, insert, ("c",)))
    await asyncio.sleep(0.05)
    gate.opened.set()
    await first
    await before
    with pytest.raises(sa.exc.IntegrityError):
        await failing
    await after
    assert committed_notes(scratch_path) == ["dup", "a", "c"]  # "b" went with its unit's rollback


async def test_a_unit_whose_caller_gave_up_before_its_trip_is_never_run(
    scratch_engine: AsyncEngine, scratch_path: Path
) -> None:
    gate, first = await held(scratch_engine, "first")
    abandoned = asyncio.create_task(run_on_connection(scratch_engine, insert, ("abandoned",)))
    kept = asyncio.create_task(run_on_connection(scratch_engine, insert, ("kept",)))
    await asyncio.sleep(0.05)
    abandoned.cancel()
    await asyncio.sleep(0)
    gate.opened.set()
    await first
    await kept
    with pytest.raises(asyncio.CancelledError):
        await abandoned
    assert committed_notes(scratch_path) == ["first", "kept"]


async def test_a_unit_left_open_is_rolled_back_and_the_next_runs(
    scratch_engine: AsyncEngine, scratch_path: Path
) -> None:
    def forgets_to_commit(connection: Connection, note: str) -> None:
        connection.execute(INSERT_NOTE, {"note": note})  # autobegun, never committed

    await run_on_connection(scratch_engine, forgets_to_commit, "lost")
    await run_on_connection(scratch_engine, insert, ("next",))
    assert committed_notes(scratch_path) == ["next"]


async def test_each_unit_takes_the_write_lock_up_front(
    scratch_engine: AsyncEngine, scratch_path: Path
) -> None:
    """BEGIN IMMEDIATE, as on the async side: even a read holds the lock another process wants."""
    # The unit runs in SQLite's thread: so must the other connection it uses.
    other = sqlite3.connect(scratch_path, timeout=0, isolation_level=None, check_same_thread=False)

    def read_and_try_the_lock(connection: Connection, _: None) -> str:
        with connection.begin():
            connection.execute(sa.text("SELECT 1"))
            try:
                other.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as error:
                return str(error)
            other.execute("ROLLBACK")
            return "not locked"

    try:
        assert "locked" in await run_on_connection(scratch_engine, read_and_try_the_lock, None)
    finally:
        other.close()


async def test_a_session_waiting_for_the_connection_goes_before_the_next_trip(
    scratch_engine: AsyncEngine, scratch_path: Path
) -> None:
    gate, first = await held(scratch_engine, "first")

    async def session_insert() -> None:
        async with scratch_engine.begin() as conn:
            await conn.execute(INSERT_NOTE, {"note": "session"})

    session = asyncio.create_task(session_insert())  # waits in the pool for the one connection
    await asyncio.sleep(0.05)
    later = asyncio.create_task(run_on_connection(scratch_engine, insert, ("later",)))
    await asyncio.sleep(0.05)
    gate.opened.set()
    await asyncio.gather(first, session, later)
    assert committed_notes(scratch_path) == ["first", "session", "later"]


async def test_the_engines_listeners_see_each_statement_of_a_unit(scratch_engine: AsyncEngine) -> None:
    seen: list[str] = []

    def heard(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        seen.append(statement)

    sa.event.listen(scratch_engine.sync_engine, "before_cursor_execute", heard)
    try:
        await run_on_connection(scratch_engine, insert, ("x", "y"))
    finally:
        sa.event.remove(scratch_engine.sync_engine, "before_cursor_execute", heard)
    assert seen == [
        str(INSERT_NOTE),
        str(INSERT_NOTE),
    ]  # the caller's statements; BEGIN and COMMIT are not theirs


async def test_the_trips_task_ends_when_nothing_waits(scratch_engine: AsyncEngine) -> None:
    await run_on_connection(scratch_engine, insert, ("a",))
    await asyncio.sleep(0)
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "sqlite shared trips"]


def select_one(connection: Connection, _: None) -> int:
    with connection.begin():
        return int(connection.execute(sa.text("SELECT 1")).scalar_one())


async def test_an_engine_no_longer_used_takes_its_line_with_it(scratch_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{scratch_path}")
    assert await run_on_connection(engine, select_one, None) == 1
    gone = weakref.ref(engine.sync_engine)
    await engine.dispose()
    del engine
    gc.collect()
    assert gone() is None
