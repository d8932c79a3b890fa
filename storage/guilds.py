"""Guild settings (validated changes) and the server budget counter.

The budget counter lives on the guild row and is moved by conditional ``UPDATE``s in the same
transaction as the member's reservation, so the cap holds under concurrency. What it counts: the
estimate when a job is created, corrected to the provider's ``credits_used`` at settlement, and taken
off again when the job is refunded or released - always in the budget period the job was counted
in. Once that period is over its counter is history: later corrections do not touch the new period.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession

from storage._sql import at, insert_ignore, rowcount
from storage.errors import BudgetExceeded, InvalidSetting
from storage.models import DEFAULT_BUDGET_PERIOD, MODELS, GuildSettings, Job, UTCDateTime, table
from storage.periods import BUDGET_PERIODS, Period, next_period_start, period_start
from storage.results import BudgetSnapshot

GUILDS = table(GuildSettings)


class GuildSettingsChanges(TypedDict, total=False):
    """The settings an admin may change; pass only the ones that change."""

    allowed_channel_ids: Sequence[int]
    review_channel_id: int | None
    audit_channel_id: int | None
    blocklist_terms: Sequence[str]
    default_model: str
    allowance_credits: int
    allowance_period: Period | str
    role_allowances: Mapping[int, int]
    directory_discount: bool
    max_active_jobs: int
    budget_credits: int | None
    budget_period: Period | str
    confirm_above_credits: int
    retention_days: int
    credits_alert: int


#: The largest price-confirmation threshold and retention an admin may set.
MAX_CONFIRM_ABOVE_CREDITS = 100_000
MAX_RETENTION_DAYS = 3650


def _at_most(field: str, value: object, limit: int, unit: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
        raise InvalidSetting(field, f"must be a whole number of {unit} from 0 to {limit:,}")
    return value


def _non_negative(field: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidSetting(field, "must be a whole number of credits, 0 or more")
    return value


def _ids(field: str, values: Sequence[int]) -> list[int]:
    if any(isinstance(v, bool) or not isinstance(v, int) or v <= 0 for v in values):
        raise InvalidSetting(field, "must be Discord ids")
    return list(dict.fromkeys(values))


def _optional_id(field: str, value: int | None) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
        raise InvalidSetting(field, "must be a Discord id or nothing")
    return value


def _model(value: str) -> str:
    if value not in MODELS:
        raise InvalidSetting("default_model", f"must be one of {', '.join(MODELS)}")
    return value


def _period(field: str, value: Period | str, allowed: frozenset[Period] | set[Period]) -> str:
    if value not in allowed:
        raise InvalidSetting(field, f"must be one of {', '.join(sorted(allowed))}")
    return Period(value).value


def _max_active(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidSetting("max_active_jobs", "must be 1 or more")
    return value


def validate(changes: GuildSettingsChanges) -> dict[str, Any]:
    """Check every change and return column values, or raise :class:`InvalidSetting`."""
    unknown = set(changes) - set(GuildSettingsChanges.__annotations__)
    if unknown:
        raise InvalidSetting(sorted(unknown)[0], "is not a guild setting")
    out: dict[str, Any] = {}
    if "allowed_channel_ids" in changes:
        out["allowed_channel_ids"] = _ids("allowed_channel_ids", changes["allowed_channel_ids"])
    if "review_channel_id" in changes:
        out["review_channel_id"] = _optional_id("review_channel_id", changes["review_channel_id"])
    if "audit_channel_id" in changes:
        out["audit_channel_id"] = _optional_id("audit_channel_id", changes["audit_channel_id"])
    if "blocklist_terms" in changes:
        terms = (str(term).strip() for term in changes["blocklist_terms"])
        out["blocklist_terms"] = list(dict.fromkeys(term for term in terms if term))
    if "default_model" in changes:
        out["default_model"] = _model(changes["default_model"])
    if "allowance_credits" in changes:
        out["allowance_credits"] = _non_negative("allowance_credits", changes["allowance_credits"])
    if "allowance_period" in changes:
        out["allowance_period"] = _period("allowance_period", changes["allowance_period"], set(Period))
    if "role_allowances" in changes:
        roles: dict[str, int] = {}
        for role_id, credits in changes["role_allowances"].items():
            if _optional_id("role_allowances", role_id) is None:
                raise InvalidSetting("role_allowances", "keys must be role ids")
            roles[str(role_id)] = _non_negative("role_allowances", credits)
        out["role_allowances"] = roles
    if "directory_discount" in changes:
        out["directory_discount"] = bool(changes["directory_discount"])
    if "max_active_jobs" in changes:
        out["max_active_jobs"] = _max_active(changes["max_active_jobs"])
    if "budget_credits" in changes:
        credits_ = changes["budget_credits"]
        out["budget_credits"] = None if credits_ is None else _non_negative("budget_credits", credits_)
    if "budget_period" in changes:
        out["budget_period"] = _period("budget_period", changes["budget_period"], BUDGET_PERIODS)
    if "confirm_above_credits" in changes:
        out["confirm_above_credits"] = _at_most(
            "confirm_above_credits", changes["confirm_above_credits"], MAX_CONFIRM_ABOVE_CREDITS, "credits"
        )
    if "retention_days" in changes:
        out["retention_days"] = _at_most(
            "retention_days", changes["retention_days"], MAX_RETENTION_DAYS, "days"
        )
    if "credits_alert" in changes:
        out["credits_alert"] = _non_negative("credits_alert", changes["credits_alert"])
        out["credits_alert_sent"] = False  # a new threshold: the next balance below it is a crossing
    return out


#: A guild's whole settings row (parameter ``g``).
SELECT_SETTINGS = sa.select(GUILDS).where(GUILDS.c.guild_id == sa.bindparam("g"))


def read_row(connection: Connection, guild_id: int) -> dict[str, Any] | None:
    """A known guild's settings row as a mapping (``None`` for a guild never seen), in a read-only
    transaction of its own; synchronous, for :func:`storage.database.run_on_connection`."""
    with connection.begin():
        row = connection.execute(SELECT_SETTINGS, {"g": guild_id}).mappings().one_or_none()
    return None if row is None else dict(row)


async def load(
    session: AsyncSession, guild_id: int, now: datetime, *, for_update: bool = False
) -> GuildSettings:
    """The guild's settings row, created with the defaults if the guild is new."""
    settings = await session.get(GuildSettings, guild_id, with_for_update=for_update)
    if settings is None:
        defaults = GuildSettings(guild_id=guild_id, created_at=now, updated_at=now).model_dump()
        await insert_ignore(session, GuildSettings, defaults)
        settings = await session.get(GuildSettings, guild_id, with_for_update=for_update)
        assert settings is not None
    return settings


