"""One result type for both models' generate and status answers.

Kling 2.6 wraps its answers in ``data`` and creates with HTTP 201; Kling 3.0 answers flat with 200.
The client normalises both into :class:`TaskResult` so nothing above it knows which model spoke.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum

from ulazai.requests import KlingModel


class TaskStatus(StrEnum):
    """The provider's documented task states."""

    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"

    @property
    def is_final(self) -> bool:
        return self in (TaskStatus.COMPLETED, TaskStatus.FAILED)


@dataclass(frozen=True, slots=True)
class EstimatedTime:
    """The provider's estimate of how long a task takes, in seconds (``low <= high``)."""

    low: int
    high: int


#: Anything a day or longer is not an estimate we can use.
_MAX_SECONDS = 86_400

#: Used when the provider sends no estimate or one we cannot read: the 3.0 page's own range.
DEFAULT_ESTIMATED_TIME = EstimatedTime(60, 180)

_RANGE = re.compile(
    r"^\s*~?\s*(\d+)\s*(?:(?:-|–|to)\s*(\d+))?\s*(s|sec|secs|seconds?|m|min|mins|minutes?)?\s*$", re.I
)


def parse_estimated_time(text: object, default: EstimatedTime = DEFAULT_ESTIMATED_TIME) -> EstimatedTime:
    """Read strings like ``"60-180 seconds"``, ``"60-90 seconds"``, ``"90 seconds"`` or ``"1-3 minutes"``.

    Anything else (``None``, a number of the wrong kind, free text) gives ``default``: the estimate only
    tunes polling, so a surprise here must never fail a job.
    """
    if isinstance(text, bool):
        return default
    if isinstance(text, int | float):
        if not math.isfinite(text) or not 0 < text < _MAX_SECONDS:
            return default
        return EstimatedTime(int(text), int(text)) if int(text) > 0 else default
    if not isinstance(text, str):
        return default
    match = _RANGE.match(text)
    if match is None:
        return default
    low = int(match.group(1))
    high = int(match.group(2)) if match.group(2) else low
    unit = (match.group(3) or "s").lower()
    if unit.startswith("m"):
        low, high = low * 60, high * 60
    if low <= 0 or high < low or high >= _MAX_SECONDS:
        return default
    return EstimatedTime(low, high)


@dataclass(frozen=True, slots=True)
class TaskResult:
    """What the provider said about a task, whichever model and endpoint answered.

    ``credits_used`` comes from generate (what the provider took), ``credits_charged`` from a
    3.0 status answer; ``progress`` (0..100) only from 2.6 while processing.
    """

    model: KlingModel
    task_id: str
    status: TaskStatus
    credits_used: int | None = None
    credits_charged: int | None = None
    credits_remaining: int | None = None
    estimated_time: EstimatedTime | None = None
    progress: int | None = None
    video_url: str | None = None
    message: str | None = None
    error: str | None = None
