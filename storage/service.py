"""The storage facade the bot talks to: one object, built from a URL, grouped by area.

Every public method is one unit of work in its own ``async with maker() as s, s.begin():``, takes and
returns plain integers for Discord ids, and returns frozen dataclasses or model instances detached
from their session. The clock is injectable so tests can cross period boundaries.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Self, Unpack

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlmodel import col

from storage import accounts, guilds, jobs, reservations, scheduling
from storage._sql import insert_ignore, is_unique_violation, rowcount
from storage.accounts import LedgerKind
from storage.database import (
    DEFAULT_DATABASE_URL,
    create_engine,
    create_sessionmaker,
    run_on_connection,
    upgrade_to_head,
)
from storage.errors import DuplicateInteraction, DuplicateOperation
from storage.guilds import BudgetSnapshot, GuildSettingsChanges
from storage.jobs import JobRequest
from storage.models import (
    BotState,
    GuildSettings,
    Job,
    LedgerEntry,
    MemberAccount,
    detached_job,
)
from storage.periods import Period, as_utc, next_period_start, period_start, utcnow
from storage.states import ACTIVE_STATES, TERMINAL_STATES, JobState

log = logging.getLogger(__name__)

#: How long a worker's lease lasts unless renewed.
DEFAULT_LEASE = timedelta(seconds=60)
COMMAND_TREE_HASH_KEY = "command_tree_hash"


@dataclass(frozen=True, slots=True)
class Balance:
    """A member's credits right now (after any due refill)."""

    guild_id: int
    user_id: int
    allowance_left: int
    allowance_total: int
    bonus: int
    reserved: int
    active_jobs: int
    period: Period
    period_start: datetime
    next_refill_at: datetime

    @property
    def available(self) -> int:
        """What the member can spend on a new job."""
        return self.allowance_left + self.bonus


@dataclass(frozen=True, slots=True)
class GrantResult:
    """What a grant actually moved (a negative grant stops at zero) and the balance after it."""

    granted: int
    balance: Balance


