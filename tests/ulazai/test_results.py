"""Parsing the provider's estimated-time strings, which only tune polling and must never fail a job."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ulazai.results import DEFAULT_ESTIMATED_TIME, EstimatedTime, TaskStatus, parse_estimated_time


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("60-180 seconds", EstimatedTime(60, 180)),
        ("60-90 seconds", EstimatedTime(60, 90)),
        (" 60 - 90 seconds ", EstimatedTime(60, 90)),
        ("60–90 s", EstimatedTime(60, 90)),
        ("90 seconds", EstimatedTime(90, 90)),
        ("~90 sec", EstimatedTime(90, 90)),
        ("1-3 minutes", EstimatedTime(60, 180)),
        ("2 min", EstimatedTime(120, 120)),
        (120, EstimatedTime(120, 120)),
    ],
)
def test_documented_and_plausible_forms(text: object, expected: EstimatedTime) -> None:
    assert parse_estimated_time(text) == expected


@pytest.mark.parametrize(
    "text", [None, "", "soon", "90-60 seconds", "0 seconds", True, -5, [60, 90], "60-180 hours"]
)
def test_anything_else_falls_back(text: object) -> None:
    assert parse_estimated_time(text) == DEFAULT_ESTIMATED_TIME


@given(st.one_of(st.text(), st.integers(), st.floats(allow_nan=True), st.none()))
def test_never_raises_and_is_ordered(value: object) -> None:
    result = parse_estimated_time(value)
    assert 0 < result.low <= result.high


def test_final_states() -> None:
    assert TaskStatus.COMPLETED.is_final
    assert TaskStatus.FAILED.is_final
    assert not TaskStatus.PENDING.is_final
    assert not TaskStatus.PROCESSING.is_final
