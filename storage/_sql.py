"""Small dialect-aware helpers shared by the storage modules."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult, Result
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlmodel import SQLModel

from storage.models import UTCDateTime, table


def rowcount(result: Result[Any]) -> int:
    """Rows matched by an ``UPDATE``/``INSERT`` (only cursor results carry it)."""
    return cast(CursorResult[Any], result).rowcount


#: Where a statement runs: the unit of work's session, or its connection (Core statements on the
#: session's own connection skip the ORM's per-statement bookkeeping, for the hot paths).
Executor = AsyncSession | AsyncConnection


def dialect_name(session: Executor) -> str:
    if isinstance(session, AsyncSession):
        return session.get_bind().dialect.name
    return session.dialect.name


async def insert_ignore(session: Executor, model: type[SQLModel], values: dict[str, Any]) -> bool:
    """``INSERT ... ON CONFLICT DO NOTHING``; ``True`` when the row was inserted by this call.

    Used to create a row that may already exist (or be created concurrently) without a
    read-then-insert race.
    """
    target = table(model)
    if dialect_name(session) == "postgresql":
        stmt: Any = postgresql.insert(target).values(**values).on_conflict_do_nothing()
    else:
        stmt = sqlite.insert(target).values(**values).on_conflict_do_nothing()
    return rowcount(await session.execute(stmt)) == 1


def at(moment: datetime | None) -> sa.BindParameter[datetime]:
    """A datetime parameter typed as :class:`UTCDateTime` where SQL cannot infer the type (CASE)."""
    return sa.bindparam(None, moment, type_=UTCDateTime())


def is_unique_violation(error: sa.exc.IntegrityError, column: str) -> bool:
    """Whether an ``IntegrityError`` is a unique violation on ``column`` (same test on both engines).

    SQLite says ``UNIQUE constraint failed: jobs.interaction_id``; PostgreSQL names the constraint,
    ``uq_jobs_interaction_id``: both contain the column name.
    """
    text = str(error.orig).lower()
    return column in text and ("unique" in text or "duplicate" in text)
