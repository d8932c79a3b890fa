"""The delivery worker's work on the database and the provider; Discord is behind :class:`Events`.

:class:`Worker` is what the delivery cog ticks four times a second. Each tick (see :meth:`Worker.tick`):

1. marks as *lost* and refunds the ``submitting`` jobs a dead process left behind (their lease expired);
2. claims processing jobs whose next poll is due, then due queued jobs (round-robin across members, under
   ``max_in_flight`` generations for the whole deployment), but only as many as the provider's rate
   lets start soon: a job claimed and left waiting would hold a lease, and a submission waiting when the
   process dies would count as lost. Polls go first: those videos are already paid for;
3. claims completed jobs for posting;
4. once a minute, housekeeping: expires the quotes nobody answered (clearing the words they kept) and
   erases a small batch of jobs that ended longer ago than their server's retention.

Every job is worked in its own task under a lease renewed in the background, and every later write is
fenced by that lease, so several processes sharing one PostgreSQL database never work a job twice.
``submitting`` is committed *before* the generate call. What each answer does to the job is decided by
:mod:`generation.outcomes`, what it does to the whole line by :mod:`generation.breaker` (a 401/402
pauses every submission but one probe per interval; the first accepted generate resumes them); the
:class:`Events` (the cog) show it on Discord.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Coroutine
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

from generation import breaker, metering, outcomes
from generation.completion_windows import CompletionWindows
from generation.shapes import spec_of_job
from storage import AccountState, InvalidTransition, Job, JobNotFound, LeaseLost, Resumed, Storage
from telemetry.metrics import Metrics
from ulazai.client import UlazAIClient
from ulazai.errors import ProviderError, UlazAIError
from ulazai.requests import KlingModel, build_request
from ulazai.results import EstimatedTime, TaskResult

log = logging.getLogger(__name__)

#: How often the worker looks for due work: a due poll or post waits half of this on average.
TICK_SECONDS: Final = 0.25
#: How often it looks for submissions a dead process left behind (their leases last far longer).
RECOVER_SECONDS: Final = 5.0
#: How long an unexpected error makes a job wait before it is tried again.
RETRY_AFTER_ERROR: Final = timedelta(seconds=30)
#: Recording a started task is retried this many times: losing that write would refund a paid video.
RECORD_ATTEMPTS: Final = 5
#: Completed jobs claimed for posting per tick.
DELIVERIES_PER_TICK: Final = 5
#: How often the housekeeping runs (step 4 of the module docstring).
HOUSEKEEPING_SECONDS = 60.0
#: Jobs erased per housekeeping pass for retention: small, so a pass never holds up the tick.
RETENTION_BATCH: Final = 100


class Events(Protocol):
    """What the worker needs shown on Discord (implemented by the delivery cog)."""

    async def show(self, job: Job, *, force: bool = False) -> None:
        """The job's card should show its new state (``force``: now, not at the next edit slot)."""

    async def ended(self, job: Job, *, refunded: int, detail: str | None) -> None:
        """The job failed or was lost and ``refunded`` credits went back: tell the member and the audit log."""

    async def deliver(self, job: Job) -> None:
        """The job is completed and leased to this worker: post its video now."""

    async def paused(self, account: AccountState) -> None:
        """This process just paused every submission (``account`` says why): tell the servers with jobs
        waiting, and show it on their cards."""

    async def resumed(self, resumed: Resumed) -> None:
        """This process just ended the pause: tell the servers that were told of it, redraw the cards."""

    async def low_credits(self, crossings: list[tuple[int, int]], remaining: int) -> None:
        """The account's balance fell below these servers' alert thresholds, as (guild, threshold)."""


