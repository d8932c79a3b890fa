"""The SQLite driver connection: aiosqlite with one trip to SQLite's thread per statement, or per
group of units of work.

aiosqlite runs SQLite in a worker thread, and every call is a trip to that thread and back (a queue
put, a thread wake-up, then a wake-up of the event loop through its self-pipe). On one core a trip
costs about as much as SQLite's own work for a small statement. Through SQLAlchemy's stock adapter a
statement takes four trips (open a cursor, execute, fetch, close), ``BEGIN`` one more, and the pool's
reset ``ROLLBACK`` one more even when no transaction is open.

:class:`LeanConnection` is an :class:`aiosqlite.Connection` that SQLAlchemy receives through its
public ``async_creator`` hook (:func:`connector`) and wraps in its stock adapter, which only uses
aiosqlite's public interface (``cursor()``, the cursor's ``execute``/``fetchall``/``close``,
``commit()``, ``rollback()``). It differs from aiosqlite in four ways:

* the pragmas of :mod:`storage.database` run in the thread that opens the connection, before
  SQLAlchemy ever sees it;
* transactions are the driver's, as PEP 249 intends: the first statement outside a transaction
  starts one with ``BEGIN IMMEDIATE`` in the same trip (the write lock is taken before the
  transaction's first statement runs, so a second process waits in ``busy_timeout`` instead of
  failing with "database is locked"); sqlite3's own implicit (deferred) ``BEGIN`` is switched off;
* a cursor does the whole statement - execute, fetch, close - in one trip and hands SQLAlchemy
  the buffered rows; ``COMMIT``/``ROLLBACK`` skip their trip when no transaction can be open;
* :meth:`LeanConnection.run_units_of_work` runs whole synchronous units of work - functions of a
  SQLAlchemy ``Connection`` that run their own transaction (the reservation, the request's context,
  a status card's id) - in *one* trip, however many statements they make: in SQLite's thread, on a
  synchronous SQLAlchemy engine over this very sqlite3 connection (:func:`thread_engine`), each
  unit in its own transaction, one after another. :mod:`storage._sqlite_units` sends every unit
  waiting for the connection together; why that matters in a burst is told there.

aiosqlite's own statement shortcuts (``execute``, ``executescript``, ...) are refused: they would run
outside the driver's transactions. No SQLAlchemy internals are imported or subclassed (the thread
engine tells its statements to the bot's engine's listeners through ``Engine.dispatch``, the
attribute SQLAlchemy's event system fires them with). From
aiosqlite it uses three internals that SQLAlchemy's adapter uses too: ``Connection._execute`` (queue
a function for the thread, the primitive every aiosqlite method goes through), ``_conn`` (the sqlite3
connection, handed to that function) and ``_thread`` (made a daemon, as SQLAlchemy does); a change
there fails at the first connection. ``tests/storage/test_sqlite_driver.py`` pins the trips per
statement and per unit of work and the transaction semantics, so an upgrade of SQLAlchemy or
aiosqlite that routes around the driver fails the tests instead of silently getting slower or less
safe.
"""

from __future__ import annotations

import sqlite3
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from typing import Any, NamedTuple, NoReturn, Self

import aiosqlite
import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection
from sqlalchemy.pool import StaticPool

BEGIN = "BEGIN IMMEDIATE"


class _Outcome(NamedTuple):
    description: Any
    rowcount: int
    lastrowid: int | None
    rows: list[Any]


def _open(args: Sequence[Any], kwargs: Mapping[str, Any], pragmas: Sequence[str]) -> sqlite3.Connection:
    """Runs in aiosqlite's thread: open the database and apply the pragmas, outside any transaction."""
    connection: sqlite3.Connection = sqlite3.connect(*args, **kwargs)
    try:
        for pragma in pragmas:
            connection.execute(pragma)
    except BaseException:
        connection.close()
        raise
    return connection


def _checkpoint(conn: sqlite3.Connection) -> tuple[int, int, int]:
    """Runs in aiosqlite's thread, outside any transaction: copy the WAL into the database file and
    truncate it; SQLite's (busy, frames in the log, frames copied)."""
    busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    return int(busy), int(frames), int(copied)


