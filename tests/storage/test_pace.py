"""The provider's schedule shared through PostgreSQL: slots ``interval`` apart whoever reserves them,
and the pace built on it keeps two "processes" (two paces on one database) within one budget."""

from __future__ import annotations

import asyncio
import time

import pytest

from generation.provider_pace import SharedPace
from storage import Storage


def most_in_a_second(times: list[float]) -> int:
    ordered = sorted(times)
    start, best = 0, 0
    for end, moment in enumerate(ordered):
        while moment - ordered[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


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
    rate = budget * 0.9  # the bot's headroom (bot.RATE_HEADROOM): a woken call may leave a moment late
    started: list[float] = []
    async with Storage(postgres_migrated) as one, Storage(postgres_migrated) as other:
        paces = [SharedPace(one, rate), SharedPace(other, rate)]

        async def call(pace: SharedPace) -> None:
            await pace.acquire()
            started.append(time.monotonic())

        began = time.monotonic()
        await asyncio.gather(*(call(paces[n % 2]) for n in range(60)))
        took = time.monotonic() - began
    assert most_in_a_second(started) <= budget
    assert took >= (60 - budget) / budget  # both were held to the one budget, not one each
    assert all(pace.reservations > 1 for pace in paces)
