"""The transition table itself: what may follow what."""

from __future__ import annotations

from storage.states import ACTIVE_STATES, TERMINAL_STATES, TRANSITIONS, JobState, can_transition


def test_every_state_has_a_row() -> None:
    assert set(TRANSITIONS) == set(JobState)


def test_ending_states() -> None:
    assert {
        JobState.DELIVERED,
        JobState.FAILED,
        JobState.REJECTED,
        JobState.CANCELLED,
        JobState.LOST,
    } == TERMINAL_STATES


def test_documented_edges() -> None:
    assert can_transition("pending_review", "queued")
    assert can_transition("submitting", "queued")  # 429 backoff
    assert can_transition("submitting", "lost")
    assert can_transition("completed", "failed")
    assert not can_transition("processing", "cancelled")  # the provider cannot cancel
    assert not can_transition("queued", "processing")  # must go through submitting
    assert not can_transition("delivered", "failed")


def test_every_state_is_reachable_from_creation() -> None:
    seen = {JobState.PENDING_REVIEW, JobState.QUEUED}
    frontier = list(seen)
    while frontier:
        for target in TRANSITIONS[frontier.pop()]:
            if target not in seen:
                seen.add(target)
                frontier.append(target)
    assert seen == set(JobState)


def test_active_states_are_not_terminal() -> None:
    assert not ACTIVE_STATES & TERMINAL_STATES
