"""Money and work under concurrency: many simultaneous requests, several processes, one database.

Each "process" is a separate :class:`Storage` (its own engine and connection pool) on the same
database, which is what several bot processes sharing PostgreSQL (or one SQLite file) look like.
"""

from __future__ import annotations

import asyncio
import shutil
from collections import Counter
from collections.abc import Coroutine
from datetime import timedelta
from pathlib import Path
from typing import Any

from storage import (
    BudgetExceeded,
    DuplicateInteraction,
    InsufficientCredits,
    JobState,
    LeaseLost,
    Storage,
    TooManyActiveJobs,
)
from tests.storage.helpers import REQUEST, FakeClock, check_ledger, claim, make_job, next_interaction

G, U = 1, 10


async def _outcomes(coroutines: list[Coroutine[Any, Any, object]]) -> Counter[str]:
    results = await asyncio.gather(*coroutines, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException) and not isinstance(
            result, InsufficientCredits | TooManyActiveJobs | BudgetExceeded | DuplicateInteraction
        ):
            raise result
    return Counter("ok" if not isinstance(r, BaseException) else type(r).__name__ for r in results)


async def test_fifty_concurrent_reservations_never_overdraw(storage: Storage) -> None:
    await storage.update_guild_settings(G, max_active_jobs=100)  # only the balance may stop them
    outcomes = await _outcomes([make_job(storage, estimate=100) for _ in range(50)])
    assert outcomes == {"ok": 3, "InsufficientCredits": 47}
    balance = await storage.balance(G, U)
    assert (balance.available, balance.reserved, balance.active_jobs) == (0, 300, 3)
    await check_ledger(storage)


async def test_two_processes_reserving_at_once_never_overdraw(
    storage: Storage, migrated_url: str, clock: FakeClock, engine_name: str
) -> None:
    await storage.update_guild_settings(G, max_active_jobs=100)
    await storage.grant(G, U, 700, actor_id=1)  # 300 + 700 = exactly 10 jobs of 100
    async with Storage(migrated_url, clock=clock, pool_size=None if engine_name == "sqlite" else 20) as other:
        outcomes = await _outcomes([make_job(storage if i % 2 else other, estimate=100) for i in range(60)])
    assert outcomes == {"ok": 10, "InsufficientCredits": 50}
    assert (await storage.balance(G, U)).available == 0
    await check_ledger(storage)


async def test_sqlite_writers_on_many_connections_never_see_database_is_locked(
    sqlite_template: Path, tmp_path: Path, clock: FakeClock
) -> None:
    """BEGIN IMMEDIATE + busy_timeout: concurrent write transactions queue instead of failing."""
    path = tmp_path / "wide.db"
    shutil.copyfile(sqlite_template, path)
    async with Storage(f"sqlite+aiosqlite:///{path}", clock=clock, pool_size=5) as wide:
        await wide.update_guild_settings(G, max_active_jobs=100)
        outcomes = await _outcomes([make_job(wide, user_id=U + i % 5, estimate=100) for i in range(40)])
        assert outcomes == {"ok": 15, "InsufficientCredits": 25}
        await check_ledger(wide)


async def test_concurrent_active_job_cap(storage: Storage) -> None:
    await storage.grant(G, U, 100_000, actor_id=1)
    outcomes = await _outcomes([make_job(storage, estimate=10) for _ in range(50)])
    assert outcomes == {"ok": 2, "TooManyActiveJobs": 48}
    assert (await storage.balance(G, U)).active_jobs == 2
    await check_ledger(storage)


async def test_concurrent_budget_cap(storage: Storage) -> None:
    await storage.update_guild_settings(G, budget_credits=500)
    outcomes = await _outcomes([make_job(storage, user_id=100 + i, estimate=100) for i in range(50)])
    assert outcomes == {"ok": 5, "BudgetExceeded": 45}
    assert (await storage.guild_spend(G)).spent == 500
    await check_ledger(storage)


async def test_concurrent_duplicates_of_one_interaction(storage: Storage) -> None:
    interaction = next_interaction()
    outcomes = await _outcomes(
        [
            storage.create_job(
                interaction_id=interaction, guild_id=G, user_id=U, channel_id=1, request=REQUEST, estimate=100
            )
            for _ in range(10)
        ]
    )
    assert outcomes == {"ok": 1, "DuplicateInteraction": 9}
    assert (await storage.balance(G, U)).reserved == 100
    await check_ledger(storage)


async def test_two_claimers_never_share_a_job_and_take_over_expired_leases(
    storage: Storage, migrated_url: str, clock: FakeClock, engine_name: str
) -> None:
    await storage.update_guild_settings(G, max_active_jobs=100)
    await storage.grant(G, U, 10_000, actor_id=1)
    created = sorted([(await make_job(storage, estimate=10)).id or 0 for _ in range(30)])
    async with Storage(migrated_url, clock=clock, pool_size=None if engine_name == "sqlite" else 20) as other:
        processes = {"p0": other, "p1": storage}
        claims = await asyncio.gather(
            *[
                claim(processes[f"p{i % 2}"], f"p{i % 2}", limit=3, lease=timedelta(seconds=30))
                for i in range(20)
            ]
        )
        owners: dict[int, str] = {}
        for batch in claims:
            for job in batch:
                assert job.id not in owners, f"job {job.id} claimed twice"
                owners[job.id or 0] = job.lease_owner or ""
        assert sorted(owners) == created  # every job claimed, each exactly once

        # While the leases run, nobody else gets the jobs.
        assert await claim(other, "p2", limit=100) == []
        # The claimers go quiet; their leases expire; p0 takes everything over ...
        clock.advance(seconds=31)
        taken = await claim(other, "p0", limit=100)
        assert sorted(job.id or 0 for job in taken) == created
        # ... and p1's late writes are refused, p0's go through.
        p1_jobs = [job_id for job_id, owner in owners.items() if owner == "p1"]
        late = await asyncio.gather(
            *[storage.mark_submitting(job_id, owner="p1") for job_id in p1_jobs], return_exceptions=True
        )
        assert all(isinstance(result, LeaseLost) for result in late)
        moved = await asyncio.gather(*[other.mark_submitting(job_id, owner="p0") for job_id in created])
        assert all(job.state is JobState.SUBMITTING for job in moved)
    await check_ledger(storage)
