"""A leaner DBAPI shim for aiosqlite: one thread hop per statement instead of three or four.

aiosqlite runs SQLite in a worker thread; every call is a hop to that thread and back (tens of
microseconds each). SQLAlchemy's shim makes one hop to open a cursor, one to execute, one to fetch
and one to close, plus one for ``BEGIN`` and one for the pool's reset ``ROLLBACK`` even when no
transaction is open. SQLite itself needs ~20 µs for a whole small transaction, so the hops were
most of the cost of a reservation.

This shim (passed to SQLAlchemy as the DBAPI ``module``, so URLs stay ``sqlite+aiosqlite``) does
the whole statement - cursor, execute, fetch, close - in one hop, runs the transaction's
``BEGIN IMMEDIATE`` in the same hop as its first statement, and skips ``COMMIT``/``ROLLBACK`` hops
when no transaction is open. Semantics are unchanged: the write lock is still taken before the
transaction's first statement runs. It builds on SQLAlchemy's own aiosqlite adapter classes (which
themselves use aiosqlite's private queue) and is covered by the whole storage test suite.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util.concurrency import await_only

_Outcome = tuple[Any, int, int, list[Any]]


def _run(
    conn: sqlite3.Connection,
    begin: str | None,
    began: list[bool],
    operation: str,
    parameters: Any,
    many: bool,
) -> _Outcome:
    """Runs in aiosqlite's thread: the pending BEGIN, then the statement, fetched and closed."""
    if begin is not None:
        conn.execute(begin)
        began[0] = True
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        if cursor.description:
            return cursor.description, -1, -1, cursor.fetchall()
        return None, cursor.rowcount, cursor.lastrowid or 0, []
    finally:
        cursor.close()


class _Cursor(AsyncAdapt_aiosqlite_cursor):
    __slots__ = ()

    def _hop(self, operation: str, parameters: Any, *, many: bool) -> None:
        connection: _Connection = self._adapt_connection  # type: ignore[assignment]
        begin, connection.pending_begin = connection.pending_begin, None
        began = [False]
        try:
            description, rowcount, lastrowid, rows = self.await_(
                connection.run_in_thread(_run, begin, began, operation, parameters, many)
            )
        except Exception as error:
            if began[0]:
                connection.open_transaction = True
            elif begin is not None:
                connection.pending_begin = begin  # BEGIN itself failed: try it again next time
            connection._handle_exception(error)
        connection.open_transaction |= began[0]
        self.description = description
        self.rowcount = rowcount
        self.lastrowid = lastrowid
        self._rows = deque(rows)

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        self._hop(operation, parameters, many=False)

    def executemany(self, operation: Any, seq_of_parameters: Sequence[Any]) -> Any:
        self._hop(operation, seq_of_parameters, many=True)
        self.description = None


class _Connection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ("open_transaction", "pending_begin")

    def __init__(self, dbapi: Any, connection: Any) -> None:
        super().__init__(dbapi, connection)
        self.pending_begin: str | None = None
        self.open_transaction = False

    def defer_begin(self, statement: str) -> None:
        """Run ``statement`` (``BEGIN IMMEDIATE``) in the same hop as the next statement."""
        self.pending_begin = statement

    async def run_in_thread(self, function: Callable[..., _Outcome], *args: Any) -> _Outcome:
        connection: aiosqlite.Connection = self._connection  # type: ignore[assignment]
        # aiosqlite's own way to run a function in its thread (SQLAlchemy's shim uses its queue too).
        result: _Outcome = await connection._execute(function, connection._conn, *args)  # type: ignore[no-untyped-call]
        return result

    def cursor(self, server_side: bool = False) -> AsyncAdapt_aiosqlite_cursor:
        if server_side:
            return super().cursor(server_side=True)
        return _Cursor(self)

    def commit(self) -> None:
        self.pending_begin = None
        if self.open_transaction:
            super().commit()
            self.open_transaction = False

    def rollback(self) -> None:
        self.pending_begin = None
        if self.open_transaction:
            try:
                super().rollback()
            finally:
                self.open_transaction = False


class _DBAPI(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> _Connection:
        connection = self.aiosqlite.connect(*arg, **kw)
        connection._thread.daemon = True  # as SQLAlchemy does: never keep the process alive
        return _Connection(self, await_only(connection))


def dbapi() -> Any:
    """The DBAPI module to hand to ``create_async_engine(..., module=...)`` for aiosqlite URLs."""
    return _DBAPI(aiosqlite, sqlite3)
