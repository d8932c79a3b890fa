"""Still pictures from a video: its last frame (to continue a video from) and a poster (for previews).

Both come out at the video's displayed size (:attr:`VideoInfo.width` × :attr:`VideoInfo.height`) and
under :data:`MAX_STILL_BYTES`, the image provider's "max 10MB" read as 10,000,000 bytes (the same
strict reading as ``ulazai.images``, which :mod:`media` must not import; a test holds the two equal),
so the last frame can be uploaded as the start frame of a new video as it is.

**The last frame** is the last frame a player shows, found without decoding the whole video: ffmpeg
seeks to :data:`TAIL_SECONDS` before the end (``-sseof``), counts the frames it decodes from there, and
a second run over the same tail keeps only the last one (``select``). When that tail holds no frame
(a file whose sound runs on long after the picture ends) the count is taken over the whole video. It is
a PNG (lossless: the next video starts from exactly this picture); a PNG over the limit (a very large
or very noisy frame) is replaced by a JPEG at the best quality that fits.

**The poster** is a JPEG of the frame at :data:`POSTER_SECONDS` (or a tenth of the way in, for shorter
videos: early, but past a fade-in from black), at a middling quality (:data:`POSTER_QUALITY`), so it
is small in bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from media.errors import MediaError
from media.files import file_size, new_temp_path, remove_quietly
from media.info import VideoInfo, probe
from media.runner import MediaRunner, default_runner

__all__ = [
    "MAX_STILL_BYTES",
    "POSTER_QUALITY",
    "POSTER_SECONDS",
    "TAIL_SECONDS",
    "Still",
    "StillKind",
    "last_frame",
    "poster",
]

MAX_STILL_BYTES = 10_000_000
TAIL_SECONDS = 3.0
POSTER_SECONDS = 1.0
#: ffmpeg's JPEG scale: 2 is the best, 31 the worst.
POSTER_QUALITY = 5
_JPEG_QUALITIES = (2, 4, 7, 11, 16, 23, 31)


class StillKind(StrEnum):
    PNG = "png"
    JPEG = "jpeg"

    @property
    def suffix(self) -> str:
        return ".png" if self is StillKind.PNG else ".jpg"


@dataclass(frozen=True, slots=True)
class Still:
    """A picture taken from a video: the file (the caller deletes it), its kind, size in pixels and bytes."""

    path: Path
    kind: StillKind
    width: int
    height: int
    size: int


def _still_args(kind: StillKind, quality: int, dest: Path) -> list[str]:
    codec = ["-c:v", "png"] if kind is StillKind.PNG else ["-c:v", "mjpeg", "-q:v", str(quality)]
    return [*codec, "-frames:v", "1", "-fps_mode", "passthrough", "-f", "image2", "-update", "1", "-y", str(dest)]  # fmt: skip


async def _write_still(
    runner: MediaRunner,
    path: Path,
    info: VideoInfo,
    dest: Path,
    *,
    before_input: list[str],
    select: list[str],
    kinds: list[tuple[StillKind, int]],
    what: str,
) -> Still:
    """Write one frame with the first ``(kind, quality)`` of ``kinds`` that comes out under the limit."""
    size = 0
    for kind, quality in kinds:
        done = await runner.run(
            [
                "-loglevel", "error", "-threads", str(runner.threads),
                *before_input, "-i", str(path), "-map", "0:V:0", *select,
                *_still_args(kind, quality, dest),
            ],
            what=f"{what} of {path.name}",
        )  # fmt: skip
        size = await file_size(dest)
        if not done.ok or done.frames < 1 or size == 0:
            raise MediaError(f"no {what} from {path.name}: {done.reason}")
        if size <= MAX_STILL_BYTES:
            return Still(dest, kind, info.width, info.height, size)
    raise MediaError(f"the {what} of {path.name} is {size} bytes even as the smallest JPEG")


async def _count_frames(runner: MediaRunner, path: Path, before_input: list[str]) -> int:
    done = await runner.run(
        ["-loglevel", "error", "-threads", str(runner.threads), *before_input, "-i", str(path),
         "-map", "0:V:0", "-fps_mode", "passthrough", "-f", "null", "-"],
        what=f"count the frames of {path.name}",
    )  # fmt: skip
    return done.frames if done.ok else 0


async def last_frame(path: Path, *, dest: Path | None = None, runner: MediaRunner | None = None) -> Still:
    """The final frame of the video at ``path``, as a PNG (or a JPEG if the PNG is too big).

    Writes ``dest`` (a new temporary file when not given; the caller deletes it; its name's suffix
    does not decide the format, :attr:`Still.kind` says it). :class:`~media.errors.NotAVideo` for a
    file that does not play; on any error ``dest`` is removed.
    """
    runner = runner or default_runner()
    info = await probe(path, runner=runner)
    out = dest or await new_temp_path(".png")
    try:
        tail = ["-sseof", f"-{TAIL_SECONDS:g}"]
        frames = await _count_frames(runner, path, tail)
        if frames < 1:
            tail = []
            frames = await _count_frames(runner, path, tail)
        if frames < 1:
            raise MediaError(f"no frame decoded from {path.name}")
        return await _write_still(
            runner,
            path,
            info,
            out,
            before_input=tail,
            select=["-vf", f"select=eq(n\\,{frames - 1})"],
            kinds=[(StillKind.PNG, 0), *((StillKind.JPEG, q) for q in _JPEG_QUALITIES)],
            what="last frame",
        )
    except BaseException:
        await remove_quietly(out)
        raise


async def poster(path: Path, *, dest: Path | None = None, runner: MediaRunner | None = None) -> Still:
    """A small JPEG of an early frame of the video at ``path`` (see the module's docstring).

    Writes ``dest`` (a new temporary ``.jpg`` when not given; the caller deletes it).
    :class:`~media.errors.NotAVideo` for a file that does not play; on any error ``dest`` is removed.
    """
    runner = runner or default_runner()
    info = await probe(path, runner=runner)
    out = dest or await new_temp_path(".jpg")
    at = min(POSTER_SECONDS, info.duration / 10)
    qualities = [q for q in _JPEG_QUALITIES if q >= POSTER_QUALITY]
    try:
        return await _write_still(
            runner,
            path,
            info,
            out,
            before_input=["-ss", f"{at:.3f}"],
            select=[],
            kinds=[(StillKind.JPEG, POSTER_QUALITY), *((StillKind.JPEG, q) for q in qualities)],
            what="poster",
        )
    except BaseException:
        await remove_quietly(out)
        raise
