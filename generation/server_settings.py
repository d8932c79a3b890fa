"""The rules of changing a server's lists: the channels videos may be made in, and the blocklist.

Each function takes the current value and returns the new one, or raises: :class:`NoChange` when the
list already is what the admin asked for (answered, nothing written), a
:class:`~generation.refusals.Refusal` when the change cannot be made. They run while storage holds the
guild row's lock (:meth:`storage.Storage.edit_guild_settings`), so two admins editing at once both land.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from generation.blocklist import normalise_term
from generation.refusals import Refusal

#: The most terms one server's blocklist holds.
MAX_BLOCKLIST_TERMS: Final = 200


class NoChange(Exception):
    """The list already is what the admin asked for."""


class NothingSingledOut(Refusal):
    """A channel was closed while none is singled out: every channel is open, and stays so."""

    def __init__(self) -> None:
        super().__init__("No channel is singled out yet, so videos can be made everywhere.")


class TermRefused(Refusal):
    """A blocklist term that cannot be added or removed; ``message`` completes a sentence about the term."""


class BlocklistFull(Refusal):
    def __init__(self) -> None:
        super().__init__(f"The blocklist is full ({MAX_BLOCKLIST_TERMS} terms); remove some first.")


def set_channel(allowed: Sequence[int], channel_id: int, *, enabled: bool) -> list[int]:
    """The allowlist with ``channel_id`` opened or closed (an empty list means every channel is open)."""
    allowed = list(allowed)
    if not enabled and not allowed:
        raise NothingSingledOut
    if enabled == (channel_id in allowed):
        raise NoChange
    return [*allowed, channel_id] if enabled else [other for other in allowed if other != channel_id]


def add_term(terms: Sequence[str], term: str) -> list[str]:
    """The blocklist with ``term`` added, as the admin wrote it; a term that equals one already listed
    once both are normalised (``F-0-X`` and ``fox``) counts as listed."""
    key = normalise_term(term)
    if key is None:
        raise TermRefused("has no letters or digits, so it could never match a prompt")
    if _same(terms, term, key):
        raise TermRefused("is already on the blocklist")
    if len(terms) >= MAX_BLOCKLIST_TERMS:
        raise BlocklistFull
    return [*terms, term]


def remove_term(terms: Sequence[str], term: str) -> list[str]:
    """The blocklist without ``term`` (and without the terms it equals once normalised)."""
    same = _same(terms, term, normalise_term(term))
    if not same:
        raise TermRefused("is not on the blocklist")
    return [existing for existing in terms if existing not in same]


def _same(terms: Sequence[str], term: str, key: str | None) -> list[str]:
    return [e for e in terms if e == term or (key is not None and normalise_term(e) == key)]
