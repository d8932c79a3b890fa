"""Status calls where completions are likely: the schedule learned from completion times."""

from __future__ import annotations

import random
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ulazai.completion import LEARNED_INTERVAL, MIN_GAP, MIN_SAMPLES, CompletionWindow


def found(window: CompletionWindow, completes_at: float) -> tuple[float, int]:
    """The delay until a task completing at ``completes_at`` is seen done, and the calls it took (past
    the window, every 5 s)."""
    moment, calls = window.first_delay(), 1
    while moment < completes_at:
        moment += window.next_delay(moment) or 5.0
        calls += 1
    return moment - completes_at, calls


def test_the_schedule_starts_at_the_earliest_completion_and_ends_at_the_latest() -> None:
    window = CompletionWindow.learned([60.0 + 2.4 * n for n in range(51)])
    assert window.polls[0] == 60
    assert window.polls[-1] == pytest.approx(180)
    assert window.source == "learned"
    gaps = [b - a for a, b in zip(window.polls, window.polls[1:], strict=False)]
    assert min(gaps) >= MIN_GAP / 2
    assert gaps[0] > 2 * gaps[-2]  # ~1/sqrt(S): sparse first, dense where few tasks are left
    assert window.next_delay(181) is None  # past what was ever seen: the caller backs off
    assert window.next_delay(10) == pytest.approx(50)


def test_it_finds_completions_sooner_than_even_polling_for_fewer_calls() -> None:
    rng = random.Random(7)
    window = CompletionWindow.learned([rng.uniform(60, 180) for _ in range(200)])
    tasks = [rng.uniform(60, 180) for _ in range(4000)]
    learned = [found(window, t) for t in tasks]
    even = CompletionWindow(tuple(60.0 + LEARNED_INTERVAL * n for n in range(25)), "even")  # 60, 65, ... 180
    fixed = [found(even, t) for t in tasks]
    assert statistics.mean(c for _, c in learned) < statistics.mean(c for _, c in fixed)
    assert statistics.median(d for d, _ in learned) < statistics.median(d for d, _ in fixed)
    assert statistics.mean(d for d, _ in learned) < statistics.mean(d for d, _ in fixed)


def test_too_little_history_is_refused_and_the_estimate_stands_in() -> None:
    with pytest.raises(ValueError, match="at least"):
        CompletionWindow.learned([100.0] * (MIN_SAMPLES - 1))
    estimate = CompletionWindow.estimate(60, 180)
    assert (estimate.polls[0], estimate.source) == (60, "estimate")
    assert estimate.polls[-1] == pytest.approx(180)
    assert CompletionWindow.estimate(1, 2).polls == (1, 2)  # a short range: its two ends


@given(st.lists(st.floats(0, 3600), min_size=MIN_SAMPLES, max_size=60), st.floats(0, 4000))
def test_any_history_gives_a_usable_schedule(samples: list[float], elapsed: float) -> None:
    window = CompletionWindow.learned(samples)
    assert list(window.polls) == sorted(window.polls)
    assert window.first_delay() >= MIN_GAP
    delay = window.next_delay(elapsed)
    assert delay is None or delay >= MIN_GAP
