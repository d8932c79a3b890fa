"""The job state machine: every transition is a compare-and-set, leases fence the workers."""

from __future__ import annotations

from datetime import timedelta

import pytest

from storage import (
    DeliveredVia,
    DuplicateInteraction,
    InvalidTransition,
    JobNotFound,
    JobRequest,
    JobState,
    LeaseLost,
    StaleState,
    Storage,
    jobs,
)
from tests.storage.helpers import FakeClock, aware, check_ledger, claim, make_job, unfinished

G, U = 1, 10


async def test_happy_path_keeps_every_request_field(storage: Storage, clock: FakeClock) -> None:
    request = JobRequest(
        model="kling-3.0", mode="image-to-video", prompt="a dragon", duration=8, quality="pro",
        aspect_ratio=None, sound=True, multi_shot=True, directory_optin=True,
        image_urls=["https://cdn/a.png"], start_frame_url="https://cdn/s.png", end_frame_url="https://cdn/e.png",
    )  # fmt: skip
    job = await storage.create_job(
        interaction_id=4242, guild_id=G, user_id=U, channel_id=77, request=request, estimate=300
    )
    assert job.state is JobState.QUEUED
    await storage.set_job_messages(job.id or 0, status_message_id=900)
    [claimed] = await claim(storage, "worker-a")
    assert claimed.id == job.id
    assert claimed.lease_owner == "worker-a"
    job = await storage.mark_submitting(job.id or 0, owner="worker-a")
    assert job.attempts == 1
    job = await storage.mark_processing(
        job.id or 0, owner="worker-a", task_id="task-1", credits_used=310, eta_low_seconds=60,
        eta_high_seconds=180, next_poll_at=clock.current + timedelta(seconds=10),
    )  # fmt: skip
    await storage.release_lease(
        job.id or 0, owner="worker-a", next_attempt_at=job.next_attempt_at, progress=40
    )
    assert await storage.claim_for_poll("worker-b") == []  # not due yet
    clock.advance(seconds=10)
    [polled] = await storage.claim_for_poll("worker-b")
    assert polled.progress == 40
    job = await storage.mark_completed(
        job.id or 0, owner="worker-b", video_url="https://v/x.mp4", credits_charged=310
    )
    job = await storage.mark_delivered(
        job.id or 0, owner="worker-b", message_id=901, via=DeliveredVia.ATTACHMENT, notes="uploaded 12 MB"
    )
    loaded = await storage.get_job(job.id or 0)
    assert loaded is not None
    assert loaded.state is JobState.DELIVERED
    assert loaded.lease_owner is None
    assert (loaded.prompt, loaded.duration, loaded.quality, loaded.sound, loaded.multi_shot) == (
        "a dragon", 8, "pro", True, True
    )  # fmt: skip
    assert loaded.image_urls == ["https://cdn/a.png"]
    assert (loaded.start_frame_url, loaded.end_frame_url) == ("https://cdn/s.png", "https://cdn/e.png")
    assert (loaded.status_message_id, loaded.posted_message_id, loaded.provider_task_id) == (
        900,
        901,
        "task-1",
    )
    assert (loaded.estimate_credits, loaded.credits_used, loaded.credits_charged) == (300, 310, 310)
    assert (loaded.eta_low_seconds, loaded.eta_high_seconds, loaded.delivery_notes) == (
        60,
        180,
        "uploaded 12 MB",
    )
    assert loaded.delivered_via is DeliveredVia.ATTACHMENT
    assert loaded.submitted_at is not None
    assert loaded.completed_at is not None
    assert aware(loaded.submitted_at)
    assert (await storage.get_job_by_interaction(4242)) is not None
    await check_ledger(storage)


async def test_processing_with_release_lets_go_until_the_first_poll(
    storage: Storage, clock: FakeClock
) -> None:
    """The worker's one write after an accepted generate: processing, settled, and nobody's lease;
    the job is due again at its first poll, for any process, and the lease is fenced as before."""
    job = await make_job(storage, G, U)
    [claimed] = await claim(storage, "worker-a")
    await storage.mark_submitting(claimed.id or 0, owner="worker-a")
    with pytest.raises(LeaseLost):
        await storage.mark_processing(
            claimed.id or 0, owner="worker-b", task_id="t", credits_used=10, release=True
        )
    first_poll = clock.current + timedelta(seconds=30)
    moved = await storage.mark_processing(
        claimed.id or 0, owner="worker-a", task_id="t", credits_used=10, next_poll_at=first_poll, release=True
    )
    assert (moved.state, moved.lease_owner, moved.lease_expires_at) == (JobState.PROCESSING, None, None)
    assert moved.next_attempt_at == first_poll
    with pytest.raises(LeaseLost):
        await storage.renew_lease(job.id or 0, owner="worker-a", lease=timedelta(minutes=5))
    assert await storage.claim_for_poll("worker-b") == []
    clock.advance(seconds=30)
    [polled] = await storage.claim_for_poll("worker-b")
    assert (polled.id, polled.lease_owner) == (job.id, "worker-b")
    await check_ledger(storage)


