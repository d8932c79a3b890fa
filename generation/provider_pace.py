"""One provider budget for the whole deployment: the client's :class:`~ulazai.ratelimit.Pace` kept in the
shared database, for several bot processes on one PostgreSQL (the schedule itself and why it is one:
:mod:`storage.pace`).

:class:`SharedPace` hands each caller one slot of the deployment's schedule, in arrival order. Slots are
reserved in batches for the callers waiting right now (at most :data:`BATCH_SECONDS` of the rate at a
time, so a process that dies leaves little unused), turned into local times, and each caller sleeps
until its own.

Why the budget holds at the provider, not only in the schedule. The schedule's slots are ``spacing``
apart for the whole deployment, but a call reaches the provider a little off its slot, for two reasons,
each bounded here rather than hoped small:

* *Where the slots are.* The database says "the first is in 0.3 s" at a moment somewhere inside the
  reservation's round trip. The slots are placed from the moment the answer arrived, so they are never
  early, only late, all by the same amount, at most the round trip; :data:`ROUND_TRIP_ALLOWANCE` of
  that is allowed for in the spacing, and for the rest the last ``ceil((round trip - allowance) /
  spacing)`` slots of the batch are dropped, so the latest used one still comes before the next batch
  (another process's) begins. A slow database costs a few slots, never the budget.
* *When the call leaves.* A slot this process wakes up for later than :data:`LATE_SECONDS` is dropped
  rather than used late (a late call lands next to another process's next one), and the call then
  takes up to :data:`SEND_SECONDS` to reach the provider.

With every arrival within ``ERROR = ROUND_TRIP_ALLOWANCE + LATE_SECONDS + SEND_SECONDS`` after its slot, a one-second window at
the provider sees the slots of at most ``1 + ERROR`` seconds of schedule, so ``spacing = (1 + ERROR) /
(budget - 1)`` keeps it within ``budget`` calls (the ``- 1``: a window may start on a slot). Dropped
slots cost throughput, never the budget: a deployment on a loaded machine runs slower, not over.
"""

from __future__ import annotations

import asyncio
import collections
import math
import time
from collections.abc import Awaitable, Callable
from typing import Final

from storage import Storage

#: The most slots reserved at once, in seconds of the rate.
BATCH_SECONDS: Final = 0.5
#: How much of a reservation's round trip (seconds) the spacing allows for.
ROUND_TRIP_ALLOWANCE: Final = 0.02
#: How late (seconds) a slot may still be used.
LATE_SECONDS: Final = 0.15
#: What the call itself may take from leaving the pace to reaching the provider (seconds).
SEND_SECONDS: Final = 0.03
#: How long after its slot a call may reach the provider (seconds).
ERROR: Final = ROUND_TRIP_ALLOWANCE + LATE_SECONDS + SEND_SECONDS


def spacing_for(budget: float) -> float:
    """Seconds between slots so that no one-second window at the provider holds more than ``budget``
    calls, with every call within :data:`ERROR` of its slot (see the module docstring)."""
    if budget <= 0:
        raise ValueError("the budget must be positive")
    return (1 + ERROR) / max(budget - 1, 0.5)


class SharedPace:
    """``await pace.acquire()`` before each provider call; at most ``budget`` calls reach the provider
    in any one second, across every process sharing ``storage``."""

    def __init__(
        self,
        storage: Storage,
        budget: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.storage = storage
        self.interval = spacing_for(budget)
        self.batch = max(1, math.floor(BATCH_SECONDS / self.interval))
        self._clock = clock
        self._sleep = sleep
        self._slots: collections.deque[float] = collections.deque()
        self._lock = asyncio.Lock()
        self._waiting = 0
        #: Slots reserved and dropped unused (for the figures of ``benchmarks/scale.py``).
        self.dropped = 0
        self.reservations = 0

    async def acquire(self) -> None:
        self._waiting += 1
        try:
            while True:
                async with self._lock:
                    slot = await self._next_slot()
                wait = slot - self._clock()
                if wait > 0:
                    await self._sleep(wait)
                if self._clock() <= slot + LATE_SECONDS:
                    return
                self.dropped += 1  # woken too late for this slot: another one
        finally:
            self._waiting -= 1

    async def _next_slot(self) -> float:
        while True:
            late = self._clock() - LATE_SECONDS
            while self._slots and self._slots[0] < late:
                self._slots.popleft()
                self.dropped += 1
            if self._slots:
                return self._slots.popleft()
            count = min(self.batch, max(1, self._waiting))
            asked = self._clock()
            delay = await self.storage.reserve_provider_slots(count, self.interval)
            answered = self._clock()
            self.reservations += 1
            beyond = max(0.0, answered - asked - ROUND_TRIP_ALLOWANCE)
            usable = count - math.ceil(beyond / self.interval)  # see the module docstring
            self.dropped += count - max(0, usable)
            first = answered + max(0.0, delay)
            self._slots.extend(first + n * self.interval for n in range(max(0, usable)))
