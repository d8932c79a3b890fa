"""The facade's job transitions as one table, and the one path that carries each of them out.

Every transition is the same unit of work: the compare-and-set move (:func:`storage.jobs.move`, which
refuses what :data:`storage.states.TRANSITIONS` does not list), then what :data:`STEPS` says happens to
the member's credits, in the same transaction:

* ``RELEASE`` / ``REFUND``: everything the job holds or cost goes back, with its ledger row, and the
  server budget forgets it. Only while the job was active: a completed job that fails keeps its cost
  (the provider made and charged the video).
* ``SETTLE``: the hold becomes the provider's ``credits_used``, and the budget counts that instead.
* nothing: no credit moves.

Whatever the step, a job leaving :data:`~storage.states.ACTIVE_STATES` no longer counts against the
member's concurrency cap. And a job whose member asked to be forgotten while it was being made
(``erase_requested``) is erased the moment it ends, in the same transaction; should a rate limit put
it back in the queue instead, it is cancelled there and then (the member asked for nothing more).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypedDict, Unpack

from sqlalchemy.ext.asyncio import AsyncSession

from storage import accounts, guilds, jobs
from storage.accounts import LedgerKind
from storage.models import Job
from storage.periods import period_start
from storage.states import ACTIVE_STATES, TERMINAL_STATES, JobState

Action = Literal[
    "approve",
    "reject",
    "cancel",
    "mark_submitting",
    "mark_processing",
    "requeue_with_backoff",
    "mark_completed",
    "mark_delivered",
    "fail",
    "mark_lost",
    "recover_lost_submissions",
]


@dataclass(frozen=True, slots=True)
class Step:
    """Where a transition leads, and which ledger movement it makes (``None``: no credit moves)."""

    target: JobState
    ledger: LedgerKind | None = None


S, L = JobState, LedgerKind

#: Why a job was cancelled because its member asked to be forgotten.
FORGOTTEN = "cancelled: the member asked for their prompts to be erased"

#: Each transition of :class:`storage.Storage`, by method name.
STEPS: dict[Action, Step] = {
    "approve": Step(S.QUEUED),
    "reject": Step(S.REJECTED, L.RELEASE),
    "cancel": Step(S.CANCELLED, L.RELEASE),
    "mark_submitting": Step(S.SUBMITTING),
    "mark_processing": Step(S.PROCESSING, L.SETTLE),
    "requeue_with_backoff": Step(S.QUEUED),
    "mark_completed": Step(S.COMPLETED),
    "mark_delivered": Step(S.DELIVERED),
    "fail": Step(S.FAILED, L.REFUND),
    "mark_lost": Step(S.LOST, L.REFUND),
    "recover_lost_submissions": Step(S.LOST, L.REFUND),
}


class Details(TypedDict, total=False):
    """What a transition writes besides the state (each optional)."""

    values: dict[str, Any]  # the columns it sets
    actor_id: int | None  # who released or refunded, on the ledger row
    note: str | None  # why, on the ledger row
    credits_used: int  # the provider's price a settlement settles to


async def apply(
    session: AsyncSession,
    job: Job,
    action: Action,
    *,
    owner: str | None,
    now: datetime,
    **details: Unpack[Details],
) -> Job:
    """Move ``job`` (as it was read) along ``action``'s step and move the credits that step moves.

    ``owner`` fences the move with the worker's lease (``None``: nobody's lease is needed).
    """
    step = STEPS[action]
    was_active = job.state in ACTIVE_STATES
    moved = await jobs.move(session, job, step.target, owner=owner, now=now, values=details.get("values"))
    finished = was_active and step.target not in ACTIVE_STATES
    if step.ledger is LedgerKind.SETTLE:
        used = details["credits_used"]
        current = await _allowance_period(session, moved, now)
        await accounts.settle(session, moved, used, current_period=current, now=now)
        await guilds.recount_budget(session, moved, used)
    elif step.ledger is not None and was_active:
        await accounts.give_back(
            session,
            moved,
            step.ledger,
            finished_jobs=int(finished),
            current_period=await _allowance_period(session, moved, now),
            actor_id=details.get("actor_id"),
            note=details.get("note"),
            now=now,
        )
        await guilds.recount_budget(session, moved, 0)
    elif finished:
        await accounts.finish_job(session, moved.guild_id, moved.user_id, now)
    if moved.erase_requested and moved.erased_at is None:
        if moved.state in TERMINAL_STATES:
            (moved,) = await jobs.erase(session, [moved.id], now)
        elif moved.state is JobState.QUEUED:
            note = FORGOTTEN
            return await apply(
                session, moved, "cancel", owner=None, now=now, values={"error": note}, note=note
            )
    return moved


async def _allowance_period(session: AsyncSession, job: Job, now: datetime) -> datetime:
    """The start of the job's server's current allowance period (where returned credits may go)."""
    settings = await guilds.load(session, job.guild_id, now)
    return period_start(settings.allowance_period, now)
