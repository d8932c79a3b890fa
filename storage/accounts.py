"""Credit primitives: every change to a member's balance, each with its ledger row.

All functions run inside the caller's transaction and never read a balance to write it back: a
movement is one ``UPDATE`` whose ``WHERE`` (debits) or ``CASE`` (splits) decides in the database.
When the ledger needs an amount that SQL computed (how much of a debit came from the allowance),
the statement stores it in the row's ``last_moved`` scratch column and returns it.

Allowance credits are only worth something in their period. A job remembers which period its
allowance credits came from (``credit_period_start``); whatever of them comes back after that
period ended comes back as bonus credits, so nothing paid is lost and no period gets more than its
allowance. :func:`to_period` does that relabelling on the job before any movement.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, NotRequired, TypedDict, Unpack

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from storage._sql import Executor, at, insert_ignore
from storage.errors import InsufficientCredits, TooManyActiveJobs
from storage.models import GuildSettings, Job, LedgerEntry, MemberAccount, UTCDateTime, table
from storage.periods import Period, next_period_start
from storage.results import Balance
from storage.rounds import CURRENT_ROUND

ACC = table(MemberAccount)
LEDGER = table(LedgerEntry)
INSERT_LEDGER = sa.insert(LEDGER)


class LedgerKind(StrEnum):
    """What a ledger row records."""

    GRANT = "grant"  # an admin added (or removed) bonus credits
    REFILL = "refill"  # a period's allowance arrived (or a role raised it mid-period)
    EXPIRE = "expire"  # the unused allowance of an ended period lapsed
    RESERVE = "reserve"  # credits held for a new job
    SETTLE = "settle"  # the hold became the provider's real price (difference back or taken)
    REFUND = "refund"  # a failed or lost job gave back what it held or cost
    RELEASE = "release"  # a rejected or cancelled job gave back its hold


class _Member(TypedDict):
    guild_id: int
    user_id: int


@dataclass(frozen=True, slots=True)
class Hold:
    """Where a reservation's credits came from."""

    allowance: int
    bonus: int
    period_start: datetime
    #: What the member can still spend after this hold (allowance left plus bonus credits).
    available_after: int
    #: The new job's round in the fair queue (:mod:`storage.rounds`).
    fair_round: int

    @classmethod
    def of(cls, row: sa.Row[Any], cost: int) -> Hold:
        """The hold a matched :func:`reserve` statement returned (``last_moved, period_start``, the
        account's allowance and bonus credits after it, and the member's next round)."""
        from_allowance, period, allowance_left, bonus, next_round = row
        return cls(
            allowance=from_allowance,
            bonus=cost - from_allowance,
            period_start=period,
            available_after=allowance_left + bonus,
            fair_round=next_round - 1,
        )


def _member(guild_id: int, user_id: int) -> sa.ColumnElement[bool]:
    return sa.and_(ACC.c.guild_id == guild_id, ACC.c.user_id == user_id)


