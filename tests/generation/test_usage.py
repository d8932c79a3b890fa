"""The usage report's figures over plain jobs: windows, sums, buckets, the budget's pace, the CSV."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

from generation import usage
from generation.usage import UsagePeriod
from storage import Job, JobState, Period

NOW = datetime(2026, 12, 2, 15, 30, tzinfo=UTC)


def job(
    job_id: int, state: JobState, *, model: str = "kling-2.6", user: int = 10, hours_ago: float = 1, **kw: Any
) -> Job:
    values: dict[str, Any] = {
        "id": job_id,
        "interaction_id": job_id,
        "guild_id": 1,
        "user_id": user,
        "channel_id": 5,
        "state": state,
        "model": model,
        "mode": "text_to_video",
        "prompt": "a secret prompt, never in the CSV",
        "duration": 5,
        "estimate_credits": 55,
        "credit_period_start": NOW,
        "created_at": NOW - timedelta(hours=hours_ago),
        **kw,
    }
    return Job(**values)


def test_windows_end_now_and_bucket_by_whole_hours_or_days() -> None:
    day = usage.window(UsagePeriod.DAY, NOW)
    assert (day.start, day.end, day.hourly) == (NOW - timedelta(hours=24), NOW, True)
    assert day.buckets[0] == datetime(2026, 12, 1, 15, tzinfo=UTC)
    assert day.buckets[-1] == datetime(2026, 12, 2, 15, tzinfo=UTC)
    assert len(day.buckets) == 25  # the first and the last are partial hours
    week = usage.window(UsagePeriod.WEEK, NOW)
    assert (week.buckets[0], week.buckets[-1], len(week.buckets)) == (
        datetime(2026, 11, 25, tzinfo=UTC),
        datetime(2026, 12, 2, tzinfo=UTC),
        8,
    )
    assert len(usage.window(UsagePeriod.MONTH, NOW).buckets) == 31


def test_spent_is_what_members_paid_and_refunds_are_the_failed_and_lost_jobs() -> None:
    jobs = [
        job(1, JobState.DELIVERED, spent_allowance=50, credits_used=55, completed_at=NOW),  # 5 short
        job(2, JobState.DELIVERED, model="kling-3.0", user=11, spent_bonus=100, credits_used=100),
        job(3, JobState.FAILED, credits_used=55),  # refunded what it settled to
        job(4, JobState.LOST),  # refunded its hold
        job(5, JobState.CANCELLED),
        job(6, JobState.QUEUED, hold_allowance=55),  # held, not spent
        job(7, JobState.FAILED, user=12, spent_allowance=55, credits_used=55, completed_at=NOW),  # kept
    ]
    summary = usage.summarise(jobs)
    assert (summary.jobs, summary.spent, summary.delivered, summary.failed, summary.refunded) == (
        7,
        205,
        2,
        3,
        110,
    )
    assert summary.top_members == [(11, 100), (12, 55), (10, 50)]
    assert summary.by_model == {"kling-2.6": (6, 105), "kling-3.0": (1, 100)}


def test_the_top_members_are_five_and_ties_go_to_the_older_account() -> None:
    jobs = [job(n, JobState.DELIVERED, user=100 - n, spent_allowance=10) for n in range(8)]
    assert [user for user, _ in usage.summarise(jobs).top_members] == [93, 94, 95, 96, 97]


def test_series_stacks_credits_per_bucket_and_model() -> None:
    win = usage.window(UsagePeriod.DAY, NOW)
    jobs = [
        job(1, JobState.DELIVERED, hours_ago=0.25, spent_allowance=55),
        job(2, JobState.DELIVERED, hours_ago=0.5, model="kling-3.0", spent_allowance=100),
        job(3, JobState.DELIVERED, hours_ago=23.4, spent_allowance=40),  # 16:06 yesterday
        job(4, JobState.DELIVERED, hours_ago=48, spent_allowance=999),  # outside the window
    ]
    per_model = usage.series(jobs, win)
    assert list(per_model) == ["kling-2.6", "kling-3.0"]
    assert per_model["kling-2.6"][-1] == 55
    assert per_model["kling-3.0"][-1] == 100
    assert per_model["kling-2.6"][1] == 40
    assert sum(per_model["kling-2.6"]) == 95


def test_the_budget_pace_is_per_bucket() -> None:
    day, week = usage.window(UsagePeriod.DAY, NOW), usage.window(UsagePeriod.WEEK, NOW)
    assert usage.budget_pace(None, Period.DAILY, week) is None
    assert usage.budget_pace(240, Period.DAILY, week) == 240
    assert usage.budget_pace(240, Period.DAILY, day) == 10
    assert usage.budget_pace(3100, Period.MONTHLY, week) == 100  # December has 31 days


def test_the_csv_has_one_row_per_job_and_never_the_prompt() -> None:
    jobs = [
        job(1, JobState.DELIVERED, quality="pro", sound=True, spent_allowance=55, delivered_at=NOW),
        job(2, JobState.QUEUED, hold_allowance=55),
    ]
    text = usage.csv_text(jobs)
    assert "secret" not in text
    rows = list(csv.reader(io.StringIO(text)))
    assert tuple(rows[0]) == usage.CSV_COLUMNS
    assert rows[1] == [
        "1", "10", "kling-2.6", "text_to_video", "5", "pro", "yes", "55", "55", "delivered",
        (NOW - timedelta(hours=1)).isoformat(), NOW.isoformat(),
    ]  # fmt: skip
    assert rows[2][5:] == ["", "no", "55", "0", "queued", (NOW - timedelta(hours=1)).isoformat(), ""]