@dataclass(frozen=True, slots=True)
class Admission:
    """What creating a job needs from the guild row, returned by the budget ``UPDATE`` itself."""

    allowance_credits: int
    allowance_period: str
    role_allowances: dict[str, int]
    max_active_jobs: int
    budget_period_start: datetime


def _admit_statement() -> sa.Update:
    """Count ``cost`` against the budget if it fits, rolling the counter into a new period first;
    built once. Parameters: ``g``, ``cost``, ``daily`` and ``monthly`` (the current period starts)."""
    start = sa.case(
        (GUILDS.c.budget_period == Period.DAILY.value, sa.bindparam("daily", type_=UTCDateTime())),
        else_=sa.bindparam("monthly", type_=UTCDateTime()),
    )
    fresh = sa.or_(GUILDS.c.budget_period_start.is_(None), GUILDS.c.budget_period_start < start)
    spent_now = sa.case((fresh, 0), else_=GUILDS.c.budget_spent)
    cost = sa.bindparam("cost", type_=sa.Integer)
    return (
        sa.update(GUILDS)
        .where(
            GUILDS.c.guild_id == sa.bindparam("g"),
            sa.or_(GUILDS.c.budget_credits.is_(None), spent_now + cost <= GUILDS.c.budget_credits),
        )
        .values(
            budget_spent=spent_now + cost,
            budget_period_start=sa.case((fresh, start), else_=GUILDS.c.budget_period_start),
        )
        .returning(
            GUILDS.c.allowance_credits,
            GUILDS.c.allowance_period,
            GUILDS.c.role_allowances,
            GUILDS.c.max_active_jobs,
            GUILDS.c.budget_period_start,
        )
    )


#: Count a cost against the budget and return the settings a new job needs (see :func:`admit`).
ADMIT = _admit_statement()


def admit_params(guild_id: int, cost: int, now: datetime) -> dict[str, object]:
    """The parameters of :data:`ADMIT`."""
    return {
        "g": guild_id,
        "cost": cost,
        "daily": period_start(Period.DAILY, now),
        "monthly": period_start(Period.MONTHLY, now),
    }


