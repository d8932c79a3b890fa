"""The circuit breaker's decisions, one state and one answer at a time (no database, no clock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from generation import breaker
from generation.outcomes import Fail, Lose, Pause, Requeue, Started
from storage import AccountState
from ulazai.errors import (
    AuthenticationError,
    BadRequestError,
    InsufficientCreditsError,
    RateLimitedError,
    UpstreamError,
)
from ulazai.results import EstimatedTime

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
MINUTE = timedelta(seconds=60)
PAUSED = AccountState(paused=True, status=402, message="no credits", since=NOW, last_probe_at=NOW)
STARTED = Started("t", 55, EstimatedTime(60, 90), 60.0)


def test_a_healthy_line_submits_and_never_probes() -> None:
    assert breaker.may_submit(AccountState())
    assert not breaker.probe_due(AccountState(), NOW, MINUTE)


def test_a_paused_line_probes_once_an_interval_after_the_last_probe() -> None:
    assert not breaker.may_submit(PAUSED)
    assert not breaker.probe_due(PAUSED, NOW + timedelta(seconds=59), MINUTE)
    assert breaker.probe_due(PAUSED, NOW + MINUTE, MINUTE)
    # /kling-admin resume clears the last probe: due at once.
    assert breaker.probe_due(AccountState(paused=True, status=402, since=NOW), NOW, MINUTE)


def test_a_401_or_402_pauses_and_the_first_accepted_generate_resumes() -> None:
    assert breaker.after_generate(Pause(402, "no credits"), AccountState()).pause == Pause(402, "no credits")
    assert breaker.after_generate(Pause(401, "bad key"), PAUSED).pause == Pause(401, "bad key")
    assert breaker.after_generate(STARTED, PAUSED) == breaker.Verdict(resume=True)
    assert breaker.after_generate(STARTED, AccountState()) == breaker.Verdict()


@given(
    outcome=st.sampled_from([Fail("policy", "HTTP 400"), Requeue(5.0), Lose("lost", "timed out")]),
    paused=st.booleans(),
)
def test_nothing_else_a_probe_meets_moves_the_line(outcome: Fail | Requeue | Lose, paused: bool) -> None:
    assert breaker.after_generate(outcome, PAUSED if paused else AccountState()) == breaker.Verdict()


def test_only_the_accounts_troubles_pause_from_an_upload() -> None:
    assert breaker.pause_for(InsufficientCreditsError("empty", status=402)) == Pause(402, "empty")
    assert breaker.pause_for(AuthenticationError("revoked", status=401)) == Pause(401, "revoked")
    for other in (
        BadRequestError("no", status=400),
        RateLimitedError("slow"),
        UpstreamError("down", status=502),
    ):
        assert breaker.pause_for(other) is None


def test_the_trouble_is_read_from_the_status() -> None:
    assert breaker.trouble_of(401) is breaker.Trouble.KEY_REFUSED
    assert breaker.trouble_of(402) is breaker.Trouble.OUT_OF_CREDITS
