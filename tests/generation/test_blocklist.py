"""The blocklist: case-insensitive, Unicode-normalised, on word boundaries."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from generation.blocklist import find_blocked_term, normalise


@pytest.mark.parametrize(
    ("prompt", "terms", "expected"),
    [
        ("A GORE scene", ["gore"], "gore"),
        ("ｇｏｒｅ in full width", ["gore"], "gore"),
        ("Gore.", ["gore"], "gore"),
        ("a café at night", ["cafe"], "cafe"),
        ("strasse", ["Straße"], "Straße"),
        ("the blood  -  bath begins", ["blood bath"], "blood bath"),
        ("a first-class seat", ["class"], "class"),
        ("a classic car", ["class"], None),
        ("gorgeous sunset", ["gore"], None),
        ("nothing here", [], None),
        ("anything", ["", "   ", "!!"], None),
    ],
)
def test_matching(prompt: str, terms: list[str], expected: str | None) -> None:
    assert find_blocked_term(prompt, terms) == expected


@given(
    st.text(min_size=1, alphabet=st.characters(categories=["Ll", "Lu"])),
    st.text(alphabet="abcdefghij .,!?"),
)
def test_a_term_is_always_found_as_its_own_word(term: str, filler: str) -> None:
    prompt = f"{filler} {term} {filler}"
    if normalise(term).isalpha():
        assert find_blocked_term(prompt, [term]) == term
