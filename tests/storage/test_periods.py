"""UTC period maths: boundaries are daily 00:00, Monday 00:00 and the 1st 00:00, whatever the zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage.periods import Period, as_utc, next_period_start, period_start

moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))


@pytest.mark.parametrize(
    ("period", "now", "start", "following"),
    [
        (
            Period.DAILY,
            datetime(2025, 3, 4, 23, 59, tzinfo=UTC),
            datetime(2025, 3, 4, tzinfo=UTC),
            datetime(2025, 3, 5, tzinfo=UTC),
        ),
        (
            Period.WEEKLY,
            datetime(2025, 1, 5, 23, 0, tzinfo=UTC),
            datetime(2024, 12, 30, tzinfo=UTC),
            datetime(2025, 1, 6, tzinfo=UTC),
        ),
        (
            Period.WEEKLY,
            datetime(2025, 1, 6, 0, 0, tzinfo=UTC),
            datetime(2025, 1, 6, tzinfo=UTC),
            datetime(2025, 1, 13, tzinfo=UTC),
        ),
        (
            Period.MONTHLY,
            datetime(2024, 12, 31, 23, 59, tzinfo=UTC),
            datetime(2024, 12, 1, tzinfo=UTC),
            datetime(2025, 1, 1, tzinfo=UTC),
        ),
        (
            Period.MONTHLY,
            datetime(2024, 2, 29, 12, tzinfo=UTC),
            datetime(2024, 2, 1, tzinfo=UTC),
            datetime(2024, 3, 1, tzinfo=UTC),
        ),
    ],
)
def test_known_boundaries(period: Period, now: datetime, start: datetime, following: datetime) -> None:
    assert period_start(period, now) == start
    assert next_period_start(period, now) == following


def test_other_zones_are_converted_to_utc() -> None:
    # 01:30 on Monday in UTC+2 is still Sunday 23:30 UTC: the previous week.
    now = datetime(2025, 1, 6, 1, 30, tzinfo=timezone(timedelta(hours=2)))
    assert period_start(Period.WEEKLY, now) == datetime(2024, 12, 30, tzinfo=UTC)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        as_utc(datetime(2025, 1, 1))


@given(period=st.sampled_from(Period), now=moments)
def test_now_lies_in_its_period(period: Period, now: datetime) -> None:
    start, end = period_start(period, now), next_period_start(period, now)
    assert start <= now < end
    assert start.tzinfo is UTC
    assert (start.hour, start.minute, start.second, start.microsecond) == (0, 0, 0, 0)
    if period is Period.WEEKLY:
        assert start.weekday() == 0
    if period is Period.MONTHLY:
        assert start.day == 1


@given(period=st.sampled_from(Period), now=moments)
def test_periods_tile_time(period: Period, now: datetime) -> None:
    """The next period starts where this one ends, and the instant before belongs to this one."""
    end = next_period_start(period, now)
    assert period_start(period, end) == end
    assert period_start(period, end - timedelta(microseconds=1)) == period_start(period, now)
