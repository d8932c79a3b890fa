"""The tables: guild settings, member accounts, the credit ledger, jobs, bans, the provider account
and a small key/value store.

Discord ids are 64-bit, so every id column is ``BIGINT``. Every timestamp is aware UTC on the Python
side on both engines (:class:`UTCDateTime`); on SQLite it is stored as naive UTC text in one fixed
format, so comparing stored values as strings orders them in time.

Balances live in columns on :class:`MemberAccount` so a debit can be one conditional ``UPDATE``; the
:class:`LedgerEntry` rows explain every change to those columns, and the columns always equal the
ledger's sums (a property test checks it). ``CHECK`` constraints make a negative balance impossible
even for a buggy caller.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from storage.periods import Period, as_utc, utcnow
from storage.states import DeliveredVia, JobOrigin, JobState, QuoteState

E = TypeVar("E", bound=StrEnum)

#: Constraint names that are stable across engines, so migrations (and SQLite's batch mode) can refer
#: to them by name.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
SQLModel.metadata.naming_convention = NAMING_CONVENTION

MODELS = ("kling-3.0", "kling-2.6")
DEFAULT_MODEL = "kling-3.0"
#: The default allowance: 300 credits a week is ~11 s of Kling 3.0 std video, or 5 short 2.6 clips.
DEFAULT_ALLOWANCE_CREDITS = 300
DEFAULT_ALLOWANCE_PERIOD = Period.WEEKLY
DEFAULT_MAX_ACTIVE_JOBS = 2
DEFAULT_BUDGET_PERIOD = Period.MONTHLY
#: A request whose estimate is above this many credits is quoted to the member before anything is spent.
DEFAULT_CONFIRM_ABOVE_CREDITS = 200
#: The prompts and links of jobs that ended more than this many days ago are erased.
DEFAULT_RETENTION_DAYS = 90


class UTCDateTime(TypeDecorator[datetime]):
    """An aware-UTC datetime on both engines.

    PostgreSQL stores ``timestamptz``. SQLite has no time zones, so values are converted to UTC and
    stored naive, and come back with ``tzinfo=UTC`` attached. Naive input is refused: it is a bug.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = as_utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class EnumText(TypeDecorator[E]):
    """A string enum stored as its plain text value (no native enum type to migrate on PostgreSQL)."""

    impl = sa.String(20)
    cache_ok = True
    enum: type[E]

    def process_bind_param(self, value: E | str | None, dialect: Dialect) -> str | None:
        return None if value is None else self.enum(value).value

    def process_result_value(self, value: str | None, dialect: Dialect) -> E | None:
        return None if value is None else self.enum(value)


class JobStateType(EnumText[JobState]):
    """A :class:`JobState` column."""

    cache_ok = True  # SQLAlchemy asks every subclass itself
    enum = JobState


class JobOriginType(EnumText[JobOrigin]):
    """A :class:`JobOrigin` column."""

    impl = sa.String(16)
    cache_ok = True
    enum = JobOrigin


class QuoteStateType(EnumText[QuoteState]):
    """A :class:`QuoteState` column."""

    impl = sa.String(16)
    cache_ok = True
    enum = QuoteState


class DeliveredViaType(EnumText[DeliveredVia]):
    """A :class:`DeliveredVia` column."""

    impl = sa.String(16)
    cache_ok = True
    enum = DeliveredVia


def _id(*, nullable: bool = False, **kwargs: Any) -> Any:
    """A Discord snowflake column."""
    return Field(sa_type=sa.BigInteger, nullable=nullable, **kwargs)


def _when(*, nullable: bool = False, **kwargs: Any) -> Any:
    """An aware-UTC timestamp column."""
    return Field(sa_type=UTCDateTime, nullable=nullable, **kwargs)


