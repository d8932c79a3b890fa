"""aiosqlite connections that make one trip to SQLite's thread per statement.

aiosqlite runs SQLite in a worker thread, and every call is a trip to that thread and back: a queue
put, a thread wake-up, a wake-up of the event loop through its self-pipe. On one core that costs
more than SQLite's own work for a small statement. SQLAlchemy's aiosqlite adapter makes four trips
per statement (open a cursor, execute, fetch, close), one for ``BEGIN`` and one for the pool's
reset ``ROLLBACK`` even when no transaction is open.

:class:`LeanConnection` is an :class:`aiosqlite.Connection` whose cursors do the whole statement
(the pending ``BEGIN IMMEDIATE``, execute, fetch, close) in one trip, and which skips ``COMMIT`` and
``ROLLBACK`` trips when no transaction is open. SQLAlchemy gets it through its public
``async_creator`` hook (:func:`connector`) and wraps it in its stock adapter, which only uses
aiosqlite's public interface (``cursor()``, ``execute``/``fetchall``/``close`` on the cursor,
``commit()``, ``rollback()``), so no SQLAlchemy internals are subclassed or imported. From aiosqlite
it relies on one internal, ``Connection._execute`` (queue a function for the thread), which every
aiosqlite method goes through. ``tests/storage/test_database.py`` pins the trip counts, so a
library upgrade that bypasses any of this fails the tests instead of silently getting slower.

Semantics are SQLite's own: the write lock is still taken by ``BEGIN IMMEDIATE`` before the
transaction's first statement runs, and a connection that might be in a transaction always gets its
``COMMIT``/``ROLLBACK``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, NamedTuple, Self

import aiosqlite
from aiosqlite.context import Result
from sqlalchemy.dialects.sqlite.aiosqlite import SQLiteDialect_aiosqlite
from sqlalchemy.engine import URL


class _Outcome(NamedTuple):
    description: Any
    rowcount: int
    lastrowid: int | None
    rows: list[Any]
    in_transaction: bool


def _statement(
    conn: sqlite3.Connection, begin: str | None, sql: str, parameters: Any, many: bool
) -> _Outcome:
    """Runs in aiosqlite's thread: the pending BEGIN, then the statement, fetched and closed."""
    if begin is not None:
        conn.execute(begin)
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(sql, parameters)
        elif parameters is None:
            cursor.execute(sql)
        else:
            cursor.execute(sql, parameters)
        rows = cursor.fetchall() if cursor.description else []
        return _Outcome(cursor.description, cursor.rowcount, cursor.lastrowid, rows, conn.in_transaction)
    finally:
        cursor.close()


class LeanCursor:
    """The part of :class:`aiosqlite.Cursor` that SQLAlchemy's adapter uses; rows are buffered, so
    only ``execute``/``executemany`` go to the thread."""

    arraysize = 1

    def __init__(self, connection: LeanConnection) -> None:
        self._connection = connection
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self._rows: list[Any] = []

    async def _run(self, sql: str, parameters: Any, *, many: bool) -> Self:
        outcome = await self._connection.run_statement(sql, parameters, many=many)
        self.description, self.rowcount, self.lastrowid, self._rows, _ = outcome
        return self

    async def execute(self, sql: str, parameters: Any = None) -> Self:
        return await self._run(sql, parameters, many=False)

    async def executemany(self, sql: str, parameters: Any) -> Self:
        return await self._run(sql, parameters, many=True)

    async def fetchall(self) -> list[Any]:
        rows, self._rows = self._rows, []
        return rows

    async def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        count = self.arraysize if size is None else size
        rows, self._rows = self._rows[:count], self._rows[count:]
        return rows

    async def close(self) -> None:
        self._rows = []

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class LeanConnection(aiosqlite.Connection):
    """An aiosqlite connection with one trip per statement (see the module docstring).

    ``trips`` counts every trip to the thread, for tests and diagnostics.
    """

    def __init__(self, connector: Callable[[], sqlite3.Connection], iter_chunk_size: int = 64) -> None:
        super().__init__(connector, iter_chunk_size)
        self._thread.daemon = True  # as SQLAlchemy does for aiosqlite: never keep the process alive
        self._pending_begin: str | None = None
        self._idle = True  # known to have no open transaction (as of our last trip)
        self.trips = 0

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        # Every aiosqlite operation passes here: any trip but ours may open a transaction.
        self._idle = False
        self.trips += 1
        return await super()._execute(fn, *args, **kwargs)  # type: ignore[no-untyped-call]

    def defer_begin(self, statement: str) -> None:
        """Run ``statement`` (``BEGIN IMMEDIATE``) in the same trip as the next statement."""
        self._pending_begin = statement

    async def run_statement(self, sql: str, parameters: Any, *, many: bool) -> _Outcome:
        begin, self._pending_begin = self._pending_begin, None
        outcome: _Outcome = await self._execute(_statement, self._conn, begin, sql, parameters, many)
        self._idle = not outcome.in_transaction
        return outcome

    def cursor(self) -> Result[LeanCursor]:  # type: ignore[override]
        return Result(self._new_cursor())

    async def _new_cursor(self) -> LeanCursor:
        return LeanCursor(self)

    async def commit(self) -> None:
        self._pending_begin = None
        if not self._idle:
            await super().commit()
            self._idle = True

    async def rollback(self) -> None:
        self._pending_begin = None
        if not self._idle:
            await super().rollback()
            self._idle = True


def connector(url: URL, **connect_args: Any) -> Callable[[], Awaitable[LeanConnection]]:
    """An ``async_creator`` for ``create_async_engine``: opens a :class:`LeanConnection` with the
    arguments SQLAlchemy's aiosqlite dialect would use for ``url``, plus ``connect_args``."""
    args, kwargs = SQLiteDialect_aiosqlite().create_connect_args(url)
    kwargs.update(connect_args)

    async def connect() -> LeanConnection:
        connection = LeanConnection(partial(sqlite3.connect, *args, **kwargs))
        await connection  # starts its thread and opens the database there
        return connection

    return connect
