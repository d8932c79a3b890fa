"""What happens to a job after each thing the provider or Discord answers: plain functions, plain values.

The delivery worker asks these and does what they say (:mod:`generation.worker` for the database,
``cogs.delivery`` for Discord). Nothing here awaits, reads a clock or touches a database, so every
branch that moves a job or its credits is unit-tested on its own (``tests/generation``).

The rules, and why:

* A generate call is **never retried** after a timeout, a 5xx or an unreadable answer: the provider has no
  idempotency key, so the task may exist and a retry could charge twice. The job is *lost* and refunded.
* A **429** sends the job back to the queue, due after ``Retry-After`` or an exponential backoff
  (5 s · 2^attempts, at most 5 minutes). The provider charged nothing.
* **401/402** (the key is refused, or the account cannot pay) **pause** the whole line: the job goes
  back to the queue, its credits still held (the provider charged nothing), and no job is submitted
  until a probe is accepted again (:mod:`generation.breaker`).
* **400** fails only that job, refunded, with a reason the member can read.
* A started task **settles** to the provider's ``credits_used``; when the answer lacks it, to the price
  table with the Prompt Directory discount the request carries (what the provider would charge).
* A job still processing after the **processing timeout** fails and is refunded; polls never sleep past
  that deadline. A status call that fails is tried again later (status calls are safe to repeat).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from storage import DeliveredVia, Job
from ulazai.completion import CompletionWindow
from ulazai.errors import (
    AuthenticationError,
    BadRequestError,
    InsufficientCreditsError,
    InvalidRequestError,
    ProviderError,
    RateLimitedError,
    UlazAIError,
)
from ulazai.polling import IN_RANGE_INTERVAL, first_poll_delay, next_poll_delay
from ulazai.pricing import estimate_credits
from ulazai.requests import VideoSpec
from ulazai.results import DEFAULT_ESTIMATED_TIME, EstimatedTime, TaskResult, TaskStatus

#: The longest a rate-limited job waits before it is tried again, without a ``Retry-After``.
MAX_RATE_LIMIT_BACKOFF: Final = 300.0
#: How long a job whose status call failed waits before the next one.
STATUS_RETRY_SECONDS: Final = IN_RANGE_INTERVAL * 2
#: Unboosted servers, and direct messages, accept 10 MiB per message.
DEFAULT_UPLOAD_LIMIT: Final = 10 * 1024 * 1024

LOST_REASON: Final = "UlazAI did not confirm the video started; nothing is charged"


# -- submitting --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Started:
    """The provider accepted: record the task, settle to ``credits``, first poll after ``first_poll`` s."""

    task_id: str
    credits: int
    estimate: EstimatedTime
    first_poll: float


@dataclass(frozen=True, slots=True)
class Requeue:
    """Rate limited: back to the queue, due again after ``delay`` seconds."""

    delay: float


@dataclass(frozen=True, slots=True)
class Fail:
    """The job ends as failed, refunded; ``reason`` is for the member, ``detail`` for the audit line."""

    reason: str
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class Lose:
    """The generate call's outcome is unknown: the job ends as lost, refunded."""

    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class Pause:
    """The account cannot make videos (``status`` 401 or 402, the provider's ``message``): pause every
    submission, and put the job back in the queue with its credits still held."""

    status: int
    message: str


SubmitOutcome = Started | Requeue | Fail | Lose | Pause


def rate_limit_delay(retry_after: float | None, attempts: int) -> float:
    """``Retry-After`` when the provider gave one, else 5 s · 2^attempts, capped."""
    return retry_after if retry_after is not None else min(MAX_RATE_LIMIT_BACKOFF, 5.0 * 2**attempts)


def after_generate(
    answer: TaskResult | UlazAIError,
    *,
    spec: VideoSpec,
    attempts: int,
    window: CompletionWindow | None = None,
) -> SubmitOutcome:
    """What a generate call's answer (or the error it raised) does to the job (see the module docstring).

    ``attempts`` counts the submissions so far, this one included; ``window`` is when similar tasks
    finished (the provider's estimate decides the first poll without one).
    """
    if isinstance(answer, TaskResult):
        estimate = answer.estimated_time or DEFAULT_ESTIMATED_TIME
        credits = answer.credits_used if answer.credits_used is not None else estimate_credits(spec)
        return Started(answer.task_id, credits, estimate, first_poll_delay(estimate, window))
    if isinstance(answer, InvalidRequestError):
        return Fail(answer.message)
    if isinstance(answer, RateLimitedError):
        return Requeue(rate_limit_delay(answer.retry_after, attempts))
    if isinstance(answer, InsufficientCreditsError | AuthenticationError):
        default = 402 if isinstance(answer, InsufficientCreditsError) else 401
        return Pause(answer.status or default, answer.message)
    if isinstance(answer, BadRequestError):
        return Fail(
            f"UlazAI refused the request: {answer.message}",
            detail=f"UlazAI refused it (HTTP {answer.status}): {answer.message}",
        )
    if isinstance(answer, ProviderError):
        return Lose(
            LOST_REASON,
            detail=f"The generate call ended with {answer!r}; check the UlazAI dashboard for a task "
            "started at that time.",
        )
    raise TypeError(f"not a provider answer: {answer!r}")