async def test_same_interaction_never_creates_two_jobs(storage: Storage) -> None:
    job = await storage.create_job(
        interaction_id=1, guild_id=G, user_id=U, channel_id=5, request=_req(), estimate=100
    )
    with pytest.raises(DuplicateInteraction) as duplicate:
        await storage.create_job(
            interaction_id=1, guild_id=G, user_id=U, channel_id=5, request=_req(), estimate=100
        )
    assert duplicate.value.job_id == job.id
    assert (await storage.balance(G, U)).reserved == 100
    await check_ledger(storage)


def _req() -> JobRequest:
    return JobRequest(model="kling-2.6", mode="text-to-video", prompt="p", duration=5)


async def test_review_flow(storage: Storage) -> None:
    job = await make_job(storage, review=True)
    assert job.state is JobState.PENDING_REVIEW
    assert await claim(storage, "w") == []  # not workable until approved
    await storage.set_job_messages(job.id or 0, review_message_id=321)
    approved = await storage.approve(job.id or 0, moderator_id=99)
    assert (approved.state, approved.reviewed_by, approved.review_message_id) == (JobState.QUEUED, 99, 321)
    with pytest.raises(InvalidTransition):
        await storage.reject(job.id or 0, moderator_id=99)


async def test_refused_transitions(storage: Storage) -> None:
    job = await make_job(storage)
    with pytest.raises(InvalidTransition) as refused:
        await storage.mark_completed(job.id or 0, owner=None, video_url="x")
    assert (refused.value.current, refused.value.target) == ("queued", "completed")
    await storage.cancel(job.id or 0, actor_id=U)
    with pytest.raises(InvalidTransition):
        await storage.cancel(job.id or 0, actor_id=U)  # released once, never twice
    with pytest.raises(InvalidTransition):
        await storage.fail(job.id or 0, owner=None, reason="x")
    with pytest.raises(JobNotFound):
        await storage.approve(12345, moderator_id=1)
    await check_ledger(storage)


async def test_cannot_cancel_once_submitting(storage: Storage) -> None:
    job = await make_job(storage)
    await claim(storage, "w")
    await storage.mark_submitting(job.id or 0, owner="w")
    with pytest.raises(InvalidTransition):
        await storage.cancel(job.id or 0, actor_id=U)


async def test_cancel_wins_over_a_worker_that_read_the_job_before(storage: Storage) -> None:
    job = await make_job(storage)
    await claim(storage, "w")
    await storage.cancel(job.id or 0, actor_id=U)  # the member cancels while the worker holds it
    with pytest.raises(InvalidTransition):
        await storage.mark_submitting(job.id or 0, owner="w")
    await check_ledger(storage)


async def test_rate_limited_submission_is_requeued_with_backoff(storage: Storage, clock: FakeClock) -> None:
    job = await make_job(storage)
    await claim(storage, "w")
    await storage.mark_submitting(job.id or 0, owner="w")
    requeued = await storage.requeue_with_backoff(
        job.id or 0, owner="w", retry_at=clock.current + timedelta(seconds=30), error="429"
    )
    assert (requeued.state, requeued.lease_owner, requeued.error) == (JobState.QUEUED, None, "429")
    assert await claim(storage, "w") == []
    clock.advance(seconds=30)
    [again] = await claim(storage, "w")
    again = await storage.mark_submitting(again.id or 0, owner="w")
    assert again.attempts == 2
    await check_ledger(storage)


