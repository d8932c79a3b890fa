"""How long finished jobs took at the provider, by model, duration and quality, for the poll schedule."""

from __future__ import annotations

from datetime import timedelta

from storage import JobRequest, JobState, Storage
from tests.storage.helpers import FakeClock, claim, next_interaction


async def finish(
    storage: Storage,
    clock: FakeClock,
    request: JobRequest,
    *,
    running: float,
    seen_after: float | None,
    guild_id: int = 1,
) -> None:
    """A job submitted now, still running at ``running`` s (if polled then), seen done at ``seen_after``."""
    job = await storage.create_job(
        interaction_id=next_interaction(),
        guild_id=guild_id,
        user_id=10,
        channel_id=555,
        request=request,
        estimate=1,
    )
    assert job.id is not None
    (claimed,) = await claim(storage, "w1")
    assert claimed.id == job.id
    await storage.mark_submitting(job.id, owner="w1")
    start = clock.current
    await storage.mark_processing(job.id, owner="w1", task_id=f"t{job.id}", credits_used=1)
    await storage.release_lease(job.id, owner="w1")
    if seen_after is not None:
        clock.set(start + timedelta(seconds=running))
        (polled,) = await claim(storage, "w1", states=[JobState.PROCESSING])
        await storage.release_lease(polled.id or 0, owner="w1", polled_at=clock.current)
        clock.set(start + timedelta(seconds=seen_after))
    else:
        clock.set(start + timedelta(seconds=running))
    await storage.mark_completed(job.id, owner=None, video_url="https://x/v.mp4")


async def test_completion_times_by_kind_from_the_last_not_yet_and_the_done(
    storage: Storage, clock: FakeClock
) -> None:
    await storage.grant(1, 10, 1000, actor_id=1)
    await storage.update_guild_settings(1, max_active_jobs=50)
    pro = JobRequest(model="kling-3.0", mode="text_to_video", prompt="x", duration=5, quality="pro")
    std = JobRequest(model="kling-3.0", mode="text_to_video", prompt="x", duration=5, quality="std")
    old = JobRequest(model="kling-2.6", mode="text_to_video", prompt="x", duration=10)
    await finish(storage, clock, pro, running=100, seen_after=110)  # done between 100 and 110 s: 105
    await finish(storage, clock, pro, running=80, seen_after=None)  # no "not yet" on record: 80
    await finish(storage, clock, std, running=60, seen_after=64)
    await finish(storage, clock, old, running=70, seen_after=90)
    assert await storage.completion_seconds(1, "kling-3.0", 5, "pro") == [80.0, 105.0]  # the newest first
    assert await storage.completion_seconds(1, "kling-3.0", 5, "std") == [62.0]
    assert await storage.completion_seconds(1, "kling-2.6", 10, None) == [80.0]
    assert await storage.completion_seconds(1, "kling-2.6", 5, None) == []
    assert await storage.completion_seconds(1, "kling-3.0", 5, "pro", limit=1) == [80.0]
    assert await storage.completion_seconds(2, "kling-3.0", 5, "pro") == []  # another server's: none


async def test_each_server_has_its_own_history(storage: Storage, clock: FakeClock) -> None:
    for guild in (1, 2):
        await storage.grant(guild, 10, 1000, actor_id=1)
        await storage.update_guild_settings(guild, max_active_jobs=50)
    pro = JobRequest(model="kling-3.0", mode="text_to_video", prompt="x", duration=5, quality="pro")
    await finish(storage, clock, pro, running=100, seen_after=None, guild_id=1)
    await finish(storage, clock, pro, running=40, seen_after=None, guild_id=2)
    assert await storage.completion_seconds(1, "kling-3.0", 5, "pro") == [100.0]
    assert await storage.completion_seconds(2, "kling-3.0", 5, "pro") == [40.0]