async def admit(session: AsyncSession, guild_id: int, cost: int, now: datetime) -> Admission:
    """Count ``cost`` against the server budget and return the settings a new job needs.

    One conditional ``UPDATE`` (it also reads the settings, via ``RETURNING``), so the cap holds
    under concurrency. Creates the guild's settings row if it is new; raises
    :class:`BudgetExceeded` when the cost does not fit.
    """
    params = admit_params(guild_id, cost, now)
    connection = await session.connection()  # Core on the session's connection
    row = (await connection.execute(ADMIT, params)).one_or_none()
    if row is None:
        await load(session, guild_id, now)  # a new guild: create its row, then try again
        row = (await connection.execute(ADMIT, params)).one_or_none()
    if row is None:
        snapshot = await budget(session, guild_id, now)
        raise BudgetExceeded(
            budget=snapshot.budget or 0, spent=snapshot.spent, needed=cost, resets_at=snapshot.resets_at
        )
    return Admission(*row)


async def recount_budget(session: AsyncSession, job: Job, counted: int) -> None:
    """Make the job count ``counted`` credits in its budget period, if that period is still open."""
    if job.budget_period_start is None or job.budget_counted == counted:
        return
    result = await session.execute(
        sa.update(GUILDS)
        .where(GUILDS.c.guild_id == job.guild_id, GUILDS.c.budget_period_start == at(job.budget_period_start))
        .values(budget_spent=GUILDS.c.budget_spent + (counted - job.budget_counted))
    )
    if rowcount(result):
        job.budget_counted = counted
    else:  # that period is over: its counter is history, the job no longer counts anywhere
        job.budget_counted = 0
        job.budget_period_start = None


async def budget(session: AsyncSession, guild_id: int, now: datetime) -> BudgetSnapshot:
    row = (
        await session.execute(
            sa.select(
                GUILDS.c.budget_period,
                GUILDS.c.budget_period_start,
                GUILDS.c.budget_spent,
                GUILDS.c.budget_credits,
            ).where(GUILDS.c.guild_id == guild_id)
        )
    ).one_or_none()
    kind = Period(row.budget_period) if row is not None else DEFAULT_BUDGET_PERIOD
    start = period_start(kind, now)
    spent = row.budget_spent if row is not None and row.budget_period_start == start else 0
    return BudgetSnapshot(
        guild_id=guild_id,
        period=kind,
        period_start=start,
        resets_at=next_period_start(kind, now),
        spent=spent,
        budget=row.budget_credits if row is not None else None,
    )


# -- the provider account, seen from each server --------------------------------------------------------


async def credits_crossed(session: AsyncSession, remaining: int) -> list[tuple[int, int]]:
    """The servers whose alert threshold the account's balance just fell below, as (guild, threshold).

    One line per crossing: a server is returned once when ``remaining`` goes below its threshold, and
    armed again when a later balance is back at or above it. Both are conditional ``UPDATE``s, so two
    processes reading balances at once cannot both return the same crossing.
    """
    await session.execute(
        sa.update(GUILDS)
        .where(GUILDS.c.credits_alert_sent.is_(True), GUILDS.c.credits_alert <= remaining)
        .values(credits_alert_sent=False)
    )
    rows = await session.execute(
        sa.update(GUILDS)
        .where(
            GUILDS.c.credits_alert > 0,
            GUILDS.c.credits_alert > remaining,
            GUILDS.c.credits_alert_sent.is_(False),
        )
        .values(credits_alert_sent=True)
        .returning(GUILDS.c.guild_id, GUILDS.c.credits_alert)
    )
    return sorted((int(guild_id), int(threshold)) for guild_id, threshold in rows.all())


async def tell_of_pause(session: AsyncSession, since: datetime, guild_ids: Sequence[int]) -> list[int]:
    """Of ``guild_ids``, those not yet told of the pause that started at ``since`` (now marked told)."""
    if not guild_ids:
        return []
    rows = await session.execute(
        sa.update(GUILDS)
        .where(
            GUILDS.c.guild_id.in_(list(guild_ids)),
            sa.or_(GUILDS.c.pause_notified_at.is_(None), GUILDS.c.pause_notified_at != since),
        )
        .values(pause_notified_at=since)
        .returning(GUILDS.c.guild_id)
    )
    return sorted(int(guild_id) for guild_id in rows.scalars().all())


async def told_of_pause(session: AsyncSession) -> list[int]:
    """The servers that were told of a pause, which is over now (no longer marked told)."""
    rows = await session.execute(
        sa.update(GUILDS)
        .where(GUILDS.c.pause_notified_at.is_not(None))
        .values(pause_notified_at=None)
        .returning(GUILDS.c.guild_id)
    )
    return sorted(int(guild_id) for guild_id in rows.scalars().all())
