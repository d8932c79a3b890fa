"""Typed domain errors of the storage layer.

Each carries the numbers a cog needs to answer the member in plain words ("you have 40 credits, this
needs 120"), so nobody has to parse a message. None of them is a database error: those stay
SQLAlchemy's and mean a bug or an outage.
"""

from __future__ import annotations

from datetime import datetime


class StorageError(Exception):
    """Base class of every domain error raised by :mod:`storage`."""


class InvalidSetting(StorageError, ValueError):
    """A guild setting was given a value outside its domain."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class InsufficientCredits(StorageError):
    """The member cannot cover a reservation: ``available`` credits, ``needed`` credits."""

    def __init__(self, *, available: int, needed: int) -> None:
        super().__init__(f"{needed} credits needed, {available} available")
        self.available = available
        self.needed = needed


class TooManyActiveJobs(StorageError):
    """The member already has ``active`` unfinished jobs and the server allows ``limit``."""

    def __init__(self, *, active: int, limit: int) -> None:
        super().__init__(f"{active} active jobs, the limit is {limit}")
        self.active = active
        self.limit = limit


class BudgetExceeded(StorageError):
    """The server's budget for the current period cannot cover ``needed`` more credits."""

    def __init__(self, *, budget: int, spent: int, needed: int, resets_at: datetime) -> None:
        super().__init__(f"server budget {budget}: {spent} spent, {needed} more needed")
        self.budget = budget
        self.spent = spent
        self.needed = needed
        self.resets_at = resets_at


class DuplicateInteraction(StorageError):
    """A job already exists for this Discord interaction; nothing was reserved a second time."""

    def __init__(self, *, interaction_id: int, job_id: int | None) -> None:
        super().__init__(f"interaction {interaction_id} already created job {job_id}")
        self.interaction_id = interaction_id
        self.job_id = job_id


class DuplicateOperation(StorageError):
    """A ledger operation with this idempotency key was already applied; nothing moved again."""

    def __init__(self, idempotency_key: str) -> None:
        super().__init__(f"operation {idempotency_key!r} was already applied")
        self.idempotency_key = idempotency_key


class JobNotFound(StorageError):
    """No job has this id."""

    def __init__(self, job_id: int) -> None:
        super().__init__(f"job {job_id} does not exist")
        self.job_id = job_id


class InvalidTransition(StorageError):
    """The transition table does not allow going from ``current`` to ``target``."""

    def __init__(self, *, job_id: int, current: str, target: str) -> None:
        super().__init__(f"job {job_id}: {current} -> {target} is not allowed")
        self.job_id = job_id
        self.current = current
        self.target = target


class StaleState(InvalidTransition):
    """The job left the state the caller saw before the compare-and-set ran (someone else moved it)."""


class LeaseLost(StorageError):
    """The caller no longer holds the job's lease (it expired and another worker claimed it)."""

    def __init__(self, *, job_id: int, owner: str, holder: str | None) -> None:
        super().__init__(f"job {job_id}: lease held by {holder!r}, not {owner!r}")
        self.job_id = job_id
        self.owner = owner
        self.holder = holder