def _statement(conn: sqlite3.Connection, sql: str, parameters: Any, many: bool) -> _Outcome:
    """Runs in aiosqlite's thread: BEGIN if no transaction is open, the statement, fetched and
    closed."""
    if not conn.in_transaction:
        conn.execute(BEGIN)
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(sql, parameters)
        elif parameters is None:
            cursor.execute(sql)
        else:
            cursor.execute(sql, parameters)
        rows = cursor.fetchall() if cursor.description else []
        outcome = _Outcome(cursor.description, cursor.rowcount, cursor.lastrowid, rows)
    finally:
        cursor.close()
    return outcome


def thread_engine(conn: sqlite3.Connection, parent: sa.Engine) -> sa.Engine:
    """A synchronous SQLAlchemy engine whose one connection is ``conn``, for use in ``conn``'s own
    thread only (:meth:`LeanConnection.run_units_of_work`). Same SQL, parameter style, type handling
    and echo as ``parent``, the async engine (whose aiosqlite dialect is this pysqlite dialect with
    awaits); its transactions begin with ``BEGIN IMMEDIATE`` (SQLAlchemy's recipe for taking over
    pysqlite's ``BEGIN``; ``conn`` has sqlite3's own implicit one switched off). Its statements are
    told to ``parent``'s ``before_cursor_execute``/``after_cursor_execute`` listeners, so whatever
    watches the bot's engine (a statement count, tracing) still sees every statement."""
    engine = sa.create_engine(
        "sqlite://",
        creator=lambda: conn,
        poolclass=StaticPool,
        paramstyle="named",
        hide_parameters=True,
        echo=parent.echo,
    )

    def begin(_: Connection) -> None:
        conn.execute(BEGIN)  # transaction control, as on the async side: not a statement of the caller's

    listeners = weakref.ref(parent)  # a connection must not keep its pool's engine alive

    def before(connection: Connection, *args: Any) -> None:
        if (bot_engine := listeners()) is not None:
            bot_engine.dispatch.before_cursor_execute(connection, *args)

    def after(connection: Connection, *args: Any) -> None:
        if (bot_engine := listeners()) is not None:
            bot_engine.dispatch.after_cursor_execute(connection, *args)

    sa.event.listen(engine, "begin", begin)
    sa.event.listen(engine, "before_cursor_execute", before)
    sa.event.listen(engine, "after_cursor_execute", after)
    return engine


class Outcome(NamedTuple):
    """How one unit of work ended: its ``value``, or the ``error`` it raised."""

    value: Any
    error: Exception | None


def _units_of_work(
    conn: sqlite3.Connection, engine: sa.Engine, units: Sequence[tuple[Callable[[Connection, Any], Any], Any]]
) -> list[Outcome]:
    """Runs in aiosqlite's thread: each ``fn(connection, arg)`` of ``units`` in turn on ``engine``
    (``conn``'s), each with its own transaction, never leaving one open behind it whatever ``fn``
    did; one unit's error is its own outcome and does not stop the next."""
    outcomes = []
    for fn, arg in units:
        try:
            if conn.in_transaction:
                raise sqlite3.ProgrammingError("a unit of work runs its own transaction, and one is open")
            with engine.connect() as connection:
                value = fn(connection, arg)
            outcome = Outcome(value, None)
        except Exception as error:
            outcome = Outcome(None, error)
        finally:
            if conn.in_transaction:
                conn.rollback()
        outcomes.append(outcome)
    return outcomes


