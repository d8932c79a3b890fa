"""The storage facade the bot talks to: one object, built from a URL, grouped by area.

Every public method is one unit of work in its own ``async with maker() as s, s.begin():``, takes and
returns plain integers for Discord ids, and returns frozen dataclasses (:mod:`storage.results`) or
model instances detached from their session. The statements themselves live with the table they
touch (:mod:`storage.jobs`, :mod:`storage.accounts`, :mod:`storage.guilds`, :mod:`storage.bot_state`),
and every job transition takes the one path of :mod:`storage.transitions`. The clock is injectable so
tests can cross period boundaries.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Final, Self, Unpack

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlmodel import col

from storage import (
    accounts,
    bans,
    bot_state,
    guilds,
    jobs,
    pace,
    provider_account,
    quotes,
    request_context,
    reservations,
    scheduling,
    transitions,
)
from storage._sql import is_unique_violation
from storage.accounts import LedgerKind
from storage.database import (
    DEFAULT_DATABASE_URL,
    checkpoint,
    create_engine,
    create_sessionmaker,
    run_on_connection,
    upgrade_to_head,
)
from storage.errors import DuplicateInteraction, DuplicateOperation, JobNotFound
from storage.guilds import GuildSettingsChanges
from storage.models import Ban, GuildSettings, Job, Quote, detached_job, detached_settings
from storage.periods import as_utc, period_start, utcnow
from storage.request_context import RequestContext
from storage.reservations import NewJob
from storage.results import AccountState, Balance, BudgetSnapshot, ForgetReport, GrantResult, Resumed
from storage.states import ACTIVE_STATES, TERMINAL_STATES, DeliveredVia, JobState, QuoteState
from storage.transitions import FORGOTTEN, Action, Details

#: Told of every job a unit of work created or moved, after it committed: what happened ("create" or
#: the transition's name) and the job as it is now. For counting (metrics); it must not raise or block.
Watcher = Callable[[str, Job], None]

log = logging.getLogger(__name__)

#: How long a worker's lease lasts unless renewed.
DEFAULT_LEASE = timedelta(seconds=60)
COMMAND_TREE_HASH_KEY = "command_tree_hash"
#: Why a job the bot was submitting when it stopped is lost.
LOST_IN_FLIGHT = "the bot stopped while submitting; the outcome is unknown"
#: Jobs handled per transaction when a member's words are erased (a unit of work stays short).
ERASE_BATCH = 100
#: Jobs whose member asked to be forgotten while the provider works on them: erased when they end.
AT_THE_PROVIDER = (JobState.SUBMITTING, JobState.PROCESSING, JobState.COMPLETED)


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
        self._watchers: list[Watcher] = []

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
        """The guild's settings (the defaults, stored, for a guild never seen before).

        A known guild's are one Core ``SELECT`` (every request reads them); only a new guild takes the
        unit of work that stores its defaults.
        """
        row = await run_on_connection(self.engine, guilds.read_row, guild_id)
        if row is not None:
            return detached_settings(row)
        now = self.now()
        async with self._maker() as s, s.begin():
            return await guilds.load(s, guild_id, now)

    async def request_context(self, guild_id: int, user_id: int) -> RequestContext:
        """What a new request reads first, in one read (see :mod:`storage.request_context`): the
        server's settings (stored with the defaults for a server never seen), the member's ban and
        whether the provider line is paused."""
        rows = await run_on_connection(self.engine, request_context.read, (guild_id, user_id))
        ban = None if rows.ban is None else Ban(**rows.ban)
        if rows.settings is not None:
            return RequestContext(detached_settings(rows.settings), ban, rows.paused)
        return RequestContext(await self.get_guild_settings(guild_id), ban, rows.paused)

    async def update_guild_settings(
        self, guild_id: int, **changes: Unpack[GuildSettingsChanges]
    ) -> GuildSettings:
        """Change some settings; raises :class:`~storage.errors.InvalidSetting` on a bad value.

        A new allowance takes effect at each member's next refill (or at once when it raises the
        member's allowance: see :func:`storage.accounts.sync_allowance`).
        """
        values = guilds.validate(changes)
        return await self._change_settings(guild_id, lambda _: values)

    async def edit_guild_settings(
        self, guild_id: int, edit: Callable[[GuildSettings], GuildSettingsChanges]
    ) -> GuildSettings:
        """Change settings computed from their current values, atomically.

        ``edit`` runs while the guild's row is locked (``FOR UPDATE``; SQLite's ``BEGIN IMMEDIATE``), so two
        admins adding blocklist terms at once both land. It must not await; raising aborts with nothing
        written.
        """
        return await self._change_settings(guild_id, lambda current: guilds.validate(edit(current)))

    async def set_role_allowance(self, guild_id: int, role_id: int, credits: int | None) -> GuildSettings:
        """Give a role its own allowance per period (``None`` removes it)."""

        def edit(current: GuildSettings) -> dict[str, Any]:
            roles = {int(k): v for k, v in current.role_allowances.items()}
            if credits is None:
                roles.pop(role_id, None)
            else:
                roles[role_id] = credits
            return guilds.validate({"role_allowances": roles})

        return await self._change_settings(guild_id, edit)

    async def _change_settings(
        self, guild_id: int, compute: Callable[[GuildSettings], dict[str, Any]]
    ) -> GuildSettings:
        """Write the validated column values ``compute`` derives from the locked current settings."""
        now = self.now()
        async with self._maker() as s, s.begin():
            settings = await guilds.load(s, guild_id, now, for_update=True)
            for field, value in compute(settings).items():
                setattr(settings, field, value)
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
            return await bot_state.get(s, key)

    async def set_bot_state(self, key: str, value: str) -> bool:
        """Store ``value`` under ``key``; ``True`` if it changed (e.g. the command tree needs a sync)."""
        now = self.now()
        async with self._maker() as s, s.begin():
            return await bot_state.put(s, key, value, now)

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

    async def balance(self, guild_id: int, user_id: int, role_ids: Iterable[int] = ()) -> Balance:
        """The member's balance, after refilling it if a period boundary passed.

        ``role_ids`` are the member's roles: the allowance is the largest of the server default and
        those roles' allowances.
        """
        now = self.now()
        async with self._maker() as s, s.begin():
            settings = await self._sync(s, guild_id, user_id, role_ids, now)
            return await accounts.balance(s, settings, user_id, now)

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
                if await accounts.applied(s, key):
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
                return GrantResult(granted=moved, balance=await accounts.balance(s, settings, user_id, now))
        except IntegrityError as error:
            if is_unique_violation(error, "idempotency_key"):
                raise DuplicateOperation(key) from error
            raise

    # ------------------------------------------------------------------ jobs: creation

    async def create_job(self, **job: Unpack[NewJob]) -> Job:
        """Reserve ``estimate`` credits and create the job, all or nothing.

        In one transaction: the member's concurrency cap and balance (one conditional ``UPDATE``),
        the server budget (another), the job row (unique per interaction) and the ledger row. The job
        starts in ``pending_review`` when ``review`` is set (the server reviews requests), else in
        ``queued``. Raises :class:`~storage.errors.TooManyActiveJobs`,
        :class:`~storage.errors.InsufficientCredits`, :class:`~storage.errors.BudgetExceeded` or
        :class:`~storage.errors.DuplicateInteraction` (then nothing was reserved).
        """
        created, _ = await self.create_job_with_balance(**job)
        return created

    async def create_job_with_balance(self, **job: Unpack[NewJob]) -> tuple[Job, int]:
        """:meth:`create_job`, also returning what the member can still spend right after it (read
        by the reservation itself, for the receipt: no second look at the balance)."""
        estimate, interaction_id = job["estimate"], job["interaction_id"]
        if estimate < 0:
            raise ValueError("estimate must not be negative")
        plan = reservations.Reservation(
            interaction_id=interaction_id,
            guild_id=job["guild_id"],
            user_id=job["user_id"],
            channel_id=job["channel_id"],
            request=job["request"],
            estimate=estimate,
            roles=tuple(job.get("role_ids", ())),
            review=job.get("review", False),
            now=self.now(),
        )
        try:
            try:
                # The common case, the bot's hottest unit of work: one transaction of four Core
                # statements on a Core connection (see storage.reservations).
                done = await run_on_connection(self.engine, reservations.reserve_common, plan)
            except reservations.NotCommon:  # rolled back, nothing written: every other case
                async with self._maker() as s, s.begin():
                    done = await reservations.reserve_general(s, plan)
            created = detached_job({"id": done.job_id, **done.values})
            self._told("create", created)
            return created, done.available
        except IntegrityError as error:
            if not is_unique_violation(error, "interaction_id"):
                raise
            existing = await self.get_job_by_interaction(interaction_id)
            raise DuplicateInteraction(
                interaction_id=interaction_id, job_id=None if existing is None else existing.id
            ) from error

    # ------------------------------------------------------------------ jobs: transitions

    async def _transition(
        self,
        job_id: int,
        action: Action,
        *,
        owner: str | None,
        now: datetime | None = None,
        **details: Unpack[Details],
    ) -> Job:
        """Load the job and carry out ``action`` on it in one unit of work (see :mod:`storage.transitions`);
        ``now`` is the moment the caller also wrote into ``values``, if it did."""
        now = self.now() if now is None else now
        async with self._maker() as s, s.begin():
            job = await jobs.load(s, job_id)
            moved = await transitions.apply(s, job, action, owner=owner, now=now, **details)
        self._told(action, moved)
        return moved

    async def approve(self, job_id: int, *, moderator_id: int) -> Job:
        """pending_review -> queued."""
        return await self._transition(job_id, "approve", owner=None, values={"reviewed_by": moderator_id})

    async def reject(self, job_id: int, *, moderator_id: int, reason: str | None = None) -> Job:
        """pending_review -> rejected; the reservation is released."""
        return await self._transition(
            job_id,
            "reject",
            owner=None,
            values={"reviewed_by": moderator_id, "error": reason},
            actor_id=moderator_id,
            note=reason,
        )

    async def cancel(self, job_id: int, *, actor_id: int | None, reason: str | None = None) -> Job:
        """pending_review|queued -> cancelled; the reservation is released.

        Once a worker has started submitting, a job can no longer be cancelled (the provider has no
        cancel call): this raises :class:`~storage.errors.InvalidTransition`.
        """
        return await self._transition(
            job_id, "cancel", owner=None, values={"error": reason}, actor_id=actor_id, note=reason
        )

    async def mark_submitting(self, job_id: int, *, owner: str) -> Job:
        """queued -> submitting, just before the generate call (the lease holder only).

        If the process dies now, :meth:`recover_lost_submissions` marks the job lost and refunds it:
        a generate call is never retried blindly, since the provider has no idempotency key.
        """
        return await self._transition(
            job_id,
            "mark_submitting",
            owner=owner,
            values={"attempts": col(Job.attempts) + 1, "next_attempt_at": None, "error": None},
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
        release: bool = False,
    ) -> Job:
        """submitting -> processing: the provider accepted; settle to its ``credits_used``.

        ``release``: drop ``owner``'s lease in the same write (the worker's case: the job waits for
        its first poll at ``next_poll_at``, which any process may make), saving a transaction.
        """
        if credits_used < 0:
            raise ValueError("credits_used must not be negative")
        now = self.now()
        values: dict[str, Any] = {
            "provider_task_id": task_id,
            "credits_used": credits_used,
            "eta_low_seconds": eta_low_seconds,
            "eta_high_seconds": eta_high_seconds,
            "submitted_at": now,
            "next_attempt_at": next_poll_at,
            "progress": 0,
        }
        if release:
            values.update(lease_owner=None, lease_expires_at=None)
        return await self._transition(
            job_id, "mark_processing", owner=owner, now=now, values=values, credits_used=credits_used
        )

    async def requeue_with_backoff(
        self, job_id: int, *, owner: str, retry_at: datetime, error: str | None = None
    ) -> Job:
        """submitting -> queued after a 429: the lease is dropped and the job is due at ``retry_at``."""
        return await self._transition(
            job_id,
            "requeue_with_backoff",
            owner=owner,
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
        return await self._transition(
            job_id,
            "mark_completed",
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

    async def mark_delivered(
        self,
        job_id: int,
        *,
        owner: str | None,
        message_id: int,
        via: DeliveredVia,
        notes: str | None = None,
    ) -> Job:
        """completed -> delivered: the video was posted as ``message_id``, ``via`` an attachment, a
        link or a direct message (``notes`` say why, in words for the audit log)."""
        now = self.now()
        return await self._transition(
            job_id,
            "mark_delivered",
            owner=owner,
            now=now,
            values={
                "posted_message_id": message_id,
                "delivered_via": via,
                "delivery_notes": notes,
                "delivered_at": now,
            },
        )

    async def fail(self, job_id: int, *, owner: str | None, reason: str) -> Job:
        """-> failed, refunding whatever the job holds or cost (nothing once it is completed)."""
        return await self._transition(job_id, "fail", owner=owner, values={"error": reason}, note=reason)

    async def mark_lost(self, job_id: int, *, owner: str | None, reason: str) -> Job:
        """submitting -> lost: the generate call's outcome is unknown (timeout, 5xx); refund."""
        return await self._transition(job_id, "mark_lost", owner=owner, values={"error": reason}, note=reason)

    async def recover_lost_submissions(self) -> list[Job]:
        """Mark every ``submitting`` job whose lease expired as lost and refund it.

        Call at start-up (and now and then): these are generate calls a dead process left in flight.
        """
        now = self.now()
        async with self._maker() as s, s.begin():
            lost = [
                await transitions.apply(
                    s,
                    job,
                    "recover_lost_submissions",
                    owner=None,
                    now=now,
                    values={"error": LOST_IN_FLIGHT},
                    note=LOST_IN_FLIGHT,
                )
                for job in await jobs.abandoned_submissions(s, now)
            ]
        for job in lost:
            self._told("recover_lost_submissions", job)
        return lost

    # ------------------------------------------------------------------ jobs: leases

    async def _claim(self, owner: str, state: JobState, *, limit: int, lease: timedelta) -> list[Job]:
        now = self.now()
        async with self._maker() as s, s.begin():
            return await jobs.claim(s, owner, (state,), limit=limit, lease_until=now + lease, now=now)

    async def claim_fair_for_submit(
        self, owner: str, *, limit: int, max_in_flight: int, lease: timedelta = DEFAULT_LEASE
    ) -> list[Job]:
        """Lease due queued jobs fairly across members, keeping under ``max_in_flight``
        generations for the whole bot (see :mod:`storage.scheduling`); follow with
        :meth:`mark_submitting` right before the generate call. Nothing while the provider account is
        paused (read in the same transaction: see :meth:`claim_probe_for_submit`)."""
        now = self.now()
        async with self._maker() as s, s.begin():
            if await provider_account.is_paused(s):
                return []
            return await scheduling.claim_fair(
                s, owner, limit=limit, max_in_flight=max_in_flight, lease_until=now + lease, now=now
            )

    async def claim_for_poll(
        self, owner: str, *, limit: int = 5, lease: timedelta = DEFAULT_LEASE
    ) -> list[Job]:
        """Lease processing jobs whose next poll is due for ``owner`` (a unique id per process)."""
        return await self._claim(owner, JobState.PROCESSING, limit=limit, lease=lease)

    async def claim_for_delivery(
        self, owner: str, *, limit: int = 1, lease: timedelta = DEFAULT_LEASE
    ) -> list[Job]:
        """Lease completed jobs waiting to be posted for ``owner``."""
        return await self._claim(owner, JobState.COMPLETED, limit=limit, lease=lease)

    async def renew_lease(self, job_id: int, *, owner: str, lease: timedelta = DEFAULT_LEASE) -> Job:
        """Extend ``owner``'s lease; :class:`~storage.errors.LeaseLost` if someone else holds it."""
        now = self.now()
        async with self._maker() as s, s.begin():
            return await jobs.fenced_update(
                s, job_id, owner, {"lease_expires_at": now + lease, "updated_at": now}
            )

    async def release_lease(
        self,
        job_id: int,
        *,
        owner: str,
        next_attempt_at: datetime | None = None,
        progress: int | None = None,
        polled_at: datetime | None = None,
    ) -> Job:
        """Drop ``owner``'s lease; the job is due again at ``next_attempt_at`` (e.g. the next poll);
        ``polled_at``: when the provider last said the video was not ready yet."""
        now = self.now()
        values: dict[str, object] = {
            "lease_owner": None,
            "lease_expires_at": None,
            "next_attempt_at": None if next_attempt_at is None else as_utc(next_attempt_at),
            "updated_at": now,
        }
        if progress is not None:
            values["progress"] = progress
        if polled_at is not None:
            values["polled_at"] = as_utc(polled_at)
        async with self._maker() as s, s.begin():
            return await jobs.fenced_update(s, job_id, owner, values)

    # ------------------------------------------------------------------ jobs: reading and messages

    async def set_job_messages(
        self, job_id: int, *, status_message_id: int | None = None, review_message_id: int | None = None
    ) -> Job:
        """Remember the status card and review card the bot posted for a job."""
        values: dict[str, Any] = {"updated_at": self.now()}
        if status_message_id is not None:
            values["status_message_id"] = status_message_id
        if review_message_id is not None:
            values["review_message_id"] = review_message_id
        row = await run_on_connection(self.engine, jobs.set_messages, (job_id, values))
        if row is None:
            raise JobNotFound(job_id)
        return detached_job(row)

    async def get_job(self, job_id: int) -> Job | None:
        async with self._maker() as s, s.begin():
            return await s.get(Job, job_id)

    async def get_job_by_interaction(self, interaction_id: int) -> Job | None:
        async with self._maker() as s, s.begin():
            return await jobs.by_interaction(s, interaction_id)

    async def list_jobs(
        self, guild_id: int, user_id: int, *, limit: int = 10, states: Iterable[JobState] | None = None
    ) -> list[Job]:
        """A member's newest jobs first."""
        async with self._maker() as s, s.begin():
            return await jobs.of_member(s, guild_id, user_id, limit=limit, states=states)

    async def queue_position(self, job_id: int) -> int | None:
        """Where a queued job stands in line (1 = next to be submitted); ``None`` if it is not queued.

        The line is the order :meth:`claim_fair_for_submit` serves (fair across members).
        """
        return await run_on_connection(self.engine, scheduling.queue_position, (job_id, self.now()))

    async def queue_positions(self, *, limit: int = 100) -> dict[int, int]:
        """The first ``limit`` queued jobs' places in line, for refreshing their status cards."""
        now = self.now()
        async with self._maker() as s, s.begin():
            return await scheduling.queue_positions(s, limit=limit, now=now)

    async def unfinished_jobs(self, guild_id: int) -> dict[JobState, int]:
        """How many of one server's jobs are in each state that has not ended yet (for its admins)."""
        async with self._maker() as s, s.begin():
            return await jobs.unfinished_counts(s, guild_id)

    # -- issue 12: estimates of when a video is ready ------------------------------------------------

    async def generation_seconds(
        self, guild_id: int, model: str, duration: int, *, limit: int = 5
    ) -> list[float]:
        """How long this server's most recent videos of ``model`` and ``duration`` really took to make,
        in seconds, newest first (see :func:`storage.jobs.generation_seconds`)."""
        async with self._maker() as s, s.begin():
            return await jobs.generation_seconds(s, guild_id, model, duration, limit=limit)

    async def in_flight_jobs(self, *, limit: int) -> list[Job]:
        """The jobs being submitted or generated now, oldest first (at most ``limit``)."""
        async with self._maker() as s, s.begin():
            return await jobs.in_flight(s, limit=limit)

    # -- issue 13: quotes before spending, forgetting a member, retention --------------------------------

    async def create_quote(
        self,
        *,
        interaction_id: int,
        guild_id: int,
        user_id: int,
        channel_id: int,
        request: dict[str, Any],
        estimate: int,
        lifetime: timedelta,
    ) -> Quote:
        """Store a quote open for ``lifetime``; :class:`~storage.errors.DuplicateInteraction` when this
        interaction already has one (a retried delivery of the same command)."""
        now = self.now()
        values = {
            "interaction_id": interaction_id,
            "guild_id": guild_id,
            "user_id": user_id,
            "channel_id": channel_id,
            "request": request,
            "estimate_credits": estimate,
            "created_at": now,
            "expires_at": now + lifetime,
        }
        try:
            async with self._maker() as s, s.begin():
                return await quotes.insert(s, values)
        except IntegrityError as error:
            if not is_unique_violation(error, "interaction_id"):
                raise
            raise DuplicateInteraction(interaction_id=interaction_id, job_id=None) from error

    async def get_quote(self, quote_id: int) -> Quote | None:
        async with self._maker() as s, s.begin():
            return await s.get(Quote, quote_id)

    async def decide_quote(self, quote_id: int, state: QuoteState) -> Quote | None:
        """Confirm, cancel or expire an open quote (a compare-and-set: one decision however many
        presses); the quote as it was, with its request, or ``None`` if it was not open any more.
        The stored row keeps no request once decided."""
        now = self.now()
        async with self._maker() as s, s.begin():
            return await quotes.decide(s, quote_id, state, now)

    async def sweep_quotes(self) -> int:
        """Expire open quotes past their time (clearing their requests) and delete decided ones older
        than :data:`storage.quotes.KEEP_DECIDED`; how many expired."""
        now = self.now()
        async with self._maker() as s, s.begin():
            expired = await quotes.expire_due(s, now)
            await quotes.delete_decided_before(s, now - quotes.KEEP_DECIDED)
        return expired

    async def forget_member(self, guild_id: int, user_id: int, *, actor_id: int | None) -> ForgetReport:
        """Erase what the member wrote and linked here, keeping every amount and state.

        Every job of theirs is flagged first, so one that ends meanwhile is erased as it ends. Then, in
        transactions of :data:`ERASE_BATCH` jobs: the jobs still waiting (review, queue) are cancelled,
        releasing their credits, and so erased; the jobs that ended are erased. Jobs at the provider
        stay flagged and are erased when they end. The member's quotes are deleted. On SQLite the WAL
        is checkpointed afterwards (see :func:`storage.database.checkpoint`).
        """
        async with self._maker() as s, s.begin():
            await jobs.flag_for_erasure(s, guild_id, user_id)
        cancelled: list[Job] = []
        while True:
            now = self.now()
            async with self._maker() as s, s.begin():
                waiting = await jobs.of_member_unerased(
                    s, guild_id, user_id, CANCELLABLE_STATES, limit=ERASE_BATCH
                )
                cancelled += await _cancel_all(s, waiting, now=now, reason=FORGOTTEN, actor_id=actor_id)
            if len(waiting) < ERASE_BATCH:
                break
        erased = list(cancelled)
        while True:
            now = self.now()
            async with self._maker() as s, s.begin():
                ended = await jobs.of_member_unerased(
                    s, guild_id, user_id, TERMINAL_STATES, limit=ERASE_BATCH
                )
                erased += await jobs.erase(s, [job.id for job in ended], now)
            if len(ended) < ERASE_BATCH:
                break
        async with self._maker() as s, s.begin():
            pending = await jobs.count_of_member_unerased(s, guild_id, user_id, AT_THE_PROVIDER)
            deleted = await quotes.delete_of_member(s, guild_id, user_id)
        await checkpoint(self.engine)
        return ForgetReport(cancelled=cancelled, erased=erased, pending=pending, quotes=deleted)

    async def erase_expired_jobs(self, *, limit: int = ERASE_BATCH) -> int:
        """Erase up to ``limit`` jobs that ended longer ago than their server's ``retention_days``
        (0: kept forever), in one transaction; how many."""
        now = self.now()
        async with self._maker() as s, s.begin():
            erased = await jobs.erase(s, await jobs.past_retention(s, now, limit=limit), now)
        if erased:
            await checkpoint(self.engine)
        return len(erased)

    # ------------------------------------------------------------------ issue 14: the operator's cockpit

    def watch(self, watcher: Watcher) -> Callable[[], None]:
        """Have ``watcher`` told of every job created or moved from now on; returns how to stop."""
        self._watchers.append(watcher)

        def stop() -> None:
            if watcher in self._watchers:
                self._watchers.remove(watcher)

        return stop

    def _told(self, what: str, job: Job) -> None:
        for watcher in list(self._watchers):
            try:
                watcher(what, job)
            except Exception:
                log.exception("A job watcher failed on %s of job %s", what, job.id)

    # -- the provider account: pause, probe, balance

    async def provider_account(self) -> AccountState:
        async with self._maker() as s, s.begin():
            return await provider_account.read(s)

    async def pause_provider(self, *, status: int, message: str) -> AccountState | None:
        """Pause every submission (a generate or upload answered 401/402); the new state when this call
        started the pause, ``None`` when it was paused already."""
        now = self.now()
        async with self._maker() as s, s.begin():
            return await provider_account.pause(s, status=status, message=message, now=now)

    async def resume_provider(self) -> Resumed | None:
        """End the pause (the provider accepted a generate again) and forget which servers were told of
        it; ``None`` when it was not paused, or another process ended it first."""
        now = self.now()
        async with self._maker() as s, s.begin():
            before = await provider_account.resume(s, now)
            if before is None:
                return None
            return Resumed(account=before, guild_ids=await guilds.told_of_pause(s))

    async def probe_soon(self) -> AccountState:
        """Make the next probe due at once (``/kling-admin resume``); the account's state."""
        now = self.now()
        async with self._maker() as s, s.begin():
            return await provider_account.probe_soon(s, now)

    async def claim_probe_for_submit(
        self, owner: str, *, interval: timedelta, max_in_flight: int, lease: timedelta = DEFAULT_LEASE
    ) -> list[Job]:
        """While paused: lease the next queued job as the probe, if one is due (once per ``interval``
        across every process) and a job is waiting; otherwise nothing, and the slot is not used up."""
        now = self.now()
        try:
            async with self._maker() as s, s.begin():
                if not await provider_account.take_probe(s, now=now, interval=interval):
                    return []
                claimed = await scheduling.claim_fair(
                    s, owner, limit=1, max_in_flight=max_in_flight, lease_until=now + lease, now=now
                )
                if not claimed:
                    raise _NothingToProbe  # roll the slot back: the next job may probe at once
                return claimed
        except _NothingToProbe:
            return []

    async def tell_of_pause(self, since: datetime, guild_ids: Iterable[int] | None = None) -> list[int]:
        """The servers to tell of the pause that started at ``since``, each once (across processes):
        those of ``guild_ids``, or by default every server with jobs waiting."""
        now = self.now()
        async with self._maker() as s, s.begin():
            if guild_ids is None:
                wanted = await jobs.guilds_with(s, WAITING_STATES)
            else:
                wanted = list(guild_ids)
                for guild_id in wanted:
                    await guilds.load(s, guild_id, now)  # a server seen for the first time
            return await guilds.tell_of_pause(s, since, wanted)

    async def note_credits_remaining(self, remaining: int) -> list[tuple[int, int]]:
        """Remember the account's balance; the servers whose alert threshold it just fell below, as
        (guild, threshold), each once per crossing."""
        now = self.now()
        async with self._maker() as s, s.begin():
            await provider_account.note_credits(s, remaining, now)
            return await guilds.credits_crossed(s, remaining)

    # -- bans

    async def get_ban(self, guild_id: int, user_id: int) -> Ban | None:
        async with self._maker() as s, s.begin():
            return await bans.get(s, guild_id, user_id)

    async def list_bans(self, guild_id: int) -> list[Ban]:
        async with self._maker() as s, s.begin():
            return await bans.of_guild(s, guild_id)

    async def ban(
        self, guild_id: int, user_id: int, *, reason: str | None, actor_id: int | None
    ) -> tuple[Ban, list[Job]] | None:
        """Ban the member and cancel their waiting jobs (review or queue), releasing the credits, in one
        transaction; the ban and the cancelled jobs, or ``None`` when they were banned already."""
        now = self.now()
        note = "the member was banned from making videos here"
        async with self._maker() as s, s.begin():
            await guilds.load(s, guild_id, now)
            if not await bans.add(s, guild_id, user_id, reason=reason, by=actor_id, now=now):
                return None
            waiting = await jobs.of_member_for_update(s, guild_id, user_id, CANCELLABLE_STATES)
            cancelled = await _cancel_all(s, waiting, now=now, reason=note, actor_id=actor_id)
            ban = await bans.get(s, guild_id, user_id)
            assert ban is not None
        for job in cancelled:
            self._told("cancel", job)
        return ban, cancelled

    async def unban(self, guild_id: int, user_id: int) -> Ban | None:
        """Lift the ban; the ban that was lifted, or ``None`` when the member was not banned."""
        async with self._maker() as s, s.begin():
            return await bans.remove(s, guild_id, user_id)

    # -- reports

    async def unfinished_jobs_of(self, guild_id: int, *, limit: int = 25) -> list[Job]:
        """One server's jobs that have not ended yet, oldest first (``/kling-admin jobs``)."""
        async with self._maker() as s, s.begin():
            return await jobs.unfinished_of_guild(s, guild_id, limit=limit)

    async def jobs_created_between(self, guild_id: int, start: datetime, end: datetime) -> list[Job]:
        """One server's jobs created in ``[start, end)``, oldest first (``/kling-admin usage``)."""
        async with self._maker() as s, s.begin():
            return await jobs.created_between(s, guild_id, start, end)

    async def state_counts(self, states: Iterable[JobState]) -> dict[JobState, int]:
        """How many jobs of the whole bot are in each of ``states``."""
        async with self._maker() as s, s.begin():
            return await jobs.state_counts(s, states)

    # -- issue 15: scale out ---------------------------------------------------------------------------

    async def mark_video_deleted(self, job_id: int, *, message_id: int) -> bool:
        """The posted video ``message_id`` of a job was deleted from Discord (its Delete button): record
        when, so the job no longer links to it. ``False`` when it was already recorded, or when
        ``message_id`` is not the job's video."""
        now = self.now()
        async with self._maker() as s, s.begin():
            return await jobs.mark_video_deleted(s, job_id, message_id, now)

    @property
    def shared(self) -> bool:
        """Whether several bot processes may share this database (PostgreSQL; SQLite is one process's)."""
        return self.engine.dialect.name == "postgresql"

    async def reserve_provider_slots(self, count: int, interval: float) -> float:
        """Reserve the deployment's next ``count`` provider call slots, ``interval`` s apart; returns
        the seconds until the first (see :mod:`storage.pace`; PostgreSQL only)."""
        if not self.shared:
            raise RuntimeError("the provider's shared schedule needs PostgreSQL")
        return await run_on_connection(self.engine, pace.reserve, (count, interval))

    async def completion_seconds(
        self, guild_id: int, model: str, duration: int, quality: str | None, *, limit: int = 200
    ) -> list[float]:
        """How long the server's newest ``limit`` finished jobs of this model, duration and quality took
        at the provider, in seconds (see :func:`storage.jobs.completion_seconds`)."""
        async with self._maker() as s, s.begin():
            return await jobs.completion_seconds(s, guild_id, model, duration, quality, limit=limit)


#: Jobs that wait for the provider: in review, queued, or being submitted.
WAITING_STATES: frozenset[JobState] = frozenset(ACTIVE_STATES - {JobState.PROCESSING})
#: Jobs a member's ban or erasure cancels: nothing has been asked of the provider for them yet.
CANCELLABLE_STATES: Final = (JobState.PENDING_REVIEW, JobState.QUEUED)


async def _cancel_all(
    session: AsyncSession, waiting: Iterable[Job], *, now: datetime, reason: str, actor_id: int | None
) -> list[Job]:
    """Cancel each job of ``waiting`` (in review or queued), releasing its credits, with ``reason`` as
    its error and its ledger note (a ban, an erasure)."""
    return [
        await transitions.apply(
            session,
            job,
            "cancel",
            owner=None,
            now=now,
            values={"error": reason},
            actor_id=actor_id,
            note=reason,
        )
        for job in waiting
    ]


class _NothingToProbe(Exception):
    """No queued job to probe with: rolls back the probe slot taken in the same transaction."""
