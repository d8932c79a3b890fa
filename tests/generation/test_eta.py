"""When a video should be ready: the estimator's arithmetic, and the book that applies it to jobs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from generation import eta
from generation.eta import EtaBook, expected_total, remaining_while_processing, steady, wait_in_queue
from storage import Job, JobState, Storage
from ulazai.results import EstimatedTime

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
WRONG = EstimatedTime(60, 180)  # the provider's word: 120 s in the middle


def test_without_history_the_provider_decides() -> None:
    assert expected_total(WRONG, []) == 120
    assert expected_total(None, []) is None


def test_history_takes_over_as_it_grows() -> None:
    assert expected_total(WRONG, [30]) == pytest.approx(30 / 3 + 120 * 2 / 3)
    assert expected_total(WRONG, [30, 34]) == pytest.approx(32 * 2 / 3 + 120 / 3)
    assert expected_total(WRONG, [30, 34, 32]) == 32  # the third video of a kind: the server's own figure
    assert expected_total(WRONG, [30, 34, 32, 300, 31, 900]) == 32  # the median of the newest five
    assert expected_total(None, [8]) == 8


def test_while_processing_the_time_left_counts_down_and_progress_sharpens_it() -> None:
    assert remaining_while_processing(40, 10, None) == 30
    assert remaining_while_processing(40, 55, None) == 0  # late: never negative
    assert remaining_while_processing(None, 10, None) is None
    assert remaining_while_processing(40, 10, 2) == 30  # too little progress to go on
    # 50 % after 30 s says 60 s in all; at half progress it counts for half.
    assert remaining_while_processing(40, 30, 50) == pytest.approx(0.5 * 60 + 0.5 * 40 - 30)
    assert remaining_while_processing(None, 30, 50) == pytest.approx(30)


def test_a_queued_job_waits_for_a_slot() -> None:
    assert wait_in_queue(1, [], slots=10, each=30) == 0
    assert wait_in_queue(5, [10, 20], slots=10, each=30) == 0  # free slots for everyone ahead
    assert wait_in_queue(1, [10, 20], slots=2, each=30) == 10
    # Slots free at 10 and 20; the two jobs ahead take them until 40 and 50; this one starts at 40.
    assert wait_in_queue(3, [20, 10], slots=2, each=30) == 40
    assert wait_in_queue(2, [-5, 10], slots=2, each=30) == 10  # an overdue video counts as ending now


@given(
    st.lists(st.floats(0, 600), min_size=1, max_size=30), st.lists(st.floats(0, 20), min_size=30, max_size=30)
)
def test_the_moment_shown_never_moves_later_by_more_than_the_slack(
    remaining: list[float], gaps: list[float]
) -> None:
    now, shown = NOW, None
    for left, gap in zip(remaining, gaps, strict=False):
        ready_at = steady(left, now, shown)
        if shown is not None:
            assert ready_at <= shown + timedelta(seconds=eta.SLACK_SECONDS)
        assert ready_at <= now + timedelta(seconds=left)  # never later than the estimate itself
        shown, now = ready_at, now + timedelta(seconds=gap)


def test_good_news_shows_at_once() -> None:
    assert steady(10, NOW, NOW + timedelta(seconds=100)) == NOW + timedelta(seconds=10)


# -- the book ------------------------------------------------------------------------------------------


class Records:
    """What the book reads from storage, counted."""

    def __init__(self, history: list[float], in_flight: list[Job] | None = None) -> None:
        self.history = history
        self.in_flight = in_flight or []
        self.reads = 0

    async def generation_seconds(
        self, guild_id: int, model: str, duration: int, *, limit: int
    ) -> list[float]:
        self.reads += 1
        return self.history[:limit]

    async def in_flight_jobs(self, *, limit: int) -> list[Job]:
        return self.in_flight[:limit]


def make(job_id: int, state: JobState, **columns: Any) -> Job:
    values: dict[str, Any] = {
        "id": job_id, "guild_id": 1, "user_id": 2, "channel_id": 3, "interaction_id": job_id, "state": state,
        "estimate_credits": 100, "model": "kling-3.0", "mode": "text_to_video", "prompt": "p", "duration": 5,
        "eta_low_seconds": 60, "eta_high_seconds": 180,
    }  # fmt: skip
    return Job(**(values | columns))


def book(records: Records, slots: int = 2) -> EtaBook:
    return EtaBook(cast(Storage, records), max_in_flight=slots)


async def test_a_card_while_processing_says_the_servers_figure_less_the_time_elapsed() -> None:
    records = Records([8, 8, 8])
    job = make(1, JobState.PROCESSING, submitted_at=NOW - timedelta(seconds=3))
    estimate = await book(records).for_card(job, NOW)
    assert estimate is not None
    assert estimate.seconds == pytest.approx(5)
    assert estimate.ready_at == NOW + timedelta(seconds=5)


async def test_a_queued_card_adds_the_wait_for_a_slot() -> None:
    busy = [make(n, JobState.PROCESSING, submitted_at=NOW - timedelta(seconds=2)) for n in (10, 11)]
    records = Records([8, 8, 8], busy)
    queued = make(1, JobState.QUEUED)
    # Both slots free in 6 s; one job ahead holds one until 14 s; this one starts at 6 s, done at 14 s.
    estimate = await book(records).for_card(queued, NOW, queue_position=2)
    assert estimate is not None
    assert estimate.seconds == pytest.approx(14)
    assert await book(records).for_card(queued, NOW) is None  # no place in line known: nothing said


async def test_the_history_is_read_once_for_a_burst_of_edits() -> None:
    records = Records([8, 8, 8])
    shared = book(records)
    job = make(1, JobState.PROCESSING, submitted_at=NOW)
    for _ in range(20):
        await shared.for_card(job, NOW)
    assert records.reads == 1


async def test_a_card_follows_what_it_showed_and_forgets_the_job_when_done() -> None:
    records = Records([8, 8, 8])
    shared = book(records)
    job = make(1, JobState.PROCESSING, submitted_at=NOW)
    first = await shared.for_card(job, NOW)
    assert first is not None
    shared.shown(first)
    records.history = [60, 60, 60]  # the figure jumps (after the cache's few seconds)
    shared._history.clear()
    later = await shared.for_card(job, NOW + timedelta(seconds=2))
    assert later is not None
    assert later.ready_at == first.ready_at + timedelta(seconds=eta.SLACK_SECONDS)  # not 52 s later at once
    shared.shown(later)
    assert await shared.for_card(make(1, JobState.DELIVERED), NOW) is None
    fresh = await shared.for_card(job, NOW + timedelta(seconds=2))
    assert fresh is not None
    assert fresh.seconds == pytest.approx(58)  # nothing remembered any more


async def test_reviews_and_endings_carry_no_estimate() -> None:
    shared = book(Records([8, 8, 8]))
    for state in (JobState.PENDING_REVIEW, JobState.COMPLETED, JobState.FAILED):
        assert await shared.for_card(make(1, state), NOW, queue_position=1) is None
