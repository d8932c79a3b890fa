"""Helpers for the storage tests: a settable clock, a job request, the ledger invariant, the look-ups
and claims the bot itself never needs (the facade has no method for them), and a scratch table of
notes for the SQLite driver's tests."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from sqlmodel import col

from storage import DEFAULT_LEASE, TERMINAL_STATES, JobRequest, JobState, Storage, jobs, scheduling
from storage.database import alembic_config, create_sessionmaker
from storage.models import Job, LedgerEntry, MemberAccount, table
from storage.states import ACTIVE_STATES

SCRATCH = sa.text("CREATE TABLE scratch (id INTEGER PRIMARY KEY, note TEXT UNIQUE)")
INSERT_NOTE = sa.text("INSERT INTO scratch (note) VALUES (:note)")


def committed_notes(path: Path) -> list[str]:
    """The scratch notes another connection (another process, say) sees as committed, in order."""
    other = sqlite3.connect(path)
    try:
        return [note for (note,) in other.execute("SELECT note FROM scratch ORDER BY id")]
    finally:
        other.close()


#: A Sunday, one hour before a weekly boundary.
START = datetime(2025, 1, 5, 23, 0, tzinfo=UTC)

REQUEST = JobRequest(
    model="kling-3.0", mode="text-to-video", prompt="a cat surfing", duration=5, quality="std"
)


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime = START) -> None:
        self.current = start

    def __call__(self) -> datetime:
        return self.current

    def advance(self, delta: timedelta | None = None, **kwargs: float) -> datetime:
        self.current += delta if delta is not None else timedelta(**kwargs)
        return self.current

    def set(self, moment: datetime) -> None:
        self.current = moment


def migrate_in_thread(url: str, revision: str = "head") -> None:
    """Run Alembic from synchronous code (fixtures) without touching the caller's event loop."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(command.upgrade, alembic_config(url), revision).result()


def run_in_thread(coroutine: object) -> object:
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()  # type: ignore[arg-type]


_interaction = iter(range(10_000_000, 2**62))


def next_interaction() -> int:
    return next(_interaction)


async def make_job(
    storage: Storage,
    guild_id: int = 1,
    user_id: int = 10,
    estimate: int = 100,
    *,
    request: JobRequest = REQUEST,
    **kwargs: object,
) -> Job:
    return await storage.create_job(
        interaction_id=next_interaction(),
        guild_id=guild_id,
        user_id=user_id,
        channel_id=555,
        request=request,
        estimate=estimate,
        **kwargs,  # type: ignore[arg-type]
    )


async def claim(
    storage: Storage,
    owner: str,
    states: Iterable[JobState] = (JobState.QUEUED,),
    *,
    limit: int = 1,
    lease: timedelta = DEFAULT_LEASE,
) -> list[Job]:
    """Lease due jobs in ``states`` oldest first, with the claim the worker's claims are made of
    (without the fair order and the in-flight cap of :meth:`Storage.claim_fair_for_submit`)."""
    now = storage.now()
    async with create_sessionmaker(storage.engine)() as s, s.begin():
        return await jobs.claim(s, owner, states, limit=limit, lease_until=now + lease, now=now)


async def in_flight(storage: Storage) -> int:
    """The count :meth:`Storage.claim_fair_for_submit` keeps under its cap."""
    async with create_sessionmaker(storage.engine)() as s, s.begin():
        return await scheduling.in_flight(s, storage.now())


async def unfinished(storage: Storage) -> list[Job]:
    """Every job not in an ending state, oldest first (what the worker picks up after a restart)."""
    async with create_sessionmaker(storage.engine)() as s, s.begin():
        result = await s.execute(
            sa.select(Job).where(col(Job.state).not_in(list(TERMINAL_STATES))).order_by(col(Job.id))
        )
        return list(result.scalars().all())


async def ledger_entries(
    storage: Storage, guild_id: int, user_id: int, *, limit: int = 50
) -> list[LedgerEntry]:
    """The member's newest ledger rows first."""
    async with create_sessionmaker(storage.engine)() as s, s.begin():
        result = await s.execute(
            sa.select(LedgerEntry)
            .where(col(LedgerEntry.guild_id) == guild_id, col(LedgerEntry.user_id) == user_id)
            .order_by(col(LedgerEntry.id).desc())
            .limit(limit)
        )
        return list(result.scalars().all())


