"""Per-server counts of unfinished jobs (what ``/kling-admin settings`` shows as "jobs in flight")."""

from __future__ import annotations

from storage import JobState, Storage
from tests.storage.helpers import make_job


async def test_unfinished_jobs_counts_one_server_by_state(storage: Storage) -> None:
    assert await storage.unfinished_jobs(1) == {}
    await make_job(storage, guild_id=1, user_id=10, review=True)
    queued = await make_job(storage, guild_id=1, user_id=11)
    cancelled = await make_job(storage, guild_id=1, user_id=12)
    await storage.cancel(cancelled.id or 0, actor_id=12)
    await make_job(storage, guild_id=2, user_id=10)  # another server: not counted
    assert await storage.unfinished_jobs(1) == {JobState.PENDING_REVIEW: 1, JobState.QUEUED: 1}

    [claimed] = await storage.claim_for_submit("w")
    assert claimed.id == queued.id
    await storage.mark_submitting(queued.id or 0, owner="w")
    assert await storage.unfinished_jobs(1) == {JobState.PENDING_REVIEW: 1, JobState.SUBMITTING: 1}
    assert await storage.unfinished_jobs(2) == {JobState.QUEUED: 1}
