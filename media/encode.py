"""Re-encode a video into an MP4 that fits a byte limit (Discord's upload limit, say), or refuse in words.

The output is MP4 with H.264 video (yuv420p, High profile: what every browser and phone plays) and AAC
sound, ``+faststart`` (the index first, so it starts playing before it is fully downloaded), at the
input's aspect ratio and frame rate, with the sound kept when there was any.

How the size is hit, in one pass (a two-pass encode would fit more tightly but take twice as long):

1. **The budget** is ``limit_bytes`` minus a safety margin, :data:`SAFETY_FRACTION` of it but at
   least :data:`SAFETY_MIN_BYTES`. The output must come out at most that big.
2. **The bit rate** follows from the duration: the budget less :data:`RATE_TOLERANCE` (how far
   x264's one-pass average may land above its target), less an estimate of the MP4's own index
   (:func:`container_overhead`) and the sound (:data:`AUDIO_BIT_RATE`), spread over the seconds of the
   video. It is never above the input's own bit rate (re-encoding cannot add detail). x264 encodes at
   that average (``-b:v``) under a VBV cap at the same rate with a one-second buffer that starts half
   full (:data:`VBV_INIT`). x264's default start, 90 % full, lets a short clip of hard content spend
   most of that buffer on top of the average (+14 % on a 3 s clip of noise); half full lands within
   1-2 % of the target on noise and on ordinary pictures alike (measured with this binary).
3. **The resolution** stays, unless that bit rate would give fewer than :data:`MIN_BITS_PER_PIXEL`
   bits per pixel per frame: below about 0.05, H.264 at a fast preset turns moving pictures into
   blocks, and a smaller picture at the same bit rate looks better (streaming services' bit-rate
   ladders switch down a rung around there). The picture is then scaled down, aspect kept and sides
   even, until it has that many bits per pixel, but never below :data:`MIN_SHORT_SIDE` pixels on its
   short side (or the input's, if smaller).
4. **A second try**, when the first comes out over the budget (:func:`second_try`): the video bit
   rate is lowered in proportion to how far the video part overshot, and by at least
   :data:`SECOND_TRY_STEP`; step 3 is applied again.

:class:`CannotFit` is raised, before any encode, when the sound and the index alone fill the budget or
when the picture would have to go below the smallest size; and after two tries that are both too big.
Its :attr:`~CannotFit.sentence` tells a member why.

Speed: ``-preset superfast``. On one core of the project's machine it fits a 15 s 1080p30 clip of 40 MiB
in about 0.8 of its duration (``benchmarks/media.py``); ``veryfast`` needed about 1.1 (CPU time of the
encode alone) for 0.3 dB better SSIM on the same clip.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

from media.errors import CannotFit, MediaError, NotAVideo
from media.files import file_size, new_temp_path, remove_quietly
from media.info import VideoInfo, probe
from media.runner import MediaRunner, default_runner

__all__ = [
    "AUDIO_BIT_RATE",
    "MIN_BITS_PER_PIXEL",
    "MIN_SHORT_SIDE",
    "PRESET",
    "RATE_TOLERANCE",
    "SAFETY_FRACTION",
    "SAFETY_MIN_BYTES",
    "SECOND_TRY_STEP",
    "VBV_INIT",
    "Fitted",
    "Plan",
    "budget_for",
    "container_overhead",
    "fit",
    "plan_encode",
    "second_try",
]

log = logging.getLogger(__name__)

SAFETY_FRACTION = 0.02
SAFETY_MIN_BYTES = 64 * 1024
#: AAC, stereo: clean for speech and music, and a small share of any budget worth encoding for.
AUDIO_BIT_RATE = 96_000
MIN_BITS_PER_PIXEL = 0.05
MIN_SHORT_SIDE = 240
SECOND_TRY_STEP = 0.9
RATE_TOLERANCE = 0.03
VBV_INIT = 0.5
PRESET = "superfast"
#: When a file does not say its frame rate (rare for MP4), plan as if it had this many frames a second.
_ASSUMED_FRAME_RATE = 30.0
#: AAC frames per second at 48 kHz (1024 samples each), for the index estimate.
_AUDIO_FRAMES_PER_SECOND = 47


@dataclass(frozen=True, slots=True)
class Plan:
    """One encode: the output's size in pixels and its video and audio bit rates (bits per second)."""

    width: int
    height: int
    video_bit_rate: int
    audio_bit_rate: int


