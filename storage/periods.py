"""Pure UTC calendar maths for allowance and budget periods.

Periods are lazy: nothing runs at a boundary. Whoever touches an account computes the start of the
period *now* falls in and, if the account still belongs to an earlier one, refills it then. So the
only thing that has to be right is this arithmetic, and it is pure and tested on its own.

Boundaries: daily at 00:00 UTC, weekly on Monday 00:00 UTC, monthly on the 1st at 00:00 UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum


class Period(StrEnum):
    """How often an allowance is refilled (or a server budget resets)."""

    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"


#: Budget periods a server may choose (a weekly budget was not asked for and would only confuse).
BUDGET_PERIODS = frozenset({Period.DAILY, Period.MONTHLY})


def utcnow() -> datetime:
    """The default clock: an aware UTC datetime."""
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """Return ``moment`` in UTC; naive datetimes are refused because they hide bugs."""
    if moment.tzinfo is UTC:  # the common case (every timestamp storage makes), and the cheapest
        return moment
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment!r}: storage only accepts aware datetimes")
    return moment.astimezone(UTC)


def period_start(period: Period | str, now: datetime) -> datetime:
    """The first instant of the period that ``now`` falls in."""
    kind = Period(period)
    day = as_utc(now).replace(hour=0, minute=0, second=0, microsecond=0)
    if kind is Period.DAILY:
        return day
    if kind is Period.WEEKLY:
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def next_period_start(period: Period | str, now: datetime) -> datetime:
    """The first instant of the period after the one ``now`` falls in (when the next refill is due)."""
    kind = Period(period)
    start = period_start(kind, now)
    if kind is Period.DAILY:
        return start + timedelta(days=1)
    if kind is Period.WEEKLY:
        return start + timedelta(days=7)
    if start.month == 12:
        return start.replace(year=start.year + 1, month=1)
    return start.replace(month=start.month + 1)
