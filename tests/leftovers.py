"""What a test leaves running after its fixtures are torn down: tasks, threads, database connections.

Why: a leftover is how one test breaks another, or the whole run. An aiosqlite connection that a test
opened and never closed once hung the suite for good: its worker thread had died with the test's event
loop, and when garbage collection finalised the connection during a later test, SQLAlchemy's graceful
close waited on that dead thread forever, and so did pytest-asyncio's clean-up of the later test's loop.

:func:`check` runs at the end of every test (the autouse fixture in ``tests/conftest.py``), inside the
test's own event loop, after every other function-scoped fixture has been torn down. It waits a short
grace for what is legitimately ending (a thread that was told to stop, a task finishing its last step),
then fails the test naming what is still there, and cleans it up, so the next test starts clean and
nothing is left for the loop's own unbounded clean-up to wait on.

Every task also records the task that started it (:func:`track_tasks`), so a failure says who started
a leftover, and the harness can wait for everything a bot started (:func:`descendants`).

Database connections are those SQLAlchemy opened (the pool ``connect`` event, for every engine in the
process) during the test and that are still open at its end; tests that talk to a driver directly close
their connections themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import aiosqlite
import greenlet  # type: ignore[import-untyped]
from sqlalchemy import event
from sqlalchemy.pool import Pool

#: How long what is ending anyway may take to end before it counts as left behind.
GRACE_SECONDS = 2.0
#: How long the clean-up of a leftover may take (it must never become the next hang).
CLEANUP_SECONDS = 5.0
PROJECT = Path(__file__).resolve().parent.parent


@dataclass
class OpenedConnection:
    """A DBAPI connection SQLAlchemy opened, and the code that opened it (for the failure message)."""

    connection: Any
    where: str

    @property
    def driver(self) -> Any:
        return getattr(self.connection, "driver_connection", self.connection)

    def is_open(self) -> bool:
        driver = self.driver
        if isinstance(driver, aiosqlite.Connection):
            # aiosqlite has no public "closed" flag; its own __del__ tests this attribute to warn about
            # a connection deleted before being closed.
            return driver._connection is not None
        is_closed = getattr(driver, "is_closed", None)  # asyncpg
        return bool(callable(is_closed) and not is_closed())

    def describe(self) -> str:
        return f"{type(self.driver).__qualname__} opened {self.where}"


@dataclass
class Snapshot:
    """What was there before the test: none of it is the test's to answer for."""

    tasks: set[asyncio.Task[Any]]
    threads: set[threading.Thread]
    connections: int  # index into the list of opened connections


_opened: list[OpenedConnection] = []
#: Each task's parent: the task that was running when it was created (None: a loop callback made it).
#: Parents are held strongly, so a finished parent still links its children to their ancestors.
_parents: weakref.WeakKeyDictionary[asyncio.Future[Any], asyncio.Task[Any] | None] = (
    weakref.WeakKeyDictionary()
)


def track_tasks(loop: asyncio.AbstractEventLoop) -> Callable[[], None]:
    """Record the parent of every task ``loop`` creates from now on; returns the undo."""
    previous: Callable[..., asyncio.Future[Any]] | None = loop.get_task_factory()

    def factory(
        loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], /, **kwargs: Any
    ) -> asyncio.Future[Any]:
        task = previous(loop, coro, **kwargs) if previous else asyncio.Task(coro, loop=loop, **kwargs)
        _parents[task] = asyncio.current_task(loop)
        return task

    loop.set_task_factory(factory)  # type: ignore[arg-type]  # the stub's protocol omits context=
    return lambda: loop.set_task_factory(previous)


def descendants(root: asyncio.Task[Any]) -> list[asyncio.Task[Any]]:
    """The unfinished tasks started by ``root``, by the tasks it started, and so on."""

    def descends(task: asyncio.Task[Any]) -> bool:
        parent = _parents.get(task)
        while parent is not None:
            if parent is root:
                return True
            parent = _parents.get(parent)
        return False

    return [task for task in asyncio.all_tasks() if not task.done() and descends(task)]


def _project_frames(frame: FrameType | None) -> list[str]:
    lines = []
    for entry in traceback.extract_stack(frame):
        path = Path(entry.filename)
        if path.is_relative_to(PROJECT) and ".venv" not in path.parts:
            lines.append(f"{path.relative_to(PROJECT)}:{entry.lineno} ({entry.name})")
    return lines


def _where() -> str:
    """The project's frames that led here. SQLAlchemy opens connections inside a greenlet, whose stack
    starts at the greenlet; the caller's frames are in the parent greenlet, paused where it switched."""
    frames = _project_frames(sys._getframe(2))
    parent = greenlet.getcurrent().parent
    while parent is not None:
        frames = _project_frames(parent.gr_frame) + frames
        parent = parent.parent
    task = None
    with contextlib.suppress(RuntimeError):
        task = asyncio.current_task()
    in_task = f" in task {task.get_name()!r}" if task is not None else ""
    return f"at {' <- '.join(reversed(frames[-4:])) or 'an unknown place'}{in_task}"


