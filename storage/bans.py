"""The bans table (:class:`storage.models.Ban`): members an admin stopped from making videos in a server.

A ban is one row per (server, member); adding one that exists changes nothing (``ON CONFLICT DO
NOTHING``), so two admins banning at once make one ban. What a ban does to the member's waiting jobs
is the facade's (:meth:`storage.Storage.ban`): they are cancelled in the same transaction.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage._sql import insert_ignore
from storage.models import Ban


async def get(session: AsyncSession, guild_id: int, user_id: int) -> Ban | None:
    return await session.get(Ban, (guild_id, user_id), populate_existing=True)


async def add(
    session: AsyncSession, guild_id: int, user_id: int, *, reason: str | None, by: int | None, now: datetime
) -> bool:
    """Ban the member; ``True`` when this call did (``False``: they were banned already)."""
    values = {"guild_id": guild_id, "user_id": user_id, "reason": reason, "banned_by": by, "created_at": now}
    return await insert_ignore(session, Ban, values)


async def remove(session: AsyncSession, guild_id: int, user_id: int) -> Ban | None:
    """Lift the ban; the ban that was lifted, or ``None`` when there was none."""
    ban = await get(session, guild_id, user_id)
    if ban is None:
        return None
    await session.execute(
        sa.delete(Ban)
        .where(col(Ban.guild_id) == guild_id, col(Ban.user_id) == user_id)
        .execution_options(synchronize_session=False)
    )
    session.expunge(ban)
    return ban


async def of_guild(session: AsyncSession, guild_id: int) -> list[Ban]:
    """One server's bans, oldest first."""
    result = await session.execute(
        sa.select(Ban).where(col(Ban.guild_id) == guild_id).order_by(col(Ban.created_at), col(Ban.user_id))
    )
    return list(result.scalars().all())