class LeanCursor:
    """The part of :class:`aiosqlite.Cursor` that SQLAlchemy's adapter uses. Rows are buffered by
    the statement's trip, so only ``execute``/``executemany`` go to the thread."""

    arraysize = 1

    def __init__(self, connection: LeanConnection) -> None:
        self._connection = connection
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self._rows: list[Any] = []

    async def execute(self, sql: str, parameters: Any = None) -> Self:
        outcome = await self._connection.run_statement(sql, parameters, many=False)
        self.description, self.rowcount, self.lastrowid, self._rows = outcome
        return self

    async def executemany(self, sql: str, parameters: Any) -> Self:
        outcome = await self._connection.run_statement(sql, parameters, many=True)
        self.description, self.rowcount, self.lastrowid, self._rows = outcome
        return self

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
    """An aiosqlite connection with driver-managed ``BEGIN IMMEDIATE`` transactions and one trip
    per statement (see the module docstring). ``trips`` counts every trip to the thread."""

    def __init__(self, connector: Callable[[], sqlite3.Connection], iter_chunk_size: int = 64) -> None:
        super().__init__(connector, iter_chunk_size)
        self._thread.daemon = True  # as SQLAlchemy does for aiosqlite: never keep the process alive
        self.trips = 0
        self._idle = True  # certainly no open transaction (nothing went to the thread since we knew)
        self._thread_engine: sa.Engine | None = None

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        # Every aiosqlite operation passes here, and any of them may leave a transaction open.
        self._idle = False
        self.trips += 1
        return await super()._execute(fn, *args, **kwargs)  # type: ignore[no-untyped-call]

    async def run_statement(self, sql: str, parameters: Any, *, many: bool) -> _Outcome:
        outcome: _Outcome = await self._execute(_statement, self._conn, sql, parameters, many)
        return outcome

    async def run_units_of_work(
        self, parent: sa.Engine, units: Sequence[tuple[Callable[[Connection, Any], Any], Any]]
    ) -> list[Outcome]:
        """Each ``fn(connection, arg)`` of ``units``, in order, all in one trip, in SQLite's thread,
        on a synchronous SQLAlchemy connection over this connection (see the module docstring).
        Each ``fn`` runs its own transaction (``with connection.begin():``); none may be open
        before, and none is left open after. ``parent``: the engine whose pool holds this
        connection (see :func:`thread_engine`). Only for whoever holds this connection checked out
        of the pool, as for every statement.

        A cancelled caller does not stop the trip, which goes on to its end (commits included), as
        a statement already sent does; the connection then stays marked busy, so the pool's reset
        queues its rollback behind it."""
        if self._thread_engine is None:
            self._thread_engine = thread_engine(self._conn, parent)
        outcomes: list[Outcome] = await self._execute(_units_of_work, self._conn, self._thread_engine, units)
        self._idle = True  # _units_of_work ended every transaction it began
        return outcomes

    async def checkpoint(self) -> tuple[int, int, int]:
        """``PRAGMA wal_checkpoint(TRUNCATE)``, which SQLite runs only outside a transaction (so not
        through :meth:`run_statement`, which would begin one); see :func:`_checkpoint`."""
        if not self._idle:
            raise sqlite3.ProgrammingError("a checkpoint cannot run inside a transaction")
        try:
            outcome: tuple[int, int, int] = await self._execute(_checkpoint, self._conn)
        finally:
            self._idle = not self._conn.in_transaction
        return outcome

    async def cursor(self) -> LeanCursor:  # type: ignore[override]
        return LeanCursor(self)

    def _not_through_a_cursor(self, *args: Any, **kwargs: Any) -> NoReturn:
        # aiosqlite's shortcuts would run a statement outside the driver's transactions.
        raise sqlite3.NotSupportedError("LeanConnection runs statements through cursor() only")

    execute = executemany = executescript = execute_fetchall = execute_insert = _not_through_a_cursor

    async def commit(self) -> None:
        if not self._idle:
            await super().commit()
            self._idle = True

    async def rollback(self) -> None:
        if not self._idle:
            await super().rollback()
            self._idle = True


def connector(
    url: URL, *, pragmas: Sequence[str], **connect_args: Any
) -> Callable[[], Awaitable[LeanConnection]]:
    """An ``async_creator`` for ``create_async_engine``: opens a :class:`LeanConnection` with the
    arguments SQLAlchemy's dialect for ``url`` derives from it, plus ``connect_args``, and runs
    ``pragmas`` on it first."""
    args, kwargs = url.get_dialect()().create_connect_args(url)
    kwargs.update(connect_args, isolation_level=None)  # no implicit BEGIN from sqlite3: ours is IMMEDIATE

    async def connect() -> LeanConnection:
        connection = LeanConnection(partial(_open, args, kwargs, tuple(pragmas)))
        await connection  # starts its thread and opens the database there
        return connection

    return connect
