"""The job state machine: states, the allowed transitions, and what each one does to credits.

The table below is the single source of truth; :mod:`storage.jobs` refuses any move not listed, and
:mod:`storage.transitions` makes the credit movements marked.
Credits move only on the transitions marked so, and each of those lands in a state that can never be
left along a credit-moving edge again, so no job can move credits twice.

========================  =====================================================================
transition                credits
========================  =====================================================================
(create) -> pending_review | queued   reserve the undiscounted estimate
pending_review -> queued             none (a moderator approved)
pending_review -> rejected           release the reservation
pending_review -> cancelled          release the reservation
queued -> submitting                 none (a worker is about to call generate)
queued -> cancelled                  release the reservation
queued -> failed                     refund the reservation (e.g. an upload vanished)
submitting -> processing             settle to the provider's ``credits_used``
submitting -> queued                 none (429: back off and try again)
submitting -> failed                 refund the reservation (the provider refused the request)
submitting -> lost                   refund the reservation (timeout, 5xx, or the process died)
processing -> completed              none (the video is ready)
processing -> failed                 refund what was settled (the provider refunds a failed task)
completed -> delivered               none (posted on Discord)
completed -> failed                  none: the provider made and charged the video, delivery failed;
                                     the video URL stays on the job so an admin can act (and grant)
========================  =====================================================================
"""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    """Where a job is in its life."""

    PENDING_REVIEW = "pending_review"
    QUEUED = "queued"
    SUBMITTING = "submitting"
    PROCESSING = "processing"
    COMPLETED = "completed"
    DELIVERED = "delivered"
    FAILED = "failed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    LOST = "lost"


class DeliveredVia(StrEnum):
    """How a delivered video reached the member (so nobody has to read the delivery notes to know)."""

    ATTACHMENT = "attachment"  # the file, in the job's channel
    FITTED = "fitted"  # a re-encoded copy small enough to attach, with the original's link
    LINK = "link"  # the provider's link, in the job's channel (too big, or not downloadable)
    DIRECT_MESSAGE = "direct_message"  # in the member's DMs: the channel refused it


class JobOrigin(StrEnum):
    """How a job was asked for, when not from a slash command (``None`` on the job): members see it."""

    CONTINUE = "continue"  # from the last frame of the parent job's video
    REMIX = "remix"  # the parent job's settings and images with a new prompt
    ANIMATE = "animate"  # an image someone posted, through the message menu


class QuoteState(StrEnum):
    """Where a price quote stands: waiting for the member, or decided (and then its request is cleared)."""

    OPEN = "open"
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


S = JobState

#: Every allowed move; anything else raises :class:`storage.errors.InvalidTransition`.
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    S.PENDING_REVIEW: frozenset({S.QUEUED, S.REJECTED, S.CANCELLED}),
    S.QUEUED: frozenset({S.SUBMITTING, S.CANCELLED, S.FAILED}),
    S.SUBMITTING: frozenset({S.PROCESSING, S.QUEUED, S.FAILED, S.LOST}),
    S.PROCESSING: frozenset({S.COMPLETED, S.FAILED}),
    S.COMPLETED: frozenset({S.DELIVERED, S.FAILED}),
    S.DELIVERED: frozenset(),
    S.FAILED: frozenset(),
    S.REJECTED: frozenset(),
    S.CANCELLED: frozenset(),
    S.LOST: frozenset(),
}

#: States that count against the member's concurrency cap. A completed job's generation is over (only
#: posting is left), so it no longer blocks the member from starting another one.
ACTIVE_STATES = frozenset({S.PENDING_REVIEW, S.QUEUED, S.SUBMITTING, S.PROCESSING})

#: States a job never leaves.
TERMINAL_STATES = frozenset(state for state, targets in TRANSITIONS.items() if not targets)

#: States a worker takes a lease on to make progress: submit, poll, deliver.
WORKABLE_STATES = frozenset({S.QUEUED, S.PROCESSING, S.COMPLETED})


def can_transition(current: JobState | str, target: JobState | str) -> bool:
    """Whether the table allows ``current -> target``."""
    return JobState(target) in TRANSITIONS[JobState(current)]
