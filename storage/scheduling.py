"""Which queued job goes to the provider next: fair across members, under a global cap.

**Fair.** A member's place depends on the slots they were already given, not only on their jobs still
queued (start-time fair queueing with unit costs). The queue counts *rounds*: every member has a
``fair_round`` (on their account), the round after the last job of theirs that was given a slot, and
the queue has a current round (``bot_state`` :data:`ROUND_KEY`), the round of the last job it handed
out. A member's queued jobs, oldest first, take the rounds ``max(current, fair_round)``,
``max(current, fair_round) + 1``, ...; the queue serves the lowest round first, the oldest job first
within a round. Giving a job a slot moves its member's ``fair_round`` past it and the current round up
to it.

So with one slot at a time, member B's single request goes before member A's second, whatever their
ids and whether A's first was still queued, generating or already posted when B asked: A's first took
round 0 and moved A to round 1, B's request takes round 0. A member back after a quiet spell starts at
the current round (no credit saved up while away), so a newcomer takes turns with members who have
long queues instead of jumping ahead of them all. Why not the count of a member's jobs in flight: with
one slot, when the next slot frees nobody's job is in flight any more, and the ids would decide. Why
not a tag written when a job is created: this keeps the reservation, the bot's hottest transaction,
as it is; the rounds are computed when the queue is read.

A job claimed by a worker about to submit it (queued, under a live lease) already moved its member's
round, so it is left out of the ranking. The queue position shown on status cards is the same order.

**Capped.** The number of generations in flight (submitting or processing, or queued and already
claimed by a worker about to submit) stays under ``max_in_flight`` for the whole bot: on PostgreSQL
the count and the claim run under a transaction-scoped advisory lock, so several bot processes can
neither overshoot it together nor hand out the same round; on SQLite every write transaction is
already serialised (``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage import bot_state
from storage._sql import dialect_name
from storage.jobs import take_leases
from storage.models import BotState, Job, MemberAccount, UTCDateTime
from storage.states import JobState

#: Arbitrary, fixed: the advisory lock that serialises submit claims across processes.
_SUBMIT_LOCK_KEY = 0x6B6C696E67  # "kling"
#: Where the queue's current round is kept.
ROUND_KEY = "fair_queue_round"


def _now() -> sa.BindParameter[datetime]:
    return sa.bindparam("now", type_=UTCDateTime())


#: The queue's current round, inside a statement (0 before the first slot was ever given).
_CURRENT_ROUND = sa.func.coalesce(
    sa.select(sa.cast(col(BotState.value), sa.Integer))
    .where(col(BotState.key) == ROUND_KEY)
    .scalar_subquery(),
    0,
)


async def current_round(session: AsyncSession) -> int:
    return int((await session.execute(sa.select(_CURRENT_ROUND))).scalar_one())


def _fair_order() -> sa.CTE:
    """Every queued job nobody has claimed, with its round (see the module docstring); parameter
    ``now``. Built once: the statements below are compiled once and cached."""
    member = (col(Job.guild_id), col(Job.user_id))
    start = sa.case(
        (col(MemberAccount.fair_round) > _CURRENT_ROUND, col(MemberAccount.fair_round)), else_=_CURRENT_ROUND
    )
    place = sa.func.row_number().over(partition_by=member, order_by=col(Job.id))
    free = sa.or_(col(Job.lease_expires_at).is_(None), col(Job.lease_expires_at) <= _now())
    return (
        sa.select(
            col(Job.id).label("job_id"),
            col(Job.next_attempt_at).label("next_attempt_at"),
            (start + place - 1).label("round"),
        )
        .join(
            MemberAccount,
            sa.and_(
                col(MemberAccount.guild_id) == col(Job.guild_id),
                col(MemberAccount.user_id) == col(Job.user_id),
            ),
        )
        .where(col(Job.state) == JobState.QUEUED, free)
        .cte("fair_order")
    )


_ORDER = _fair_order()
#: The first ``limit`` of the line, in the order served.
_LINE = (
    sa.select(_ORDER.c.job_id, _ORDER.c.round)
    .order_by(_ORDER.c.round, _ORDER.c.job_id)
    .limit(sa.bindparam("limit", type_=sa.Integer))
)
#: The due jobs at the head of the line, locked for the claim (PostgreSQL; SQLite ignores it).
_DUE_LINE = (
    sa.select(col(Job.id), _ORDER.c.round)
    .join(_ORDER, _ORDER.c.job_id == col(Job.id))
    .where(sa.or_(_ORDER.c.next_attempt_at.is_(None), _ORDER.c.next_attempt_at <= _now()))
    .order_by(_ORDER.c.round, col(Job.id))
    .limit(sa.bindparam("limit", type_=sa.Integer))
    .with_for_update(of=Job, skip_locked=True)
)
_MINE = sa.select(_ORDER.c.round.label("round")).where(_ORDER.c.job_id == sa.bindparam("job_id")).subquery()
#: One job's round and how many jobs are ahead of it (no row: it is not waiting in line).
_PLACE = sa.select(
    _MINE.c.round,
    sa.select(sa.func.count())
    .select_from(_ORDER)
    .where(
        sa.or_(
            _ORDER.c.round < _MINE.c.round,
            sa.and_(_ORDER.c.round == _MINE.c.round, _ORDER.c.job_id < sa.bindparam("job_id")),
        )
    )
    .scalar_subquery(),
).select_from(_MINE)


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
    current = await current_round(session)
    picked = (await session.execute(_DUE_LINE, {"now": now, "limit": free})).all()
    rounds = {int(job_id): int(round_) for job_id, round_ in picked}
    claimed = await take_leases(
        session, list(rounds), owner, states=(JobState.QUEUED,), lease_until=lease_until, now=now
    )
    await _advance(session, claimed, rounds, current, now)
    return claimed


async def _advance(
    session: AsyncSession, claimed: Sequence[Job], rounds: dict[int, int], current: int, now: datetime
) -> None:
    """Move each served member past the rounds their jobs took, and the queue up to the last one."""
    if not claimed:
        return
    after: dict[tuple[int, int], int] = {}
    for job in claimed:
        assert job.id is not None
        member = (job.guild_id, job.user_id)
        after[member] = max(after.get(member, 0), rounds[job.id] + 1)
    for (guild_id, user_id), next_round in after.items():
        await session.execute(
            sa.update(MemberAccount)
            .where(col(MemberAccount.guild_id) == guild_id, col(MemberAccount.user_id) == user_id)
            .values(fair_round=next_round)
            .execution_options(synchronize_session=False)
        )
    latest = max(rounds[job.id] for job in claimed if job.id is not None)
    if latest > current:
        await bot_state.put(session, ROUND_KEY, str(latest), now)


async def queue_positions(session: AsyncSession, *, limit: int, now: datetime) -> dict[int, int]:
    """The first ``limit`` queued jobs and their place in line (1 = next), in the order served."""
    rows = await session.execute(_LINE, {"now": now, "limit": limit})
    return {int(job_id): position for position, (job_id, _) in enumerate(rows.all(), start=1)}


def queue_position(connection: Connection, where: tuple[int, datetime]) -> int | None:
    """One queued job's place in line (1 = next), or ``None`` when it is not waiting in the queue:
    ``where`` is the job's id and the moment. One read-only transaction of one statement;
    synchronous, for :func:`storage.database.run_on_connection` (status cards ask it for every new
    request)."""
    job_id, now = where
    with connection.begin():
        row = connection.execute(_PLACE, {"now": now, "job_id": job_id}).one_or_none()
    return None if row is None else int(row[1]) + 1
