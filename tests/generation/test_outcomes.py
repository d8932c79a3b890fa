"""The worker's decisions, one answer at a time (no database, no Discord, no clock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from generation import outcomes
from generation.outcomes import Complete, Fail, Lose, Pause, PollAgain, Requeue, Started
from storage import DeliveredVia, Job, JobState
from ulazai.errors import (
    AuthenticationError,
    BadRequestError,
    InsufficientCreditsError,
    InvalidRequestError,
    MalformedResponseError,
    ProviderTimeoutError,
    RateLimitedError,
    UpstreamError,
)
from ulazai.pricing import estimate_credits
from ulazai.requests import KlingModel, VideoSpec
from ulazai.results import DEFAULT_ESTIMATED_TIME, EstimatedTime, TaskResult, TaskStatus

SPEC = VideoSpec(model=KlingModel.V3_0, prompt="a fox in the snow", duration=5, directory_optin=True)
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
TIMEOUT = timedelta(minutes=30)


def accepted(**kwargs: object) -> TaskResult:
    return TaskResult(model=KlingModel.V3_0, task_id="task-1", status=TaskStatus.PENDING, **kwargs)  # type: ignore[arg-type]


# -- after a generate call --------------------------------------------------------------------------


def test_an_accepted_task_settles_to_the_providers_credits_and_polls_at_the_estimates_start() -> None:
    outcome = outcomes.after_generate(
        accepted(credits_used=42, estimated_time=EstimatedTime(90, 120)), spec=SPEC, attempts=1
    )
    assert outcome == Started("task-1", 42, EstimatedTime(90, 120), 90.0)


def test_without_credits_used_it_settles_to_the_discounted_table_price() -> None:
    outcome = outcomes.after_generate(accepted(), spec=SPEC, attempts=1)
    assert isinstance(outcome, Started)
    assert outcome.credits == estimate_credits(SPEC)  # the discount the request carries
    assert outcome.credits < estimate_credits(SPEC, include_discount=False)
    assert outcome.estimate == DEFAULT_ESTIMATED_TIME


def test_a_rate_limit_requeues_after_retry_after_or_an_exponential_backoff() -> None:
    assert outcomes.after_generate(
        RateLimitedError("slow", retry_after=7.0), spec=SPEC, attempts=3
    ) == Requeue(7.0)
    assert outcomes.after_generate(RateLimitedError("slow"), spec=SPEC, attempts=1) == Requeue(10.0)
    assert outcomes.after_generate(RateLimitedError("slow"), spec=SPEC, attempts=2) == Requeue(20.0)
    assert outcomes.after_generate(RateLimitedError("slow"), spec=SPEC, attempts=9) == Requeue(300.0)


def test_a_400_fails_only_that_job_with_a_reason_and_an_operator_detail() -> None:
    outcome = outcomes.after_generate(BadRequestError("prompt too long", status=400), spec=SPEC, attempts=1)
    assert isinstance(outcome, Fail)
    assert outcome.reason == "UlazAI refused the request: prompt too long"
    assert outcome.detail == "UlazAI refused it (HTTP 400): prompt too long"


@pytest.mark.parametrize(
    "error",
    [InsufficientCreditsError("no credits", status=402), AuthenticationError("bad key", status=401)],
)
def test_a_401_or_402_pauses_the_line_instead_of_failing_the_job(error: Exception) -> None:
    outcome = outcomes.after_generate(error, spec=SPEC, attempts=1)  # type: ignore[arg-type]
    assert outcome == Pause(error.status, error.message)  # type: ignore[attr-defined]


def test_a_request_the_rules_refuse_fails_with_the_rules_sentence() -> None:
    outcome = outcomes.after_generate(InvalidRequestError("Pick 5 or 10 s."), spec=SPEC, attempts=1)
    assert outcome == Fail("Pick 5 or 10 s.")


@pytest.mark.parametrize(
    "error",
    [
        ProviderTimeoutError("timed out"),
        UpstreamError("bad gateway", status=502),
        MalformedResponseError("junk"),
    ],
)
def test_an_unknown_outcome_is_lost_never_retried(error: Exception) -> None:
    outcome = outcomes.after_generate(error, spec=SPEC, attempts=1)  # type: ignore[arg-type]
    assert isinstance(outcome, Lose)
    assert outcome.reason == outcomes.LOST_REASON
    assert "dashboard" in outcome.detail


# -- after a status call ----------------------------------------------------------------------------


def status(state: TaskStatus, **kwargs: object) -> TaskResult:
    return TaskResult(model=KlingModel.V2_6, task_id="task-1", status=state, **kwargs)  # type: ignore[arg-type]


ESTIMATE = EstimatedTime(60, 180)


def poll(answer: object, *, elapsed: float, estimate: EstimatedTime = ESTIMATE) -> object:
    return outcomes.after_status(
        answer,  # type: ignore[arg-type]
        submitted_at=NOW - timedelta(seconds=elapsed),
        now=NOW,
        estimate=estimate,
        timeout=TIMEOUT,
    )


def test_a_completed_task_is_delivered() -> None:
    answer = status(TaskStatus.COMPLETED, video_url="https://cdn.example/v.mp4", credits_charged=30)
    assert poll(answer, elapsed=100) == Complete("https://cdn.example/v.mp4", 30)


def test_a_failed_task_fails_with_the_providers_words_or_a_default() -> None:
    assert poll(status(TaskStatus.FAILED, error="content policy"), elapsed=100) == Fail("content policy")
    assert poll(status(TaskStatus.FAILED), elapsed=100) == Fail("UlazAI could not make this video")


def test_a_failing_status_call_is_retried_until_the_timeout() -> None:
    assert poll(UpstreamError("down", status=503), elapsed=100) == PollAgain(outcomes.STATUS_RETRY_SECONDS)
    assert poll(UpstreamError("down", status=503), elapsed=TIMEOUT.total_seconds() + 1) == Fail(
        "UlazAI stopped answering"
    )


def test_a_task_past_the_timeout_fails_with_the_time_in_words() -> None:
    outcome = poll(status(TaskStatus.PROCESSING), elapsed=TIMEOUT.total_seconds() + 1)
    assert outcome == Fail("still not ready after 30 minutes")
    assert outcomes.timeout_text(timedelta(seconds=90)) == "90 seconds"


def test_progress_predicts_the_next_poll_and_is_passed_on() -> None:
    outcome = poll(status(TaskStatus.PROCESSING, progress=49), elapsed=50)
    assert outcome == PollAgain(30.0, 49)  # ends no sooner than 100 s: capped at the 30 s ceiling
    outcome = poll(status(TaskStatus.PROCESSING, progress=79), elapsed=80)
    assert outcome == PollAgain(20.0, 79)


@given(
    elapsed=st.floats(min_value=0, max_value=TIMEOUT.total_seconds()), progress=st.none() | st.integers(0, 99)
)
def test_a_poll_never_sleeps_past_the_deadline(elapsed: float, progress: int | None) -> None:
    outcome = poll(status(TaskStatus.PROCESSING, progress=progress), elapsed=elapsed)
    assert isinstance(outcome, PollAgain)
    assert 1.0 <= outcome.delay <= max(30.0, ESTIMATE.low)  # before the estimate, it waits for its start
    assert elapsed + outcome.delay <= max(TIMEOUT.total_seconds() + 0.5, elapsed + 1.0) + 1e-3  # µs rounding


# -- settling and posting ---------------------------------------------------------------------------


def job(**values: Any) -> Job:
    base: dict[str, Any] = {
        "guild_id": 1,
        "user_id": 2,
        "channel_id": 3,
        "interaction_id": 4,
        "state": JobState.FAILED,
        "model": "kling-3.0",
        "mode": "text_to_video",
        "prompt": "p",
        "duration": 5,
        "estimate_credits": 150,
    }
    return Job(**(base | values))


def test_the_refund_is_the_hold_before_settlement_and_the_paid_part_after() -> None:
    assert outcomes.refunded_credits(job()) == 150
    assert outcomes.refunded_credits(job(credits_used=120)) == 120
    assert outcomes.refunded_credits(job(credits_used=200, shortfall_credits=30)) == 170


def test_upload_limits_and_link_reasons() -> None:
    mib = 1024 * 1024
    assert outcomes.upload_limit(None) == 10 * mib
    assert outcomes.upload_limit(50 * mib) == 50 * mib
    assert outcomes.download_limit(512 * mib, 10 * mib) == 10 * mib
    assert outcomes.over_limit_reason(5 * mib, 10 * mib) is None
    assert outcomes.over_limit_reason(12 * mib, 10 * mib) == (
        "it is 12.0 MB, more than this server's 10.0 MB upload limit"
    )
    assert (
        outcomes.too_large_reason(None, 10 * mib, 10 * mib)
        == "it is, more than this server's 10.0 MB upload limit"
    )
    assert outcomes.too_large_reason(600 * mib, 512 * mib, 1024 * mib) == (
        "it is 600.0 MB larger than the 512.0 MB this bot downloads"
    )


def test_delivery_notes_say_how_it_went() -> None:
    assert outcomes.delivery_notes(DeliveredVia.ATTACHMENT) == "attached"
    assert outcomes.delivery_notes(DeliveredVia.LINK, "it is big") == "posted as a link: it is big"
    assert outcomes.delivery_notes(DeliveredVia.DIRECT_MESSAGE, "gone") == "sent by direct message: gone"
