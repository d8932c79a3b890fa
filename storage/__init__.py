"""All persistent state of the bot: guild settings, credits, the ledger and the job state machine.

Knows nothing of Discord (ids are plain integers) and never imports discord, ``cogs``, ``generation``
or ``ulazai``. The bot uses one :class:`Storage`, built from ``DATABASE_URL`` (SQLite by default,
PostgreSQL for several processes), and calls ``await storage.migrate()`` before it starts.

Decisions (where the issue left a choice):

* **Defaults.** A new server gets the ``DEFAULT_*`` values of :mod:`storage.models` (an allowance
  per member per week, a cap on each member's unfinished jobs, a model, a monthly budget period),
  no server budget, and the Prompt Directory discount off.
* **Allowance.** A member's allowance is the largest of the server default and their roles'. It is
  refilled lazily by whoever first touches the account in a new UTC period (daily 00:00, weekly
  Monday 00:00, monthly the 1st 00:00): the unused rest expires (ledger ``expire``) and the new
  allowance arrives (``refill``). A role that raises the allowance mid-period tops it up at once;
  losing a role takes effect at the next refill. Changing the period kind takes effect at the next
  boundary of the new kind. Spending takes allowance first, then bonus credits.
* **Negative grants** take bonus credits only, and stop at zero (the result says how many moved).
* **Refunds across a period boundary.** Credits a job took from an allowance whose period has
  since ended come back as *bonus* credits: nothing paid is lost, and no period gets more than its
  allowance. Within the same period they go back to the allowance.
* **Settlement above the reservation** (the provider's ``credits_used`` is the truth) takes the
  difference if the member has it, otherwise as much as they have, never below zero; the uncovered
  rest is recorded on the job (``shortfall_credits``) and in the ledger note, not owed. Below the
  reservation, the difference comes back at once.
* **Server budget** counts reserved credits at creation, corrected to ``credits_used`` at
  settlement; released and refunded credits come off it, always in the budget period the job was
  counted in (once that period is over, its counter is left alone). It is checked atomically when
  a job is created; a settlement may push it above the cap, since the provider has already charged.
* **Failed after completion** (the video exists but could not be posted) refunds nothing: the
  provider charged for it. The video URL stays on the job for an admin to act on.
* **Active jobs** are those in review, queued, submitting or processing; a completed job no longer
  counts against the member's cap.
* **Privacy.** A request priced above the server's ``confirm_above_credits`` (or any request while the
  Prompt Directory discount is on) is first a :class:`Quote`, whose stored request is cleared once
  it is decided. :meth:`Storage.forget_member` and the retention (:meth:`Storage.erase_expired_jobs`)
  erase a job's prompt (it reads :data:`ERASED_PROMPT`), image and video links and delivery notes,
  and keep the row with its amounts and states, so the ledger still balances. SQLite runs with
  ``secure_delete`` and is checkpointed after an erasure, so the words leave the file too.
* **How a video was delivered** (attachment, link, direct message) is the job's ``delivered_via``;
  its ``delivery_notes`` are words for people (the audit log), never parsed to tell which.
* **The provider account** (:mod:`storage.provider_account`) is one row every process reads: the
  pause after a 401/402, which one process starts, ends, or takes a probe slot of, by
  compare-and-set; servers are told of a pause once each (``pause_notified_at``), and of a low
  balance once per crossing (``credits_alert_sent``). No claim for submission is made while paused.
* **A ban** (:mod:`storage.bans`) cancels the member's jobs in review or queued, with their credits
  back, in the ban's own transaction; jobs already at the provider go on.

See :mod:`storage.states` for the transition table, :mod:`storage.transitions` for what each of the
facade's transitions does to credits, :mod:`storage.accounts` for the ledger, :mod:`storage.results`
for the values returned, and :mod:`storage.reservations` for job creation, the hot path (on SQLite
its driver connection, :mod:`storage._sqlite`, makes one trip to the database thread per statement).
"""

from storage.accounts import LedgerKind
from storage.database import DEFAULT_DATABASE_URL, create_engine, upgrade_to_head
from storage.errors import (
    BudgetExceeded,
    DuplicateInteraction,
    DuplicateOperation,
    InsufficientCredits,
    InvalidSetting,
    InvalidTransition,
    JobNotFound,
    LeaseLost,
    StaleState,
    StorageError,
    TooManyActiveJobs,
)
from storage.guilds import GuildSettingsChanges
from storage.jobs import ERASED_PROMPT, JobRequest
from storage.models import (
    Ban,
    BotState,
    GuildSettings,
    Job,
    LedgerEntry,
    MemberAccount,
    ProviderAccount,
    Quote,
)
from storage.periods import Period
from storage.request_context import RequestContext
from storage.results import AccountState, Balance, BudgetSnapshot, ForgetReport, GrantResult, Resumed
from storage.service import COMMAND_TREE_HASH_KEY, DEFAULT_LEASE, WAITING_STATES, Storage
from storage.states import (
    ACTIVE_STATES,
    TERMINAL_STATES,
    TRANSITIONS,
    DeliveredVia,
    JobOrigin,
    JobState,
    QuoteState,
)

__all__ = [
    "ACTIVE_STATES",
    "COMMAND_TREE_HASH_KEY",
    "DEFAULT_DATABASE_URL",
    "DEFAULT_LEASE",
    "ERASED_PROMPT",
    "TERMINAL_STATES",
    "TRANSITIONS",
    "WAITING_STATES",
    "AccountState",
    "Balance",
    "Ban",
    "BotState",
    "BudgetExceeded",
    "BudgetSnapshot",
    "DeliveredVia",
    "DuplicateInteraction",
    "DuplicateOperation",
    "ForgetReport",
    "GrantResult",
    "GuildSettings",
    "GuildSettingsChanges",
    "InsufficientCredits",
    "InvalidSetting",
    "InvalidTransition",
    "Job",
    "JobNotFound",
    "JobOrigin",
    "JobRequest",
    "JobState",
    "LeaseLost",
    "LedgerEntry",
    "LedgerKind",
    "MemberAccount",
    "Period",
    "ProviderAccount",
    "Quote",
    "QuoteState",
    "RequestContext",
    "Resumed",
    "StaleState",
    "Storage",
    "StorageError",
    "TooManyActiveJobs",
    "create_engine",
    "upgrade_to_head",
]
