"""The ledger invariant under every operation sequence hypothesis can think of.

A rule-based state machine drives one server with three members through grants (also negative),
job creations, reviews, submissions, settlements below and above the reservation, 429 back-offs,
completions, deliveries, failures, losses, cancellations, role changes, allowance changes, budget
changes and clock jumps across period boundaries. After every step: each account column equals its
ledger sum, nothing is negative, every job's ledger net equals what it holds and spent (so nothing
moved twice), and the transition table is obeyed exactly (a move is refused iff it is not listed).

Each engine runs the machine in its own event loop; every hypothesis example uses a new guild, so
examples never see each other's rows and no cleanup is needed between them.
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
from collections.abc import Awaitable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from storage import (
    BudgetExceeded,
    DeliveredVia,
    InsufficientCredits,
    InvalidTransition,
    JobState,
    Storage,
    TooManyActiveJobs,
)
from storage.states import TRANSITIONS
from tests.storage.conftest import ENGINES
from tests.storage.helpers import REQUEST, FakeClock, check_ledger, claim, next_interaction

T = TypeVar("T")
MEMBERS = (10, 11, 12)
ROLES = {501: 600, 502: 50}
OWNER = "machine"
FORWARD = {
    JobState.PENDING_REVIEW: JobState.QUEUED,
    JobState.QUEUED: JobState.SUBMITTING,
    JobState.SUBMITTING: JobState.PROCESSING,
    JobState.PROCESSING: JobState.COMPLETED,
    JobState.COMPLETED: JobState.DELIVERED,
}
_guilds = itertools.count(1_000)

MACHINE_SETTINGS = settings(
    max_examples=40,
    stateful_step_count=30,
    deadline=None,
    derandomize=True,
    # No shrinking: each step is a few database round trips, so shrinking a failure would take
    # minutes. The failing sequence is printed as it was found.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


class LedgerMachine(RuleBasedStateMachine):
    runner: asyncio.Runner
    storage: Storage
    clock: FakeClock

    def __init__(self) -> None:
        super().__init__()
        self.guild = next(_guilds)
        self.roles: dict[int, tuple[int, ...]] = {member: () for member in MEMBERS}
        self.states: dict[int, JobState] = {}

    def run(self, awaitable: Awaitable[T]) -> T:
        return self.runner.run(awaitable)  # type: ignore[arg-type]

    def expect(self, job_id: int, target: JobState, call: Awaitable[Any]) -> None:
        """Run a transition and check it was accepted exactly when the table allows it."""
        allowed = target in TRANSITIONS[self.states[job_id]]
        try:
            self.run(call)
        except InvalidTransition:
            assert not allowed, f"{self.states[job_id]} -> {target} refused"
        else:
            assert allowed, f"{self.states[job_id]} -> {target} accepted"
            self.states[job_id] = target

    def lease_all(self) -> None:
        self.run(
            claim(self.storage, OWNER, [JobState.QUEUED, JobState.PROCESSING, JobState.COMPLETED], limit=1000)
        )

    @initialize(
        estimates=st.lists(st.integers(0, 200), min_size=3, max_size=6), reviews=st.lists(st.booleans())
    )
    def setup(self, estimates: list[int], reviews: list[bool]) -> None:
        """A server with some jobs in flight already, so most steps have something to move."""
        self.run(self.storage.update_guild_settings(self.guild, role_allowances=ROLES, max_active_jobs=3))
        for i, estimate in enumerate(estimates):
            self.create(MEMBERS[i % len(MEMBERS)], estimate, review=bool(reviews[i : i + 1] and reviews[i]))

    @rule(member=st.sampled_from(MEMBERS), amount=st.integers(-300, 500))
    def grant(self, member: int, amount: int) -> None:
        result = self.run(
            self.storage.grant(self.guild, member, amount, actor_id=1, role_ids=self.roles[member])
        )
        assert result.balance.bonus >= 0

    @rule(member=st.sampled_from(MEMBERS), roles=st.sets(st.sampled_from(sorted(ROLES))))
    def change_roles(self, member: int, roles: set[int]) -> None:
        self.roles[member] = tuple(sorted(roles))
        self.run(self.storage.balance(self.guild, member, role_ids=self.roles[member]))

    @rule(
        credits=st.integers(0, 500),
        period=st.sampled_from(["daily", "weekly", "monthly"]),
        budget=st.none() | st.integers(0, 2000),
    )
    def change_settings(self, credits: int, period: str, budget: int | None) -> None:
        self.run(
            self.storage.update_guild_settings(
                self.guild, allowance_credits=credits, allowance_period=period, budget_credits=budget
            )
        )

    @rule(hours=st.sampled_from([1, 5, 23, 24 * 3, 24 * 8, 24 * 33]))
    def advance_clock(self, hours: int) -> None:
        self.clock.advance(timedelta(hours=hours))

    @rule(member=st.sampled_from(MEMBERS), estimate=st.integers(0, 400), review=st.booleans())
    def create(self, member: int, estimate: int, review: bool) -> None:
        try:
            job = self.run(
                self.storage.create_job(
                    interaction_id=next_interaction(), guild_id=self.guild, user_id=member, channel_id=1,
                    request=REQUEST, estimate=estimate, role_ids=self.roles[member], review=review,
                )
            )  # fmt: skip
        except (InsufficientCredits, TooManyActiveJobs, BudgetExceeded):
            return
        assert job.id is not None
        self.states[job.id] = job.state

    def call(self, job: int, target: JobState, used: int) -> Awaitable[Any]:
        """The storage call that moves a job to ``target`` (the one the bot would make)."""
        storage = self.storage
        if target is JobState.QUEUED:
            if self.states[job] is JobState.PENDING_REVIEW:
                return storage.approve(job, moderator_id=2)
            return storage.requeue_with_backoff(
                job, owner=OWNER, retry_at=self.clock.current + timedelta(seconds=5)
            )
        calls: dict[JobState, Awaitable[Any]] = {
            JobState.REJECTED: storage.reject(job, moderator_id=2),
            JobState.CANCELLED: storage.cancel(job, actor_id=3),
            JobState.SUBMITTING: storage.mark_submitting(job, owner=OWNER),
            JobState.PROCESSING: storage.mark_processing(
                job, owner=OWNER, task_id=f"t{job}", credits_used=used
            ),
            JobState.COMPLETED: storage.mark_completed(job, owner=OWNER, video_url="https://v/x.mp4"),
            JobState.DELIVERED: storage.mark_delivered(job, owner=OWNER, message_id=9, via=DeliveredVia.LINK),
            JobState.FAILED: storage.fail(job, owner=None, reason="boom"),
            JobState.LOST: storage.mark_lost(job, owner=None, reason="timeout"),
        }
        chosen = calls.pop(target)
        for unused in calls.values():  # close the coroutines we did not run
            unused.close()  # type: ignore[attr-defined]
        return chosen

    def move(self, job: int, target: JobState, used: int) -> None:
        if target in {JobState.SUBMITTING, JobState.DELIVERED}:
            self.clock.advance(seconds=6)  # past any 429 back-off, so the job can be leased
            self.lease_all()
        self.expect(job, target, self.call(job, target, used))

    def choose(self, job: int, pick: int) -> JobState | None:
        """Mostly the happy path forward (so runs get deep), sometimes another allowed edge."""
        allowed = sorted(TRANSITIONS[self.states[job]])
        if not allowed:
            return None
        forward = FORWARD.get(self.states[job])
        if forward is not None and pick < 3:
            return forward
        return allowed[pick % len(allowed)]

    def pick_job(self, index: int) -> int:
        return sorted(self.states)[index % len(self.states)]

    @precondition(lambda self: self.states)
    @rule(index=st.integers(0, 100), pick=st.integers(0, 5), used=st.integers(0, 700))
    def step(self, index: int, pick: int, used: int) -> None:
        """Move one job along an allowed edge."""
        job = self.pick_job(index)
        target = self.choose(job, pick)
        if target is not None:
            self.move(job, target, used)

    @precondition(lambda self: self.states)
    @rule(picks=st.lists(st.integers(0, 5), min_size=1, max_size=8), used=st.integers(0, 700))
    def step_all(self, picks: list[int], used: int) -> None:
        """Move every unfinished job along an allowed edge: reaches the deep states quickly."""
        for i, job in enumerate(sorted(self.states)):
            target = self.choose(job, picks[i % len(picks)])
            if target is not None:
                self.move(job, target, (used + 97 * i) % 701)

    @precondition(lambda self: self.states)
    @rule(index=st.integers(0, 100), goal=st.sampled_from(sorted(JobState)), used=st.integers(0, 700))
    def attempt(self, index: int, goal: JobState, used: int) -> None:
        """Try any move at all: refused exactly when the table does not list it."""
        if goal is not JobState.PENDING_REVIEW:
            self.move(self.pick_job(index), goal, used)

    @invariant()
    def ledger_matches_accounts(self) -> None:
        self.run(check_ledger(self.storage, self.guild))


@pytest.mark.parametrize("engine_name", ENGINES)
def test_ledger_invariant(engine_name: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    if engine_name == "sqlite":
        path = tmp_path / "machine.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        url = f"sqlite+aiosqlite:///{path}"
    else:
        url = request.getfixturevalue("postgres_migrated")
    clock = FakeClock()
    with asyncio.Runner() as runner:
        storage = Storage(url, clock=clock)
        machine = type("Machine", (LedgerMachine,), {"runner": runner, "storage": storage, "clock": clock})
        try:
            run_state_machine_as_test(machine, settings=MACHINE_SETTINGS)
        finally:
            runner.run(storage.close())