async def check_ledger(storage: Storage, guild_id: int | None = None) -> None:
    """The invariant: every account column equals its ledger sum, nothing is negative, every job's
    reserved credits equal its hold and its ledger net equals what it holds and spent, and the active
    job counters match the jobs."""
    accounts_t, ledger_t, jobs_t = table(MemberAccount), table(LedgerEntry), table(Job)

    def scope(t: sa.Table) -> list[sa.ColumnElement[bool]]:
        return [] if guild_id is None else [t.c.guild_id == guild_id]

    async with storage.engine.connect() as conn:
        accounts = (await conn.execute(sa.select(accounts_t).where(*scope(accounts_t)))).all()
        sums = {
            (r.guild_id, r.user_id): r
            for r in (
                await conn.execute(
                    sa.select(
                        ledger_t.c.guild_id,
                        ledger_t.c.user_id,
                        sa.func.sum(ledger_t.c.allowance_delta).label("allowance"),
                        sa.func.sum(ledger_t.c.bonus_delta).label("bonus"),
                        sa.func.sum(ledger_t.c.reserved_delta).label("reserved"),
                    )
                    .where(*scope(ledger_t))
                    .group_by(ledger_t.c.guild_id, ledger_t.c.user_id)
                )
            ).all()
        }
        jobs = (await conn.execute(sa.select(jobs_t).where(*scope(jobs_t)))).all()
        per_job = {
            r.job_id: r
            for r in (
                await conn.execute(
                    sa.select(
                        ledger_t.c.job_id,
                        sa.func.sum(ledger_t.c.allowance_delta + ledger_t.c.bonus_delta).label("spendable"),
                        sa.func.sum(ledger_t.c.reserved_delta).label("reserved"),
                        sa.func.count().label("entries"),
                    )
                    .where(ledger_t.c.job_id.is_not(None), *scope(ledger_t))
                    .group_by(ledger_t.c.job_id)
                )
            ).all()
        }
        keys = (
            await conn.execute(
                sa.select(sa.func.count(), sa.func.count(sa.distinct(ledger_t.c.idempotency_key)))
            )
        ).one()

    assert keys[0] == keys[1], "duplicate idempotency keys"
    held: dict[tuple[int, int], int] = defaultdict(int)
    active: dict[tuple[int, int], int] = defaultdict(int)
    for job in jobs:
        who = (job.guild_id, job.user_id)
        for column in ("hold_allowance", "hold_bonus", "spent_allowance", "spent_bonus", "shortfall_credits"):
            assert getattr(job, column) >= 0, (job.id, column)
        hold = job.hold_allowance + job.hold_bonus
        spent = job.spent_allowance + job.spent_bonus
        held[who] += hold
        active[who] += job.state in ACTIVE_STATES
        entry = per_job[job.id]
        assert entry.reserved == hold, f"job {job.id}: ledger holds {entry.reserved}, job holds {hold}"
        assert entry.spendable == -(hold + spent), (
            f"job {job.id}: ledger net {entry.spendable} != -{hold + spent}"
        )
        if job.state not in ACTIVE_STATES:
            assert hold == 0, f"job {job.id} in {job.state} still holds {hold}"
    for account in accounts:
        who = (account.guild_id, account.user_id)
        total = sums.get(who)
        assert total is not None, who
        assert (account.allowance_credits, account.bonus_credits, account.reserved_credits) == (
            total.allowance,
            total.bonus,
            total.reserved,
        ), f"{who}: columns differ from the ledger"
        assert min(account.allowance_credits, account.bonus_credits, account.reserved_credits) >= 0
        assert account.allowance_credits <= account.allowance_granted
        assert account.reserved_credits == held[who]
        assert account.active_jobs == active[who]
    assert len(sums) == len(accounts)


def aware(moment: datetime) -> bool:
    return moment.tzinfo is not None and moment.utcoffset() == timedelta(0)
