"""The credit estimate against the provider's published tables, over the whole matrix."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ulazai.errors import InvalidRequestError
from ulazai.pricing import DIRECTORY_DISCOUNT, estimate_credits
from ulazai.requests import KlingModel, Quality, VideoSpec

V30 = KlingModel.V3_0
V26 = KlingModel.V2_6

# Written out from the docs' tables, not imported from the module under test.
KLING30_PER_SECOND = {
    ("std", False): 20,
    ("std", True): 30,
    ("pro", False): 27,
    ("pro", True): 40,
}
KLING26_PER_CLIP = {(5, False): 55, (5, True): 110, (10, False): 110, (10, True): 220}

KLING30_MATRIX = list(
    itertools.product(range(3, 16), [None, Quality.STD, Quality.PRO], [False, True], [False, True])
)
KLING26_MATRIX = list(itertools.product([5, 10], [False, True], [False, True]))


def test_discount_constant() -> None:
    assert DIRECTORY_DISCOUNT == 10


def test_matrix_sizes() -> None:
    assert len(KLING30_MATRIX) == 13 * 3 * 2 * 2
    assert len(KLING26_MATRIX) == 2 * 2 * 2


@pytest.mark.parametrize(("seconds", "quality", "sound", "optin"), KLING30_MATRIX)
def test_kling30_matrix(seconds: int, quality: Quality | None, sound: bool, optin: bool) -> None:
    video = VideoSpec(
        model=V30, prompt="x", duration=seconds, quality=quality, sound=sound, directory_optin=optin
    )
    undiscounted = seconds * KLING30_PER_SECOND[(quality.value if quality else "std", sound)]
    expected = undiscounted - 10 if optin else undiscounted
    assert estimate_credits(video) == expected
    assert estimate_credits(video, include_discount=True) == expected
    assert estimate_credits(video, include_discount=False) == undiscounted


@pytest.mark.parametrize(("seconds", "sound", "optin"), KLING26_MATRIX)
def test_kling26_matrix(seconds: int, sound: bool, optin: bool) -> None:
    video = VideoSpec(model=V26, prompt="x", duration=seconds, sound=sound, directory_optin=optin)
    undiscounted = KLING26_PER_CLIP[(seconds, sound)]
    assert estimate_credits(video) == (undiscounted - 10 if optin else undiscounted)
    assert estimate_credits(video, include_discount=False) == undiscounted


def test_docs_kling30_example_is_310() -> None:
    """8 s, pro, with audio, opted in: 8 × 40 − 10, the docs' credits_used."""
    video = VideoSpec(
        model=V30, prompt="x", duration=8, quality=Quality.PRO, sound=True, directory_optin=True
    )
    assert estimate_credits(video) == 310
    assert estimate_credits(video, include_discount=False) == 320


@pytest.mark.parametrize(
    ("seconds", "sound", "expected"), [(5, False, 55), (10, False, 110), (5, True, 110), (10, True, 220)]
)
def test_docs_kling26_prices(seconds: int, sound: bool, expected: int) -> None:
    assert estimate_credits(VideoSpec(model=V26, prompt="x", duration=seconds, sound=sound)) == expected


@pytest.mark.parametrize(
    ("seconds", "quality", "sound", "expected"),
    [
        (3, None, False, 60),
        (3, Quality.STD, True, 90),
        (3, Quality.PRO, False, 81),
        (15, Quality.PRO, True, 600),
        (15, Quality.STD, False, 300),
        (10, Quality.PRO, True, 400),
        (7, Quality.PRO, False, 189),
    ],
)
def test_kling30_spot_values(seconds: int, quality: Quality | None, sound: bool, expected: int) -> None:
    video = VideoSpec(model=V30, prompt="x", duration=seconds, quality=quality, sound=sound)
    assert estimate_credits(video) == expected


def test_quality_as_plain_string() -> None:
    assert estimate_credits(VideoSpec(model=V30, prompt="x", duration=4, quality="pro")) == 108  # type: ignore[arg-type]


def test_discount_only_when_opted_in() -> None:
    plain = VideoSpec(model=V30, prompt="x", duration=5)
    assert estimate_credits(plain) == estimate_credits(plain, include_discount=False) == 100


@pytest.mark.parametrize("seconds", [2, 16, 0, -1])
def test_kling30_duration_not_offered(seconds: int) -> None:
    with pytest.raises(InvalidRequestError) as info:
        estimate_credits(VideoSpec(model=V30, prompt="x", duration=seconds))
    assert info.value.field == "duration"
    assert f"{seconds} s" in info.value.message


@pytest.mark.parametrize("seconds", [3, 7, 15, 0])
def test_kling26_duration_not_offered(seconds: int) -> None:
    with pytest.raises(InvalidRequestError) as info:
        estimate_credits(VideoSpec(model=V26, prompt="x", duration=seconds))
    assert info.value.field == "duration"
    assert info.value.message == f"Kling 2.6 makes 5 s or 10 s videos; you asked for {seconds} s."


@pytest.mark.parametrize("model", list(KlingModel))
def test_bool_duration_not_offered(model: KlingModel) -> None:
    with pytest.raises(InvalidRequestError):
        estimate_credits(VideoSpec(model=model, prompt="x", duration=True))


def test_unknown_quality_and_model() -> None:
    with pytest.raises(InvalidRequestError) as info:
        estimate_credits(VideoSpec(model=V30, prompt="x", quality="ultra"))  # type: ignore[arg-type]
    assert info.value.field == "quality"
    with pytest.raises(InvalidRequestError) as info:
        estimate_credits(VideoSpec(model="kling-9", prompt="x"))  # type: ignore[arg-type]
    assert info.value.field == "model"


@given(
    st.integers(3, 14),
    st.sampled_from([None, Quality.STD, Quality.PRO]),
    st.booleans(),
    st.booleans(),
)
def test_kling30_longer_costs_more_and_discount_is_exactly_ten(
    seconds: int, quality: Quality | None, sound: bool, optin: bool
) -> None:
    shorter = VideoSpec(
        model=V30, prompt="x", duration=seconds, quality=quality, sound=sound, directory_optin=optin
    )
    longer = VideoSpec(
        model=V30, prompt="x", duration=seconds + 1, quality=quality, sound=sound, directory_optin=optin
    )
    assert estimate_credits(longer) > estimate_credits(shorter) > 0
    gap = estimate_credits(shorter, include_discount=False) - estimate_credits(shorter)
    assert gap == (DIRECTORY_DISCOUNT if optin else 0)
    silent = VideoSpec(model=V30, prompt="x", duration=seconds, quality=quality, directory_optin=optin)
    assert estimate_credits(silent) <= estimate_credits(shorter)
