"""What each job event counts in the operator's metrics (:class:`telemetry.metrics.Metrics`).

Storage tells its watchers of every job it created or moved, after the commit
(:meth:`storage.Storage.watch`); :func:`count` turns that into the counters, so every path that
moves a job (the worker, a member's Cancel, a moderator, a ban) is counted the same way:

* ``kling_jobs_total{state}``: a job *reaching* a state: ``queued`` when created into the queue or
  approved into it (not when a 429 or a pause puts it back), and each ending state.
* ``kling_credits_total{kind}``: ``reserved`` what a new job holds; ``charged`` what a started job
  settled to (the member's side: the provider's price, less what the member could not cover);
  ``refunded`` what an ending gave back (a failed or lost job's refund, a cancelled or rejected job's
  hold). A job failed after its video was made gives nothing back (the provider charged for it).
"""

from __future__ import annotations

from typing import Final

from generation.outcomes import refunded_credits
from storage import Job, JobState
from telemetry.metrics import Metrics

#: The storage events that mean a job reached a counted state.
REACHED: Final[dict[str, str]] = {
    "approve": "queued",
    "mark_delivered": "delivered",
    "fail": "failed",
    "mark_lost": "lost",
    "recover_lost_submissions": "lost",
    "cancel": "cancelled",
    "reject": "rejected",
}


#: How each way of delivering reads in ``kling_videos_posted_total{via}`` (by ``DeliveredVia`` value).
POSTED_VIA: Final[dict[str, str]] = {
    "attachment": "attachment",
    "fitted": "fitted",  # the video re-encoded to fit the upload limit, then attached
    "link": "link",
    "direct_message": "dm",
}


def posted(metrics: Metrics, job: Job) -> None:
    """Count a delivered job's post and its delay."""
    via = str(job.delivered_via or "attachment")
    delay = None
    if job.completed_at is not None and job.delivered_at is not None:
        delay = (job.delivered_at - job.completed_at).total_seconds()
    metrics.posted(POSTED_VIA.get(via, via), delay)


def count(metrics: Metrics, what: str, job: Job) -> None:
    """Count one storage event (a :data:`storage.service.Watcher`)."""
    if what == "create":
        metrics.moved_credits("reserved", job.estimate_credits)
        if job.state is JobState.QUEUED:
            metrics.job_reached(job.model, "queued")
        return
    if what == "mark_processing":
        metrics.moved_credits("charged", job.member_charged)
        return
    state = REACHED.get(what)
    if state is None:
        return
    metrics.job_reached(job.model, state)
    if what in ("cancel", "reject"):
        metrics.moved_credits("refunded", job.estimate_credits)
    elif state in ("failed", "lost") and job.completed_at is None:
        metrics.moved_credits("refunded", refunded_credits(job))
