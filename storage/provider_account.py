"""The provider account's row (:class:`storage.models.ProviderAccount`): the pause shared by every
process, the probe that may end it, and the balance the provider last reported.

Each change is one conditional ``UPDATE`` on the single row, so when several processes share the
database exactly one of them starts a pause, ends it, or takes a probe slot, and only that one tells
the servers. The row is created on first use (``INSERT ... ON CONFLICT DO NOTHING``), not by the
migration, so ``python -m storage.copy`` still finds a freshly migrated database empty.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from storage._sql import Executor, insert_ignore, rowcount
from storage.models import ACCOUNT_ROW, ProviderAccount, table
from storage.results import AccountState

ACCOUNT = table(ProviderAccount)
_THE_ROW = ACCOUNT.c.id == ACCOUNT_ROW


def state_of(row: Any) -> AccountState:
    return AccountState(
        paused=bool(row.paused),
        status=row.status,
        message=row.message,
        since=row.since,
        last_probe_at=row.last_probe_at,
        credits_remaining=row.credits_remaining,
        credits_seen_at=row.credits_seen_at,
    )


async def ensure(session: Executor, now: datetime) -> None:
    await insert_ignore(session, ProviderAccount, {"id": ACCOUNT_ROW, "paused": False, "updated_at": now})


async def read(session: Executor) -> AccountState:
    row = (await session.execute(sa.select(ACCOUNT).where(_THE_ROW))).one_or_none()
    return AccountState() if row is None else state_of(row)


async def is_paused(session: Executor) -> bool:
    paused = (await session.execute(sa.select(ACCOUNT.c.paused).where(_THE_ROW))).scalar_one_or_none()
    return bool(paused)


async def _update(session: Executor, where: sa.ColumnElement[bool], **values: Any) -> AccountState | None:
    """Apply ``values`` to the row when ``where`` holds; the new state, or ``None`` when it did not."""
    row = (
        await session.execute(sa.update(ACCOUNT).where(_THE_ROW, where).values(**values).returning(ACCOUNT))
    ).one_or_none()
    return None if row is None else state_of(row)


async def pause(session: AsyncSession, *, status: int, message: str, now: datetime) -> AccountState | None:
    """Start a pause; the new state when this call started it, ``None`` when it was paused already.

    The refused call itself counts as the first probe: the next one is due an interval later.
    """
    await ensure(session, now)
    return await _update(
        session,
        ACCOUNT.c.paused.is_(False),
        paused=True,
        status=status,
        message=message,
        since=now,
        last_probe_at=now,
        updated_at=now,
    )


async def resume(session: AsyncSession, now: datetime) -> AccountState | None:
    """End the pause; the state just before when this call ended it, ``None`` when it was not paused.

    ``since``, ``status`` and ``message`` stay on the row: they say what the last pause was.
    """
    before = await read(session)
    if await _update(session, ACCOUNT.c.paused.is_(True), paused=False, updated_at=now) is None:
        return None
    return before


async def take_probe(session: AsyncSession, *, now: datetime, interval: timedelta) -> bool:
    """Take the probe slot: ``True`` for one caller per ``interval`` while paused (compare-and-set)."""
    due = sa.or_(ACCOUNT.c.last_probe_at.is_(None), ACCOUNT.c.last_probe_at <= now - interval)
    result = await session.execute(
        sa.update(ACCOUNT)
        .where(_THE_ROW, ACCOUNT.c.paused.is_(True), due)
        .values(last_probe_at=now, updated_at=now)
    )
    return rowcount(result) == 1


async def probe_soon(session: AsyncSession, now: datetime) -> AccountState:
    """Make the next probe due at once (an admin says the account is fixed); the state after."""
    await _update(session, ACCOUNT.c.paused.is_(True), last_probe_at=None, updated_at=now)
    return await read(session)


async def note_credits(session: AsyncSession, remaining: int, now: datetime) -> None:
    """Remember the balance the provider just reported."""
    await ensure(session, now)
    await _update(session, sa.true(), credits_remaining=remaining, credits_seen_at=now, updated_at=now)
