"""When a video should be ready: the estimate on its status card.

The provider's ``estimated_time`` is a wide range ("60-180 seconds") and sometimes simply wrong, so the
estimate leans on how long this server's recent videos of the same model and duration really took,
from the provider accepting them to the bot having the video (kept in the database as each job's
``submitted_at`` and ``completed_at``):

* **how long a video takes** (:func:`expected_total`): the median of the last :data:`HISTORY` such
  videos, blended with the middle of the provider's range while there are fewer than
  :data:`TRUSTED_AFTER` of them (the first video of a kind has only the provider's word);
* **while it is made** (:func:`remaining_while_processing`): that total less the time elapsed; on
  Kling 2.6 the provider's progress says more and more of it as it grows (progress is reported in
  proportion to the work done);
* **in the queue** (:func:`wait_in_queue`): the generation slots free up as the videos in them end,
  and each job ahead takes one for about as long as this one will;
* **never backwards by much** (:func:`steady`): the moment shown may come closer at any time, but
  moves later by at most :data:`SLACK_SECONDS` from one edit of the card to the next.

:class:`EtaBook` applies these to jobs, reading the history through :class:`~storage.Storage` (cached
for a few seconds: a card is edited every few seconds) and remembering what each card showed last.
"""

from __future__ import annotations

import heapq
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from generation.outcomes import estimate_of
from storage import Job, JobState, Storage
from ulazai.requests import KlingModel
from ulazai.results import EstimatedTime

#: How many of the server's recent videos of a kind the estimate looks at.
HISTORY: Final = 5
#: With this many, the history alone decides (the provider's range is rarely tighter than that).
TRUSTED_AFTER: Final = 3
#: How much later than last time a card may say the video will be ready, at one edit.
SLACK_SECONDS: Final = 5.0
#: Below this progress (percent) Kling 2.6's figure is too coarse to go on.
MIN_PROGRESS: Final = 5
#: How long a read of the history (and of the jobs in flight) is reused.
CACHE_SECONDS: Final = 5.0
#: Cards remembered at most (a bound for a deployment with very many jobs in flight).
MAX_REMEMBERED: Final = 10_000

#: While these last, the card shows when the video should be ready.
ESTIMATED_STATES: Final = (JobState.QUEUED, JobState.SUBMITTING, JobState.PROCESSING)


@dataclass(frozen=True, slots=True)
class Estimate:
    """What a card says: the video of job ``job_id`` should be ready in ``seconds``, at ``ready_at``."""

    job_id: int
    seconds: float
    ready_at: datetime


def typical_seconds(history: Sequence[float]) -> float | None:
    """The median of the newest :data:`HISTORY` durations (``history`` is newest first)."""
    recent = list(history[:HISTORY])
    return statistics.median(recent) if recent else None


def expected_total(estimate: EstimatedTime | None, history: Sequence[float]) -> float | None:
    """Seconds from submission to the video, from the provider's range and the server's history."""
    provider = (estimate.low + estimate.high) / 2 if estimate is not None else None
    typical = typical_seconds(history)
    if typical is None:
        return provider
    if provider is None:
        return typical
    weight = min(1.0, len(history) / TRUSTED_AFTER)
    return weight * typical + (1 - weight) * provider


def remaining_while_processing(total: float | None, elapsed: float, progress: int | None) -> float | None:
    """Seconds left, ``elapsed`` seconds after submission; ``progress``: Kling 2.6's percentage."""
    if progress is not None and MIN_PROGRESS <= progress < 100:
        by_progress = elapsed * 100.0 / progress
        share = progress / 100.0
        total = by_progress if total is None else share * by_progress + (1 - share) * total
    if total is None:
        return None
    return max(0.0, total - elapsed)


def wait_in_queue(position: int, busy: Sequence[float], *, slots: int, each: float) -> float:
    """Seconds until the job at ``position`` (1: next) starts: ``busy`` are the seconds left of the
    videos in the ``slots`` generation slots now, and every job ahead holds a slot for ``each``."""
    free_at = sorted(max(0.0, left) for left in busy)[:slots]
    free_at += [0.0] * (max(1, slots) - len(free_at))
    heapq.heapify(free_at)
    for _ in range(max(0, position - 1)):
        heapq.heappush(free_at, heapq.heappop(free_at) + each)
    return free_at[0]


