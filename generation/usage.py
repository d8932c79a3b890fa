"""The usage report's figures (``/kling-admin usage``): where a server's credits went over a period.

Plain functions over the server's jobs created in the period; the Discord side (``cogs.usage_report``)
renders them as an embed, a chart (:mod:`generation.usage_chart`) and a CSV. What the figures mean:

* **Credits spent** is what members paid for the period's jobs: each job's ``member_charged``, which is
  what the credit ledger took for it (a failed or lost job was refunded, so it counts 0; a job failed
  after its video was made keeps its cost). Credits still only held by waiting jobs are not spent.
* **Failed/refunded** counts the failed and lost jobs; **credits refunded** is what those gave back
  (the ledger's refunds). Cancelled and rejected jobs only released a hold: neither spent nor refunded.
* The chart buckets credits by the hour (``day``) or by the UTC day (``week``, ``month``) of each job's
  creation, stacked by model; with a server budget it draws the budget's pace per bucket (a daily
  budget per day, or a 24th of it per hour; a monthly budget spread over its month's days).
"""

from __future__ import annotations

import calendar
import csv
import io
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from generation.outcomes import refunded_credits
from storage import Job, JobState, Period

#: How many members the embed names.
TOP_MEMBERS: Final = 5
CSV_COLUMNS: Final = (
    "job_id",
    "member_id",
    "model",
    "mode",
    "duration",
    "quality",
    "sound",
    "credits_estimated",
    "credits_charged",
    "state",
    "created",
    "delivered",
)


class UsagePeriod(StrEnum):
    """The report's span, ending now."""

    DAY = "day"
    WEEK = "week"
    MONTH = "month"


LENGTH: Final[dict[UsagePeriod, timedelta]] = {
    UsagePeriod.DAY: timedelta(hours=24),
    UsagePeriod.WEEK: timedelta(days=7),
    UsagePeriod.MONTH: timedelta(days=30),
}


@dataclass(frozen=True, slots=True)
class Window:
    """``[start, end)`` and the chart's buckets: each starts at a whole UTC hour or day."""

    period: UsagePeriod
    start: datetime
    end: datetime
    bucket: timedelta
    buckets: tuple[datetime, ...]

    @property
    def hourly(self) -> bool:
        return self.bucket == timedelta(hours=1)


def _floor(moment: datetime, bucket: timedelta) -> datetime:
    moment = moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0) if bucket >= timedelta(days=1) else moment


def window(period: UsagePeriod, now: datetime) -> Window:
    """The last 24 hours, 7 days or 30 days up to ``now``, bucketed by the hour or the day."""
    bucket = timedelta(hours=1) if period is UsagePeriod.DAY else timedelta(days=1)
    start = now - LENGTH[period]
    first = _floor(start, bucket)
    buckets: list[datetime] = []
    moment = first
    while moment <= now:
        buckets.append(moment)
        moment += bucket
    return Window(period, start, now, bucket, tuple(buckets))


def charged(job: Job) -> int:
    """What the member paid for the job, after any refund (see the module docstring)."""
    return job.member_charged


def refunded(job: Job) -> int:
    """What a failed or lost job gave back; 0 for any other job (and for one failed after its video
    was made: the provider charged for it)."""
    if job.state in (JobState.FAILED, JobState.LOST) and job.completed_at is None:
        return refunded_credits(job)
    return 0


@dataclass(frozen=True, slots=True)
class Summary:
    """The embed's figures."""

    jobs: int
    spent: int
    delivered: int
    failed: int
    refunded: int
    #: (member id, credits spent), most first, at most :data:`TOP_MEMBERS`.
    top_members: list[tuple[int, int]] = field(default_factory=list)
    #: model -> (videos, credits spent), for the models that had jobs.
    by_model: dict[str, tuple[int, int]] = field(default_factory=dict)


def summarise(jobs: Iterable[Job]) -> Summary:
    jobs = list(jobs)
    per_member: dict[int, int] = defaultdict(int)
    per_model: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for job in jobs:
        per_member[job.user_id] += charged(job)
        per_model[job.model][0] += 1
        per_model[job.model][1] += charged(job)
    top = sorted(
        ((user, credits) for user, credits in per_member.items() if credits), key=lambda i: (-i[1], i[0])
    )
    return Summary(
        jobs=len(jobs),
        spent=sum(charged(job) for job in jobs),
        delivered=sum(job.state is JobState.DELIVERED for job in jobs),
        failed=sum(job.state in (JobState.FAILED, JobState.LOST) for job in jobs),
        refunded=sum(refunded(job) for job in jobs),
        top_members=top[:TOP_MEMBERS],
        by_model={model: (videos, credits) for model, (videos, credits) in sorted(per_model.items())},
    )


def series(jobs: Iterable[Job], win: Window) -> dict[str, list[int]]:
    """Credits spent per bucket of ``win``, per model (only models with jobs in the window)."""
    index = {moment: position for position, moment in enumerate(win.buckets)}
    per_model: dict[str, list[int]] = {}
    for job in jobs:
        position = index.get(_floor(job.created_at, win.bucket))
        if position is None:
            continue
        per_model.setdefault(job.model, [0] * len(win.buckets))[position] += charged(job)
    return dict(sorted(per_model.items()))


def budget_pace(budget: int | None, budget_period: Period, win: Window) -> float | None:
    """What the server budget allows per bucket of ``win``, or ``None`` without a budget."""
    if budget is None:
        return None
    if budget_period is Period.DAILY:
        per_day = float(budget)
    else:
        days = calendar.monthrange(win.end.year, win.end.month)[1]
        per_day = budget / days
    return per_day / 24 if win.hourly else per_day


def _when(moment: datetime | None) -> str:
    return "" if moment is None else moment.isoformat(timespec="seconds")


def csv_rows(jobs: Sequence[Job]) -> list[list[str | int]]:
    """One row per job (never its prompt), in :data:`CSV_COLUMNS`' order."""
    return [
        [
            job.id or 0,
            job.user_id,
            job.model,
            job.mode,
            job.duration,
            job.quality or "",
            "yes" if job.sound else "no",
            job.estimate_credits,
            charged(job),
            job.state.value,
            _when(job.created_at),
            _when(job.delivered_at),
        ]
        for job in jobs
    ]


def csv_text(jobs: Sequence[Job]) -> str:
    """The CSV file: a header, then :func:`csv_rows` (written with the csv module: quoting is its job)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(csv_rows(jobs))
    return out.getvalue()
