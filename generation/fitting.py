"""Videos stay in the channel: a video over the upload limit is re-encoded to fit, or goes as a link.

The provider's links expire, so a link posted today is a dead URL next month; an attachment plays for
as long as the message exists. When the downloaded video is bigger than the place it is posted
accepts, :func:`fit_for_posting` asks :mod:`media` for a copy under the limit (H.264 + AAC, in a child
process that is killed at ``MEDIA_TIMEOUT_SECONDS``, at most ``MEDIA_WORKERS`` at once). When that
cannot be done, the member gets the link as before and one sentence saying why.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

import media

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FitResult:
    """A copy that fits (``path``, ``size``; the caller deletes it), or why there is none (``why_link``)."""

    path: Path | None
    size: int
    why_link: str | None


async def fit_for_posting(source: Path, size: int, limit: int, *, job_id: int) -> FitResult:
    """A copy of ``source`` (``size`` bytes) under ``limit``, or the reason it goes as a link."""
    try:
        fitted = await media.fit(source, limit)
    except media.CannotFit as error:
        return FitResult(None, 0, error.sentence)
    except media.MediaTimeout as error:
        log.warning("Fitting the video of job %s timed out: %s", job_id, error)
        return FitResult(None, 0, "making it small enough to attach here took too long")
    except media.MediaError as error:
        log.warning("Could not fit the video of job %s: %r", job_id, error)
        return FitResult(None, 0, "it could not be made small enough to attach here")
    log.info("Job %s: fitted a %d-byte video into %d bytes", job_id, size, fitted.info.size)
    return FitResult(fitted.path, fitted.info.size, None)


async def poster_of(video: Path, *, job_id: int) -> Path | None:
    """A small JPEG from early in the video for the finished card, or ``None`` (a card without a
    thumbnail is no reason to hold up a delivery)."""
    try:
        return (await media.poster(video)).path
    except media.MediaError as error:
        log.info("No poster for job %s: %s", job_id, error)
        return None


def discard(*paths: Path | None) -> None:
    """Delete temporary files (blocking: call it in a worker thread)."""
    for path in paths:
        if path is not None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
