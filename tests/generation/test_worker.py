"""The worker's decisions applied to a real database: whatever the provider and Discord answer, every
job ends in the state its outcome names, and the ledger balances.

The provider is a stub that answers what hypothesis draws (no network); Discord is a recording
:class:`~generation.worker.Events`. Storage is real (SQLite, migrated by the real migrations).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from generation import breaker, outcomes, shapes
from generation.worker import Worker
from storage import AccountState, DeliveredVia, Job, JobState, Resumed, Storage
from tests.storage.helpers import FakeClock, check_ledger, migrate_in_thread, next_interaction
from ulazai.client import UlazAIClient
from ulazai.errors import (
    AuthenticationError,
    BadRequestError,
    InsufficientCreditsError,
    ProviderTimeoutError,
    RateLimitedError,
    UlazAIError,
    UpstreamError,
)
from ulazai.requests import GenerationMode, KlingModel, ProviderRequest
from ulazai.results import EstimatedTime, TaskResult, TaskStatus

OWNER = "test-worker"
SPEC = shapes.spec_of_options(
    shapes.VideoOptions(prompt="a fox in the snow", mode=GenerationMode.TEXT_TO_VIDEO, model="kling-3.0"),
    {},
    default_model="kling-3.0",
    directory_optin=False,
)


class Provider:
    """Answers generate and status with what the test says, counting the calls."""

    def __init__(self, generate: TaskResult | UlazAIError, status: TaskResult | UlazAIError) -> None:
        self.answers = {"generate": generate, "status": status}
        self.calls: list[str] = []

    async def _answer(self, name: str) -> TaskResult:
        self.calls.append(name)
        answer = self.answers[name]
        if isinstance(answer, UlazAIError):
            raise answer
        return answer

    async def generate(self, request: ProviderRequest) -> TaskResult:
        return await self._answer("generate")

    async def status(self, model: KlingModel, task_id: str) -> TaskResult:
        return await self._answer("status")


class Events:
    """Records what would be shown on Discord, and posts a completed job (or fails to)."""

    def __init__(self, posting: str) -> None:
        self.posting = posting
        self.worker: Worker | None = None
        self.endings: list[tuple[int, int]] = []
        self.shown = 0
        self.pauses: list[AccountState] = []
        self.resumes: list[Resumed] = []
        self.alerts: list[tuple[list[tuple[int, int]], int]] = []

    async def show(self, job: Job, *, force: bool = False) -> None:
        self.shown += 1

    async def ended(self, job: Job, *, refunded: int, detail: str | None) -> None:
        assert job.id is not None
        self.endings.append((job.id, refunded))

    async def deliver(self, job: Job) -> None:
        assert self.worker is not None
        posted = (
            None if self.posting == "nowhere" else outcomes.Posted(9_000, DeliveredVia(self.posting), "notes")
        )
        await self.worker.finish_delivery(job, posted, "the channel refused it")

    async def paused(self, account: AccountState) -> None:
        self.pauses.append(account)

    async def resumed(self, resumed: Resumed) -> None:
        self.resumes.append(resumed)

    async def low_credits(self, crossings: list[tuple[int, int]], remaining: int) -> None:
        self.alerts.append((crossings, remaining))


def accepted(credits: int | None) -> TaskResult:
    return TaskResult(
        model=KlingModel.V3_0,
        task_id="task-1",
        status=TaskStatus.PENDING,
        credits_used=credits,
        estimated_time=EstimatedTime(60, 120),
    )


GENERATE = st.one_of(
    st.builds(accepted, st.none() | st.integers(0, 400)),
    st.builds(RateLimitedError, st.just("slow"), retry_after=st.none() | st.floats(0, 60)),
    st.sampled_from(
        [
            BadRequestError("no", status=400),
            AuthenticationError("key", status=401),
            InsufficientCreditsError("empty", status=402),
            ProviderTimeoutError("timed out"),
            UpstreamError("down", status=503),
        ]
    ),
)
STATUS = st.one_of(
    st.builds(
        TaskResult,
        model=st.just(KlingModel.V3_0),
        task_id=st.just("task-1"),
        status=st.sampled_from(list(TaskStatus)),
        video_url=st.just("https://cdn.example/v.mp4"),
        credits_charged=st.none() | st.integers(0, 400),
        progress=st.none() | st.integers(0, 99),
        error=st.none() | st.just("policy"),
    ),
    st.just(UpstreamError("down", status=503)),
)


def make_worker(
    storage: Storage,
    provider: Provider,
    events: Events,
    *,
    processing_timeout: timedelta = timedelta(minutes=30),
    probe_interval: timedelta = timedelta(seconds=breaker.DEFAULT_PROBE_SECONDS),
) -> Worker:
    """The worker every test here runs (``events`` learns it, to hand completed jobs back)."""
    worker = Worker(
        storage,
        cast(UlazAIClient, provider),
        events,
        owner=OWNER,
        lease=timedelta(seconds=30),
        max_in_flight=10,
        processing_timeout=processing_timeout,
        provider_max_rps=5,
        probe_interval=probe_interval,
    )
    events.worker = worker
    return worker


def on_a_copy(template: Path, run: Callable[[str], Coroutine[Any, Any, None]]) -> None:
    """``run`` a scenario on a fresh copy of the migrated database (hypothesis calls a test many times
    with one fixture, so each example copies for itself)."""
    folder = Path(tempfile.mkdtemp())
    try:
        shutil.copy(template, folder / "bot.db")
        asyncio.run(run(f"sqlite+aiosqlite:///{folder}/bot.db"))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def template() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp())
    migrate_in_thread(f"sqlite+aiosqlite:///{folder}/template.db")
    yield folder / "template.db"
    shutil.rmtree(folder, ignore_errors=True)


async def scenario(
    url: str, generate: TaskResult | UlazAIError, status: TaskResult | UlazAIError, posting: str, late: bool
) -> None:
    clock = FakeClock()
    async with Storage(url, clock=clock) as storage:
        await storage.update_guild_settings(1, allowance_credits=1_000)
        job = await storage.create_job(
            interaction_id=next_interaction(),
            guild_id=1,
            user_id=10,
            channel_id=555,
            request=shapes.job_request(SPEC),
            estimate=shapes.reservation_for(SPEC),
        )
        assert job.id is not None
        provider = Provider(generate, status)
        events = Events(posting)
        # "late": the status answer arrives after the processing timeout.
        worker = make_worker(
            storage, provider, events, processing_timeout=timedelta(seconds=-1 if late else 1_800)
        )
        (claimed,) = await storage.claim_fair_for_submit(OWNER, limit=1, max_in_flight=10)
        await worker.submit(claimed)
        submitted = await storage.get_job(job.id)
        assert submitted is not None
        decision = outcomes.after_generate(generate, spec=SPEC, attempts=1)
        expected = {
            outcomes.Started: JobState.PROCESSING,
            outcomes.Requeue: JobState.QUEUED,
            outcomes.Fail: JobState.FAILED,
            outcomes.Lose: JobState.LOST,
            outcomes.Pause: JobState.QUEUED,  # back in line, credits held: the account is at fault
        }[type(decision)]
        assert submitted.state is expected
        await check_ledger(storage)
        if submitted.state is JobState.PROCESSING:
            clock.advance(seconds=90)  # the first poll is due
            (due,) = await storage.claim_for_poll(OWNER, limit=1)
            await worker.poll(due)
            polled = await storage.get_job(job.id)
            assert polled is not None
            after = outcomes.after_status(
                status,  # type: ignore[arg-type]
                submitted_at=submitted.submitted_at,
                now=storage.now(),
                estimate=outcomes.estimate_of(submitted),
                timeout=worker.processing_timeout,
            )
            if isinstance(after, outcomes.Complete):
                assert polled.state is (JobState.FAILED if posting == "nowhere" else JobState.DELIVERED)
                if posting != "nowhere":
                    assert polled.delivered_via is DeliveredVia(posting)
            elif isinstance(after, outcomes.Fail):
                assert polled.state is JobState.FAILED
            else:
                assert polled.state is JobState.PROCESSING
            await check_ledger(storage)
        final = await storage.get_job(job.id)
        assert final is not None
        assert len(events.pauses) == int(isinstance(decision, outcomes.Pause))
        if final.state in (JobState.FAILED, JobState.LOST) and final.completed_at is None:
            assert events.endings == [(job.id, outcomes.refunded_credits(final))]
            balance = await storage.balance(1, 10)
            assert balance.available == 1_000  # everything came back
        else:
            assert events.endings == []


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    generate=GENERATE,
    status=STATUS,
    posting=st.sampled_from(["attachment", "link", "direct_message", "nowhere"]),
    late=st.booleans(),
)
def test_every_outcome_ends_where_it_says_and_the_ledger_balances(
    template: Path,
    generate: TaskResult | UlazAIError,
    status: TaskResult | UlazAIError,
    posting: str,
    late: bool,
) -> None:
    on_a_copy(template, lambda url: scenario(url, generate, status, posting, late))


def test_a_paused_line_sends_one_probe_per_interval_and_resumes_on_the_first_accepted(
    template: Path,
) -> None:
    on_a_copy(template, paused_line)


async def paused_line(url: str) -> None:
    clock = FakeClock()
    async with Storage(url, clock=clock) as storage:
        await storage.update_guild_settings(1, allowance_credits=1_000, max_active_jobs=5, credits_alert=500)
        ids = []
        for user_id in (10, 11, 12):
            job = await storage.create_job(
                interaction_id=next_interaction(),
                guild_id=1,
                user_id=user_id,
                channel_id=555,
                request=shapes.job_request(SPEC),
                estimate=shapes.reservation_for(SPEC),
            )
            ids.append(job.id)
        provider = Provider(InsufficientCreditsError("insufficient credits", status=402), accepted(100))
        events = Events("attachment")
        worker = make_worker(storage, provider, events, probe_interval=timedelta(seconds=60))

        async def tick() -> None:
            await worker.tick()
            await asyncio.gather(*worker.working.values())

        async def states() -> list[JobState]:
            return [(await storage.get_job(i)).state for i in ids]  # type: ignore[union-attr, arg-type]

        await tick()  # all three go at once, before anyone knows: each meets the 402
        assert provider.calls.count("generate") == 3
        assert len(events.pauses) == 1  # one pause, told once
        assert events.pauses[0].status == 402
        assert await states() == [JobState.QUEUED] * 3
        assert events.endings == []
        for _ in range(3):
            await tick()
        clock.advance(seconds=59)
        await tick()
        assert provider.calls.count("generate") == 3  # no probe before the interval
        clock.advance(seconds=1)
        await tick()
        await tick()
        assert provider.calls.count("generate") == 4  # one probe, still refused
        assert len(events.pauses) == 1
        provider.answers["generate"] = replace(accepted(100), credits_remaining=420)
        clock.advance(seconds=60)
        await tick()  # the probe is accepted: the line resumes for everyone
        assert provider.calls.count("generate") == 5
        assert len(events.resumes) == 1
        assert events.alerts == [([(1, 500)], 420)]
        await tick()
        assert provider.calls.count("generate") == 7
        assert await states() == [JobState.PROCESSING] * 3
        assert not (await storage.provider_account()).paused
        await check_ledger(storage)


def test_balances_reported_during_a_write_are_written_once_the_newest(template: Path) -> None:
    on_a_copy(template, coalesced_balances)


async def coalesced_balances(url: str) -> None:
    """Five answers with balances while the first is being written: two writes, the first and the
    newest, and the crossing the newest makes is told once."""
    async with Storage(url, clock=FakeClock()) as storage:
        await storage.update_guild_settings(1, credits_alert=500)
        written: list[int] = []
        held = asyncio.Event()
        note = storage.note_credits_remaining

        async def slow_note(remaining: int) -> list[tuple[int, int]]:
            written.append(remaining)
            if len(written) == 1:
                await held.wait()
            return await note(remaining)

        storage.note_credits_remaining = slow_note  # type: ignore[method-assign]
        events = Events("attachment")
        worker = make_worker(storage, Provider(accepted(100), accepted(100)), events)
        answers = [replace(accepted(100), credits_remaining=n) for n in (900, 800, 700, 450, 420)]
        first = asyncio.create_task(worker.note_balance(answers[0]))
        await asyncio.sleep(0)
        assert written == [900]
        for answer in answers[1:]:
            await worker.note_balance(answer)  # returns at once: the write under way takes it up
        assert written == [900]
        held.set()
        await first
        assert written == [900, 420]
        assert events.alerts == [([(1, 500)], 420)]
        assert (await storage.provider_account()).credits_remaining == 420
        await worker.note_balance(replace(accepted(100), credits_remaining=400))
        assert written == [900, 420, 400]  # nothing under way: written at once
