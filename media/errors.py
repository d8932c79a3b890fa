"""The typed errors of :mod:`media`: one base class, and one class per thing a caller decides on.

A caller (the delivery worker) needs to tell three outcomes apart: the file is not a video at all
(:class:`NotAVideo`: give up on it), no encode of it can fit the limit (:class:`CannotFit`: post a link
instead, and tell the member why in :attr:`CannotFit.sentence`), and ffmpeg took too long
(:class:`MediaTimeout`: the child was killed; retrying will not help on the same machine). Anything
else (ffmpeg missing, a full disk) is a plain :class:`MediaError` with ffmpeg's last words.
"""

from __future__ import annotations

__all__ = ["CannotFit", "MediaError", "MediaTimeout", "NotAVideo"]


class MediaError(Exception):
    """Something went wrong with a video file; ``detail`` is for the log, never for members."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotAVideo(MediaError):
    """The file is not a playable video: unreadable, cut short, no picture, a still image, no duration."""


class CannotFit(MediaError):
    """No encode of this video fits ``limit_bytes``; :attr:`sentence` says so in words for members."""

    def __init__(self, sentence: str, *, limit_bytes: int, duration: float) -> None:
        super().__init__(sentence)
        self.sentence = sentence
        self.limit_bytes = limit_bytes
        self.duration = duration


class MediaTimeout(MediaError):
    """ffmpeg ran past its time limit and was killed; ``seconds`` is the limit, ``what`` the job."""

    def __init__(self, what: str, seconds: float) -> None:
        super().__init__(f"ffmpeg took longer than {seconds:g} s to {what} and was killed")
        self.what = what
        self.seconds = seconds