def period_key(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%MZ")


class Movement(TypedDict):
    """One ledger row's worth of movement: the three deltas default to 0, the rest to nothing."""

    guild_id: int
    user_id: int
    kind: LedgerKind
    amount: int
    key: str
    now: datetime
    allowance: NotRequired[int]
    bonus: NotRequired[int]
    reserved: NotRequired[int]
    job_id: NotRequired[int | None]
    actor_id: NotRequired[int | None]
    note: NotRequired[str | None]


def ledger_row(**m: Unpack[Movement]) -> dict[str, object]:
    """The parameters of :data:`INSERT_LEDGER` for one movement (see :func:`record`)."""
    return {
        "guild_id": m["guild_id"],
        "user_id": m["user_id"],
        "job_id": m.get("job_id"),
        "actor_id": m.get("actor_id"),
        "kind": m["kind"].value,
        "amount": m["amount"],
        "allowance_delta": m.get("allowance", 0),
        "bonus_delta": m.get("bonus", 0),
        "reserved_delta": m.get("reserved", 0),
        "idempotency_key": m["key"],
        "note": m.get("note"),
        "created_at": m["now"],
    }


async def record(session: Executor, **movement: Unpack[Movement]) -> None:
    """Append one ledger row (its unique ``key`` makes a replay fail instead of moving twice)."""
    await session.execute(INSERT_LEDGER, ledger_row(**movement))


async def applied(session: Executor, key: str) -> bool:
    """Whether the operation with idempotency ``key`` is in the ledger already."""
    found = await session.execute(sa.select(LEDGER.c.id).where(LEDGER.c.idempotency_key == key))
    return found.first() is not None


async def balance(session: AsyncSession, settings: GuildSettings, user_id: int, now: datetime) -> Balance:
    """The member's balance as this transaction sees it (the account exists: see :func:`sync_allowance`)."""
    account = await session.get(MemberAccount, (settings.guild_id, user_id), populate_existing=True)
    assert account is not None
    return Balance(
        guild_id=settings.guild_id,
        user_id=user_id,
        allowance_left=account.allowance_credits,
        allowance_total=account.allowance_granted,
        bonus=account.bonus_credits,
        reserved=account.reserved_credits,
        active_jobs=account.active_jobs,
        period=Period(settings.allowance_period),
        period_start=account.period_start,
        next_refill_at=next_period_start(settings.allowance_period, now),
    )


async def sync_allowance(
    session: Executor,
    guild_id: int,
    user_id: int,
    *,
    allowance: int,
    period_start: datetime,
    now: datetime,
) -> None:
    """Create the account, refill it at a period boundary, or top it up when a role raised it.

    This is the lazy refill: no cron, whoever touches the account first in a period does it. The
    refill only moves forward (``period_start < :new``), so two racing callers refill once. Within a
    period the allowance only grows: losing a role keeps this period's allowance, the next period
    uses the new value.
    """
    who: _Member = {"guild_id": guild_id, "user_id": user_id}
    pkey = period_key(period_start)
    inserted = await insert_ignore(
        session,
        MemberAccount,
        {
            **who,
            "period_start": period_start,
            "allowance_granted": allowance,
            "allowance_credits": allowance,
            "bonus_credits": 0,
            "reserved_credits": 0,
            "active_jobs": 0,
            "last_moved": 0,
            "created_at": now,
            "updated_at": now,
        },
    )
    if not inserted:
        refill = await session.execute(
            sa.update(ACC)
            .where(_member(guild_id, user_id), ACC.c.period_start < at(period_start))
            .values(
                last_moved=ACC.c.allowance_credits,
                allowance_credits=allowance,
                allowance_granted=allowance,
                period_start=at(period_start),
                updated_at=now,
            )
            .returning(ACC.c.last_moved)
        )
        expired = refill.scalar_one_or_none()
        if expired is None:  # already in this period
            await _top_up(session, who, allowance=allowance, period_start=period_start, now=now)
            return
        if expired:
            await record(
                session,
                **who,
                kind=LedgerKind.EXPIRE,
                amount=expired,
                allowance=-expired,
                key=f"expire:{guild_id}:{user_id}:{pkey}",
                now=now,
            )
    if allowance:
        await record(
            session,
            **who,
            kind=LedgerKind.REFILL,
            amount=allowance,
            allowance=allowance,
            key=f"refill:{guild_id}:{user_id}:{pkey}",
            now=now,
        )


async def _top_up(
    session: Executor, who: _Member, *, allowance: int, period_start: datetime, now: datetime
) -> None:
    """Raise this period's allowance to ``allowance`` if a role made it larger (never lower it)."""
    top_up = await session.execute(
        sa.update(ACC)
        .where(
            _member(who["guild_id"], who["user_id"]),
            ACC.c.period_start == at(period_start),
            ACC.c.allowance_granted < allowance,
        )
        .values(
            last_moved=allowance - ACC.c.allowance_granted,
            allowance_credits=ACC.c.allowance_credits + (allowance - ACC.c.allowance_granted),
            allowance_granted=allowance,
            updated_at=now,
        )
        .returning(ACC.c.last_moved)
    )
    added = top_up.scalar_one_or_none()
    if added:
        await record(
            session,
            **who,
            kind=LedgerKind.REFILL,
            amount=added,
            allowance=added,
            key=f"topup:{who['guild_id']}:{who['user_id']}:{period_key(period_start)}:{allowance}",
            now=now,
            note="allowance raised by a role",
        )


def _reserve_statement(*, fast: bool) -> sa.Update:
    """The conditional debit, built once (bound parameters: ``g``, ``u``, ``cost``, ``cap``, ``now``,
    and for the fast path ``period`` and ``allowance``)."""
    cost = sa.bindparam("cost", type_=sa.Integer)
    take_allowance = sa.case((ACC.c.allowance_credits >= cost, cost), else_=ACC.c.allowance_credits)
    conditions = [
        ACC.c.guild_id == sa.bindparam("g"),
        ACC.c.user_id == sa.bindparam("u"),
        ACC.c.allowance_credits + ACC.c.bonus_credits >= cost,
        ACC.c.active_jobs < sa.bindparam("cap"),
    ]
    if fast:
        conditions.append(ACC.c.period_start == sa.bindparam("period", type_=UTCDateTime()))
        conditions.append(ACC.c.allowance_granted >= sa.bindparam("allowance"))
    return (
        sa.update(ACC)
        .where(*conditions)
        .values(
            last_moved=take_allowance,
            allowance_credits=ACC.c.allowance_credits - take_allowance,
            bonus_credits=ACC.c.bonus_credits - (cost - take_allowance),
            reserved_credits=ACC.c.reserved_credits + cost,
            active_jobs=ACC.c.active_jobs + 1,
            # The new job's round is the later of the queue's and the member's; the member's next is
            # one past it (storage.rounds).
            fair_round=sa.case((ACC.c.fair_round > CURRENT_ROUND, ACC.c.fair_round), else_=CURRENT_ROUND) + 1,
            updated_at=sa.bindparam("now", type_=UTCDateTime()),
        )
        .returning(
            ACC.c.last_moved,
            ACC.c.period_start,
            ACC.c.allowance_credits,
            ACC.c.bonus_credits,
            ACC.c.fair_round,
        )
    )


#: The debit when the account is known to be in the current period at the current allowance.
RESERVE_CURRENT = _reserve_statement(fast=True)
_RESERVE = _reserve_statement(fast=False)


def reserve_params(
    guild_id: int,
    user_id: int,
    cost: int,
    *,
    max_active: int,
    now: datetime,
    expect_period: datetime | None = None,
    expect_allowance: int | None = None,
) -> dict[str, object]:
    """The parameters of the debit (with ``expect_*``, of :data:`RESERVE_CURRENT`)."""
    params: dict[str, object] = {"g": guild_id, "u": user_id, "cost": cost, "cap": max_active, "now": now}
    if expect_period is not None and expect_allowance is not None:
        params.update(period=expect_period, allowance=expect_allowance)
    return params


async def reserve(
    session: Executor,
    guild_id: int,
    user_id: int,
    cost: int,
    *,
    max_active: int,
    now: datetime,
    expect_period: datetime | None = None,
    expect_allowance: int | None = None,
) -> Hold | None:
    """Hold ``cost`` credits (allowance first, then bonus) and count one more active job.

    One conditional ``UPDATE``: it only matches when the member can cover the cost *and* is under the
    concurrency cap, so concurrent callers can never overdraw. ``None`` means it did not match (no
    account, too poor, too busy, or - with ``expect_*`` - the account needs a refill first).
    """
    params = reserve_params(
        guild_id,
        user_id,
        cost,
        max_active=max_active,
        now=now,
        expect_period=expect_period,
        expect_allowance=expect_allowance,
    )
    statement = RESERVE_CURRENT if "period" in params else _RESERVE
    row = (await session.execute(statement, params)).one_or_none()
    return None if row is None else Hold.of(row, cost)


#: A member's account as far as a refused debit needs it (parameters ``g`` and ``u``).
ACCOUNT_STATE = sa.select(
    ACC.c.allowance_credits,
    ACC.c.bonus_credits,
    ACC.c.active_jobs,
    ACC.c.period_start,
    ACC.c.allowance_granted,
).where(ACC.c.guild_id == sa.bindparam("g"), ACC.c.user_id == sa.bindparam("u"))


def refusal_of(state: sa.Row[Any], cost: int, max_active: int) -> Exception:
    """The domain error for a debit that did not match, from the account's :data:`ACCOUNT_STATE`."""
    if state.active_jobs >= max_active:
        return TooManyActiveJobs(active=state.active_jobs, limit=max_active)
    return InsufficientCredits(available=state.allowance_credits + state.bonus_credits, needed=cost)


async def refusal(session: Executor, guild_id: int, user_id: int, cost: int, max_active: int) -> Exception:
    """Why :func:`reserve` did not match, as the domain error to raise (read only to explain)."""
    state = (await session.execute(ACCOUNT_STATE, {"g": guild_id, "u": user_id})).one()
    return refusal_of(state, cost, max_active)


async def credit(
    session: Executor,
    guild_id: int,
    user_id: int,
    *,
    to_allowance: int,
    to_bonus: int,
    unreserve: int,
    finished_jobs: int,
    allowance_period: datetime,
    now: datetime,
) -> int:
    """Give credits back: ``to_allowance`` into the allowance if the account is still in
    ``allowance_period`` (else into bonus), ``to_bonus`` into bonus; drop ``unreserve`` from the
    reserved total and ``finished_jobs`` from the active count. Returns what went to the allowance.
    """
    back = sa.case((ACC.c.period_start == at(allowance_period), to_allowance), else_=0) if to_allowance else 0
    result = await session.execute(
        sa.update(ACC)
        .where(_member(guild_id, user_id))
        .values(
            last_moved=back,
            allowance_credits=ACC.c.allowance_credits + back,
            bonus_credits=ACC.c.bonus_credits + (to_bonus + to_allowance - back),
            reserved_credits=ACC.c.reserved_credits - unreserve,
            active_jobs=ACC.c.active_jobs - finished_jobs,
            updated_at=now,
        )
        .returning(ACC.c.last_moved)
    )
    moved: int = result.scalar_one()
    return moved


async def debit_up_to(
    session: Executor,
    guild_id: int,
    user_id: int,
    amount: int,
    *,
    allowance_period: datetime | None,
    unreserve: int = 0,
    now: datetime,
) -> tuple[int, int]:
    """Take up to ``amount`` credits, never going below zero: from the allowance first (only if the
    account is in ``allowance_period``; ``None`` means bonus only), then from bonus. Also drops
    ``unreserve`` from the reserved total. Returns ``(from_allowance, from_bonus)``.
    """
    from_allowance = 0
    if allowance_period is not None or unreserve:
        if allowance_period is None:
            take: sa.ColumnElement[int] | int = 0
        else:
            capped = sa.case((ACC.c.allowance_credits >= amount, amount), else_=ACC.c.allowance_credits)
            take = sa.case((ACC.c.period_start == at(allowance_period), capped), else_=0)
        result = await session.execute(
            sa.update(ACC)
            .where(_member(guild_id, user_id))
            .values(
                last_moved=take,
                allowance_credits=ACC.c.allowance_credits - take,
                reserved_credits=ACC.c.reserved_credits - unreserve,
                updated_at=now,
            )
            .returning(ACC.c.last_moved)
        )
        from_allowance = result.scalar_one()
    rest = amount - from_allowance
    from_bonus = 0
    if rest > 0:
        take_bonus = sa.case((ACC.c.bonus_credits >= rest, rest), else_=ACC.c.bonus_credits)
        result = await session.execute(
            sa.update(ACC)
            .where(_member(guild_id, user_id))
            .values(last_moved=take_bonus, bonus_credits=ACC.c.bonus_credits - take_bonus, updated_at=now)
            .returning(ACC.c.last_moved)
        )
        from_bonus = result.scalar_one()
    return from_allowance, from_bonus


async def add_bonus(session: Executor, guild_id: int, user_id: int, amount: int, now: datetime) -> None:
    await session.execute(
        sa.update(ACC)
        .where(_member(guild_id, user_id))
        .values(bonus_credits=ACC.c.bonus_credits + amount, updated_at=now)
    )


def to_period(job: Job, current_period: datetime) -> None:
    """Relabel a job's allowance credits as bonus credits once their period is over.

    After this, every allowance credit on the job belongs to ``current_period``, so a single
    "is the account still in this period" test decides where returned credits go.
    """
    if job.credit_period_start == current_period:
        return
    job.hold_bonus += job.hold_allowance
    job.hold_allowance = 0
    job.spent_bonus += job.spent_allowance
    job.spent_allowance = 0
    job.credit_period_start = current_period


async def settle(session: Executor, job: Job, used: int, *, current_period: datetime, now: datetime) -> None:
    """Turn a job's hold into the provider's real price ``used``.

    Less than held: the difference goes back. More than held: the difference is taken if the member
    has it, else as much as they have, never below zero; what could not be covered is recorded on
    the job (``shortfall_credits``) and in the ledger note, not owed.
    """
    assert job.id is not None
    to_period(job, current_period)
    held_a, held_b = job.hold_allowance, job.hold_bonus
    held = held_a + held_b
    who: _Member = {"guild_id": job.guild_id, "user_id": job.user_id}
    if used <= held:
        spent_a = min(held_a, used)
        spent_b = used - spent_a
        back_a, back_b = held_a - spent_a, held_b - spent_b
        moved_a = await credit(
            session,
            **who,
            to_allowance=back_a,
            to_bonus=back_b,
            unreserve=held,
            finished_jobs=0,
            allowance_period=current_period,
            now=now,
        )
        shortfall = 0
        note = f"provider used {used}; {held - used} of {held} returned" if used < held else None
        await record(
            session,
            **who,
            kind=LedgerKind.SETTLE,
            amount=used,
            allowance=moved_a,
            bonus=back_a - moved_a + back_b,
            reserved=-held,
            key=f"settle:{job.id}",
            now=now,
            job_id=job.id,
            note=note,
        )
    else:
        extra = used - held
        taken_a, taken_b = await debit_up_to(
            session, **who, amount=extra, allowance_period=current_period, unreserve=held, now=now
        )
        spent_a, spent_b = held_a + taken_a, held_b + taken_b
        shortfall = extra - taken_a - taken_b
        note = f"provider used {used}, {extra} more than held"
        if shortfall:
            note += f"; {shortfall} could not be covered"
        await record(
            session,
            **who,
            kind=LedgerKind.SETTLE,
            amount=held + taken_a + taken_b,
            allowance=-taken_a,
            bonus=-taken_b,
            reserved=-held,
            key=f"settle:{job.id}",
            now=now,
            job_id=job.id,
            note=note,
        )
    job.hold_allowance = job.hold_bonus = 0
    job.spent_allowance, job.spent_bonus = spent_a, spent_b
    job.shortfall_credits = shortfall


async def give_back(
    session: Executor,
    job: Job,
    kind: LedgerKind,
    *,
    finished_jobs: int,
    current_period: datetime,
    actor_id: int | None,
    note: str | None,
    now: datetime,
) -> int:
    """Return everything a job holds or cost (refund or release); returns the amount."""
    assert job.id is not None
    to_period(job, current_period)
    to_allowance = job.hold_allowance + job.spent_allowance
    to_bonus = job.hold_bonus + job.spent_bonus
    held = job.held_credits
    who: _Member = {"guild_id": job.guild_id, "user_id": job.user_id}
    moved_a = await credit(
        session,
        **who,
        to_allowance=to_allowance,
        to_bonus=to_bonus,
        unreserve=held,
        finished_jobs=finished_jobs,
        allowance_period=current_period,
        now=now,
    )
    amount = to_allowance + to_bonus
    await record(
        session,
        **who,
        kind=kind,
        amount=amount,
        allowance=moved_a,
        bonus=amount - moved_a,
        reserved=-held,
        key=f"{kind.value}:{job.id}",
        now=now,
        job_id=job.id,
        actor_id=actor_id,
        note=note,
    )
    job.hold_allowance = job.hold_bonus = job.spent_allowance = job.spent_bonus = 0
    return amount


async def finish_job(session: Executor, guild_id: int, user_id: int, now: datetime) -> None:
    """One job left the active states without moving credits (e.g. the video is ready)."""
    await session.execute(
        sa.update(ACC)
        .where(_member(guild_id, user_id))
        .values(active_jobs=ACC.c.active_jobs - 1, updated_at=now)
    )
