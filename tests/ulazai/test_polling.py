"""The poll schedule and the provider rate limiter."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ulazai.completion import MIN_GAP, CompletionWindow
from ulazai.polling import (
    IN_RANGE_INTERVAL,
    MAX_INTERVAL,
    MIN_INTERVAL,
    estimate_window,
    first_poll_delay,
    next_poll_delay,
    progress_share,
)
from ulazai.ratelimit import RateLimiter
from ulazai.results import EstimatedTime

RANGE = EstimatedTime(60, 180)


def test_first_poll_waits_for_the_lower_bound() -> None:
    assert first_poll_delay(RANGE) == 60
    assert first_poll_delay(EstimatedTime(1, 2)) == MIN_INTERVAL
    assert first_poll_delay(None) == 10


def test_progress_points_at_the_earliest_possible_end() -> None:
    # 33 % after 60 s of a 180 s task: it cannot end before 60*100/34 = 176.5 s.
    assert next_poll_delay(elapsed=60, estimate=RANGE, progress=33) == MAX_INTERVAL
    assert next_poll_delay(elapsed=170, estimate=RANGE, progress=94) == pytest.approx(170 * 100 / 95 - 170)
    assert next_poll_delay(elapsed=179, estimate=RANGE, progress=99) == MIN_INTERVAL


def test_without_progress_the_estimate_window_then_back_off() -> None:
    window = estimate_window(60, 180)
    assert next_poll_delay(elapsed=30, estimate=RANGE, progress=None) == 30  # the window starts at 60 s
    assert next_poll_delay(elapsed=60, estimate=RANGE, progress=None) == pytest.approx(window.polls[1] - 60)
    gaps = [b - a for a, b in zip(window.polls, window.polls[1:], strict=False)]
    assert gaps[0] > gaps[-1]  # sparse while most tasks still run, denser as fewer are left
    assert next_poll_delay(elapsed=100, estimate=RANGE, progress=None) <= 10
    past = [next_poll_delay(elapsed=180 + 5 * n, estimate=RANGE, progress=None) for n in range(12)]
    assert past == sorted(past)
    assert past[0] == IN_RANGE_INTERVAL
    assert past[-1] == MAX_INTERVAL


def test_a_learned_window_is_used_over_the_estimate() -> None:
    learned = CompletionWindow.learned([100 + n for n in range(40)])
    assert first_poll_delay(RANGE, learned) == 100
    assert next_poll_delay(elapsed=100, estimate=RANGE, progress=None, window=learned) < 10
    # Kling 2.6's progress still decides when it has some.
    assert next_poll_delay(elapsed=60, estimate=RANGE, progress=33, window=learned) == MAX_INTERVAL


@given(
    elapsed=st.floats(0, 10_000),
    low=st.integers(1, 600),
    spread=st.integers(0, 600),
    progress=st.none() | st.integers(0, 100),
)
def test_delays_stay_within_bounds(elapsed: float, low: int, spread: int, progress: int | None) -> None:
    delay = next_poll_delay(elapsed=elapsed, estimate=EstimatedTime(low, low + spread), progress=progress)
    assert MIN_GAP <= delay <= max(MAX_INTERVAL, low)
    share = progress_share(elapsed=elapsed, estimate=EstimatedTime(low, low + spread), progress=progress)
    assert 0 <= share < 1


async def test_rate_limiter_spaces_calls() -> None:
    now = [0.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(5, clock=lambda: now[0], sleep=sleep)
    await asyncio.gather(*(limiter.acquire() for _ in range(11)))
    assert now[0] == pytest.approx(2.0)  # 11 calls at 5/s: the last starts 2 s after the first
    assert slept == pytest.approx([0.2] * 10)


async def test_rate_limiter_in_real_time() -> None:
    limiter = RateLimiter(50)
    loop = asyncio.get_running_loop()
    started = loop.time()
    stamps = []
    for _ in range(10):
        await limiter.acquire()
        stamps.append(loop.time() - started)
    assert stamps[-1] >= 9 / 50 - 0.005
    with pytest.raises(ValueError, match="positive"):
        RateLimiter(0)
