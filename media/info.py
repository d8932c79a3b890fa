"""What a video file is (container, codecs, duration, size in pixels, frame rate, bit rate), and whether it plays.

The ``imageio-ffmpeg`` wheel ships ``ffmpeg`` but not ``ffprobe``, so a probe is one ffmpeg run whose
report (stderr at the default log level) is read here, with two outputs that also prove the file plays:

* ``-map 0:V:0 -frames:v 1 -f null -`` decodes the first frame of the first real video stream (``V``
  skips cover art and thumbnails). Its output stream line gives the size *after* ffmpeg's automatic
  rotation, i.e. the size a player shows and the size :func:`media.fit` and the frames come out at.
* ``-map 0:V:0 -map 0:a? -c copy -f null -`` reads every packet of the file without decoding it
  (cheap: a 40 MiB clip in a fraction of a second), and ``-xerror`` turns a cut-short or corrupt file
  into a failed run instead of a warning. A half-downloaded MP4 is refused here.

The report's format (``Input #0, <demuxer>, from …``, ``Duration: …, bitrate: … kb/s``,
``Stream #0:1…: Audio: aac …``) has been stable across ffmpeg releases for many years, and the binary
is pinned (``imageio-ffmpeg==0.8.1``, ffmpeg 9.0.2) so it cannot change under us; the tests probe real
files made by that binary. Anything the report does not say is refused as :class:`NotAVideo` rather
than guessed: a file with no duration (a bare ``.h264`` stream or a still image), no decodable frame,
or no video stream is not something a member's player would play.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from media.errors import NotAVideo
from media.files import file_size
from media.runner import MediaRunner, default_runner

__all__ = ["VideoInfo", "parse_report", "probe"]

_INPUT = re.compile(r"^Input #0, (?P<demuxer>.+?), from '")
_DURATION = re.compile(
    r"^\s+Duration: (?:(?P<h>\d+):(?P<m>\d\d):(?P<s>\d\d(?:\.\d+)?)|N/A)"
    r"(?:, start: [^,]+)?, bitrate: (?:(?P<kbps>\d+) kb/s|N/A)"
)
_STREAM = re.compile(
    r"^\s+Stream #(?P<file>\d+):(?P<index>\d+)\S*: (?P<kind>Video|Audio|Subtitle|Data|Attachment): "
    r"(?P<codec>[^\s,]+)(?P<rest>.*)$"
)
_SIZE = re.compile(r"(?<![\w.])(?P<w>[1-9]\d{0,4})x(?P<h>[1-9]\d{0,4})(?![\w.])")
_RATE = re.compile(r"(?<![\w.])(?P<n>\d+(?:\.\d+)?)(?P<k>k?) (?P<unit>fps|tbr)\b")
#: Demuxers that read a single still picture: never a video, whatever they report.
_STILL_DEMUXERS = re.compile(r"^(image2|\w+_pipe)$")


@dataclass(frozen=True, slots=True)
class VideoInfo:
    """One video file, as ffmpeg reads it.

    ``container`` is ffmpeg's demuxer name (``"mov,mp4,m4a,3gp,3g2,mj2"`` for MP4 and QuickTime,
    ``"matroska,webm"``); ``video_codec``/``audio_codec`` its decoder names (``"h264"``, ``"aac"``;
    ``audio_codec`` is ``None`` without sound). ``width``/``height`` are the displayed size in pixels
    (a phone video stored sideways with a rotation flag reports its upright size). ``frame_rate`` is
    frames per second (``None`` when the file does not say), ``bit_rate`` the whole file's bits per
    second, ``duration`` seconds and ``size`` bytes on disk.
    """

    container: str
    video_codec: str
    audio_codec: str | None
    duration: float
    width: int
    height: int
    frame_rate: float | None
    bit_rate: int
    size: int

    @property
    def has_audio(self) -> bool:
        return self.audio_codec is not None

    @property
    def aspect_ratio(self) -> float:
        """Width over height, as displayed."""
        return self.width / self.height


def parse_report(report: str, *, size: int, name: str = "the file") -> VideoInfo:
    """Read a :func:`probe` run's report into a :class:`VideoInfo`, or raise :class:`NotAVideo`.

    ``size`` is the file's size in bytes (the bit rate falls back to it when the report has none);
    ``name`` is only for the error's detail.
    """
    demuxer: str | None = None
    duration: float | None = None
    kbps: int | None = None
    video: tuple[str, str] | None = None  # (codec, rest of the input stream line)
    audio: str | None = None
    shown: tuple[int, int] | None = None  # the decoded size, from the first output's stream line
    section = ""
    for line in report.splitlines():
        if match := _INPUT.match(line):
            demuxer, section = match["demuxer"], "input"
            continue
        if line.startswith(("Output #", "Stream mapping:")):
            section = "output0" if line.startswith("Output #0,") else "other"
            continue
        if section == "input" and (match := _DURATION.match(line)):
            if match["h"] is not None:
                duration = int(match["h"]) * 3600 + int(match["m"]) * 60 + float(match["s"])
            kbps = int(match["kbps"]) if match["kbps"] else None
            continue
        match = _STREAM.match(line)
        if match is None:
            continue
        if section == "input" and match["kind"] == "Video" and video is None:
            if not match["rest"].rstrip().endswith("(attached pic)"):
                video = (match["codec"], match["rest"])
        elif section == "input" and match["kind"] == "Audio" and audio is None:
            audio = match["codec"]
        elif (
            section == "output0"
            and match["kind"] == "Video"
            and shown is None
            and (size_match := _SIZE.search(match["rest"]))
        ):
            shown = (int(size_match["w"]), int(size_match["h"]))
    if demuxer is None:
        raise NotAVideo(f"{name}: ffmpeg could not read it")
    if video is None:
        raise NotAVideo(f"{name}: no video stream ({demuxer})")
    if _STILL_DEMUXERS.match(demuxer):
        raise NotAVideo(f"{name}: a still image ({demuxer}), not a video")
    if duration is None or duration <= 0:
        raise NotAVideo(f"{name}: no duration ({demuxer}); a bare stream, not a video file")
    if shown is None:
        coded = _SIZE.search(video[1])
        if coded is None:
            raise NotAVideo(f"{name}: no picture size in ffmpeg's report")
        shown = (int(coded["w"]), int(coded["h"]))
    rates = {m["unit"]: float(m["n"]) * (1000 if m["k"] else 1) for m in _RATE.finditer(video[1])}
    frame_rate = rates.get("fps") or rates.get("tbr")
    bit_rate = kbps * 1000 if kbps else round(size * 8 / duration)
    return VideoInfo(
        container=demuxer,
        video_codec=video[0],
        audio_codec=audio,
        duration=duration,
        width=shown[0],
        height=shown[1],
        frame_rate=frame_rate,
        bit_rate=bit_rate,
        size=size,
    )


async def probe(path: Path, *, runner: MediaRunner | None = None) -> VideoInfo:
    """Describe the video at ``path``; :class:`NotAVideo` if it is not one that plays.

    ``FileNotFoundError`` if there is no file at ``path``. Runs one ffmpeg child (see the module's
    docstring) in a slot of ``runner`` (the process-wide one by default).
    """
    runner = runner or default_runner()
    size = await file_size(path)
    if size == 0:
        raise NotAVideo(f"{path.name}: empty file")
    done = await runner.run(
        [
            "-xerror",
            "-threads", str(runner.threads),
            "-i", str(path),
            "-map", "0:V:0", "-frames:v", "1", "-f", "null", "-",
            "-map", "0:V:0", "-map", "0:a?", "-c", "copy", "-f", "null", "-",
        ],
        what=f"probe {path.name}",
    )  # fmt: skip
    if not done.ok:
        reason = "no video stream" if done.reason == "no stream of the kind asked for" else done.reason
        raise NotAVideo(f"{path.name}: {reason}")
    if done.frames < 1:
        raise NotAVideo(f"{path.name}: no frame could be decoded")
    return parse_report(done.report, size=size, name=path.name)