class GuildSettings(SQLModel, table=True):
    """One server's configuration, plus its budget counter.

    ``budget_spent`` counts the credits reserved or settled in the budget period that starts at
    ``budget_period_start`` (released and refunded credits come off it). It is kept even when there
    is no cap, so admins can always see the server's spend; it is updated conditionally in the same
    transaction as the reservation, so the cap holds under concurrency.
    """

    __tablename__: ClassVar[str] = "guild_settings"

    guild_id: int = Field(sa_type=sa.BigInteger, primary_key=True, sa_column_kwargs={"autoincrement": False})
    allowed_channel_ids: list[int] = Field(default_factory=list, sa_type=sa.JSON, nullable=False)
    review_channel_id: int | None = _id(nullable=True, default=None)
    audit_channel_id: int | None = _id(nullable=True, default=None)
    blocklist_terms: list[str] = Field(default_factory=list, sa_type=sa.JSON, nullable=False)
    default_model: str = Field(default=DEFAULT_MODEL, sa_type=sa.String(16))
    allowance_credits: int = DEFAULT_ALLOWANCE_CREDITS
    allowance_period: str = Field(default=DEFAULT_ALLOWANCE_PERIOD.value, sa_type=sa.String(16))
    #: role id (as a JSON object key, so text) -> credits per period.
    role_allowances: dict[str, int] = Field(default_factory=dict, sa_type=sa.JSON, nullable=False)
    #: Whether members may opt in to the Prompt Directory for its discount (it publishes their work).
    directory_discount: bool = False
    max_active_jobs: int = DEFAULT_MAX_ACTIVE_JOBS
    budget_credits: int | None = None
    budget_period: str = Field(default=DEFAULT_BUDGET_PERIOD.value, sa_type=sa.String(16))
    budget_period_start: datetime | None = _when(nullable=True, default=None)
    budget_spent: int = 0
    #: Below this many credits left on the UlazAI account, the audit log gets a line (0: off).
    credits_alert: int = 0
    #: Whether that line was written for the current fall below the threshold (one line per crossing).
    credits_alert_sent: bool = False
    #: The provider pause (its ``since``) this server's audit log was told of; cleared when it ends.
    pause_notified_at: datetime | None = _when(nullable=True, default=None)
    created_at: datetime = _when(default_factory=utcnow)
    updated_at: datetime = _when(default_factory=utcnow)
    #: A request estimated above this many credits is quoted first (0: never, unless the directory is on).
    confirm_above_credits: int = DEFAULT_CONFIRM_ABOVE_CREDITS
    #: Jobs that ended more than this many days ago have their prompt and links erased (0: kept forever).
    retention_days: int = DEFAULT_RETENTION_DAYS

    def allowance_for(self, role_ids: Iterable[int] = ()) -> int:
        """A member's allowance: the largest of the server default and their roles' allowances."""
        return member_allowance(self.allowance_credits, self.role_allowances, role_ids)


def member_allowance(default: int, role_allowances: dict[str, int], role_ids: Iterable[int]) -> int:
    """The largest of the server default and the allowances of the roles the member holds."""
    best = default
    for role_id in role_ids:
        best = max(best, role_allowances.get(str(role_id), best))
    return best


class MemberAccount(SQLModel, table=True):
    """A member's credits in one server.

    ``allowance_credits`` is what is left of this period's allowance (``allowance_granted`` in total,
    which only grows within a period when a role raises it); ``bonus_credits`` were granted by admins
    and never expire; ``reserved_credits`` are held by unfinished jobs. ``active_jobs`` counts jobs in
    :data:`storage.states.ACTIVE_STATES` so the concurrency cap is one conditional ``UPDATE``.

    ``last_moved`` is scratch space: ``RETURNING`` sees only the new row, so a statement that computes
    an amount in SQL (how much of a debit came from the allowance, how much expired) writes it there
    and returns it, instead of reading the row first.
    """

    __tablename__: ClassVar[str] = "member_accounts"
    __table_args__ = (
        sa.CheckConstraint("allowance_credits >= 0", name="allowance_not_negative"),
        sa.CheckConstraint("bonus_credits >= 0", name="bonus_not_negative"),
        sa.CheckConstraint("reserved_credits >= 0", name="reserved_not_negative"),
        sa.CheckConstraint("active_jobs >= 0", name="active_jobs_not_negative"),
    )

    guild_id: int = Field(
        sa_type=sa.BigInteger,
        primary_key=True,
        foreign_key="guild_settings.guild_id",
        sa_column_kwargs={"autoincrement": False},
    )
    user_id: int = Field(sa_type=sa.BigInteger, primary_key=True, sa_column_kwargs={"autoincrement": False})
    period_start: datetime = _when()
    allowance_granted: int = 0
    allowance_credits: int = 0
    bonus_credits: int = 0
    reserved_credits: int = 0
    active_jobs: int = 0
    last_moved: int = 0
    #: The member's next round in the fair queue: one past their newest job's (:mod:`storage.rounds`).
    fair_round: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    created_at: datetime = _when(default_factory=utcnow)
    updated_at: datetime = _when(default_factory=utcnow)


