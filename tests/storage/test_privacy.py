"""Quotes decided once, a member forgotten, old jobs erased: amounts and states stay, words go."""

from __future__ import annotations

from datetime import timedelta

import pytest

from storage import (
    ERASED_PROMPT,
    DeliveredVia,
    DuplicateInteraction,
    InvalidSetting,
    JobRequest,
    JobState,
    QuoteState,
    Storage,
)
from storage.models import Job
from tests.storage.helpers import FakeClock, check_ledger, claim, next_interaction

G, U, OTHER = 1, 10, 11


def request(prompt: str, **kwargs: object) -> JobRequest:
    return JobRequest(
        model="kling-3.0",
        mode="image-to-video",
        prompt=prompt,
        duration=5,
        quality="std",
        image_urls=[f"https://provider/{prompt}.png"],
        start_frame_url=None,
        end_frame_url=None,
        **kwargs,  # type: ignore[arg-type]
    )


async def new_job(storage: Storage, prompt: str, *, user_id: int = U, review: bool = False) -> Job:
    return await storage.create_job(
        interaction_id=next_interaction(),
        guild_id=G,
        user_id=user_id,
        channel_id=555,
        request=request(prompt),
        estimate=40,
        review=review,
    )


async def to_processing(storage: Storage, job: Job, owner: str = "w") -> Job:
    assert job.id is not None
    await claim(storage, owner)
    await storage.mark_submitting(job.id, owner=owner)
    return await storage.mark_processing(job.id, owner=owner, task_id=f"t-{job.id}", credits_used=40)


async def to_delivered(storage: Storage, job: Job) -> Job:
    assert job.id is not None
    await to_processing(storage, job)
    await storage.mark_completed(job.id, owner="w", video_url=f"https://v/{job.id}.mp4")
    return await storage.mark_delivered(
        job.id, owner="w", message_id=900 + job.id, via=DeliveredVia.LINK, notes="posted as a link: too big"
    )


def is_erased(job: Job | None) -> bool:
    assert job is not None
    return (
        job.prompt == ERASED_PROMPT
        and job.image_urls == []
        and (job.start_frame_url, job.end_frame_url, job.video_url, job.delivery_notes) == (None,) * 4
        and job.erased_at is not None
    )


# -- settings ------------------------------------------------------------------------------------------


async def test_confirmation_and_retention_settings(storage: Storage) -> None:
    settings = await storage.get_guild_settings(G)
    assert (settings.confirm_above_credits, settings.retention_days) == (200, 90)
    settings = await storage.update_guild_settings(G, confirm_above_credits=0, retention_days=3650)
    assert (settings.confirm_above_credits, settings.retention_days) == (0, 3650)
    for field, value in (
        ("confirm_above_credits", -1),
        ("confirm_above_credits", 100_001),
        ("retention_days", 3651),
        ("retention_days", True),
    ):
        with pytest.raises(InvalidSetting) as refused:
            await storage.update_guild_settings(G, **{field: value})  # type: ignore[arg-type]
        assert refused.value.field == field


# -- quotes --------------------------------------------------------------------------------------------


async def quote(storage: Storage, *, interaction_id: int | None = None, minutes: float = 5) -> int:
    made = await storage.create_quote(
        interaction_id=interaction_id or next_interaction(),
        guild_id=G,
        user_id=U,
        channel_id=555,
        request={"options": {"prompt": "a secret garden"}},
        estimate=150,
        lifetime=timedelta(minutes=minutes),
    )
    assert made.id is not None
    assert made.state is QuoteState.OPEN
    return made.id


