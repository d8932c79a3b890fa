"""The leftover check finds what a test leaves running, names it, cleans it up, and spares what ends.

Each test leaves something behind on purpose, calls :func:`tests.leftovers.check` itself, and asserts on
the answer; the check cleans up, so the autouse fixture that runs after it finds nothing.
"""

from __future__ import annotations

import asyncio
import threading
import time
from functools import partial
from pathlib import Path

import aiosqlite
import pytest
import sqlalchemy as sa

from storage.database import create_engine
from tests import leftovers


@pytest.fixture(autouse=True)
def quick_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(leftovers, "GRACE_SECONDS", 0.3)


async def test_nothing_left_is_nothing_reported() -> None:
    before = leftovers.snapshot()
    await asyncio.sleep(0)
    assert await leftovers.check(before) == []


async def test_a_task_left_running_is_named_with_who_started_it_and_cancelled() -> None:
    before = leftovers.snapshot()
    forgotten: list[asyncio.Task[None]] = []

    async def starter() -> None:
        forgotten.append(asyncio.create_task(asyncio.sleep(60), name="forgotten"))

    await asyncio.create_task(starter(), name="starter")
    (problem,) = await leftovers.check(before)
    assert problem.startswith("task 'forgotten' running sleep")
    assert problem.endswith("started by task 'starter'")
    assert forgotten[0].cancelled()


async def test_a_task_that_finishes_within_the_grace_is_not_reported() -> None:
    before = leftovers.snapshot()
    finishing = asyncio.create_task(asyncio.sleep(0.05))
    assert await leftovers.check(before) == []
    assert finishing.done()
    assert not finishing.cancelled()


async def test_descendants_are_the_tasks_a_task_started_and_theirs() -> None:
    release = asyncio.Event()
    children: list[asyncio.Task[object]] = []

    async def child() -> None:
        children.append(asyncio.create_task(release.wait(), name="grandchild"))
        await release.wait()

    async def root() -> None:
        children.append(asyncio.create_task(child(), name="child"))

    started = asyncio.create_task(root(), name="root")
    await started  # done: its children still count as its descendants
    await asyncio.sleep(0)
    other = asyncio.create_task(release.wait(), name="unrelated")
    assert {t.get_name() for t in leftovers.descendants(started)} == {"child", "grandchild"}
    release.set()
    await asyncio.gather(*children, other)
    assert leftovers.descendants(started) == []


async def test_a_thread_left_running_is_named_and_one_ending_in_the_grace_is_not() -> None:
    stop = threading.Event()
    before = leftovers.snapshot()
    left = threading.Thread(target=stop.wait, name="left-behind", daemon=True)
    ending = threading.Thread(target=time.sleep, args=(0.05,), name="ending")
    left.start()
    ending.start()
    try:
        (problem,) = await leftovers.check(before)
        assert problem.startswith("daemon thread 'left-behind'")
    finally:
        stop.set()
        left.join(5)


async def test_work_left_in_the_event_loops_executor_is_named() -> None:
    release = threading.Event()
    before = leftovers.snapshot()
    running = asyncio.ensure_future(asyncio.to_thread(release.wait))
    await asyncio.sleep(0.05)
    try:
        problems = await leftovers.check(before)
        assert any(p.startswith("task ") and "to_thread" in p for p in problems)
        assert any(
            p.startswith("the event loop's executor still runs work: thread 'asyncio_") for p in problems
        )
    finally:
        release.set()
        await asyncio.wait({running}, timeout=5)


async def test_an_engine_never_disposed_is_named_where_its_connection_was_opened_and_closed(
    tmp_path: Path,
) -> None:
    before = leftovers.snapshot()
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/left.db")
    async with engine.connect() as connection:  # back in the pool afterwards, open until disposed
        await connection.execute(sa.text("SELECT 1"))
        driver = (await connection.get_raw_connection()).driver_connection
    assert isinstance(driver, aiosqlite.Connection)
    (problem,) = await leftovers.check(before)
    assert problem.startswith("database connection: LeanConnection opened at tests/test_leftovers.py:")
    assert not is_open(driver)  # closed, and its thread stopped
    driver._thread.join(5)
    assert not driver._thread.is_alive()
    await engine.dispose()  # nothing left to close: returns at once


async def test_a_disposed_engine_leaves_nothing(tmp_path: Path) -> None:
    before = leftovers.snapshot()
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/ok.db")
    async with engine.connect() as connection:
        await connection.execute(sa.text("SELECT 1"))
    await engine.dispose()
    assert await leftovers.check(before) == []


def is_open(connection: aiosqlite.Connection) -> bool:
    return connection._connection is not None


def _orphan(path: Path) -> aiosqlite.Connection:
    """In another thread and event loop: a connection whose query is still running when its loop ends."""

    async def go() -> aiosqlite.Connection:
        connection = await aiosqlite.connect(path)
        # What Connection._execute does, left unawaited: the thread answers this loop once it is closed.
        connection._tx.put_nowait((asyncio.get_running_loop().create_future(), partial(time.sleep, 0.2)))
        return connection

    return asyncio.run(go())


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
async def test_a_connection_whose_thread_died_with_its_loop_is_closed_without_waiting(tmp_path: Path) -> None:
    """The hang this module exists for: aiosqlite's thread dies when it answers a loop that is closed,
    and a later ``close()`` (SQLAlchemy's graceful close of a garbage-collected connection) then waits
    for that thread forever, even when cancelled."""
    connection = await asyncio.to_thread(_orphan, tmp_path / "orphan.db")
    connection._thread.join(5)
    assert not connection._thread.is_alive()
    assert is_open(connection)  # the file too

    await asyncio.wait_for(leftovers.close_driver(connection), 5)
    assert not is_open(connection)
    await asyncio.wait_for(connection.close(), 1)  # returns at once instead of hanging
