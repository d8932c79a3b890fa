"""Where a job came from (Continue, Remix, Animate), and how long a server's videos really took."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from storage import JobOrigin, JobState, Storage
from tests.storage.helpers import REQUEST, FakeClock, check_ledger, claim, make_job

G, U = 1, 10


async def test_a_job_keeps_its_parent_and_origin_on_both_paths(storage: Storage) -> None:
    parent = await make_job(storage)  # the general path: a new server and member
    assert (parent.parent_job_id, parent.origin) == (None, None)
    request = dataclasses.replace(REQUEST, parent_job_id=parent.id, origin=JobOrigin.CONTINUE)
    child = await make_job(storage, request=request)  # the common path: both known by now
    assert (child.parent_job_id, child.origin) == (parent.id, JobOrigin.CONTINUE)
    stored = await storage.get_job(child.id or 0)
    assert stored is not None
    assert (stored.parent_job_id, stored.origin) == (parent.id, JobOrigin.CONTINUE)
    animated = await make_job(
        storage, user_id=11, request=dataclasses.replace(REQUEST, origin=JobOrigin.ANIMATE)
    )
    assert (animated.parent_job_id, animated.origin) == (None, JobOrigin.ANIMATE)
    await check_ledger(storage)


async def finish(storage: Storage, clock: FakeClock, *, seconds: float, model: str = "kling-3.0",
                 duration: int = 5, guild_id: int = G) -> None:  # fmt: skip
    """One job of ``model`` and ``duration`` that took ``seconds`` from submission to its video."""
    request = dataclasses.replace(REQUEST, model=model, duration=duration)
    job = await make_job(storage, guild_id=guild_id, request=request, estimate=10)
    assert job.id is not None
    await claim(storage, "w")
    await storage.mark_submitting(job.id, owner="w")
    await storage.mark_processing(job.id, owner="w", task_id=f"t{job.id}", credits_used=10)
    clock.advance(seconds=seconds)
    await storage.mark_completed(job.id, owner="w", video_url="https://v/1.mp4")
    await storage.mark_delivered(job.id, owner="w", message_id=job.id, via="attachment")  # type: ignore[arg-type]
    clock.advance(seconds=1)


async def test_generation_seconds_are_the_servers_newest_of_one_kind(
    storage: Storage, clock: FakeClock
) -> None:
    await storage.update_guild_settings(G, max_active_jobs=50, allowance_credits=10_000)
    await storage.update_guild_settings(2, max_active_jobs=50, allowance_credits=10_000)
    for seconds in (30, 40, 50):
        await finish(storage, clock, seconds=seconds)
    await finish(storage, clock, seconds=99, duration=10)  # another duration
    await finish(storage, clock, seconds=98, model="kling-2.6")  # another model
    await finish(storage, clock, seconds=97, guild_id=2)  # another server
    unfinished = await make_job(storage, estimate=10)  # not made yet: not counted
    assert unfinished.state is JobState.QUEUED

    assert await storage.generation_seconds(G, "kling-3.0", 5) == [50.0, 40.0, 30.0]
    assert await storage.generation_seconds(G, "kling-3.0", 5, limit=2) == [50.0, 40.0]
    assert await storage.generation_seconds(G, "kling-3.0", 10) == [99.0]
    assert await storage.generation_seconds(3, "kling-3.0", 5) == []


async def test_in_flight_jobs_are_those_being_submitted_or_made(storage: Storage, clock: FakeClock) -> None:
    await storage.update_guild_settings(G, max_active_jobs=50, allowance_credits=10_000)
    made = [await make_job(storage, estimate=10) for _ in range(4)]
    leased = await claim(storage, "w", limit=2)
    await storage.mark_submitting(leased[0].id or 0, owner="w")
    await storage.mark_submitting(leased[1].id or 0, owner="w")
    await storage.mark_processing(leased[1].id or 0, owner="w", task_id="t", credits_used=10)
    clock.advance(timedelta(seconds=1))
    assert [j.id for j in await storage.in_flight_jobs(limit=10)] == [made[0].id, made[1].id]
    assert [j.id for j in await storage.in_flight_jobs(limit=1)] == [made[0].id]
