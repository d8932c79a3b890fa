"""The rules of editing a server's channel allowlist and blocklist."""

from __future__ import annotations

import pytest

from generation import server_settings
from generation.server_settings import (
    MAX_BLOCKLIST_TERMS,
    BlocklistFull,
    NoChange,
    NothingSingledOut,
    TermRefused,
)


def test_channels_open_and_close() -> None:
    assert server_settings.set_channel([], 5, enabled=True) == [5]
    assert server_settings.set_channel([5, 6], 5, enabled=False) == [6]
    with pytest.raises(NoChange):
        server_settings.set_channel([5], 5, enabled=True)
    with pytest.raises(NoChange):
        server_settings.set_channel([6], 5, enabled=False)
    with pytest.raises(NothingSingledOut):
        server_settings.set_channel([], 5, enabled=False)


def test_terms_are_added_as_written_and_disguised_duplicates_refused() -> None:
    assert server_settings.add_term(["gore"], "wolf*") == ["gore", "wolf*"]
    with pytest.raises(TermRefused, match="already on the blocklist"):
        server_settings.add_term(["fox"], "F-0-X")
    with pytest.raises(TermRefused, match="could never match"):
        server_settings.add_term([], "!!!")
    with pytest.raises(BlocklistFull):
        server_settings.add_term([f"term{n}" for n in range(MAX_BLOCKLIST_TERMS)], "one more")


def test_removing_a_term_removes_its_disguised_twins_too() -> None:
    assert server_settings.remove_term(["fox", "F-0-X", "gore"], "fox") == ["gore"]
    with pytest.raises(TermRefused, match="not on the blocklist"):
        server_settings.remove_term(["gore"], "fox")