@dataclass(frozen=True, slots=True)
class Fitted:
    """A finished fit: the new file (the caller deletes it), what it is, and how it was made."""

    path: Path
    info: VideoInfo
    plan: Plan
    attempts: int


def budget_for(limit_bytes: int) -> int:
    """The most bytes an output may have for ``limit_bytes``: the limit less the safety margin."""
    return limit_bytes - max(math.ceil(limit_bytes * SAFETY_FRACTION), SAFETY_MIN_BYTES)


def container_overhead(duration: float, frame_rate: float, has_audio: bool) -> int:
    """Bytes the MP4 spends besides the streams: headers, and some 16 bytes per frame of index."""
    frames = duration * frame_rate + (duration * _AUDIO_FRAMES_PER_SECOND if has_audio else 0)
    return 16 * 1024 + math.ceil(16 * frames)


def _even(value: float) -> int:
    return max(2, int(value) // 2 * 2)


def _describe_duration(seconds: float) -> str:
    whole = max(1, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    return f"{secs} s"


def _describe_size(size: int) -> str:
    """In MB as Discord counts them (1 MB = 1,048,576 bytes, so its 10 MB limit reads "10 MB")."""
    megabytes = size / 1_048_576
    return f"{megabytes:.3g} MB" if megabytes >= 1 else f"{max(1, round(size / 1024))} KB"


def _frame_rate(info: VideoInfo) -> float:
    return min(info.frame_rate or _ASSUMED_FRAME_RATE, 120.0)


def _aim(limit_bytes: int) -> float:
    """The size a plan aims at: the budget less what x264 may land above its target."""
    return budget_for(limit_bytes) * (1 - RATE_TOLERANCE)


def _fixed_bytes(info: VideoInfo) -> float:
    """The bytes of an output that do not depend on the video bit rate: the sound and the MP4 index."""
    duration = max(info.duration, 0.5)
    sound = AUDIO_BIT_RATE * duration / 8 if info.has_audio else 0
    return sound + container_overhead(duration, _frame_rate(info), info.has_audio)


def plan_encode(info: VideoInfo, limit_bytes: int, *, video_bit_rate: float | None = None) -> Plan:
    """The encode that should land ``info``'s video under :func:`budget_for` ``(limit_bytes)``.

    The video bit rate is worked out from the duration (steps 2 and 3 of this module's docstring)
    unless ``video_bit_rate`` is given (a second try's); the resolution follows from it either way.
    Raises :class:`CannotFit` when no encode within those rules can fit.
    """
    too_long = (
        f"This {_describe_duration(info.duration)} video is too long to fit in {_describe_size(limit_bytes)}"
    )
    if video_bit_rate is None:
        video_bytes = _aim(limit_bytes) - _fixed_bytes(info)
        video_bit_rate = min(video_bytes * 8 / max(info.duration, 0.5), info.bit_rate)
    if video_bit_rate <= 0:
        raise CannotFit(
            f"{too_long}: its sound alone would fill the file.",
            limit_bytes=limit_bytes,
            duration=info.duration,
        )
    width, height = info.width, info.height
    pixels = video_bit_rate / (_frame_rate(info) * MIN_BITS_PER_PIXEL)
    if pixels < width * height:
        scale = math.sqrt(pixels / (width * height))
        short_side = min(width, height)
        smallest = min(short_side, MIN_SHORT_SIDE)
        if short_side * scale < smallest:
            raise CannotFit(
                f"{too_long}: it would have to be shrunk below {smallest}p, where it is no longer worth watching.",
                limit_bytes=limit_bytes,
                duration=info.duration,
            )
        if width >= height:
            height = _even(height * scale)
            width = _even(height * info.aspect_ratio + 1)  # +1: round to the nearest even number
        else:
            width = _even(width * scale)
            height = _even(width / info.aspect_ratio + 1)
    audio_bit_rate = AUDIO_BIT_RATE if info.has_audio else 0
    return Plan(_even(width), _even(height), int(video_bit_rate), audio_bit_rate)


def second_try(info: VideoInfo, limit_bytes: int, first: Plan, first_size: int) -> Plan:
    """The plan after ``first`` came out at ``first_size`` bytes, over the budget.

    The video part of the output (all but :func:`_fixed_bytes`) is scaled by how far it overshot,
    and the rate lowered by at least :data:`SECOND_TRY_STEP`.
    """
    fixed = _fixed_bytes(info)
    ratio = (_aim(limit_bytes) - fixed) / max(first_size - fixed, 1.0)
    return plan_encode(info, limit_bytes, video_bit_rate=first.video_bit_rate * min(SECOND_TRY_STEP, ratio))


def _encode_args(source: Path, dest: Path, plan: Plan, threads: int) -> list[str]:
    rate = str(plan.video_bit_rate)
    sound = ["-c:a", "aac", "-b:a", str(plan.audio_bit_rate), "-ac", "2"] if plan.audio_bit_rate else ["-an"]
    return [
        "-loglevel", "error", "-y",
        "-threads", str(threads), "-filter_threads", str(threads),
        "-i", str(source),
        "-map", "0:V:0", "-map", "0:a:0?", "-sn", "-dn", "-map_chapters", "-1",
        "-vf", f"scale={plan.width}:{plan.height},format=yuv420p",
        "-c:v", "libx264", "-preset", PRESET, "-profile:v", "high", "-threads", str(threads),
        "-b:v", rate, "-maxrate", rate, "-bufsize", rate, "-x264-params", f"vbv-init={VBV_INIT}",
        *sound,
        "-movflags", "+faststart", "-f", "mp4", str(dest),
    ]  # fmt: skip


async def fit(
    path: Path, limit_bytes: int, *, dest: Path | None = None, runner: MediaRunner | None = None
) -> Fitted:
    """Encode the video at ``path`` into an MP4 of at most ``budget_for(limit_bytes)`` bytes.

    Writes ``dest`` (a new temporary ``.mp4`` when not given; the caller deletes it) and returns it
    with its :class:`VideoInfo`. Raises :class:`NotAVideo` for a file that does not play,
    :class:`CannotFit` (with a sentence for members) when no encode fits, and
    :class:`~media.errors.MediaTimeout` when one ffmpeg run passes the runner's time limit. On any
    error ``dest`` is removed. At most two encodes and three probes, each a child in a runner slot.
    """
    runner = runner or default_runner()
    source = await probe(path, runner=runner)
    budget = budget_for(limit_bytes)
    plan = plan_encode(source, limit_bytes)
    out = dest or await new_temp_path(".mp4")
    try:
        for attempt in (1, 2):
            done = await runner.run(
                _encode_args(path, out, plan, runner.threads),
                what=f"fit {path.name} (try {attempt})",
            )
            if not done.ok:
                raise MediaError(f"encoding {path.name} failed: {done.reason}")
            size = await file_size(out)
            log.info(
                "fit %s: %d bytes -> %d bytes (budget %d) at %dx%d, %d b/s video, try %d",
                path.name, source.size, size, budget, plan.width, plan.height, plan.video_bit_rate, attempt,
            )  # fmt: skip
            if size <= budget:
                try:
                    info = await probe(out, runner=runner)
                except NotAVideo as error:
                    raise MediaError(f"the encode of {path.name} does not play: {error.detail}") from error
                return Fitted(out, info, plan, attempt)
            if attempt == 1:
                plan = second_try(source, limit_bytes, plan, size)
        raise CannotFit(
            f"This video would not shrink into {_describe_size(limit_bytes)}: even a second, smaller encode came out too big.",
            limit_bytes=limit_bytes,
            duration=source.duration,
        )
    except BaseException:
        await remove_quietly(out)
        raise