async def test_lost_submissions_are_refunded_at_start_up(storage: Storage, clock: FakeClock) -> None:
    job = await make_job(storage, estimate=120)
    other = await make_job(storage, estimate=10)
    await claim(storage, "dead-process", limit=2, lease=timedelta(seconds=60))
    await storage.mark_submitting(job.id or 0, owner="dead-process")
    assert await storage.recover_lost_submissions() == []  # lease still valid: maybe still running
    clock.advance(seconds=61)
    [lost] = await storage.recover_lost_submissions()
    assert (lost.id, lost.state) == (job.id, JobState.LOST)
    assert (await storage.balance(G, U)).available == 290
    resumable = await unfinished(storage)
    assert [j.id for j in resumable] == [other.id]
    await check_ledger(storage)


async def test_mark_lost_and_fail_from_submitting_refund(storage: Storage) -> None:
    a = await make_job(storage, estimate=100)
    b = await make_job(storage, estimate=50)
    await claim(storage, "w", limit=2)
    await storage.mark_submitting(a.id or 0, owner="w")
    await storage.mark_submitting(b.id or 0, owner="w")
    await storage.mark_lost(a.id or 0, owner="w", reason="timeout")
    await storage.fail(b.id or 0, owner="w", reason="400 invalid prompt")
    balance = await storage.balance(G, U)
    assert (balance.available, balance.reserved, balance.active_jobs) == (300, 0, 0)
    await check_ledger(storage)


async def test_expired_lease_is_taken_over_and_the_old_owner_is_fenced(
    storage: Storage, clock: FakeClock
) -> None:
    job = await make_job(storage)
    [mine] = await claim(storage, "a", lease=timedelta(seconds=30))
    assert await claim(storage, "b") == []  # held
    renewed = await storage.renew_lease(mine.id or 0, owner="a", lease=timedelta(seconds=30))
    assert renewed.lease_expires_at == clock.current + timedelta(seconds=30)
    clock.advance(seconds=31)
    [theirs] = await claim(storage, "b")
    assert theirs.id == job.id
    with pytest.raises(LeaseLost) as lost:
        await storage.mark_submitting(job.id or 0, owner="a")
    assert lost.value.holder == "b"
    with pytest.raises(LeaseLost):
        await storage.renew_lease(job.id or 0, owner="a")
    with pytest.raises(LeaseLost):
        await storage.release_lease(job.id or 0, owner="a")
    await storage.mark_submitting(job.id or 0, owner="b")


async def test_second_moderator_learns_the_job_moved(storage: Storage) -> None:
    """Two moderators press the button: the second one is told where the job is now."""
    job = await make_job(storage, review=True)
    await storage.approve(job.id or 0, moderator_id=1)
    with pytest.raises(InvalidTransition) as refused:
        await storage.approve(job.id or 0, moderator_id=2)
    assert refused.value.current == "queued"


async def test_compare_and_set_refuses_a_job_that_moved_after_it_was_read(
    storage: Storage, clock: FakeClock
) -> None:
    job = await make_job(storage)
    async with storage._maker() as s, s.begin():
        seen = await jobs.load(s, job.id or 0)  # a worker read it as queued ...
    await storage.cancel(job.id or 0, actor_id=U)  # ... the member cancelled meanwhile
    async with storage._maker() as s, s.begin():
        with pytest.raises(StaleState) as stale:
            await jobs.move(s, seen, JobState.SUBMITTING, owner=None, now=clock.current)
    assert stale.value.current == "cancelled"
    assert issubclass(StaleState, InvalidTransition)
    await check_ledger(storage)


async def test_list_jobs_newest_first(storage: Storage) -> None:
    await storage.grant(G, U, 1000, actor_id=1)
    first = await make_job(storage, estimate=1)
    second = await make_job(storage, estimate=1)
    await storage.cancel(first.id or 0, actor_id=U)
    assert [j.id for j in await storage.list_jobs(G, U)] == [second.id, first.id]
    assert [j.id for j in await storage.list_jobs(G, U, states=[JobState.CANCELLED])] == [first.id]
    assert await storage.list_jobs(G, 999) == []


async def test_queue_position(storage: Storage) -> None:
    await storage.grant(G, U, 1000, actor_id=1)
    first = await make_job(storage, estimate=1)
    second = await make_job(storage, user_id=U + 1, estimate=1)
    in_review = await make_job(storage, estimate=1, review=True)
    assert await storage.queue_position(first.id or 0) == 1
    assert await storage.queue_position(second.id or 0) == 2
    assert await storage.queue_position(in_review.id or 0) is None
    await storage.cancel(first.id or 0, actor_id=U)
    assert await storage.queue_position(second.id or 0) == 1
    assert await storage.queue_position(999_999) is None
