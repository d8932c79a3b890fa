"""A global pace for provider calls, so thousands of jobs never cause a 429 storm.

Calls are spaced at least ``1 / rate`` seconds apart, in arrival order, across the whole process: in
any one-second window at most ``rate`` calls start. Waiters queue on a lock (FIFO in asyncio), so a
burst is smoothed, not dropped.

The client takes any :class:`Pace`: this one for one process; a deployment of several processes sharing
one provider account wires a pace kept in their shared database (``generation.provider_pace``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Protocol


class Pace(Protocol):
    """What the client awaits before every request to the provider."""

    async def acquire(self) -> None:
        """Return when the next call may start."""


class RateLimiter:
    """Async spacing limiter: ``await limiter.acquire()`` before each call."""

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self._interval = 1.0 / rate
        self._clock = clock
        self._sleep = sleep
        self._next = float("-inf")
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            wait = self._next - self._clock()
            if wait > 0:
                await self._sleep(wait)
            self._next = max(self._clock(), self._next) + self._interval
