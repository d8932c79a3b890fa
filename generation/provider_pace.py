"""One provider budget for the whole deployment: the client's :class:`~ulazai.ratelimit.Pace` kept in the
shared database, for several bot processes on one PostgreSQL (the schedule itself and why it is one:
:mod:`storage.pace`).

:class:`SharedPace` hands each caller one slot of the deployment's schedule, in arrival order. Slots are
reserved in batches for the callers waiting right now (at most :data:`BATCH_SECONDS` of the rate at a
time, so a process that dies leaves little unused), turned into local times, and each caller sleeps
until its own. A slot this process could not use in time (the loop was busy) is dropped rather than
used late: a late call would land next to another process's next one.
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
#: How late (in slot intervals) a slot may still be used.
LATE_SLOTS: Final = 0.25


class SharedPace:
    """``await pace.acquire()`` before each provider call; at most ``rate`` calls a second start across
    every process sharing ``storage``."""

    def __init__(
        self,
        storage: Storage,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.storage = storage
        self.interval = 1.0 / rate
        self.batch = max(1, math.floor(rate * BATCH_SECONDS))
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
            async with self._lock:
                slot = await self._next_slot()
            wait = slot - self._clock()
            if wait > 0:
                await self._sleep(wait)
        finally:
            self._waiting -= 1

    async def _next_slot(self) -> float:
        while True:
            late = self._clock() - LATE_SLOTS * self.interval
            while self._slots and self._slots[0] < late:
                self._slots.popleft()
                self.dropped += 1
            if self._slots:
                return self._slots.popleft()
            count = min(self.batch, self._waiting)
            delay = await self.storage.reserve_provider_slots(count, self.interval)
            self.reservations += 1
            first = self._clock() + max(0.0, delay)
            self._slots.extend(first + n * self.interval for n in range(count))
