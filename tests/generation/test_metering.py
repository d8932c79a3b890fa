"""What each storage event counts, and how posts are counted (a real registry, no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from generation import metering
from storage import DeliveredVia, Job, JobState
from telemetry.metrics import Metrics

NOW = datetime(2026, 12, 2, 15, 30, tzinfo=UTC)


def job(state: JobState, **kw: Any) -> Job:
    values: dict[str, Any] = {
        "id": 1,
        "guild_id": 1,
        "user_id": 10,
        "state": state,
        "model": "kling-2.6",
        "estimate_credits": 55,
        "created_at": NOW,
        **kw,
    }
    return Job(**values)


def value(metrics: Metrics, name: str, **labels: str) -> float:
    found = metrics.registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def test_each_event_counts_the_state_reached_and_the_credits_moved() -> None:
    m = Metrics(models=["kling-2.6"])
    metering.count(m, "create", job(JobState.QUEUED))
    metering.count(m, "create", job(JobState.PENDING_REVIEW))  # reserved, but not queued yet
    metering.count(m, "approve", job(JobState.QUEUED))
    metering.count(m, "mark_submitting", job(JobState.SUBMITTING))
    metering.count(m, "mark_processing", job(JobState.PROCESSING, spent_allowance=40, spent_bonus=10))
    metering.count(m, "requeue_with_backoff", job(JobState.QUEUED))  # back in line: not counted again
    metering.count(m, "mark_delivered", job(JobState.DELIVERED))
    metering.count(m, "fail", job(JobState.FAILED, credits_used=55, shortfall_credits=5))
    metering.count(m, "fail", job(JobState.FAILED, credits_used=55, completed_at=NOW))  # kept its cost
    metering.count(m, "recover_lost_submissions", job(JobState.LOST))
    metering.count(m, "cancel", job(JobState.CANCELLED))
    metering.count(m, "reject", job(JobState.REJECTED))
    states = {s: value(m, "kling_jobs_total", model="kling-2.6", state=s) for s in metering.REACHED.values()}
    assert states == {"queued": 2, "delivered": 1, "failed": 2, "lost": 1, "cancelled": 1, "rejected": 1}
    assert value(m, "kling_credits_total", kind="reserved") == 110
    assert value(m, "kling_credits_total", kind="charged") == 50
    assert value(m, "kling_credits_total", kind="refunded") == 50 + 55 + 55 + 55


def test_a_post_counts_its_way_and_its_delay() -> None:
    m = Metrics()
    posted = job(JobState.DELIVERED, delivered_via=DeliveredVia.DIRECT_MESSAGE, completed_at=NOW)
    posted.delivered_at = NOW + timedelta(seconds=1.5)
    metering.posted(m, posted)
    metering.posted(m, job(JobState.DELIVERED, delivered_via=DeliveredVia.LINK))
    assert value(m, "kling_videos_posted_total", via="dm") == 1
    assert value(m, "kling_videos_posted_total", via="link") == 1
    assert value(m, "kling_videos_posted_total", via="attachment") == 0
    assert value(m, "kling_delivery_delay_seconds_count") == 1
    assert value(m, "kling_delivery_delay_seconds_sum") == 1.5
