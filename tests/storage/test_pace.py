"""The provider's schedule shared through PostgreSQL: slots ``interval`` apart whoever reserves them,
and the pace built on it keeps two "processes" (two paces on one database) within one budget."""

from __future__ import annotations

import asyncio
import math
import time

import pytest

from generation.provider_pace import ERROR, ROUND_TRIP_ALLOWANCE, SharedPace, spacing_for
from storage import Storage
from tests.processes import most_in_a_second


async def test_reservations_follow_one_schedule(storage: Storage, engine_name: str) -> None:
    if engine_name == "sqlite":
        assert not storage.shared
        with pytest.raises(RuntimeError, match="PostgreSQL"):
            await storage.reserve_provider_slots(1, 0.1)
        return
    assert storage.shared
    first = await storage.reserve_provider_slots(5, 0.1)  # the schedule is free: now
    second = await storage.reserve_provider_slots(2, 0.1)  # after the first five
    third = await storage.reserve_provider_slots(1, 0.1)
    assert first <= 0.01
    assert 0.4 < second <= 0.5
    assert 0.5 < third <= 0.7


@pytest.mark.postgres
async def test_two_paces_on_one_database_share_one_budget(postgres_migrated: str) -> None:
    budget = 20
    started: list[float] = []
    async with Storage(postgres_migrated) as one, Storage(postgres_migrated) as other:
        paces = [SharedPace(one, budget), SharedPace(other, budget)]

        async def call(pace: SharedPace) -> None:
            await pace.acquire()
            started.append(time.monotonic())

        began = time.monotonic()
        await asyncio.gather(*(call(paces[n % 2]) for n in range(60)))
        took = time.monotonic() - began
    assert most_in_a_second(started) <= budget
    assert took >= (60 - budget) / budget  # both were held to the one budget, not one each
    assert all(pace.reservations > 1 for pace in paces)


def test_the_spacing_leaves_room_for_every_bounded_error() -> None:
    for budget in (1, 2, 5, 20, 100, 1000):
        spacing = spacing_for(budget)
        # the most slots a window of 1 + ERROR seconds of schedule can hold
        assert math.floor((1 + ERROR) / spacing) + 1 <= budget
    assert spacing_for(100) > 1 / 100


class SlowDatabase:
    """A storage whose schedule answers after ``took`` seconds of the fake clock, with the first slot
    ``delay`` seconds away."""

    def __init__(self, clock: list[float], took: list[float], delay: list[float]) -> None:
        self.clock, self.took, self.delay = clock, took, delay

    async def reserve_provider_slots(self, count: int, interval: float) -> float:
        self.clock[0] += self.took.pop(0) if self.took else 0.001
        return self.delay.pop(0) if self.delay else 0.0


async def test_a_slow_reservation_and_a_late_wake_up_are_not_used() -> None:
    now = [100.0]
    late: list[float] = []
    woke: list[float] = []

    async def sleep(seconds: float) -> None:
        now[0] += seconds + (late.pop(0) if late else 0.0)
        woke.append(now[0])

    database = SlowDatabase(now, took=[0.5], delay=[0.0, 0.0, 0.3, 0.3])
    pace = SharedPace(database, 10, clock=lambda: now[0], sleep=sleep)  # type: ignore[arg-type]
    await pace.acquire()  # the first answer came too slowly for its one slot: a second reservation
    assert (pace.reservations, pace.dropped) == (2, 1)
    late.append(1.0)  # the loop is busy when the next slot comes: woken 1 s after it
    await pace.acquire()
    assert (pace.reservations, pace.dropped) == (4, 2)  # not used late; the next one was, on time
    assert woke[-1] - woke[-2] == pytest.approx(0.3 + 0.001)  # placed from the answer: never early


async def test_a_slow_answer_drops_only_the_slots_it_could_push_into_the_next_batch() -> None:
    now = [100.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    database = SlowDatabase(now, took=[0.1], delay=[0.0])
    pace = SharedPace(database, 100, clock=lambda: now[0], sleep=sleep)  # type: ignore[arg-type]
    pace._waiting = pace.batch  # a batch's worth of callers waiting
    await pace.acquire()
    trimmed = math.ceil((0.1 - ROUND_TRIP_ALLOWANCE) / pace.interval)
    assert pace.dropped == trimmed
    assert len(pace._slots) == pace.batch - trimmed - 1  # one was just used