class Worker:
    """Claims, submits, follows and hands over jobs for posting; see the module docstring."""

    def __init__(
        self,
        storage: Storage,
        provider: UlazAIClient,
        events: Events,
        *,
        owner: str,
        lease: timedelta,
        max_in_flight: int,
        processing_timeout: timedelta,
        provider_max_rps: float,
        probe_interval: timedelta = timedelta(seconds=breaker.DEFAULT_PROBE_SECONDS),
        metrics: Metrics | None = None,
    ) -> None:
        self.storage = storage
        self.provider = provider
        self.events = events
        self.owner = owner
        self.lease = lease
        self.max_in_flight = max_in_flight
        self.processing_timeout = processing_timeout
        self.probe_interval = probe_interval
        self.metrics = metrics
        #: The provider account as last read (each tick): whether the line is paused.
        self.account = AccountState()
        #: Provider calls the rate limit allows per tick: the most worth claiming at once.
        self.calls_per_tick = max(1, math.ceil(provider_max_rps * TICK_SECONDS))
        #: When similar jobs finished: where to place status calls (:mod:`generation.completion_windows`).
        self.windows = CompletionWindows(storage)
        self.working: dict[int, asyncio.Task[None]] = {}
        #: Jobs being submitted or polled right now (each is, or waits for, a provider call).
        self.calling: set[int] = set()
        self._recovered = 0.0
        self._housekept = 0.0
        #: The newest balance a provider answer reported that is not written yet (:meth:`note_balance`).
        self._balance_to_note: int | None = None
        self._noting_balance = False

    # -- the tick ------------------------------------------------------------------------------------

    async def tick(self) -> None:
        storage = self.storage
        if time.monotonic() - self._recovered >= RECOVER_SECONDS:
            self._recovered = time.monotonic()
            for job in await storage.recover_lost_submissions():
                self.spawn(job, self.after_lost(job))
        self.account = await storage.provider_account()
        if self.metrics is not None:
            self.metrics.paused(self.account.paused)
        free = max(0, self.calls_per_tick * 2 - len(self.calling))
        if free:
            for job in await storage.claim_for_poll(self.owner, limit=free, lease=self.lease):
                self.spawn(job, self.poll(job), calls_provider=True)
                free -= 1
        if free:
            for job in await self.claim_submissions(free):
                self.spawn(job, self.submit(job), calls_provider=True)
        for job in await storage.claim_for_delivery(self.owner, limit=DELIVERIES_PER_TICK, lease=self.lease):
            self.spawn(job, self.events.deliver(job))
        if time.monotonic() - self._housekept >= HOUSEKEEPING_SECONDS:
            self._housekept = time.monotonic()
            await storage.sweep_quotes()
            await storage.erase_expired_jobs(limit=RETENTION_BATCH)

    async def claim_submissions(self, free: int) -> list[Job]:
        """Queued jobs to submit now: as many as there is room for, or while paused one probe when due."""
        if breaker.may_submit(self.account):
            return await self.storage.claim_fair_for_submit(
                self.owner, limit=free, max_in_flight=self.max_in_flight, lease=self.lease
            )
        if not breaker.probe_due(self.account, self.storage.now(), self.probe_interval):
            return []
        probes = await self.storage.claim_probe_for_submit(
            self.owner, interval=self.probe_interval, max_in_flight=self.max_in_flight, lease=self.lease
        )
        for job in probes:
            log.info("UlazAI submissions are paused; job %s goes as the probe", job.id)
        return probes

    def spawn(self, job: Job, work: Coroutine[Any, Any, None], *, calls_provider: bool = False) -> None:
        """Work one job in its own task; its failure is logged and retried later, never fatal."""
        assert job.id is not None
        job_id = job.id
        if calls_provider:
            self.calling.add(job_id)

        async def guarded() -> None:
            try:
                async with self.holding(job_id):
                    await work
            except (LeaseLost, InvalidTransition, JobNotFound) as error:
                log.info("Job %s moved on without us: %s", job_id, error)
            except Exception:
                log.exception("Unexpected error working job %s; retrying it later", job_id)
                with contextlib.suppress(Exception):
                    await self.storage.release_lease(
                        job_id, owner=self.owner, next_attempt_at=self.storage.now() + RETRY_AFTER_ERROR
                    )

        task = asyncio.create_task(guarded(), name=f"job-{job_id}")
        self.working[job_id] = task

        def finished(_: asyncio.Task[None]) -> None:
            self.working.pop(job_id, None)
            self.calling.discard(job_id)

        task.add_done_callback(finished)

    async def stop(self) -> None:
        """Cancel every job being worked (their leases expire and another pass takes them up)."""
        for task in list(self.working.values()):
            task.cancel()
        await asyncio.gather(*self.working.values(), return_exceptions=True)

    @contextlib.asynccontextmanager
    async def holding(self, job_id: int) -> AsyncIterator[None]:
        """Renew the job's lease in the background while it is worked (a slow upload outlives it)."""

        async def renew() -> None:
            while True:
                await asyncio.sleep(self.lease.total_seconds() / 3)
                try:
                    await self.storage.renew_lease(job_id, owner=self.owner, lease=self.lease)
                except (LeaseLost, JobNotFound):
                    return  # released or taken over: the fenced writes will tell the worker

        renewer = asyncio.create_task(renew(), name=f"lease-{job_id}")
        try:
            yield
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer  # ended before the job's task is, so nothing outlives the worker

    # -- launching -----------------------------------------------------------------------------------

    async def submit(self, job: Job) -> None:
        storage = self.storage
        job_id = job.id
        assert job_id is not None
        window = await self.windows.for_job(
            job
        )  # before the call: nothing may fail between it and the record
        job = await storage.mark_submitting(job_id, owner=self.owner)  # committed before the call
        await self.events.show(job)
        spec = spec_of_job(job)
        answer: Any
        try:
            answer = await self.provider.generate(build_request(spec))
        except UlazAIError as error:
            answer = error
        outcome = outcomes.after_generate(answer, spec=spec, attempts=job.attempts, window=window)
        verdict = breaker.after_generate(outcome, self.account)
        if isinstance(outcome, outcomes.Started):
            next_poll = storage.now() + timedelta(seconds=outcome.first_poll)
            job = await self.record_started(
                job_id, outcome.task_id, outcome.credits, outcome.estimate, next_poll
            )
            await self.events.show(job, force=True)
            if verdict.resume:
                await self.resume()
            await self.note_balance(answer)
        elif isinstance(outcome, outcomes.Pause):
            await self.pause_for(job_id, outcome)
        elif isinstance(outcome, outcomes.Requeue):
            log.warning("UlazAI is rate limiting; job %s waits %.0f s", job_id, outcome.delay)
            await storage.requeue_with_backoff(
                job_id,
                owner=self.owner,
                retry_at=storage.now() + timedelta(seconds=outcome.delay),
                error="rate limited",
            )
        elif isinstance(outcome, outcomes.Lose):
            log.error("Job %s lost: the generate call ended with %r", job_id, answer)
            job = await storage.mark_lost(job_id, owner=self.owner, reason=outcome.reason)
            await self.end(job, outcome.detail)
        else:
            if outcome.detail is not None:
                log.error("Job %s refused by UlazAI: %r", job_id, answer)
            job = await storage.fail(job_id, owner=self.owner, reason=outcome.reason)
            await self.end(job, outcome.detail)

    async def pause_for(self, job_id: int, pause: outcomes.Pause) -> None:
        """The account cannot make videos: pause the line first (so no other claim slips through), then
        put the job back in the queue, its credits still held (the provider charged nothing)."""
        log.warning(
            "UlazAI answered %s to a generate; pausing every submission: %s", pause.status, pause.message
        )
        started = await self.pause(pause)
        storage = self.storage
        job = await storage.requeue_with_backoff(
            job_id, owner=self.owner, retry_at=storage.now(), error=f"paused: UlazAI answered {pause.status}"
        )
        await self.events.show(job, force=True)
        if started is not None:
            await self.events.paused(started)

    async def pause(self, pause: outcomes.Pause) -> AccountState | None:
        """Pause the whole bot's submissions; the new state when this call started the pause."""
        started = await self.storage.pause_provider(status=pause.status, message=pause.message)
        self.account = started or await self.storage.provider_account()
        if self.metrics is not None:
            self.metrics.paused(True)
        return started

    async def resume(self) -> None:
        """A generate was accepted while paused: the line resumes for everyone (whoever ends it tells)."""
        resumed = await self.storage.resume_provider()
        self.account = AccountState()
        if self.metrics is not None:
            self.metrics.paused(False)
        if resumed is not None:
            log.warning("UlazAI accepted a generate again; submissions resume")
            await self.events.resumed(resumed)

    async def note_balance(self, answer: object) -> None:
        """Remember the account's balance when the answer carries it (Kling 2.6's do); a fall below a
        server's alert threshold is one line there.

        One write at a time per process: a balance that arrives while one is being written waits
        and only the newest waiting one is written next (the older ones say nothing the newest does
        not), so a burst of submissions costs a few writes to the account's one row, not one each.
        """
        if not isinstance(answer, TaskResult) or answer.credits_remaining is None:
            return
        self._balance_to_note = answer.credits_remaining
        if self._noting_balance:
            return  # the write under way takes it up when it is done
        self._noting_balance = True
        try:
            while self._balance_to_note is not None:
                remaining, self._balance_to_note = self._balance_to_note, None
                crossings = await self.storage.note_credits_remaining(remaining)
                if crossings:
                    await self.events.low_credits(crossings, remaining)
        finally:
            self._noting_balance = False

    async def record_started(
        self, job_id: int, task_id: str, credits: int, estimate: EstimatedTime, next_poll: datetime
    ) -> Job:
        """Commit ``processing`` after the provider accepted, and let go of the job until its first
        poll at ``next_poll``: retried, because losing this write after a successful (and charged)
        generate would refund a video that is being made."""
        for attempt in range(1, RECORD_ATTEMPTS + 1):
            try:
                return await self.storage.mark_processing(
                    job_id,
                    owner=self.owner,
                    task_id=task_id,
                    credits_used=credits,
                    eta_low_seconds=estimate.low,
                    eta_high_seconds=estimate.high,
                    next_poll_at=next_poll,
                    release=True,
                )
            except (LeaseLost, InvalidTransition, JobNotFound):
                raise
            except Exception:
                if attempt == RECORD_ATTEMPTS:
                    log.critical("Job %s: UlazAI task %s started but could not be recorded", job_id, task_id)
                    raise
                log.warning(
                    "Job %s: recording UlazAI task %s failed; retrying", job_id, task_id, exc_info=True
                )
                await asyncio.sleep(0.5 * 2**attempt)
        raise AssertionError("unreachable")

    # -- following -----------------------------------------------------------------------------------

    async def poll(self, job: Job) -> None:
        storage = self.storage
        job_id, task_id = job.id, job.provider_task_id
        assert job_id is not None
        assert task_id is not None
        window = await self.windows.for_job(job)
        now = storage.now()
        answer: Any
        try:
            answer = await self.provider.status(KlingModel(job.model), task_id)
        except ProviderError as error:
            log.warning("Status of job %s unavailable: %r", job_id, error)
            answer = error
        outcome = outcomes.after_status(
            answer,
            submitted_at=job.submitted_at,
            now=now,
            estimate=outcomes.estimate_of(job),
            timeout=self.processing_timeout,
            window=window,
        )
        await self.note_balance(answer)
        if isinstance(outcome, outcomes.Complete):
            job = await storage.mark_completed(
                job_id, owner=self.owner, video_url=outcome.video_url, credits_charged=outcome.credits_charged
            )
            await self.events.deliver(job)  # still under our lease: post at once
        elif isinstance(outcome, outcomes.Fail):
            await self.end(await storage.fail(job_id, owner=self.owner, reason=outcome.reason))
        else:
            job = await storage.release_lease(
                job_id,
                owner=self.owner,
                next_attempt_at=now + timedelta(seconds=outcome.delay),
                progress=outcome.progress,
                polled_at=None if isinstance(answer, ProviderError) else now,
            )
            if not isinstance(answer, ProviderError):
                await self.events.show(job)

    # -- endings -------------------------------------------------------------------------------------

    async def end(self, job: Job, detail: str | None = None) -> None:
        """A job failed or was lost (storage has given its credits back): have it shown and told."""
        await self.events.ended(job, refunded=outcomes.refunded_credits(job), detail=detail)

    async def after_lost(self, job: Job) -> None:
        """A generate call a dead process left in flight: refunded by storage; tell everyone."""
        await self.end(job, "Check the UlazAI dashboard for a task started at that time.")

    async def finish_delivery(self, job: Job, posted: outcomes.Posted | None, problem: str) -> Job:
        """Record where the video went, at once (exactly-once posting relies on it), or fail the job
        when it could not be posted anywhere (``problem`` says why; nothing is refunded: the provider
        charged for the video, and its URL stays on the job)."""
        assert job.id is not None
        if posted is None:
            return await self.storage.fail(job.id, owner=self.owner, reason=f"could not be posted: {problem}")
        delivered = await self.storage.mark_delivered(
            job.id, owner=self.owner, message_id=posted.message_id, via=posted.via, notes=posted.notes
        )
        if self.metrics is not None:
            metering.posted(self.metrics, delivered)
        return delivered
