"""The plain values the facade hands back: a member's balance, a grant, a server's spend, an erasure.

Frozen dataclasses, detached from any session, so a cog can keep and render them freely. (Jobs, guild
settings and ledger rows come back as the model instances of :mod:`storage.models`.)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from storage.models import Job
from storage.periods import Period


@dataclass(frozen=True, slots=True)
class Balance:
    """A member's credits right now (after any due refill)."""

    guild_id: int
    user_id: int
    allowance_left: int
    allowance_total: int
    bonus: int
    reserved: int
    active_jobs: int
    period: Period
    period_start: datetime
    next_refill_at: datetime

    @property
    def available(self) -> int:
        """What the member can spend on a new job."""
        return self.allowance_left + self.bonus


@dataclass(frozen=True, slots=True)
class GrantResult:
    """What a grant actually moved (a negative grant stops at zero) and the balance after it."""

    granted: int
    balance: Balance


@dataclass(frozen=True, slots=True)
class BudgetSnapshot:
    """A server's spend in its current budget period."""

    guild_id: int
    period: Period
    period_start: datetime
    resets_at: datetime
    spent: int
    budget: int | None

    @property
    def remaining(self) -> int | None:
        return None if self.budget is None else max(self.budget - self.spent, 0)


@dataclass(frozen=True, slots=True)
class ForgetReport:
    """What erasing a member's words did (:meth:`storage.Storage.forget_member`).

    ``cancelled`` are the jobs that had not started: cancelled, their credits released, and erased;
    ``erased`` every job erased now (the cancelled ones included), for their cards to be redrawn;
    ``pending`` the jobs already at the provider, erased when they end; ``quotes`` the quotes deleted.
    """

    cancelled: list[Job]
    erased: list[Job]
    pending: int
    quotes: int

    @property
    def refunded(self) -> int:
        """The credits the cancelled jobs held, back with the member."""
        return sum(job.estimate_credits for job in self.cancelled)


@dataclass(frozen=True, slots=True)
class AccountState:
    """What the bot knows of the operator's UlazAI account (:class:`storage.models.ProviderAccount`).

    ``paused``: submissions wait because the provider answered ``status`` (401 or 402) with ``message``
    at ``since``; ``last_probe_at`` is when a queued job was last sent to see whether it works again.
    """

    paused: bool = False
    status: int | None = None
    message: str | None = None
    since: datetime | None = None
    last_probe_at: datetime | None = None
    credits_remaining: int | None = None
    credits_seen_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Resumed:
    """A pause that ended (``account`` as it was just before) and the servers that were told of it."""

    account: AccountState
    guild_ids: list[int]