class Storage:
    """All persistent state of the bot.

    Use as ``async with Storage(url) as storage: await storage.migrate(); ...``. It owns the engine
    and the one session factory; nothing outside :mod:`storage` ever holds a session.
    """

    def __init__(
        self,
        url: str = DEFAULT_DATABASE_URL,
        *,
        clock: Callable[[], datetime] = utcnow,
        pool_size: int | None = None,
        echo: bool = False,
    ) -> None:
        self.url = url
        self._clock = clock
        self.engine: AsyncEngine = create_engine(url, pool_size=pool_size, echo=echo)
        self._maker: async_sessionmaker[AsyncSession] = create_sessionmaker(self.engine)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self.engine.dispose()

    async def migrate(self) -> None:
        """Bring the schema to the newest revision (see :func:`storage.database.upgrade_to_head`)."""
        await upgrade_to_head(self.url)

    def now(self) -> datetime:
        return as_utc(self._clock())

    # ------------------------------------------------------------------ guild settings

    async def get_guild_settings(self, guild_id: int) -> GuildSettings:
        """The guild's settings (the defaults, stored, for a guild never seen before)."""
        now = self.now()
        async with self._maker() as s, s.begin():
            return await guilds.load(s, guild_id, now)

    async def update_guild_settings(
        self, guild_id: int, **changes: Unpack[GuildSettingsChanges]
    ) -> GuildSettings:
        """Change some settings; raises :class:`~storage.errors.InvalidSetting` on a bad value.

        A new allowance takes effect at each member's next refill (or at once when it raises the
        member's allowance: see :func:`storage.accounts.sync_allowance`).
        """
        values = guilds.validate(changes)
        now = self.now()
        async with self._maker() as s, s.begin():
            settings = await guilds.load(s, guild_id, now, for_update=True)
            for field, value in values.items():
                setattr(settings, field, value)
            settings.updated_at = now
            return settings

    async def edit_guild_settings(
        self, guild_id: int, edit: Callable[[GuildSettings], GuildSettingsChanges]
    ) -> GuildSettings:
        """Change settings computed from their current values, atomically.

        ``edit`` runs while the guild's row is locked (``FOR UPDATE``; SQLite's ``BEGIN IMMEDIATE``), so two
        admins adding blocklist terms at once both land. It must not await; raising aborts with nothing
        written.
        """
        now = self.now()
        async with self._maker() as s, s.begin():
            settings = await guilds.load(s, guild_id, now, for_update=True)
            for field, value in guilds.validate(edit(settings)).items():
                setattr(settings, field, value)
            settings.updated_at = now
            return settings

    async def set_role_allowance(self, guild_id: int, role_id: int, credits: int | None) -> GuildSettings:
        """Give a role its own allowance per period (``None`` removes it)."""
        now = self.now()
        async with self._maker() as s, s.begin():
            settings = await guilds.load(s, guild_id, now, for_update=True)
            roles = {int(k): v for k, v in settings.role_allowances.items()}
            if credits is None:
                roles.pop(role_id, None)
            else:
                roles[role_id] = credits
            settings.role_allowances = guilds.validate({"role_allowances": roles})["role_allowances"]
            settings.updated_at = now
            return settings

    async def guild_spend(self, guild_id: int) -> BudgetSnapshot:
        """The server's spend in its current budget period (and its cap, if any)."""
        now = self.now()
        async with self._maker() as s, s.begin():
            return await guilds.budget(s, guild_id, now)

    # ------------------------------------------------------------------ bot state

    async def get_bot_state(self, key: str) -> str | None:
        async with self._maker() as s, s.begin():
            state = await s.get(BotState, key)
            return None if state is None else state.value

    async def set_bot_state(self, key: str, value: str) -> bool:
        """Store ``value`` under ``key``; ``True`` if it changed (e.g. the command tree needs a sync)."""
        now = self.now()
        async with self._maker() as s, s.begin():
            if await insert_ignore(s, BotState, {"key": key, "value": value, "updated_at": now}):
                return True
            result = await s.execute(
                sa.update(BotState)
                .where(col(BotState.key) == key, col(BotState.value) != value)
                .values(value=value, updated_at=now)
                .execution_options(synchronize_session=False)
            )
            return rowcount(result) == 1

    # ------------------------------------------------------------------ accounts

    async def _sync(
        self, s: AsyncSession, guild_id: int, user_id: int, role_ids: Iterable[int], now: datetime
    ) -> GuildSettings:
        settings = await guilds.load(s, guild_id, now)
        await accounts.sync_allowance(
            s,
            guild_id,
            user_id,
            allowance=settings.allowance_for(tuple(role_ids)),
            period_start=period_start(settings.allowance_period, now),
            now=now,
        )
        return settings

    async def _balance(
        self, s: AsyncSession, settings: GuildSettings, user_id: int, now: datetime
    ) -> Balance:
        account = await s.get(MemberAccount, (settings.guild_id, user_id), populate_existing=True)
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

    async def balance(self, guild_id: int, user_id: int, role_ids: Iterable[int] = ()) -> Balance:
        """The member's balance, after refilling it if a period boundary passed.

        ``role_ids`` are the member's roles: the allowance is the largest of the server default and
        those roles' allowances.
        """
        now = self.now()
        async with self._maker() as s, s.begin():
            settings = await self._sync(s, guild_id, user_id, role_ids, now)
            return await self._balance(s, settings, user_id, now)

    async def grant(
        self,
        guild_id: int,
        user_id: int,
        amount: int,
        *,
        actor_id: int | None,
        reason: str | None = None,
        idempotency_key: str | None = None,
        role_ids: Iterable[int] = (),
    ) -> GrantResult:
        """Add bonus credits (never expire), or remove them with a negative amount, down to zero.

        Pass the admin's interaction id as ``idempotency_key`` so a retried command cannot grant
        twice (:class:`~storage.errors.DuplicateOperation`).
        """
        key = f"grant:{idempotency_key or uuid.uuid4().hex}"
        now = self.now()
        try:
            async with self._maker() as s, s.begin():
                exists = await s.execute(
                    sa.select(col(LedgerEntry.id)).where(col(LedgerEntry.idempotency_key) == key)
                )
                if exists.first() is not None:
                    raise DuplicateOperation(key)
                settings = await self._sync(s, guild_id, user_id, role_ids, now)
                if amount >= 0:
                    await accounts.add_bonus(s, guild_id, user_id, amount, now)
                    moved = amount
                else:
                    _, taken = await accounts.debit_up_to(
                        s, guild_id, user_id, -amount, allowance_period=None, now=now
                    )
                    moved = -taken
                await accounts.record(
                    s,
                    guild_id=guild_id,
                    user_id=user_id,
                    kind=LedgerKind.GRANT,
                    amount=moved,
                    bonus=moved,
                    key=key,
                    now=now,
                    actor_id=actor_id,
                    note=reason,
                )
                return GrantResult(granted=moved, balance=await self._balance(s, settings, user_id, now))
        except IntegrityError as error:
            if is_unique_violation(error, "idempotency_key"):
                raise DuplicateOperation(key) from error
            raise

    async def ledger_entries(self, guild_id: int, user_id: int, *, limit: int = 50) -> list[LedgerEntry]:
        """The member's newest ledger rows first."""
        async with self._maker() as s, s.begin():
            result = await s.execute(
                sa.select(LedgerEntry)
                .where(col(LedgerEntry.guild_id) == guild_id, col(LedgerEntry.user_id) == user_id)
                .order_by(col(LedgerEntry.id).desc())
                .limit(limit)
            )
            return list(result.scalars().all())

    # ------------------------------------------------------------------ jobs: creation

    async def create_job(
        self,
        *,
        interaction_id: int,
        guild_id: int,
        user_id: int,
        channel_id: int,
        request: JobRequest,
        estimate: int,
        role_ids: Iterable[int] = (),
        review: bool = False,
    ) -> Job:
        """Reserve ``estimate`` credits and create the job, all or nothing.

        In one transaction: the member's concurrency cap and balance (one conditional ``UPDATE``),
        the server budget (another), the job row (unique per interaction) and the ledger row. The job
        starts in ``pending_review`` when ``review`` is set (the server reviews requests), else in
        ``queued``. Raises :class:`~storage.errors.TooManyActiveJobs`,
        :class:`~storage.errors.InsufficientCredits`, :class:`~storage.errors.BudgetExceeded` or
        :class:`~storage.errors.DuplicateInteraction` (then nothing was reserved).
        """
        if estimate < 0:
            raise ValueError("estimate must not be negative")
        plan = reservations.Reservation(
            interaction_id=interaction_id,
            guild_id=guild_id,
            user_id=user_id,
            channel_id=channel_id,
            request=request,
            estimate=estimate,
            roles=tuple(role_ids),
            review=review,
            now=self.now(),
        )
        try:
            try:
                # The common case, the bot's hottest unit of work: one transaction of four Core
                # statements, in one greenlet, on a Core connection (see storage.reservations).
                job_id, values = await run_on_connection(self.engine, reservations.reserve_common, plan)
            except reservations.NotCommon:  # rolled back, nothing written: every other case
                async with self._maker() as s, s.begin():
                    job_id, values = await reservations.reserve_general(s, plan)
            return detached_job({"id": job_id, **values})
        except IntegrityError as error:
            if not is_unique_violation(error, "interaction_id"):
                raise
            existing = await self.get_job_by_interaction(interaction_id)
            raise DuplicateInteraction(
                interaction_id=interaction_id, job_id=None if existing is None else existing.id
            ) from error

    # ------------------------------------------------------------------ jobs: transitions

    async def _give_back(
        self,
        s: AsyncSession,
        job: Job,
        kind: LedgerKind,
        *,
        was_active: bool,
        actor_id: int | None,
        note: str | None,
        now: datetime,
    ) -> None:
        settings = await guilds.load(s, job.guild_id, now)
        await accounts.give_back(
            s,
            job,
            kind,
            finished_jobs=1 if was_active else 0,
            current_period=period_start(settings.allowance_period, now),
            actor_id=actor_id,
            note=note,
            now=now,
        )
        await guilds.recount_budget(s, job, 0)

    async def approve(self, job_id: int, *, moderator_id: int) -> Job:
        """pending_review -> queued."""
        now = self.now()
        async with self._maker() as s, s.begin():
            job = await jobs.load(s, job_id)
            return await jobs.move(
                s, job, JobState.QUEUED, owner=None, now=now, values={"reviewed_by": moderator_id}
            )

    async def reject(self, job_id: int, *, moderator_id: int, reason: str | None = None) -> Job:
        """pending_review -> rejected; the reservation is released."""
        now = self.now()
        async with self._maker() as s, s.begin():
            job = await jobs.load(s, job_id)
            job = await jobs.move(
                s,
                job,
                JobState.REJECTED,
                owner=None,
                now=now,
                values={"reviewed_by": moderator_id, "error": reason},
            )
            await self._give_back(
                s, job, LedgerKind.RELEASE, was_active=True, actor_id=moderator_id, note=reason, now=now
            )
            return job

    async def cancel(self, job_id: int, *, actor_id: int | None, reason: str | None = None) -> Job:
        """pending_review|queued -> cancelled; the reservation is released.

        Once a worker has started submitting, a job can no longer be cancelled (the provider has no
        cancel call): this raises :class:`~storage.errors.InvalidTransition`.
        """
        now = self.now()
        async with self._maker() as s, s.begin():
            job = await jobs.load(s, job_id)
            job = await jobs.move(s, job, JobState.CANCELLED, owner=None, now=now, values={"error": reason})
            await self._give_back(
                s, job, LedgerKind.RELEASE, was_active=True, actor_id=actor_id, note=reason, now=now
            )
            return job

    async def mark_submitting(self, job_id: int, *, owner: str) -> Job:
        """queued -> submitting, just before the generate call (the lease holder only).

        If the process dies now, :meth:`recover_lost_submissions` marks the job lost and refunds it:
        a generate call is never retried blindly, since the provider has no idempotency key.
        """
        now = self.now()
        async with self._maker() as s, s.begin():
            job = await jobs.load(s, job_id)
            return await jobs.move(
                s,
                job,
                JobState.SUBMITTING,
                owner=owner,
                now=now,
                values={"attempts": job.attempts + 1, "next_attempt_at": None, "error": None},
            )

    async def mark_processing(
        self,
        job_id: int,
        *,
        owner: str,
        task_id: str,
        credits_used: int,
        eta_low_seconds: int | None = None,
        eta_high_seconds: int | None = None,
        next_poll_at: datetime | None = None,
    ) -> Job:
        """submitting -> processing: the provider accepted; settle to its ``credits_used``."""
        if credits_used < 0:
            raise ValueError("credits_used must not be negative")
        now = self.now()
        async with self._maker() as s, s.begin():
            job = await jobs.load(s, job_id)
            job = await jobs.move(
                s,
                job,
                JobState.PROCESSING,
                owner=owner,
                now=now,
                values={
                    "provider_task_id": task_id,
                    "credits_used": credits_used,
                    "eta_low_seconds": eta_low_seconds,
                    "eta_high_seconds": eta_high_seconds,
                    "submitted_at": now,
                    "next_attempt_at": next_poll_at,
                    "progress": 0,
                },
            )
            settings = await guilds.load(s, job.guild_id, now)
            await accounts.settle(
                s, job, credits_used, current_period=period_start(settings.allowance_period, now), now=now
            )
            await guilds.recount_budget(s, job, credits_used)
            return job

    async def requeue_with_backoff(
        self, job_id: int, *, owner: str, retry_at: datetime, error: str | None = None
    ) -> Job:
        """submitting -> queued after a 429: the lease is dropped and the job is due at ``retry_at``."""
        now = self.now()
        async with self._maker() as s, s.begin():
            job = await jobs.load(s, job_id)
            return await jobs.move(
                s,
                job,
                JobState.QUEUED,
                owner=owner,
                now=now,
                values={
                    "next_attempt_at": as_utc(retry_at),
                    "lease_owner": None,
                    "lease_expires_at": None,
                    "error": error,
                },
            )

    async def mark_completed(
        self, job_id: int, *, owner: str | None, video_url: str, credits_charged: int | None = None
    ) -> Job:
        """processing -> completed: the video is ready to post (no credits move: settled already)."""
        now = self.now()
        async with self._maker() as s, s.begin():
            job = await jobs.load(s, job_id)
            job = await jobs.move(
                s,
                job,
                JobState.COMPLETED,
                owner=owner,
                now=now,
                values={
                    "video_url": video_url,
                    "credits_charged": credits_charged,
                    "progress": 100,
                    "completed_at": now,
                    "next_attempt_at": None,
                },
            )
            await accounts.finish_job(s, job.guild_id, job.user_id, now)
            return job

    async def mark_delivered(
        self, job_id: int, *, owner: str | None, message_id: int, notes: str | None = None
    ) -> Job:
        """completed -> delivered: the video (or its link) was posted as ``message_id``."""
        now = self.now()
        async with self._maker() as s, s.begin():
            job = await jobs.load(s, job_id)
            return await jobs.move(
                s,
                job,
                JobState.DELIVERED,
                owner=owner,
                now=now,
                values={"posted_message_id": message_id, "delivery_notes": notes},
            )

    async def fail(self, job_id: int, *, owner: str | None, reason: str) -> Job:
        """-> failed, refunding whatever the job holds or cost (nothing once it is completed)."""
        return await self._end(job_id, JobState.FAILED, owner=owner, reason=reason)

    async def mark_lost(self, job_id: int, *, owner: str | None, reason: str) -> Job:
        """submitting -> lost: the generate call's outcome is unknown (timeout, 5xx); refund."""
        return await self._end(job_id, JobState.LOST, owner=owner, reason=reason)

    async def _end(self, job_id: int, target: JobState, *, owner: str | None, reason: str) -> Job:
        now = self.now()
        async with self._maker() as s, s.begin():
            job = await jobs.load(s, job_id)
            was = job.state
            job = await jobs.move(s, job, target, owner=owner, now=now, values={"error": reason})
            if was in ACTIVE_STATES:
                await self._give_back(
                    s, job, LedgerKind.REFUND, was_active=True, actor_id=None, note=reason, now=now
                )
            return job

    async def recover_lost_submissions(self) -> list[Job]:
        """Mark every ``submitting`` job whose lease expired as lost and refund it.

        Call at start-up (and now and then): these are generate calls a dead process left in flight.
        """
        now = self.now()
        async with self._maker() as s, s.begin():
            stale = (
                (
                    await s.execute(
                        sa.select(Job)
                        .where(
                            col(Job.state) == JobState.SUBMITTING,
                            sa.or_(col(Job.lease_expires_at).is_(None), col(Job.lease_expires_at) <= now),
                        )
                        .order_by(col(Job.id))
                        .with_for_update(skip_locked=True)
                    )
                )
                .scalars()
                .all()
            )
            lost = []
            for job in stale:
                moved = await jobs.move(
                    s,
                    job,
                    JobState.LOST,
                    owner=None,
                    now=now,
                    values={"error": "the bot stopped while submitting; the outcome is unknown"},
                )
                await self._give_back(
                    s, moved, LedgerKind.REFUND, was_active=True, actor_id=None, note=moved.error, now=now
                )
                lost.append(moved)
            return lost

    # ------------------------------------------------------------------ jobs: leases

    async def claim(
        self, owner: str, states: Iterable[JobState], *, limit: int = 1, lease: timedelta = DEFAULT_LEASE
    ) -> list[Job]:
        """Lease up to ``limit`` due jobs in ``states`` for ``owner`` (a unique id per process)."""
        now = self.now()
        async with self._maker() as s, s.begin():
            return await jobs.claim(s, owner, states, limit=limit, lease_until=now + lease, now=now)

    async def claim_for_submit(
        self, owner: str, *, limit: int = 1, lease: timedelta = DEFAULT_LEASE
    ) -> list[Job]:
        """Queued jobs that are due; follow with :meth:`mark_submitting` right before the call."""
        return await self.claim(owner, (JobState.QUEUED,), limit=limit, lease=lease)

    async def claim_for_poll(
        self, owner: str, *, limit: int = 5, lease: timedelta = DEFAULT_LEASE
    ) -> list[Job]:
        """Processing jobs whose next poll is due."""
        return await self.claim(owner, (JobState.PROCESSING,), limit=limit, lease=lease)

    async def claim_for_delivery(
        self, owner: str, *, limit: int = 1, lease: timedelta = DEFAULT_LEASE
    ) -> list[Job]:
        """Completed jobs waiting to be posted."""
        return await self.claim(owner, (JobState.COMPLETED,), limit=limit, lease=lease)

    async def renew_lease(self, job_id: int, *, owner: str, lease: timedelta = DEFAULT_LEASE) -> Job:
        """Extend ``owner``'s lease; :class:`~storage.errors.LeaseLost` if someone else holds it."""
        now = self.now()
        async with self._maker() as s, s.begin():
            return await jobs.fenced_update(
                s, job_id, owner, {"lease_expires_at": now + lease, "updated_at": now}
            )

    async def release_lease(
        self, job_id: int, *, owner: str, next_attempt_at: datetime | None = None, progress: int | None = None
    ) -> Job:
        """Drop ``owner``'s lease; the job is due again at ``next_attempt_at`` (e.g. the next poll)."""
        now = self.now()
        values: dict[str, object] = {
            "lease_owner": None,
            "lease_expires_at": None,
            "next_attempt_at": None if next_attempt_at is None else as_utc(next_attempt_at),
            "updated_at": now,
        }
        if progress is not None:
            values["progress"] = progress
        async with self._maker() as s, s.begin():
            return await jobs.fenced_update(s, job_id, owner, values)

    # ------------------------------------------------------------------ jobs: reading and messages

    async def set_job_messages(
        self, job_id: int, *, status_message_id: int | None = None, review_message_id: int | None = None
    ) -> Job:
        """Remember the status card and review card the bot posted for a job."""
        values: dict[str, object] = {"updated_at": self.now()}
        if status_message_id is not None:
            values["status_message_id"] = status_message_id
        if review_message_id is not None:
            values["review_message_id"] = review_message_id
        async with self._maker() as s, s.begin():
            return await jobs.update_unfenced(s, job_id, values)

    async def get_job(self, job_id: int) -> Job | None:
        async with self._maker() as s, s.begin():
            return await s.get(Job, job_id)

    async def get_job_by_interaction(self, interaction_id: int) -> Job | None:
        async with self._maker() as s, s.begin():
            result = await s.execute(sa.select(Job).where(col(Job.interaction_id) == interaction_id))
            return result.scalars().one_or_none()

    async def list_jobs(
        self, guild_id: int, user_id: int, *, limit: int = 10, states: Iterable[JobState] | None = None
    ) -> list[Job]:
        """A member's newest jobs first."""
        query = sa.select(Job).where(col(Job.guild_id) == guild_id, col(Job.user_id) == user_id)
        if states is not None:
            query = query.where(col(Job.state).in_(list(states)))
        async with self._maker() as s, s.begin():
            result = await s.execute(query.order_by(col(Job.id).desc()).limit(limit))
            return list(result.scalars().all())

    async def queue_position(self, job_id: int) -> int | None:
        """Where a queued job stands in line (1 = next to be submitted); ``None`` if it is not queued.

        The line is the order :meth:`claim_fair_for_submit` serves (round-robin across members).
        """
        async with self._maker() as s, s.begin():
            return await scheduling.queue_position(s, job_id)

    async def queue_positions(self, *, limit: int = 100) -> dict[int, int]:
        """The first ``limit`` queued jobs' places in line, for refreshing their status cards."""
        async with self._maker() as s, s.begin():
            return await scheduling.queue_positions(s, limit=limit)

    async def claim_fair_for_submit(
        self, owner: str, *, limit: int, max_in_flight: int, lease: timedelta = DEFAULT_LEASE
    ) -> list[Job]:
        """Lease due queued jobs round-robin across members, keeping under ``max_in_flight``
        generations for the whole bot (see :mod:`storage.scheduling`)."""
        now = self.now()
        async with self._maker() as s, s.begin():
            return await scheduling.claim_fair(
                s, owner, limit=limit, max_in_flight=max_in_flight, lease_until=now + lease, now=now
            )

    async def in_flight(self) -> int:
        """Generations submitting, processing or claimed for submission right now."""
        now = self.now()
        async with self._maker() as s, s.begin():
            return await scheduling.in_flight(s, now)

    async def unfinished_jobs(self, guild_id: int) -> dict[JobState, int]:
        """How many of one server's jobs are in each state that has not ended yet (for its admins)."""
        query = (
            sa.select(col(Job.state), sa.func.count())
            .where(col(Job.guild_id) == guild_id, col(Job.state).not_in(list(TERMINAL_STATES)))
            .group_by(col(Job.state))
        )
        async with self._maker() as s, s.begin():
            rows = (await s.execute(query)).all()
        return {JobState(state): int(count) for state, count in rows}

    async def jobs_to_resume(self) -> Sequence[Job]:
        """Every job not in an ending state, oldest first (what the bot picks up after a restart)."""
        async with self._maker() as s, s.begin():
            result = await s.execute(
                sa.select(Job).where(col(Job.state).not_in(list(TERMINAL_STATES))).order_by(col(Job.id))
            )
            return list(result.scalars().all())
