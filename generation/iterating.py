"""The rules of making a new video from one already there: Continue, Remix, Animate with Kling.

Their requests go through the same flow as ``/video`` (every check before any charge); what is theirs
is here, with no Discord in it:

* what a member types into their modals, checked before anything else (:func:`parse_prompt`,
  :func:`parse_duration`): a bad value is one :class:`~generation.refusals.Refusal`, nothing charged;
* the start frame of a continuation (:func:`last_frame_of`): the posted video is streamed to a
  temporary file (never held in memory), its last frame taken by :mod:`media` in a child process,
  and the picture's bytes read off the event loop, ready to be checked and uploaded like an image a
  member attached. The request shapes themselves are in :mod:`generation.shapes`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Final

import aiohttp

import media
from generation.refusals import BadDuration, EmptyPrompt, NoLastFrame, PromptTooLong
from ulazai.download import DownloadError, download_video
from ulazai.requests import KLING30_DURATIONS, MAX_PROMPT_LENGTH, KlingModel

log = logging.getLogger(__name__)

#: The longest prompt a modal takes: the larger of the two models' limits (Kling 2.6's own, 2,000,
#: is enforced with the model's rules, which say so in their own words).
MAX_MODAL_PROMPT: Final = MAX_PROMPT_LENGTH[KlingModel.V3_0]
#: Durations a modal takes, in whole seconds (Kling 3.0's range; Kling 2.6's rules refine it).
MODAL_DURATIONS: Final = KLING30_DURATIONS
#: What may follow the number of seconds, longest first.
UNITS: Final = ("seconds", "second", "secs", "sec", "s")


def parse_prompt(text: str | None) -> str:
    """The prompt typed into a modal, trimmed; refused when empty or over :data:`MAX_MODAL_PROMPT`."""
    prompt = (text or "").strip()
    if not prompt:
        raise EmptyPrompt
    if len(prompt) > MAX_MODAL_PROMPT:
        raise PromptTooLong(len(prompt), MAX_MODAL_PROMPT)
    return prompt


def parse_duration(text: str | None) -> int | None:
    """Whole seconds from 3 to 15 typed into a modal (an "s" after the number is fine); ``None`` when
    left empty (the caller's default). ``"abc"``, ``"7.5"``, ``"20"`` are refused."""
    raw = (text or "").strip()
    if not raw:
        return None
    digits = raw.lower()
    for unit in UNITS:
        if digits.endswith(unit):
            digits = digits.removesuffix(unit).strip()
            break
    low, high = MODAL_DURATIONS.start, MODAL_DURATIONS.stop - 1
    if not digits.isascii() or not digits.isdecimal() or int(digits) not in MODAL_DURATIONS:
        raise BadDuration(raw[:20], low, high)
    return int(digits)


async def last_frame_of(
    session: aiohttp.ClientSession, urls: Sequence[str], *, max_bytes: int, allow_private: bool
) -> bytes:
    """The last frame of the video at the first of ``urls`` that can be downloaded and read, as image
    bytes (a PNG, or a JPEG when the PNG would pass the provider's limit; see :func:`media.last_frame`).

    ``urls`` in order of preference: the posted message's attachment, then the provider's link (it
    expires). ``allow_private``: as for the delivery worker, only when the provider itself is local.
    Raises :class:`~generation.refusals.NoLastFrame` when none works.
    """
    for url in urls:
        try:
            video = await download_video(session, url, max_bytes=max_bytes, allow_private=allow_private)
        except DownloadError as error:
            log.info("Could not download a video to continue: %s", error)
            continue
        try:
            still = await media.last_frame(video.path)
        except media.MediaError as error:
            log.info("No last frame from a video to continue: %s", error)
            continue
        finally:
            await asyncio.to_thread(video.cleanup)
        try:
            return await asyncio.to_thread(still.path.read_bytes)
        finally:
            await asyncio.to_thread(still.path.unlink, missing_ok=True)
    raise NoLastFrame
