"""When to ask the provider about a task again: adaptive, so videos post soon after they finish
without spending more status calls than a fixed poll would.

* Without a progress signal (Kling 3.0), the calls follow a :class:`~ulazai.completion.CompletionWindow`:
  learned from when similar tasks finished (the worker supplies it), or made from the provider's
  estimated range when there is no history yet. The first call goes at the window's start (nothing
  finished sooner), the others where completions are likely (see :mod:`ulazai.completion`).
* Kling 2.6 reports ``progress``. With progress ``p`` after ``t`` seconds the task ends no sooner than
  ``100·t/(p+1)`` seconds (progress is a floor), so the next call goes there: a handful of calls land
  within a second or two of completion.
* Past the window's end, something slower than ever seen is rarely about to finish this instant: the
  calls back off exponentially to a ceiling.
"""

from __future__ import annotations

import functools

from ulazai.completion import CompletionWindow
from ulazai.results import EstimatedTime

#: Never ask more often than this (seconds), whatever the progress says.
MIN_INTERVAL = 1.5
#: Past the window, the first back-off step (seconds).
IN_RANGE_INTERVAL = 5.0
#: Never wait longer than this between two status calls.
MAX_INTERVAL = 30.0
#: Without an estimate or a window, the first call after this long.
NO_ESTIMATE_FIRST_POLL = 10.0


@functools.lru_cache(maxsize=256)
def estimate_window(low: int, high: int) -> CompletionWindow:
    """The schedule for a task the provider estimated at ``low``-``high`` seconds, with no history."""
    return CompletionWindow.estimate(float(low), float(high))


def first_poll_delay(estimate: EstimatedTime | None, window: CompletionWindow | None = None) -> float:
    """Seconds from submission to the first status call."""
    if window is None and estimate is not None:
        window = estimate_window(estimate.low, estimate.high)
    return max(MIN_INTERVAL, window.first_delay()) if window is not None else NO_ESTIMATE_FIRST_POLL


def next_poll_delay(
    *,
    elapsed: float,
    estimate: EstimatedTime | None,
    progress: int | None,
    window: CompletionWindow | None = None,
) -> float:
    """Seconds until the next status call, ``elapsed`` seconds after submission (``window``: the
    learned schedule, else one from ``estimate``)."""
    if progress is not None and 0 < progress < 100:
        earliest_end = elapsed * 100.0 / (progress + 1)
        return min(MAX_INTERVAL, max(MIN_INTERVAL, earliest_end - elapsed))
    if window is None and estimate is not None:
        window = estimate_window(estimate.low, estimate.high)
    if window is None:
        return IN_RANGE_INTERVAL
    delay = window.next_delay(elapsed)
    if delay is not None:
        return delay
    overdue = min(20, int(max(0.0, elapsed - window.end) // IN_RANGE_INTERVAL))  # 1.5**20 is past the ceiling
    return min(MAX_INTERVAL, IN_RANGE_INTERVAL * 1.5**overdue)


def progress_share(*, elapsed: float, estimate: EstimatedTime | None, progress: int | None) -> float:
    """How far along the task looks, 0..1: the provider's progress, else the elapsed share of the
    estimate's upper bound (capped below 1: only "completed" means done)."""
    if progress is not None:
        return max(0.0, min(0.99, progress / 100.0))
    if estimate is None or estimate.high <= 0:
        return 0.0
    return max(0.0, min(0.95, elapsed / estimate.high))
