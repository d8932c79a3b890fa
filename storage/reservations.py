"""Creating a job: reserve its credits, count it against the server budget, write the job and the
ledger row, all in one transaction (:meth:`storage.Storage.create_job`).

This is the hottest unit of work of the bot (``benchmarks/ledger.py`` measures it). In the common
case - a server already known, a member whose account is in the current period at its current
allowance, with the credits and under the cap - it is exactly four statements, each returning what
the next one needs:

1. the budget ``UPDATE`` on the guild row, which also returns the settings (:data:`guilds.ADMIT`);
2. the conditional debit of the member's account (:data:`accounts.RESERVE_CURRENT`);
3. the job ``INSERT ... RETURNING id`` (the interaction id is unique);
4. the ledger ``INSERT`` of ``reserve:<job id>`` (the idempotency key is unique).

:func:`reserve_common` runs those four as one synchronous transaction on a Core connection
(:func:`storage.database.run_on_connection`), instead of a greenlet and an async result wrapper per
statement on a Session whose ORM machinery it would not use (together ~25% of a reservation on
SQLite). On PostgreSQL it runs in one greenlet; on SQLite, whole in SQLite's thread, in one trip
(with the other units of work waiting for the connection: :mod:`storage._sqlite_units`).

Anything else - a new server or member, a refill or top-up due, the budget cap - raises
:class:`NotCommon` inside the transaction, which therefore rolls back with nothing written, and the
caller takes :func:`reserve_general`, the same statements as before on the unit of work's Session,
which handles every case. A member who is simply too poor or too busy gets the same error the
general path would raise (one more statement reads why), and the transaction rolls back all the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, NotRequired, TypedDict

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession

from storage import accounts, guilds
from storage.accounts import Hold, LedgerKind
from storage.jobs import JobRequest
from storage.models import Job, member_allowance, table
from storage.periods import period_start
from storage.states import JobState

INSERT_JOB = sa.insert(table(Job)).returning(table(Job).c.id)


class NotCommon(Exception):
    """The reservation is not the common case; its transaction rolled back with nothing written."""


class Reserved(NamedTuple):
    """A created job's id and columns, and what its member can still spend after the reservation."""

    job_id: int
    values: dict[str, Any]
    available: int


class NewJob(TypedDict):
    """What creating a job takes (:meth:`storage.Storage.create_job`): ``role_ids``, the member's roles
    (for role allowances); ``review``, whether the job waits for a moderator first."""

    interaction_id: int
    guild_id: int
    user_id: int
    channel_id: int
    request: JobRequest
    estimate: int
    role_ids: NotRequired[Iterable[int]]
    review: NotRequired[bool]


@dataclass(frozen=True, slots=True)
class Reservation:
    """What :meth:`storage.Storage.create_job` was asked for, at the moment ``now``."""

    interaction_id: int
    guild_id: int
    user_id: int
    channel_id: int
    request: JobRequest
    estimate: int
    roles: Sequence[int]
    review: bool
    now: datetime

    def job_values(self, hold: Hold, budget_period_start: datetime | None) -> dict[str, Any]:
        """The new job's columns."""
        return {
            "interaction_id": self.interaction_id,
            "guild_id": self.guild_id,
            "user_id": self.user_id,
            "channel_id": self.channel_id,
            "state": JobState.PENDING_REVIEW if self.review else JobState.QUEUED,
            "estimate_credits": self.estimate,
            "hold_allowance": hold.allowance,
            "hold_bonus": hold.bonus,
            "credit_period_start": hold.period_start,
            "fair_round": hold.fair_round,
            "budget_period_start": budget_period_start,
            "budget_counted": self.estimate,
            "created_at": self.now,
            "updated_at": self.now,
            **self.request.columns(),
        }

    def ledger_row(self, hold: Hold, job_id: int) -> dict[str, object]:
        """The reservation's ledger row."""
        return accounts.ledger_row(
            guild_id=self.guild_id,
            user_id=self.user_id,
            kind=LedgerKind.RESERVE,
            amount=self.estimate,
            allowance=-hold.allowance,
            bonus=-hold.bonus,
            reserved=self.estimate,
            key=f"reserve:{job_id}",
            now=self.now,
            job_id=job_id,
            actor_id=self.user_id,
        )


def reserve_common(connection: Connection, r: Reservation) -> Reserved:
    """The common case, as one transaction of four statements on ``connection``; returns the job id,
    its columns and the member's balance after, or raises :class:`NotCommon` (see the module
    docstring). Synchronous, for :func:`storage.database.run_on_connection`."""
    with connection.begin():
        return _reserve_common(connection, r)


def _reserve_common(connection: Connection, r: Reservation) -> Reserved:
    row = connection.execute(guilds.ADMIT, guilds.admit_params(r.guild_id, r.estimate, r.now)).one_or_none()
    if row is None:  # a new server, or over its budget
        raise NotCommon
    guild = guilds.Admission(*row)
    current = period_start(guild.allowance_period, r.now)
    allowance = member_allowance(guild.allowance_credits, guild.role_allowances, r.roles)
    cap = guild.max_active_jobs
    debit = accounts.reserve_params(
        r.guild_id,
        r.user_id,
        r.estimate,
        max_active=cap,
        now=r.now,
        expect_period=current,
        expect_allowance=allowance,
    )
    row = connection.execute(accounts.RESERVE_CURRENT, debit).one_or_none()
    if row is None:
        state = connection.execute(accounts.ACCOUNT_STATE, {"g": r.guild_id, "u": r.user_id}).one_or_none()
        if state is None or state.period_start != current or state.allowance_granted < allowance:
            raise NotCommon  # a new member, or a refill or top-up due
        raise accounts.refusal_of(state, r.estimate, cap)  # too poor or too busy
    hold = Hold.of(row, r.estimate)
    values = r.job_values(hold, guild.budget_period_start)
    job_id: int = connection.execute(INSERT_JOB, values).scalar_one()
    connection.execute(accounts.INSERT_LEDGER, r.ledger_row(hold, job_id))
    return Reserved(job_id, values, hold.available_after)


async def reserve_general(session: AsyncSession, r: Reservation) -> Reserved:
    """Every case: creates the server's settings and the member's account if they are new, refills
    or tops up the allowance when due, and raises the domain error when the reservation is refused.
    Runs inside the caller's ``async with maker() as s, s.begin():``."""
    guild = await guilds.admit(session, r.guild_id, r.estimate, r.now)
    c = await session.connection()  # Core statements on the session's connection
    allowance = member_allowance(guild.allowance_credits, guild.role_allowances, r.roles)
    current = period_start(guild.allowance_period, r.now)
    cap = guild.max_active_jobs
    # An up-to-date account first; otherwise create/refill/top up, then try again.
    hold = await accounts.reserve(
        c,
        r.guild_id,
        r.user_id,
        r.estimate,
        max_active=cap,
        now=r.now,
        expect_period=current,
        expect_allowance=allowance,
    )
    if hold is None:
        await accounts.sync_allowance(
            c, r.guild_id, r.user_id, allowance=allowance, period_start=current, now=r.now
        )
        hold = await accounts.reserve(c, r.guild_id, r.user_id, r.estimate, max_active=cap, now=r.now)
        if hold is None:
            raise await accounts.refusal(c, r.guild_id, r.user_id, r.estimate, cap)
    values = r.job_values(hold, guild.budget_period_start)
    job_id: int = (await c.execute(INSERT_JOB, values)).scalar_one()
    await c.execute(accounts.INSERT_LEDGER, r.ledger_row(hold, job_id))
    return Reserved(job_id, values, hold.available_after)
