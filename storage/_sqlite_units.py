"""Units of work on SQLite, sent to its thread together: whatever is waiting shares the next trip.

The bot holds one SQLite connection (SQLite has one writer), so the units of work of every request -
the request's context, the reservation, the status card's id - wait in one line for it. Each turn of
that line is a trip to SQLite's thread and back, and its result comes back only at the event loop's
next turn, which in a burst is long: it runs every other request's callbacks first. Fifty requests
arriving at once made fifty turns for their contexts alone (a burst of commands that only read the
context took 1.5 times a burst of bare ones) and 200 for their reservations, so the last member's
receipt waited for every other member's trips (``benchmarks/ack.py``).

:class:`SharedTrips` keeps that one line but lets everything waiting in it ride together: the first
unit goes at once; the units that arrive while a trip is out wait, and go all in the next trip,
each in its own transaction, in the order they came
(:meth:`storage._sqlite.LeanConnection.run_units_of_work`). The database sees exactly what one-at-a-time would give it - the same
transactions, one after another, in the same order - and an error stays its own unit's. A unit
whose caller was cancelled before its trip left is dropped; once sent it runs to its end (commit
included), as a statement already sent does.

The trips are made by a task of their own, not by the first caller, so a caller's cancellation
never strands the others' results. Between trips the connection goes back to the pool, so a session
waiting for it (the worker's, an admin command's) gets its turn before the next trip.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar
from weakref import WeakKeyDictionary

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from storage import _sqlite

A = TypeVar("A")
T = TypeVar("T")


class _Unit(NamedTuple):
    fn: Callable[[Connection, Any], Any]
    arg: Any
    future: asyncio.Future[Any]


class SharedTrips:
    """The line of units of work for one SQLite engine (see the module docstring)."""

    def __init__(self, engine: AsyncEngine) -> None:
        # Weakly: the line is the value of a weak dictionary keyed by the engine (see _lines).
        self._engine = weakref.ref(engine)
        self._waiting: list[_Unit] = []
        self._trips: asyncio.Task[None] | None = None
        self.sent = 0  # trips made, for tests and benchmarks

    async def run(self, fn: Callable[[Connection, A], T], arg: A) -> T:
        """``fn(connection, arg)`` in the next trip; returns what it returns, raises what it raises."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Unit(fn, arg, future))
        if self._trips is None:
            self._trips = asyncio.create_task(self._make_trips(), name="sqlite shared trips")
        return await future

    async def _make_trips(self) -> None:
        try:
            while self._waiting:
                units = [unit for unit in self._waiting if not unit.future.done()]  # not the cancelled
                self._waiting = []
                if units:
                    await self._trip(units)
        finally:
            self._trips = None
            for unit in self._waiting:  # only if this task itself was cancelled (the bot is stopping)
                unit.future.cancel()
            self._waiting = []

    async def _trip(self, units: list[_Unit]) -> None:
        engine = self._engine()
        try:
            if engine is None:  # only if units outlived the engine their caller passed
                raise RuntimeError("the database engine is gone")
            connection = await engine.connect().start()
            try:
                driver = connection.sync_connection.connection.driver_connection  # type: ignore[union-attr]
                assert isinstance(driver, _sqlite.LeanConnection)
                self.sent += 1
                outcomes = await driver.run_units_of_work(
                    engine.sync_engine, [(unit.fn, unit.arg) for unit in units]
                )
            finally:
                await connection.close()
        except asyncio.CancelledError:
            for unit in units:
                unit.future.cancel()
            raise
        except Exception as error:  # the trip itself failed (the pool, the thread): every unit of it did
            for unit in units:
                if not unit.future.done():
                    unit.future.set_exception(error)
            return
        for unit, outcome in zip(units, outcomes, strict=True):
            if unit.future.done():  # its caller was cancelled while the trip was out
                continue
            if outcome.error is not None:
                unit.future.set_exception(outcome.error)
            else:
                unit.future.set_result(outcome.value)
        await asyncio.sleep(0)  # a task woken by the connection's return takes it before the next trip


#: Each engine's line, keyed by its sync engine: an engine no longer used takes its line with it.
_lines: WeakKeyDictionary[sa.Engine, SharedTrips] = WeakKeyDictionary()


def give_shared_trips(engine: AsyncEngine) -> None:
    """Give ``engine`` (SQLite, on the lean driver: :func:`storage.database.create_engine`) its line."""
    _lines[engine.sync_engine] = SharedTrips(engine)


def shared_trips(engine: AsyncEngine) -> SharedTrips | None:
    """``engine``'s :class:`SharedTrips`, or ``None`` when it has none (PostgreSQL)."""
    return _lines.get(engine.sync_engine)