async def test_a_quote_is_decided_once_and_keeps_no_request(storage: Storage, clock: FakeClock) -> None:
    quote_id = await quote(storage, interaction_id=777)
    with pytest.raises(DuplicateInteraction):
        await quote(storage, interaction_id=777)
    confirmed = await storage.decide_quote(quote_id, QuoteState.CONFIRMED)
    assert confirmed is not None
    assert confirmed.request == {"options": {"prompt": "a secret garden"}}  # the winner gets it, once
    assert confirmed.expires_at == clock.current + timedelta(minutes=5)
    assert await storage.decide_quote(quote_id, QuoteState.CANCELLED) is None
    assert await storage.decide_quote(quote_id, QuoteState.CONFIRMED) is None
    stored = await storage.get_quote(quote_id)
    assert stored is not None
    assert (stored.state, stored.request, stored.decided_at) == (QuoteState.CONFIRMED, {}, clock.current)
    assert await storage.decide_quote(123_456, QuoteState.CONFIRMED) is None


async def test_the_sweep_expires_open_quotes_and_prunes_decided_ones(
    storage: Storage, clock: FakeClock
) -> None:
    late = await quote(storage, minutes=5)
    later = await quote(storage, minutes=10)
    decided = await quote(storage)
    await storage.decide_quote(decided, QuoteState.CANCELLED)
    clock.advance(minutes=5)
    assert await storage.sweep_quotes() == 1
    expired = await storage.get_quote(late)
    assert expired is not None
    assert (expired.state, expired.request) == (QuoteState.EXPIRED, {})
    assert (await storage.get_quote(later)).state is QuoteState.OPEN  # type: ignore[union-attr]
    clock.advance(days=1)
    assert await storage.sweep_quotes() == 1  # the later one now
    assert await storage.get_quote(decided) is None  # decided a day and five minutes ago
    assert await storage.get_quote(late) is not None  # expired a day ago: kept a moment longer
    clock.advance(seconds=1)
    await storage.sweep_quotes()
    assert await storage.get_quote(late) is None
    assert await storage.get_quote(later) is not None  # expired less than a day ago


# -- forgetting a member -------------------------------------------------------------------------------


async def test_forgetting_cancels_what_waits_erases_what_ended_and_keeps_the_ledger(
    storage: Storage, clock: FakeClock
) -> None:
    await storage.update_guild_settings(G, max_active_jobs=10, allowance_credits=1000)
    delivered = await to_delivered(storage, await new_job(storage, "one delivered"))
    failed = await new_job(storage, "one failed")
    await storage.fail(failed.id or 0, owner=None, reason="the image vanished")
    processing = await to_processing(storage, await new_job(storage, "one at the provider"))
    queued = await new_job(storage, "one queued")
    waiting = await new_job(storage, "one in review", review=True)
    theirs = await new_job(storage, "someone else's", user_id=OTHER)
    await quote(storage)
    before = await storage.balance(G, U)
    assert before.reserved == 80

    clock.advance(minutes=1)
    report = await storage.forget_member(G, U, actor_id=U)

    assert sorted(job.id or 0 for job in report.cancelled) == [queued.id, waiting.id]
    assert all(job.state is JobState.CANCELLED for job in report.cancelled)
    assert report.refunded == 80
    assert sorted(job.id or 0 for job in report.erased) == sorted(
        [delivered.id or 0, failed.id or 0, queued.id or 0, waiting.id or 0]
    )
    assert all(is_erased(job) for job in report.erased)
    assert (report.pending, report.quotes) == (1, 1)
    after = await storage.balance(G, U)
    assert (after.reserved, after.available) == (0, before.available + 80)
    for job_id in (delivered.id, failed.id, queued.id, waiting.id):
        stored = await storage.get_job(job_id or 0)
        assert is_erased(stored)
    kept = await storage.get_job(delivered.id or 0)
    assert kept is not None
    assert (kept.state, kept.estimate_credits, kept.member_charged) == (JobState.DELIVERED, 40, 40)
    assert kept.posted_message_id == 900 + (delivered.id or 0)  # ids stay: the cards can be redrawn
    at_provider = await storage.get_job(processing.id or 0)
    assert at_provider is not None
    assert at_provider.prompt == "one at the provider"  # the provider is still making it
    assert at_provider.erase_requested
    other = await storage.get_job(theirs.id or 0)
    assert other is not None
    assert (other.prompt, other.erase_requested, other.erased_at) == ("someone else's", False, None)
    await check_ledger(storage)

    # The video at the provider finishes, is posted, and is erased as it ends.
    done = await storage.mark_completed(processing.id or 0, owner=None, video_url="https://v/p.mp4")
    assert done.video_url == "https://v/p.mp4"  # still needed, to post it
    ended = await storage.mark_delivered(
        processing.id or 0, owner=None, message_id=999, via=DeliveredVia.ATTACHMENT, notes="attached"
    )
    assert is_erased(ended)
    assert ended.state is JobState.DELIVERED
    assert is_erased(await storage.get_job(processing.id or 0))
    await check_ledger(storage)

    again = await storage.forget_member(G, U, actor_id=U)
    assert (again.cancelled, again.erased, again.pending, again.quotes) == ([], [], 0, 0)


