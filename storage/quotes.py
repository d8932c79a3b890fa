"""The quote table: a price waiting for the member's Confirm or Cancel, decided exactly once.

A decision is a compare-and-set (``UPDATE quotes SET state = :new WHERE id = :id AND state = 'open'``),
so a double press, or a press racing the expiry, takes one decision. The row is locked and read first
in the same transaction, so the winner gets the request as it was, while the row keeps none of it:
every decision clears ``request``, which holds the member's prompt and their attachments' links.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage._sql import rowcount
from storage.models import Quote
from storage.states import QuoteState

#: Decided quotes hold no words, only ids and a price; they are deleted this long after the decision.
KEEP_DECIDED = timedelta(days=1)


async def insert(session: AsyncSession, values: dict[str, Any]) -> Quote:
    quote = Quote(**values)
    session.add(quote)
    await session.flush()
    return quote


async def decide(session: AsyncSession, quote_id: int, target: QuoteState, now: datetime) -> Quote | None:
    """Move an open quote to ``target`` and clear its request; the quote as it was before, or ``None``
    when it is not open any more (someone decided first) or is gone."""
    quote = await session.get(Quote, quote_id, with_for_update=True, populate_existing=True)
    if quote is None or quote.state is not QuoteState.OPEN:
        return None
    before = Quote.model_validate(quote.model_dump())
    result = await session.execute(
        sa.update(Quote)
        .where(col(Quote.id) == quote_id, col(Quote.state) == QuoteState.OPEN)
        .values(state=target, request={}, decided_at=now)
        .execution_options(synchronize_session=False)
    )
    return before if rowcount(result) == 1 else None


async def expire_due(session: AsyncSession, now: datetime) -> int:
    """Expire every open quote past its time (clearing its request); how many."""
    result = await session.execute(
        sa.update(Quote)
        .where(col(Quote.state) == QuoteState.OPEN, col(Quote.expires_at) <= now)
        .values(state=QuoteState.EXPIRED, request={}, decided_at=now)
        .execution_options(synchronize_session=False)
    )
    return rowcount(result)


async def delete_decided_before(session: AsyncSession, moment: datetime) -> int:
    result = await session.execute(
        sa.delete(Quote)
        .where(col(Quote.state) != QuoteState.OPEN, col(Quote.decided_at) < moment)
        .execution_options(synchronize_session=False)
    )
    return rowcount(result)


async def delete_of_member(session: AsyncSession, guild_id: int, user_id: int) -> int:
    """Delete every quote of the member, open ones included (their buttons then say so)."""
    result = await session.execute(
        sa.delete(Quote)
        .where(col(Quote.guild_id) == guild_id, col(Quote.user_id) == user_id)
        .execution_options(synchronize_session=False)
    )
    return rowcount(result)
