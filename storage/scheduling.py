"""Which queued job goes to the provider next: fair across members, under a global cap.

**Fair.** A member's place depends on the jobs they were already given, not only on their jobs still
queued: start-time fair queueing with unit costs (:mod:`storage.rounds`). Each job got a round when it
was created, the later of the queue's current round and its member's next one; the queue serves the
lowest round first, the oldest job first within a round, and handing a job out moves the current round
up to it.

So with one slot at a time, member B's single request goes before member A's second, whatever their ids
and whether A's first was still queued, generating or already posted when B asked: A's first took round
0 and moved A to round 1, B's request takes round 0. A member back after a quiet spell starts at the
current round (no credit saved up while away), so a newcomer takes turns with members who have long
queues instead of jumping ahead of them all. A cancelled or rejected request keeps the round it took (its
member's later requests do not move up): the price of rounds that are written once.

Why not the count of a member's jobs in flight: with one slot, when the next slot frees nobody's job is
in flight any more, and the ids would decide. Why rounds written when a job is created, and not worked
out from the whole queue when it is read: the queue is then read along one index, ``(state, fair_round,
id)``, however long it is; a window function over every queued job took ~30 ms per claim on PostgreSQL
with 10,000 queued, under the lock every process claims behind. The round costs the reservation nothing
more than a column of the debit it already makes.

The queue position shown on status cards is the same order.

**Capped.** The number of generations in flight (submitting or processing, or queued and already
claimed by a worker about to submit) stays under ``max_in_flight`` for the whole bot: on PostgreSQL
the count and the claim run under a transaction-scoped advisory lock, so several bot processes can
neither overshoot it together nor move the current round past each other; on SQLite every write
transaction is already serialised (``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage import bot_state
from storage._sql import dialect_name
from storage.jobs import take_leases
from storage.models import Job, UTCDateTime
from storage.rounds import CURRENT_ROUND, ROUND_KEY
from storage.states import JobState

#: Arbitrary, fixed: the advisory lock that serialises submit claims across processes.
_SUBMIT_LOCK_KEY = 0x6B6C696E67  # "kling"

_NOW = sa.bindparam("now", type_=UTCDateTime())
_WAITING = sa.and_(
    col(Job.state) == JobState.QUEUED,
    sa.or_(col(Job.lease_expires_at).is_(None), col(Job.lease_expires_at) <= _NOW),
)
_IN_LINE = (col(Job.fair_round), col(Job.id))
#: The first ``limit`` of the line (parameters ``now``, ``limit``).
_LINE = (
    sa.select(col(Job.id)).where(_WAITING).order_by(*_IN_LINE).limit(sa.bindparam("limit", type_=sa.Integer))
)
#: The due jobs at the head of the line, locked for the claim (PostgreSQL; SQLite ignores it).
_DUE_LINE = (
    sa.select(col(Job.id), col(Job.fair_round))
    .where(_WAITING, sa.or_(col(Job.next_attempt_at).is_(None), col(Job.next_attempt_at) <= _NOW))
    .order_by(*_IN_LINE)
    .limit(sa.bindparam("limit", type_=sa.Integer))
    .with_for_update(skip_locked=True)
)
_MINE = (
    sa.select(col(Job.fair_round)).where(col(Job.id) == sa.bindparam("job_id"), _WAITING).scalar_subquery()
)
#: One job's round, and how many waiting jobs are ahead of it (``None`` round: it is not waiting).
_PLACE = sa.select(
    _MINE,
    sa.select(sa.func.count())
    .where(
        _WAITING,
        sa.or_(
            col(Job.fair_round) < _MINE,
            sa.and_(col(Job.fair_round) == _MINE, col(Job.id) < sa.bindparam("job_id")),
        ),
    )
    .scalar_subquery(),
)


async def current_round(session: AsyncSession) -> int:
    return int((await session.execute(sa.select(CURRENT_ROUND))).scalar_one())


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
    picked = (await session.execute(_DUE_LINE, {"now": now, "limit": free})).all()
    claimed = await take_leases(
        session,
        [job_id for job_id, _ in picked],
        owner,
        states=(JobState.QUEUED,),
        lease_until=lease_until,
        now=now,
    )
    if claimed:
        latest = max(job.fair_round for job in claimed)
        if latest > await current_round(session):
            await bot_state.put(session, ROUND_KEY, str(latest), now)
    return claimed


async def queue_positions(session: AsyncSession, *, limit: int, now: datetime) -> dict[int, int]:
    """The first ``limit`` queued jobs and their place in line (1 = next), in the order served."""
    rows = await session.execute(_LINE, {"now": now, "limit": limit})
    return {
        int(job_id): place for place, job_id in enumerate(rows.scalars().all(), start=1) if job_id is not None
    }


def queue_position(connection: Connection, where: tuple[int, datetime]) -> int | None:
    """One queued job's place in line (1 = next), or ``None`` when it is not waiting in the queue:
    ``where`` is the job's id and the moment. One read-only transaction of one statement;
    synchronous, for :func:`storage.database.run_on_connection` (status cards ask it for every new
    request)."""
    job_id, now = where
    with connection.begin():
        mine, ahead = connection.execute(_PLACE, {"now": now, "job_id": job_id}).one()
    return None if mine is None else int(ahead) + 1
