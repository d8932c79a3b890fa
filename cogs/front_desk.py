"""Requests being served, from their acknowledgement to their receipt, so that work which can wait
lets them pass.

In a burst of requests the event loop and SQLite's one connection are shared: each request's public
status card (its queue position, its ETA, the message, the card's id written back) is four awaits
on the same loop and connection as the next request's read and reservation, and interleaved with
them it delays the last receipts of a burst (``benchmarks/ack.py`` on 2026-12-02: the receipt's p99
over 8 runs without this, median 357 ms; over 15 runs with it, median 285 ms). A member is
waiting for the receipt (it carries the cost and the Cancel button); the card is for the channel, and
a moment later is no worse. So a card waits until no request is between its acknowledgement and its
receipt, but never longer than :data:`MOST_A_CARD_WAITS`, so a steady stream of requests cannot keep
cards back. The delivery worker does not wait: under steady traffic it would lose most of its passes
(and ``benchmarks/ack.py`` showed no gain from it).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

#: The longest a status card waits for the receipts before it (seconds).
MOST_A_CARD_WAITS = 1.0


class FrontDesk:
    """Counts the requests not yet answered with a receipt (one per bot process)."""

    def __init__(self, *, most_a_card_waits: float = MOST_A_CARD_WAITS) -> None:
        self.most_a_card_waits = most_a_card_waits
        self._serving = 0
        self._quiet = asyncio.Event()
        self._quiet.set()

    @property
    def serving(self) -> int:
        """How many requests are between their acknowledgement and their receipt."""
        return self._serving

    @contextlib.contextmanager
    def until_receipt(self) -> Iterator[None]:
        """A request's steps up to its receipt (or its refusal: leaving the block either way)."""
        self._serving += 1
        self._quiet.clear()
        try:
            yield
        finally:
            self._serving -= 1
            if not self._serving:
                self._quiet.set()

    async def after_receipts(self) -> None:
        """Return once no request waits for its receipt, or after :attr:`most_a_card_waits`."""
        if self._quiet.is_set():
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.most_a_card_waits):
                await self._quiet.wait()
