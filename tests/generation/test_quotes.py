"""When a request is quoted, what a quote keeps for Confirm, and who may decide it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from generation import quotes
from generation.quotes import PendingImage, Press, QuotedRequest, Terms
from generation.shapes import IMAGE_SLOTS, VideoOptions
from storage import GuildSettings, Quote, QuoteState
from ulazai.requests import GenerationMode

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def settings(*, above: int = 200, directory: bool = False) -> GuildSettings:
    return GuildSettings(guild_id=1, confirm_above_credits=above, directory_discount=directory)


@pytest.mark.parametrize(
    ("estimate", "above", "directory", "quoted"),
    [
        (150, 100, False, True),
        (100, 100, False, False),  # "above" is strict
        (101, 100, False, True),
        (60, 100, False, False),
        (10_000, 0, False, False),  # 0: never asks
        (55, 0, True, True),  # the directory discount always asks, threshold 0 included
        (55, 100_000, True, True),
        (200, 200, False, False),  # the default: a 5 s Kling 3.0 Pro clip with sound goes straight through
        (201, 200, False, True),
    ],
)
def test_when_a_request_is_quoted(estimate: int, above: int, directory: bool, quoted: bool) -> None:
    assert quotes.needs_quote(estimate, settings(above=above, directory=directory)) is quoted


def test_confirmed_terms_are_quoted_again_only_when_they_got_worse() -> None:
    plain = settings(above=100)
    assert not quotes.needs_quote(150, plain, agreed=Terms(150, directory_optin=False))
    assert quotes.needs_quote(160, plain, agreed=Terms(150, directory_optin=False))  # dearer than shown
    published = settings(above=100, directory=True)
    assert quotes.needs_quote(150, published, agreed=Terms(150, directory_optin=False))  # not told
    assert not quotes.needs_quote(150, published, agreed=Terms(150, directory_optin=True))
    assert not quotes.needs_quote(150, plain, agreed=Terms(150, directory_optin=True))  # turned off: fine


options_strategy = st.builds(
    VideoOptions,
    prompt=st.text(min_size=1, max_size=50),
    mode=st.sampled_from(list(GenerationMode)),
    model=st.none() | st.sampled_from(["kling-3.0", "kling-2.6"]),
    duration=st.none() | st.integers(3, 15),
    quality=st.none() | st.sampled_from(["std", "pro"]),
    aspect_ratio=st.none() | st.sampled_from(["16:9", "9:16", "1:1"]),
    sound=st.none() | st.booleans(),
    multi_shot=st.none() | st.booleans(),
)
images_strategy = st.dictionaries(
    st.sampled_from(IMAGE_SLOTS),
    st.builds(PendingImage, url=st.just("https://cdn/a.png"), size=st.integers(1, 10**7), filename=st.text()),
)


@given(
    options=options_strategy,
    images=images_strategy,
    uploaded=st.dictionaries(st.sampled_from(IMAGE_SLOTS), st.just("https://provider/x.png")),
    directory=st.booleans(),
)
def test_a_quoted_request_survives_the_database_as_json(
    options: VideoOptions, images: dict[str, PendingImage], uploaded: dict[str, str], directory: bool
) -> None:
    quoted = QuotedRequest(options=options, images=images, uploaded=uploaded, directory_optin=directory)
    stored = json.loads(json.dumps(quoted.payload()))
    assert QuotedRequest.from_payload(stored) == quoted
    assert type(QuotedRequest.from_payload(stored).options.mode) is GenerationMode


def quote(*, state: QuoteState = QuoteState.OPEN, user_id: int = 10, guild_id: int = 1) -> Quote:
    return Quote(
        id=5,
        interaction_id=99,
        guild_id=guild_id,
        user_id=user_id,
        channel_id=3,
        state=state,
        request={},
        estimate_credits=150,
        created_at=NOW,
        expires_at=NOW + quotes.QUOTE_LIFETIME,
    )


def test_who_may_decide_a_quote_and_until_when() -> None:
    press = quotes.on_press
    assert press(quote(), guild_id=1, user_id=10, now=NOW) is Press.OPEN
    just_before = NOW + quotes.QUOTE_LIFETIME - timedelta(microseconds=1)
    assert press(quote(), guild_id=1, user_id=10, now=just_before) is Press.OPEN
    assert press(quote(), guild_id=1, user_id=10, now=NOW + quotes.QUOTE_LIFETIME) is Press.EXPIRED
    assert press(quote(), guild_id=1, user_id=11, now=NOW) is Press.NOT_YOURS
    assert press(quote(guild_id=2), guild_id=1, user_id=10, now=NOW) is Press.GONE
    assert press(None, guild_id=1, user_id=10, now=NOW) is Press.GONE
    for state in (QuoteState.CONFIRMED, QuoteState.CANCELLED, QuoteState.EXPIRED):
        assert press(quote(state=state), guild_id=1, user_id=10, now=NOW) is Press.DECIDED
    assert timedelta(minutes=5) == quotes.QUOTE_LIFETIME