# -- following ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Complete:
    """The video is ready at ``video_url``; ``credits_charged`` as the status answer gave it."""

    video_url: str
    credits_charged: int | None


@dataclass(frozen=True, slots=True)
class PollAgain:
    """Still being made: ask again after ``delay`` seconds; ``progress`` to show (``None``: unchanged)."""

    delay: float
    progress: int | None = None


PollOutcome = Complete | Fail | PollAgain


def timeout_text(timeout: timedelta) -> str:
    seconds = int(timeout.total_seconds())
    return f"{seconds // 60} minutes" if seconds >= 120 else f"{seconds} seconds"


def after_status(
    answer: TaskResult | ProviderError,
    *,
    submitted_at: datetime | None,
    now: datetime,
    estimate: EstimatedTime,
    timeout: timedelta,
    window: CompletionWindow | None = None,
) -> PollOutcome:
    """What a status call's answer (or its error) does to a processing job (``window``: when similar
    tasks finished; without one, the provider's ``estimate`` stands in)."""
    waited = now - (submitted_at or now)
    elapsed = waited.total_seconds()
    if isinstance(answer, ProviderError):
        if waited > timeout:
            return Fail("UlazAI stopped answering")
        return PollAgain(STATUS_RETRY_SECONDS)
    if answer.status is TaskStatus.COMPLETED:
        if answer.video_url is None:
            raise ValueError("a completed task without a video URL")
        return Complete(answer.video_url, answer.credits_charged)
    if answer.status is TaskStatus.FAILED:
        return Fail(answer.error or "UlazAI could not make this video")
    if waited > timeout:
        return Fail(f"still not ready after {timeout_text(timeout)}")
    delay = next_poll_delay(elapsed=elapsed, estimate=estimate, progress=answer.progress, window=window)
    # Never sleep past the processing deadline: the job must be failed and refunded on time.
    delay = min(delay, max(1.0, timeout.total_seconds() - elapsed + 0.5))
    return PollAgain(delay, answer.progress)


def estimate_of(job: Job) -> EstimatedTime:
    """The provider's estimate recorded when the job started (the default range before that)."""
    if job.eta_low_seconds is not None and job.eta_high_seconds is not None:
        return EstimatedTime(job.eta_low_seconds, job.eta_high_seconds)
    return DEFAULT_ESTIMATED_TIME


# -- settling ----------------------------------------------------------------------------------------


def refunded_credits(job: Job) -> int:
    """What a failed or lost job gave back to the member: its hold before it started, what it settled
    to after (less the part the member never paid, ``shortfall_credits``)."""
    if job.credits_used is None:
        return job.estimate_credits
    return job.credits_used - job.shortfall_credits


# -- posting -----------------------------------------------------------------------------------------


def megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def upload_limit(guild_limit: int | None) -> int:
    """The largest file a message may carry where the job is posted (a DM, or an unknown server: 10 MiB)."""
    return guild_limit if guild_limit is not None else DEFAULT_UPLOAD_LIMIT


def download_limit(max_video_bytes: int, limit: int) -> int:
    """Nothing bigger than the place accepts is worth downloading: it goes as a link."""
    return min(max_video_bytes, limit)


def too_large_reason(size: int | None, refused_at: int, limit: int) -> str:
    """Why the video goes as a link when the download stopped at ``refused_at`` bytes."""
    shown = f"it is {megabytes(size)}" if size else "it is"
    if refused_at == limit:
        return f"{shown}, more than this server's {megabytes(limit)} upload limit"
    return f"{shown} larger than the {megabytes(refused_at)} this bot downloads"


def over_limit_reason(size: int, limit: int) -> str | None:
    """Why a downloaded video cannot be attached here, or ``None`` when it fits."""
    if size <= limit:
        return None
    return f"it is {megabytes(size)}, more than this server's {megabytes(limit)} upload limit"


@dataclass(frozen=True, slots=True)
class Posted:
    """Where and how the video went; ``notes`` says why it is not a plain attachment."""

    message_id: int
    via: DeliveredVia
    notes: str


def delivery_notes(via: DeliveredVia, why: str | None = None) -> str:
    """The job's delivery notes, for its admins: how it went, and why when it was not attached."""
    if via is DeliveredVia.ATTACHMENT:
        return "attached"
    if via is DeliveredVia.LINK:
        return f"posted as a link: {why}"
    return f"sent by direct message: {why}"
