"""Fair submission: members take turns (rounds), a global cap on generations in flight, queue places.

Runs on SQLite and on PostgreSQL (where two claimers race for real).
"""

from __future__ import annotations

import asyncio

from storage import JobState, Storage
from tests.storage.helpers import in_flight, make_job


async def queue_jobs(storage: Storage, jobs_per_member: dict[int, int]) -> dict[int, list[int]]:
    await storage.update_guild_settings(1, max_active_jobs=50, allowance_credits=10_000)
    made: dict[int, list[int]] = {user: [] for user in jobs_per_member}
    for user, count in jobs_per_member.items():  # member 10 asks for a batch first
        for _ in range(count):
            job = await make_job(storage, user_id=user, estimate=10)
            assert job.id is not None
            made[user].append(job.id)
    return made


async def test_a_batch_never_starves_the_others(storage: Storage) -> None:
    made = await queue_jobs(storage, {10: 5, 11: 1, 12: 2})
    claimed = await storage.claim_fair_for_submit("w1", limit=4, max_in_flight=100)
    users = [job.user_id for job in claimed]
    assert users == [10, 11, 12, 10]  # everyone's first before anyone's second
    assert [job.id for job in claimed][:3] == [made[10][0], made[11][0], made[12][0]]
    assert all(job.lease_owner == "w1" for job in claimed)


async def test_queue_positions_follow_the_order_served(storage: Storage) -> None:
    made = await queue_jobs(storage, {10: 3, 11: 1})
    positions = await storage.queue_positions()
    assert positions == {made[10][0]: 1, made[11][0]: 2, made[10][1]: 3, made[10][2]: 4}
    assert await storage.queue_position(made[11][0]) == 2
    assert await storage.queue_position(made[10][2]) == 4
    await storage.cancel(made[10][0], actor_id=10)
    # Everyone moves up one place; member 10's second job keeps its round (behind member 11's first).
    assert await storage.queue_position(made[11][0]) == 1
    assert await storage.queue_position(made[10][1]) == 2
    assert await storage.queue_position(made[10][0]) is None


async def test_the_cap_counts_every_generation_in_flight(storage: Storage) -> None:
    await queue_jobs(storage, {10: 4, 11: 4})
    first = await storage.claim_fair_for_submit("w1", limit=10, max_in_flight=3)
    assert len(first) == 3
    assert await in_flight(storage) == 3  # claimed, not yet submitting: they count
    await storage.mark_submitting(first[0].id or 0, owner="w1")
    assert await storage.claim_fair_for_submit("w2", limit=10, max_in_flight=3) == []
    await storage.cancel(first[1].id or 0, actor_id=None)  # a claimed job that ends frees a slot
    (more,) = await storage.claim_fair_for_submit("w2", limit=10, max_in_flight=3)
    assert more.lease_owner == "w2"


async def test_two_claimers_at_once_never_share_a_job_nor_overshoot(storage: Storage) -> None:
    await queue_jobs(storage, {10: 6, 11: 6, 12: 6})
    results = await asyncio.gather(
        *(storage.claim_fair_for_submit(f"w{n}", limit=4, max_in_flight=7) for n in range(6))
    )
    ids = [job.id for batch in results for job in batch]
    assert len(ids) == len(set(ids)) == 7
    assert await in_flight(storage) == 7


async def test_backed_off_jobs_wait_their_turn(storage: Storage) -> None:
    made = await queue_jobs(storage, {10: 1, 11: 1})
    (job,) = await storage.claim_fair_for_submit("w1", limit=1, max_in_flight=10)
    await storage.mark_submitting(job.id or 0, owner="w1")
    await storage.requeue_with_backoff(job.id or 0, owner="w1", retry_at=storage.now().replace(year=2100))
    (other,) = await storage.claim_fair_for_submit("w1", limit=5, max_in_flight=10)
    assert other.id == made[11][0]
    assert (await storage.get_job(made[10][0])).state is JobState.QUEUED  # type: ignore[union-attr]


async def serve_one_at_a_time(storage: Storage, *, finish: bool) -> list[int]:
    """Claim one job at a time (one slot), each run to its end (``finish``) or left in flight."""
    served: list[int] = []
    while True:
        claimed = await storage.claim_fair_for_submit("w1", limit=1, max_in_flight=1 if finish else 100)
        if not claimed:
            return served
        (job,) = claimed
        assert job.id is not None
        served.append(job.user_id)
        await storage.mark_submitting(job.id, owner="w1")
        if finish:
            await storage.mark_processing(job.id, owner="w1", task_id=f"t{job.id}", credits_used=10)
            await storage.mark_completed(job.id, owner="w1", video_url="https://x/v.mp4")


async def test_a_members_served_jobs_count_not_only_the_queued_ones(storage: Storage) -> None:
    """A's first is given its slot (and even finished) before B asks: B's one still goes before A's
    second, although A's second is older."""
    made = await queue_jobs(storage, {10: 3})
    (first,) = await storage.claim_fair_for_submit("w1", limit=1, max_in_flight=1)
    assert first.id == made[10][0]
    await storage.mark_submitting(first.id, owner="w1")
    await storage.mark_processing(first.id, owner="w1", task_id="t", credits_used=10)
    await storage.mark_completed(first.id, owner="w1", video_url="https://x/v.mp4")
    late = await make_job(storage, user_id=11, estimate=10)
    assert await storage.queue_position(late.id or 0) == 1  # the card says so too
    assert await storage.queue_position(made[10][1]) == 2
    assert await serve_one_at_a_time(storage, finish=True) == [11, 10, 10]


async def test_a_member_with_jobs_in_flight_waits_behind_one_with_none(storage: Storage) -> None:
    made = await queue_jobs(storage, {10: 6})
    assert len(await storage.claim_fair_for_submit("w1", limit=4, max_in_flight=100)) == 4
    newcomer = await make_job(storage, user_id=11, estimate=10)
    claimed = await storage.claim_fair_for_submit("w1", limit=2, max_in_flight=100)
    assert [job.id for job in claimed] == [newcomer.id, made[10][4]]


async def test_a_member_back_after_a_break_takes_turns_instead_of_jumping_the_queue(storage: Storage) -> None:
    """Member 12 was served long ago (a low round of their own): they start at the queue's current
    round (the one 10 and 11 were just served in), not at their own, and then take turns."""
    await queue_jobs(storage, {12: 1})
    assert await serve_one_at_a_time(storage, finish=True) == [12]
    await queue_jobs(storage, {10: 4, 11: 4})
    assert await serve_one_at_a_time(storage, finish=False) == [10, 11, 10, 11, 10, 11, 10, 11]
    for _ in range(3):
        await make_job(storage, user_id=12, estimate=10)
    await queue_jobs(storage, {10: 2, 11: 2})
    served = await serve_one_at_a_time(storage, finish=False)
    # 12 gets their share of round 3, then every round has one of each (the oldest job first).
    assert served == [12, 12, 10, 11, 12, 10, 11]