async def test_a_job_requeued_after_forgetting_is_cancelled_not_sent_again(
    storage: Storage, clock: FakeClock
) -> None:
    job = await new_job(storage, "rate limited")
    await claim(storage, "w")
    await storage.mark_submitting(job.id or 0, owner="w")
    report = await storage.forget_member(G, U, actor_id=None)
    assert report.pending == 1
    requeued = await storage.requeue_with_backoff(
        job.id or 0, owner="w", retry_at=clock.current + timedelta(seconds=30)
    )
    assert requeued.state is JobState.CANCELLED
    assert is_erased(requeued)
    assert (await storage.balance(G, U)).reserved == 0
    await check_ledger(storage)


async def test_forgetting_many_jobs_goes_in_batches(storage: Storage) -> None:
    await storage.update_guild_settings(G, max_active_jobs=300, allowance_credits=100_000)
    for n in range(250):
        await new_job(storage, f"scene {n}")
    report = await storage.forget_member(G, U, actor_id=None)
    assert len(report.cancelled) == len(report.erased) == 250
    assert report.refunded == 250 * 40
    await check_ledger(storage)


# -- retention -----------------------------------------------------------------------------------------


async def test_ending_states_record_when_the_job_ended(storage: Storage, clock: FakeClock) -> None:
    job = await new_job(storage, "short lived")
    assert job.ended_at is None
    clock.advance(minutes=3)
    cancelled = await storage.cancel(job.id or 0, actor_id=U)
    assert cancelled.ended_at == clock.current


async def test_retention_erases_jobs_that_ended_long_enough_ago(storage: Storage, clock: FakeClock) -> None:
    await storage.update_guild_settings(G, max_active_jobs=10)
    await storage.update_guild_settings(2, retention_days=0, max_active_jobs=10)
    old = [await storage.cancel((await new_job(storage, f"old {n}")).id or 0, actor_id=U) for n in range(3)]
    kept_forever = await storage.create_job(
        interaction_id=next_interaction(),
        guild_id=2,
        user_id=U,
        channel_id=5,
        request=request("x"),
        estimate=1,
    )
    await storage.cancel(kept_forever.id or 0, actor_id=U)
    clock.advance(days=45)
    recent = await storage.cancel((await new_job(storage, "recent")).id or 0, actor_id=U)
    unfinished = await new_job(storage, "still queued")
    clock.advance(days=45, seconds=1)  # the old ones ended 90 days and a second ago

    assert await storage.erase_expired_jobs(limit=2) == 2
    assert await storage.erase_expired_jobs(limit=2) == 1
    assert await storage.erase_expired_jobs() == 0
    assert all([is_erased(await storage.get_job(job.id or 0)) for job in old])
    for job in (recent, kept_forever, unfinished):
        stored = await storage.get_job(job.id or 0)
        assert stored is not None
        assert stored.erased_at is None
        assert stored.prompt != ERASED_PROMPT
    await storage.update_guild_settings(G, retention_days=30)
    assert await storage.erase_expired_jobs() == 1  # the recent one ended 45 days ago
    await storage.update_guild_settings(G, retention_days=0)
    clock.advance(days=3000)
    assert await storage.erase_expired_jobs() == 0
    await check_ledger(storage)
