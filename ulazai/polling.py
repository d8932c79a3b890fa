"""When to ask the provider about a task again: adaptive, so videos post soon after they finish
without spending more status calls than a fixed poll would.

* The first status call waits for the lower bound of the provider's estimate (nothing finishes sooner).
* Kling 2.6 reports ``progress``. With progress ``p`` after ``t`` seconds the task ends no sooner than
  ``100·t/(p+1)`` seconds (progress is a floor), so the next call goes there: a handful of calls land
  within a second or two of completion.
* Kling 3.0 reports no progress: inside the estimated range we poll at a short interval; past its upper
  bound we back off exponentially to a ceiling, since something slower than promised is rarely about
  to finish this instant.
"""

from __future__ import annotations

from ulazai.results import EstimatedTime

#: Never ask more often than this (seconds), whatever the progress says.
MIN_INTERVAL = 1.5
#: Inside the estimated range, without progress to go on.
IN_RANGE_INTERVAL = 5.0
#: Never wait longer than this between two status calls.
MAX_INTERVAL = 30.0


def first_poll_delay(estimate: EstimatedTime | None) -> float:
    """Seconds from submission to the first status call."""
    return float(max(MIN_INTERVAL, estimate.low)) if estimate else 10.0


def next_poll_delay(
    *,
    elapsed: float,
    estimate: EstimatedTime | None,
    progress: int | None,
    overdue_polls: int = 0,
) -> float:
    """Seconds until the next status call, ``elapsed`` seconds after submission.

    ``overdue_polls`` counts the calls already made past the estimate's upper bound (for back-off).
    """
    if progress is not None and 0 < progress < 100:
        earliest_end = elapsed * 100.0 / (progress + 1)
        return min(MAX_INTERVAL, max(MIN_INTERVAL, earliest_end - elapsed))
    if estimate is None:
        return IN_RANGE_INTERVAL
    if elapsed < estimate.low:
        return max(MIN_INTERVAL, estimate.low - elapsed)
    if elapsed <= estimate.high:
        return min(IN_RANGE_INTERVAL, max(MIN_INTERVAL, estimate.high - elapsed))
    return min(MAX_INTERVAL, IN_RANGE_INTERVAL * 1.5 ** max(0, overdue_polls))


def progress_share(*, elapsed: float, estimate: EstimatedTime | None, progress: int | None) -> float:
    """How far along the task looks, 0..1: the provider's progress, else the elapsed share of the
    estimate's upper bound (capped below 1: only "completed" means done)."""
    if progress is not None:
        return max(0.0, min(0.99, progress / 100.0))
    if estimate is None or estimate.high <= 0:
        return 0.0
    return max(0.0, min(0.95, elapsed / estimate.high))
