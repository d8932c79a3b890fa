"""Status calls placed where completions are likely, from how long similar tasks took.

A task that reports no progress (Kling 3.0) says nothing until it is done, so the only thing to go on is
when tasks like it finished before: the completion times of the server's finished jobs with the same
model, duration and quality (or, with no such history, the provider's ``estimated_time`` read as
"anywhere in this range"). :class:`CompletionWindow` turns those times into a poll schedule.

Why this schedule. Poll at a rate λ(t) (calls per second, ``t`` seconds after submission). A task that
completes at ``t`` is found about ``1 / (2 λ(t))`` later, and a task is only polled while it is still
running, which it is with probability S(t) (the survival function). So the expected delay is
``∫ f(t) / (2 λ(t)) dt`` for ``∫ λ(t) S(t) dt`` status calls, ``f`` the density of completion times;
for a given number of calls the delay is smallest with ``λ(t) ∝ sqrt(f(t) / S(t))``, the square root of
the hazard. For completions spread evenly over a window (``f`` constant) that is ``λ ∝ 1 / sqrt(S(t))``:
sparse where most tasks are still running, denser as fewer are left (those still running are ever more
likely to be about to finish).

The number of calls is set to what polling every :data:`LEARNED_INTERVAL` seconds inside the window
would cost; the schedule spends it where it finds completions sooner. The density comes from the
samples in about √n bins of equal count (a histogram whose bins hold as many completions each), not
from the gaps between single samples, which would make it as noisy as they are. The first call goes at the
earliest completion seen; no call follows another by less than :data:`MIN_GAP`; a task still running
past the last completion seen is an outlier, and the schedule hands over to the caller's back-off.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

#: The cost the schedule is given: as many calls as polling this often (seconds) inside the window,
#: as the worker did before it learned (so the calls are no more, only better placed).
LEARNED_INTERVAL: Final = 5.0
#: No two status calls closer than this (seconds).
MIN_GAP: Final = 1.0
#: Steps of the numeric integration over the window.
GRID: Final = 400
#: Completion times needed before they are trusted over the provider's estimate.
MIN_SAMPLES: Final = 20


@dataclass(frozen=True, slots=True)
class CompletionWindow:
    """A poll schedule: seconds after submission, ascending; see the module docstring."""

    polls: tuple[float, ...]
    #: ``learned`` from finished jobs, or ``estimate`` (the provider's range, no history yet).
    source: str

    @classmethod
    def learned(cls, samples: Sequence[float]) -> CompletionWindow:
        """The schedule for tasks whose like took ``samples`` seconds (at least :data:`MIN_SAMPLES`)."""
        ordered = sorted(max(0.0, s) for s in samples)
        if len(ordered) < MIN_SAMPLES:
            raise ValueError(f"need at least {MIN_SAMPLES} completion times, got {len(ordered)}")
        return cls(_schedule(ordered), "learned")

    @classmethod
    def estimate(cls, low: float, high: float) -> CompletionWindow:
        """The schedule for completions anywhere in the provider's estimate ``low``..``high``."""
        low, high = max(0.0, low), max(low, high)
        if high - low < MIN_GAP:
            return cls((max(MIN_GAP, low),), "estimate")
        steps = max(MIN_SAMPLES, GRID // 4)
        evenly = [low + (high - low) * (n + 0.5) / steps for n in range(steps)]
        return cls(_schedule([low, *evenly, high]), "estimate")

    @property
    def end(self) -> float:
        return self.polls[-1]

    def first_delay(self) -> float:
        """Seconds from submission to the first status call."""
        return max(MIN_GAP, self.polls[0])

    def next_delay(self, elapsed: float) -> float | None:
        """Seconds until the next status call, ``elapsed`` seconds after submission; ``None`` past the
        window's end (the caller backs off)."""
        index = bisect.bisect_right(self.polls, elapsed + MIN_GAP / 2)
        if index >= len(self.polls):
            return None
        return max(MIN_GAP, self.polls[index] - elapsed)


def _schedule(ordered: list[float]) -> tuple[float, ...]:
    """Poll times with density ``c * sqrt(f / S)`` over ``[ordered[0], ordered[-1]]`` (see the module
    docstring), ``f`` and ``S`` from the samples' equal-count bins, linear within each."""
    start, end = ordered[0], ordered[-1]
    if end - start < MIN_GAP:
        return (max(MIN_GAP, start),)
    bins = max(4, round(math.sqrt(len(ordered))))
    ordered = [ordered[round(k * (len(ordered) - 1) / bins)] for k in range(bins + 1)]  # equal-count knots
    n = len(ordered)
    step = (end - start) / GRID

    def cdf(t: float) -> float:
        """The share of samples at or below ``t``, interpolated linearly between order statistics."""
        right = bisect.bisect_right(ordered, t)
        if right == 0:
            return 0.0
        if right >= n:
            return 1.0
        low, high = ordered[right - 1], ordered[right]
        between = 0.0 if high == low else (t - low) / (high - low)
        return (right - 1 + between) / (n - 1)

    edges = [start + step * k for k in range(GRID + 1)]
    shares = [cdf(t) for t in edges]
    rates: list[float] = []  # sqrt(hazard) on each step, before scaling
    alive: list[float] = []  # S at each step's middle
    for k in range(GRID):
        mass = shares[k + 1] - shares[k]
        survival = max(1.0 - (shares[k] + shares[k + 1]) / 2, 1.0 / (4 * n))
        rates.append(math.sqrt(mass / step / survival))
        alive.append(survival)
    mean_alive = sum(s * step for s in alive)  # expected seconds a task runs inside the window
    calls = mean_alive / LEARNED_INTERVAL
    cost = sum(r * s * step for r, s in zip(rates, alive, strict=True))
    scale = calls / cost if cost > 0 else 0.0
    polls = [start]
    due = 0.0
    for k in range(GRID):
        due += rates[k] * scale * step
        moment = edges[k + 1]
        if due >= 1.0 and moment - polls[-1] >= MIN_GAP:
            polls.append(moment)
            due = 0.0
    if end - polls[-1] >= MIN_GAP / 2:
        polls.append(end)
    return tuple(polls)