def steady(remaining: float, now: datetime, shown: datetime | None) -> datetime:
    """The moment to show for a video ``remaining`` seconds away, when the card last showed ``shown``."""
    ready_at = now + timedelta(seconds=remaining)
    if shown is not None and ready_at > shown + timedelta(seconds=SLACK_SECONDS):
        ready_at = shown + timedelta(seconds=SLACK_SECONDS)
    return ready_at


class EtaBook:
    """Estimates for status cards, from the database; one per bot process (see the module docstring)."""

    def __init__(self, storage: Storage, *, max_in_flight: int) -> None:
        self.storage = storage
        self.max_in_flight = max_in_flight
        self._history: dict[tuple[int, str, int], tuple[float, list[float]]] = {}
        self._busy: tuple[float, list[float]] | None = None
        #: The moment each job's card last said its video would be ready.
        self._shown: dict[int, datetime] = {}

    async def history(self, guild_id: int, model: str, duration: int) -> list[float]:
        key = (guild_id, model, duration)
        cached = self._history.get(key)
        if cached is not None and time.monotonic() - cached[0] < CACHE_SECONDS:
            return cached[1]
        seconds = await self.storage.generation_seconds(guild_id, model, duration, limit=HISTORY)
        if len(self._history) >= MAX_REMEMBERED:
            self._history.clear()
        self._history[key] = (time.monotonic(), seconds)
        return seconds

    async def total(self, job: Job) -> float | None:
        """How long ``job``'s video should take to make, in seconds."""
        return expected_total(estimate_of(job), await self.history(job.guild_id, job.model, job.duration))

    async def remaining(self, job: Job, now: datetime, *, queue_position: int | None = None) -> float | None:
        """Seconds until ``job``'s video should be ready, or ``None`` when there is nothing to say."""
        total = await self.total(job)
        if job.state is JobState.PROCESSING and job.submitted_at is not None:
            elapsed = max(0.0, (now - job.submitted_at).total_seconds())
            progress = job.progress if job.model == KlingModel.V2_6 else None
            return remaining_while_processing(total, elapsed, progress)
        if total is None:
            return None
        if job.state is JobState.SUBMITTING:
            return total
        if job.state is JobState.QUEUED and queue_position is not None:
            busy = await self._in_flight(now)
            return wait_in_queue(queue_position, busy, slots=self.max_in_flight, each=total) + total
        return None

    async def for_card(
        self, job: Job, now: datetime, *, queue_position: int | None = None
    ) -> Estimate | None:
        """What ``job``'s card should say now (:func:`steady` against what it showed last), or ``None``;
        forgets the job once its video is no longer on the way. Call :meth:`shown` once it is shown."""
        assert job.id is not None
        if job.state not in ESTIMATED_STATES:
            self._shown.pop(job.id, None)
            return None
        remaining = await self.remaining(job, now, queue_position=queue_position)
        if remaining is None:
            return None
        ready_at = steady(remaining, now, self._shown.get(job.id))
        return Estimate(job.id, max(0.0, (ready_at - now).total_seconds()), ready_at)

    def shown(self, estimate: Estimate | None) -> None:
        """``estimate`` is on its card now: the next one may not move later than it by much."""
        if estimate is None:
            return
        if len(self._shown) >= MAX_REMEMBERED and estimate.job_id not in self._shown:
            self._shown.pop(next(iter(self._shown)))
        self._shown[estimate.job_id] = estimate.ready_at

    async def _in_flight(self, now: datetime) -> list[float]:
        """Seconds left of each video in a generation slot now (read at most every few seconds)."""
        if self._busy is not None and time.monotonic() - self._busy[0] < CACHE_SECONDS:
            return self._busy[1]
        busy = []
        for job in await self.storage.in_flight_jobs(limit=self.max_in_flight):
            left = await self.remaining(job, now)
            busy.append(0.0 if left is None else left)
        self._busy = (time.monotonic(), busy)
        return busy
