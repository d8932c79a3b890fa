"""Which queued job goes to the provider next: round-robin across members, under a global cap.

A member's jobs are ranked among that member's queued jobs (1st, 2nd, ...); the queue is served in
rank order, oldest first within a rank, so one member's batch of ten never starves the member who asked
once. The number of generations in flight (submitting or processing, or queued and already claimed by
a worker about to submit) stays under ``max_in_flight`` for the whole bot: on PostgreSQL the count and
the claim run under a transaction-scoped advisory lock so several bot processes cannot overshoot it
together; on SQLite every write transaction is already serialised (``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage._sql import dialect_name
from storage.jobs import due, lease_free, take_leases
from storage.models import Job
from storage.states import JobState

#: Arbitrary, fixed: the advisory lock that serialises submit claims across processes.
_SUBMIT_LOCK_KEY = 0x6B6C696E67  # "kling"


def _fair_order() -> sa.Subquery:
    """Every queued job with its rank among its member's queued jobs."""
    rank = (
        sa.func.row_number()
        .over(partition_by=(col(Job.guild_id), col(Job.user_id)), order_by=col(Job.id))
        .label("rank")
    )
    return sa.select(col(Job.id).label("job_id"), rank).where(col(Job.state) == JobState.QUEUED).subquery()


async def in_flight(session: AsyncSession, now: datetime) -> int:
    """Generations started or about to start: submitting, processing, or queued under a live lease."""
    started = sa.select(sa.func.count()).where(col(Job.state).in_([JobState.SUBMITTING, JobState.PROCESSING]))
    claimed = sa.select(sa.func.count()).where(
        col(Job.state) == JobState.QUEUED,
        col(Job.lease_owner).is_not(None),
        col(Job.lease_expires_at) > now,
    )
    return int((await session.execute(started)).scalar_one()) + int(
        (await session.execute(claimed)).scalar_one()
    )


async def claim_fair(
    session: AsyncSession,
    owner: str,
    *,
    limit: int,
    max_in_flight: int,
    lease_until: datetime,
    now: datetime,
) -> list[Job]:
    """Lease up to ``limit`` due queued jobs for ``owner``, fairly, without exceeding ``max_in_flight``."""
    if dialect_name(session) == "postgresql":
        await session.execute(sa.select(sa.func.pg_advisory_xact_lock(_SUBMIT_LOCK_KEY)))
    free = min(limit, max_in_flight - await in_flight(session, now))
    if free <= 0:
        return []
    order = _fair_order()
    ids = (
        (
            await session.execute(
                sa.select(col(Job.id))
                .join(order, order.c.job_id == col(Job.id))
                .where(col(Job.state) == JobState.QUEUED, lease_free(now), due(now))
                .order_by(order.c.rank, col(Job.id))
                .limit(free)
                .with_for_update(of=Job, skip_locked=True)
            )
        )
        .scalars()
        .all()
    )
    return await take_leases(session, ids, owner, states=(JobState.QUEUED,), lease_until=lease_until, now=now)


async def queue_positions(session: AsyncSession, *, limit: int) -> dict[int, int]:
    """The first ``limit`` queued jobs and their place in line (1 = next), in the order served."""
    order = _fair_order()
    rows = await session.execute(
        sa.select(order.c.job_id).order_by(order.c.rank, order.c.job_id).limit(limit)
    )
    return {job_id: position for position, job_id in enumerate(rows.scalars().all(), start=1)}


async def queue_position(session: AsyncSession, job_id: int) -> int | None:
    """One queued job's place in line (1 = next), or ``None`` when it is not queued."""
    order = _fair_order()
    mine = (
        await session.execute(sa.select(order.c.rank).where(order.c.job_id == job_id))
    ).scalar_one_or_none()
    if mine is None:
        return None
    ahead = await session.execute(
        sa.select(sa.func.count())
        .select_from(order)
        .where(sa.or_(order.c.rank < mine, sa.and_(order.c.rank == mine, order.c.job_id < job_id)))
    )
    return int(ahead.scalar_one()) + 1
