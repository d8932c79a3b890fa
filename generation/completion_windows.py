"""The poll schedule the worker uses for each kind of job, learned from each server's finished jobs.

Tasks of one model, duration and quality take similar times at the provider; the completion times of
a server's newest finished jobs of that kind (:meth:`storage.Storage.completion_seconds`, shared by every
process on one database; per server, as the issue asks, so one server's burst of long Pro jobs does not
move another's schedule) become a :class:`~ulazai.completion.CompletionWindow`, built again every
:data:`REFRESH_SECONDS` so the schedule follows the provider as it speeds up or slows down. With fewer
than :data:`~ulazai.completion.MIN_SAMPLES` finished jobs of a kind there is no learned window and the
provider's ``estimated_time`` stands in (:func:`ulazai.polling.estimate_window`). A status poll costs no
statement of its own here: a kind is read at most once per refresh.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final

from storage import Job, Storage
from ulazai.completion import MIN_SAMPLES, CompletionWindow

log = logging.getLogger(__name__)

#: How long a learned window is used before it is learned again (seconds).
REFRESH_SECONDS: Final = 300.0
#: How many of the newest finished jobs of a kind it learns from.
HISTORY: Final = 200

Kind = tuple[int, str, int, str | None]


class CompletionWindows:
    """The learned window of each kind of job (``None`` until enough of that kind have finished)."""

    def __init__(self, storage: Storage, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.storage = storage
        self._clock = clock
        self._known: dict[Kind, tuple[float, CompletionWindow | None]] = {}

    async def for_job(self, job: Job) -> CompletionWindow | None:
        kind: Kind = (job.guild_id, job.model, job.duration, job.quality)
        known = self._known.get(kind)
        if known is not None and self._clock() - known[0] < REFRESH_SECONDS:
            return known[1]
        samples = await self.storage.completion_seconds(*kind, limit=HISTORY)
        window = CompletionWindow.learned(samples) if len(samples) >= MIN_SAMPLES else None
        if window is not None and (known is None or known[1] is None):
            log.info("Polling server %s's %s %s s %s jobs as %d finished ones took", *kind, len(samples))
        self._known[kind] = (self._clock(), window)
        return window