class Job(SQLModel, table=True):
    """One video request, from the slash command to the posted message.

    Credit bookkeeping: ``hold_allowance``/``hold_bonus`` are the credits currently reserved (the
    split says where they came from), ``spent_allowance``/``spent_bonus`` what was settled. Allowance
    credits on a job belong to the allowance period starting at ``credit_period_start``; once that
    period is over they are treated as bonus credits (see :mod:`storage`). ``budget_counted`` is what
    this job adds to the server budget counter of the period starting at ``budget_period_start``.
    """

    __tablename__: ClassVar[str] = "jobs"
    __table_args__ = (
        sa.ForeignKeyConstraint(
            ["guild_id", "user_id"], ["member_accounts.guild_id", "member_accounts.user_id"]
        ),
        sa.Index("ix_jobs_state_next_attempt_at", "state", "next_attempt_at"),
        sa.Index("ix_jobs_guild_id_user_id_id", "guild_id", "user_id", "id"),
        sa.Index("ix_jobs_provider_task_id", "provider_task_id"),
        sa.Index(
            "ix_jobs_guild_id_model_duration_completed_at", "guild_id", "model", "duration", "completed_at"
        ),
        sa.Index("ix_jobs_erased_at_ended_at", "erased_at", "ended_at"),
        sa.Index("ix_jobs_state_fair_round_id", "state", "fair_round", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    interaction_id: int = _id(unique=True)
    guild_id: int = _id()
    user_id: int = _id()
    channel_id: int = _id()
    status_message_id: int | None = _id(nullable=True, default=None)
    review_message_id: int | None = _id(nullable=True, default=None)
    posted_message_id: int | None = _id(nullable=True, default=None)
    reviewed_by: int | None = _id(nullable=True, default=None)

    state: JobState = Field(sa_type=JobStateType, nullable=False)

    model: str = Field(sa_type=sa.String(16))
    mode: str = Field(sa_type=sa.String(32))
    prompt: str = Field(sa_type=sa.Text)
    duration: int
    quality: str | None = Field(default=None, sa_type=sa.String(16), nullable=True)
    aspect_ratio: str | None = Field(default=None, sa_type=sa.String(16), nullable=True)
    sound: bool = False
    multi_shot: bool = False
    directory_optin: bool = False
    image_urls: list[str] = Field(default_factory=list, sa_type=sa.JSON, nullable=False)
    start_frame_url: str | None = Field(default=None, sa_type=sa.Text, nullable=True)
    end_frame_url: str | None = Field(default=None, sa_type=sa.Text, nullable=True)
    #: The job this one was made from (Continue, Remix), and how: see :class:`JobOrigin`.
    parent_job_id: int | None = Field(default=None, foreign_key="jobs.id", nullable=True)
    origin: JobOrigin | None = Field(default=None, sa_type=JobOriginType, nullable=True)

    estimate_credits: int
    hold_allowance: int = 0
    hold_bonus: int = 0
    spent_allowance: int = 0
    spent_bonus: int = 0
    credit_period_start: datetime = _when()
    #: Credits the provider used beyond what the member could cover at settlement (recorded, not owed).
    shortfall_credits: int = 0
    budget_period_start: datetime | None = _when(nullable=True, default=None)
    budget_counted: int = 0

    provider_task_id: str | None = Field(default=None, sa_type=sa.String(128), nullable=True)
    credits_used: int | None = None
    credits_charged: int | None = None
    eta_low_seconds: int | None = None
    eta_high_seconds: int | None = None
    progress: int | None = None
    video_url: str | None = Field(default=None, sa_type=sa.Text, nullable=True)
    #: How the video was posted (``None`` until delivered, and for jobs delivered before it was recorded).
    delivered_via: DeliveredVia | None = Field(default=None, sa_type=DeliveredViaType, nullable=True)
    #: What happened on the way, in words for the audit log ("posted as a link: it is 30 MB, ...").
    delivery_notes: str | None = Field(default=None, sa_type=sa.Text, nullable=True)
    #: When the posted video was deleted from Discord with its Delete button (``None``: still there, as
    #: far as the bot knows); ``posted_message_id`` is kept, for the record.
    posted_deleted_at: datetime | None = _when(nullable=True, default=None)
    attempts: int = 0
    error: str | None = Field(default=None, sa_type=sa.Text, nullable=True)

    #: The job's round in the fair queue, given when it was created (:mod:`storage.rounds`).
    fair_round: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    lease_owner: str | None = Field(default=None, sa_type=sa.String(128), nullable=True)
    lease_expires_at: datetime | None = _when(nullable=True, default=None)
    next_attempt_at: datetime | None = _when(nullable=True, default=None)

    created_at: datetime = _when(default_factory=utcnow)
    updated_at: datetime = _when(default_factory=utcnow)
    submitted_at: datetime | None = _when(nullable=True, default=None)
    #: The last status answer that said "not yet" (with ``completed_at``, when the video was finished:
    #: between the two; the poll schedule learns from it, :mod:`ulazai.completion`).
    polled_at: datetime | None = _when(nullable=True, default=None)
    completed_at: datetime | None = _when(nullable=True, default=None)
    #: When the job reached an ending state (retention counts from here).
    ended_at: datetime | None = _when(nullable=True, default=None)
    #: The member asked to be forgotten while the job was being made: it is erased when it ends.
    erase_requested: bool = False
    #: When the prompt, image and video links and delivery notes were erased (the row, its amounts and
    #: states stay, so the ledger still balances).
    erased_at: datetime | None = _when(nullable=True, default=None)
    #: When the video was posted (the usage report's "delivered").
    delivered_at: datetime | None = _when(nullable=True, default=None)

    @property
    def held_credits(self) -> int:
        """Credits currently reserved for this job."""
        return self.hold_allowance + self.hold_bonus

    @property
    def member_charged(self) -> int:
        """Credits the member has paid for this job (after settlement, before any refund)."""
        return self.spent_allowance + self.spent_bonus


class LedgerEntry(SQLModel, table=True):
    """One append-only movement of a member's credits.

    The three deltas say what happened to each account column; ``amount`` is the size of the
    operation as a person would say it (the reservation, the grant, the refund). The idempotency key
    is unique, so replaying an operation can never move credits twice.
    """

    __tablename__: ClassVar[str] = "ledger_entries"
    __table_args__ = (
        sa.ForeignKeyConstraint(
            ["guild_id", "user_id"], ["member_accounts.guild_id", "member_accounts.user_id"]
        ),
        sa.Index("ix_ledger_entries_guild_id_user_id_id", "guild_id", "user_id", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    guild_id: int = _id()
    user_id: int = _id()
    job_id: int | None = Field(default=None, foreign_key="jobs.id", nullable=True)
    actor_id: int | None = _id(nullable=True, default=None)
    kind: str = Field(sa_type=sa.String(16))
    amount: int
    allowance_delta: int = 0
    bonus_delta: int = 0
    reserved_delta: int = 0
    idempotency_key: str = Field(sa_type=sa.String(200), unique=True)
    note: str | None = Field(default=None, sa_type=sa.Text, nullable=True)
    created_at: datetime = _when(default_factory=utcnow)


class Quote(SQLModel, table=True):
    """A price shown to a member before anything is spent, until they press Confirm or Cancel.

    ``request`` is what Confirm needs to make the request again through every check (the options, the
    attachments' Discord links, images already at the provider); it is cleared as soon as the quote
    is decided or expires, so a member's words stay here only while the quote is open.
    ``interaction_id`` is the interaction that asked, unique, and the job's idempotency key on Confirm.
    """

    __tablename__: ClassVar[str] = "quotes"
    __table_args__ = (
        sa.Index("ix_quotes_state_expires_at", "state", "expires_at"),
        sa.Index("ix_quotes_guild_id_user_id", "guild_id", "user_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    interaction_id: int = _id(unique=True)
    guild_id: int = _id()
    user_id: int = _id()
    channel_id: int = _id()
    state: QuoteState = Field(default=QuoteState.OPEN, sa_type=QuoteStateType, nullable=False)
    request: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON, nullable=False)
    estimate_credits: int
    created_at: datetime = _when(default_factory=utcnow)
    expires_at: datetime = _when()
    decided_at: datetime | None = _when(nullable=True, default=None)


class ProviderPace(SQLModel, table=True):
    """The provider's call schedule shared by every process of a deployment (PostgreSQL): the time the
    next free call slot starts (see :mod:`storage.pace`)."""

    __tablename__: ClassVar[str] = "provider_pace"

    key: str = Field(sa_type=sa.String(32), primary_key=True)
    next_at: datetime = _when()


class BotState(SQLModel, table=True):
    """Small global key/value facts, such as the hash of the last synced command tree."""

    __tablename__: ClassVar[str] = "bot_state"

    key: str = Field(sa_type=sa.String(64), primary_key=True)
    value: str = Field(sa_type=sa.Text)
    updated_at: datetime = _when(default_factory=utcnow)


class Ban(SQLModel, table=True):
    """A member an admin stopped from making videos in one server (``/kling-admin ban``)."""

    __tablename__: ClassVar[str] = "bans"

    guild_id: int = Field(
        sa_type=sa.BigInteger,
        primary_key=True,
        foreign_key="guild_settings.guild_id",
        sa_column_kwargs={"autoincrement": False},
    )
    user_id: int = Field(sa_type=sa.BigInteger, primary_key=True, sa_column_kwargs={"autoincrement": False})
    reason: str | None = Field(default=None, sa_type=sa.Text, nullable=True)
    banned_by: int | None = _id(nullable=True, default=None)
    created_at: datetime = _when(default_factory=utcnow)


#: The one row of :class:`ProviderAccount`.
ACCOUNT_ROW = 1


class ProviderAccount(SQLModel, table=True):
    """What the bot knows of the operator's UlazAI account, for every process: one row.

    ``paused`` is set when a generate or upload answers 401 or 402 (the key is refused, or the account
    cannot pay) and cleared by the first generate the provider accepts again; meanwhile no process
    submits, except one probe per interval. ``last_probe_at`` is when a process last sent a queued job
    as that probe: taking the next one is a compare-and-set on it, so processes sharing the database
    send one probe per interval between them. ``credits_remaining`` is the balance the provider last
    reported (Kling 2.6's answers carry it), at ``credits_seen_at``.
    """

    __tablename__: ClassVar[str] = "provider_account"

    id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    paused: bool = False
    #: The HTTP status that paused the line (401 or 402), and the provider's message.
    status: int | None = None
    message: str | None = Field(default=None, sa_type=sa.Text, nullable=True)
    since: datetime | None = _when(nullable=True, default=None)
    last_probe_at: datetime | None = _when(nullable=True, default=None)
    credits_remaining: int | None = None
    credits_seen_at: datetime | None = _when(nullable=True, default=None)
    updated_at: datetime = _when(default_factory=utcnow)


def _defaults(model: type[SQLModel]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A model's constant field defaults (``None`` for required fields), and its default factories."""
    constants: dict[str, Any] = {}
    factories: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        if field.default_factory is not None:
            factories[name] = field.default_factory
        else:
            constants[name] = None if field.is_required() else field.default
    return constants, factories


_JOB_DEFAULTS, _JOB_FACTORIES = _defaults(Job)
_GUILD_DEFAULTS, _GUILD_FACTORIES = _defaults(GuildSettings)


def detached_job(values: dict[str, Any]) -> Job:
    """A :class:`Job` built the way the ORM builds one from a row: much cheaper than ``Job(...)``,
    which runs every attribute through instrumentation (this is on the reservation's hot path)."""
    job: Job = sa.inspect(Job).class_manager.new_instance()
    job.__dict__.update(_JOB_DEFAULTS)
    job.__dict__.update({name: factory() for name, factory in _JOB_FACTORIES.items() if name not in values})
    job.__dict__.update(values)
    return job


def detached_settings(values: dict[str, Any]) -> GuildSettings:
    """:class:`GuildSettings` from a whole row, built as :func:`detached_job` builds a job (the request
    flow reads them for every request)."""
    settings: GuildSettings = sa.inspect(GuildSettings).class_manager.new_instance()
    settings.__dict__.update(_GUILD_DEFAULTS)
    settings.__dict__.update(
        {name: factory() for name, factory in _GUILD_FACTORIES.items() if name not in values}
    )
    settings.__dict__.update(values)
    return settings


def table(model: type[SQLModel]) -> sa.Table:
    """The Core table of a model (SQLModel does not declare ``__table__`` for type checkers)."""
    result: sa.Table = model.__table__  # type: ignore[attr-defined]
    return result


metadata = SQLModel.metadata