def _on_connect(dbapi_connection: Any, _record: Any) -> None:
    _opened.append(OpenedConnection(dbapi_connection, _where()))


def install() -> None:
    """Start recording every connection any SQLAlchemy pool opens (once per process)."""
    if not event.contains(Pool, "connect", _on_connect):
        event.listen(Pool, "connect", _on_connect)


def snapshot() -> Snapshot:
    tasks: set[asyncio.Task[Any]] = set()
    with contextlib.suppress(RuntimeError):  # no running loop
        tasks = asyncio.all_tasks()
    return Snapshot(tasks=tasks, threads=set(threading.enumerate()), connections=len(_opened))


def describe_task(task: asyncio.Task[Any]) -> str:
    frames = task.get_stack(limit=None)
    where = _project_frames(frames[-1]) if frames else []
    coro = task.get_coro()
    text = f"task {task.get_name()!r} running {getattr(coro, '__qualname__', repr(coro))}"
    if where:
        text += f" at {where[-1]}"
    parent = _parents.get(task)
    if parent is not None:
        text += f", started by task {parent.get_name()!r}"
    return text


def _describe_thread(thread: threading.Thread) -> str:
    frame = sys._current_frames().get(thread.ident or -1)
    where = _project_frames(frame)
    daemon = "daemon " if thread.daemon else ""
    return f"{daemon}thread {thread.name!r}" + (f" at {where[-1]}" if where else "")


async def _leftover_tasks(before: Snapshot) -> list[str]:
    current = asyncio.current_task()
    left = {t for t in asyncio.all_tasks() if t is not current and t not in before.tasks}
    if left:
        await asyncio.wait(left, timeout=GRACE_SECONDS)
    still = sorted((t for t in left if not t.done()), key=lambda t: t.get_name())
    problems = [describe_task(t) for t in still]
    for task in still:
        task.cancel()
    if still:
        _, stuck = await asyncio.wait(still, timeout=CLEANUP_SECONDS)
        problems += [f"{describe_task(t)} did not end when cancelled" for t in stuck]
    return problems


async def _shut_down_default_executor() -> list[str]:
    """Work still running in the loop's default executor (``asyncio.to_thread``) is left behind too;
    shutting the executor down here also ends its idle threads, so they need no excuse below."""
    loop = asyncio.get_running_loop()
    shutdown = asyncio.ensure_future(loop.shutdown_default_executor())
    done, _ = await asyncio.wait({shutdown}, timeout=GRACE_SECONDS)
    if done:
        return []
    busy = [t for t in threading.enumerate() if t.name.startswith("asyncio_")]
    return [f"the event loop's executor still runs work: {', '.join(map(_describe_thread, busy))}"]


async def _leftover_threads(before: Snapshot) -> list[str]:
    deadline = time.monotonic() + GRACE_SECONDS
    while True:
        left = [t for t in threading.enumerate() if t not in before.threads and t.is_alive()]
        if not left or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.02)  # not join(): a thread may be waiting on this very loop
    return [_describe_thread(t) for t in sorted(left, key=lambda t: t.name)]


async def close_driver(driver: Any) -> None:
    """Close a driver connection that was left open, without ever waiting on a thread that is gone."""
    if isinstance(driver, aiosqlite.Connection):
        if driver._thread.is_alive():
            stopped = driver.stop()
            if stopped is not None:
                await asyncio.wait({stopped}, timeout=CLEANUP_SECONDS)
        if driver._connection is not None:  # its thread is gone: close it here, as best we can
            with contextlib.suppress(sqlite3.Error):
                driver._connection.close()
            driver._connection = None  # so no later close() waits on the dead thread
            driver._running = False
        return
    terminate = getattr(driver, "terminate", None)  # asyncpg: closes the socket without a round trip
    if callable(terminate):
        terminate()


async def _leftover_connections(before: Snapshot) -> list[str]:
    opened = _opened[before.connections :]
    del _opened[before.connections :]
    deadline = time.monotonic() + GRACE_SECONDS
    while True:
        left = [c for c in opened if c.is_open()]
        if not left or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.02)
    for connection in left:
        await close_driver(connection.driver)
    return [f"database connection: {c.describe()}" for c in left]


async def check(before: Snapshot) -> list[str]:
    """Everything the test left running (empty when nothing); whatever is found is cleaned up."""
    problems = await _leftover_tasks(before)
    problems += await _leftover_connections(before)
    problems += await _shut_down_default_executor()
    problems += await _leftover_threads(before)
    return problems


def report(problems: Iterable[str]) -> str:
    lines = "\n".join(f"  - {p}" for p in problems)
    return f"the test left these running after its fixtures were torn down:\n{lines}"
