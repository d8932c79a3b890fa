"""The bot's own small facts across restarts (:class:`storage.models.BotState`), such as the hash of the
command tree it last synced, so it syncs only when the commands changed."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage._sql import insert_ignore, rowcount
from storage.models import BotState


async def get(session: AsyncSession, key: str) -> str | None:
    state = await session.get(BotState, key)
    return None if state is None else state.value


async def put(session: AsyncSession, key: str, value: str, now: datetime) -> bool:
    """Store ``value`` under ``key``; ``True`` if that changed anything."""
    if await insert_ignore(session, BotState, {"key": key, "value": value, "updated_at": now}):
        return True
    result = await session.execute(
        sa.update(BotState)
        .where(col(BotState.key) == key, col(BotState.value) != value)
        .values(value=value, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return rowcount(result) == 1
