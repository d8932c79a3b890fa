"""Real test videos, made by the same ffmpeg binary the bot uses (never downloaded), and ways to read them back.

Every clip is drawn by ffmpeg's own test sources: ``testsrc2`` (a moving pattern, so scaling and
aspect show) under strong temporal noise (``noise=…:allf=t+u``, a fixed seed), which no encoder can
compress much: the hardest input for :func:`media.fit`, and one that reaches a high bit rate in a few
seconds. The helpers read what :mod:`media` wrote without trusting :mod:`media`: the size of a PNG or
a JPEG from its header, an image's average colour through ffmpeg, the order of an MP4's boxes.
"""

from __future__ import annotations

import os
import struct
import subprocess
from pathlib import Path

import imageio_ffmpeg

FFMPEG = str(imageio_ffmpeg.get_ffmpeg_exe())
MiB = 1024 * 1024


def ffmpeg(*args: str) -> None:
    """Run the bundled ffmpeg (tests only; :mod:`media` never blocks like this)."""
    subprocess.run(  # noqa: S603 - our own binary, our own arguments
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args],
        check=True,
        timeout=120,
    )


def noisy_clip(
    dest: Path,
    *,
    seconds: float,
    width: int = 1280,
    height: int = 720,
    rate: int = 30,
    bit_rate: int,
    audio: bool,
) -> Path:
    """Moving noise at ``width``×``height``, ``rate`` fps, video at about ``bit_rate`` b/s, with a tone or silent."""
    video = f"testsrc2=s={width}x{height}:r={rate}:d={seconds},noise=alls=60:allf=t+u:all_seed=7"
    sound = ["-f", "lavfi", "-i", f"sine=f=440:d={seconds}:sample_rate=48000"] if audio else []
    codec_audio = ["-c:a", "aac", "-b:a", "128k", "-ac", "2"] if audio else []
    ffmpeg(
        "-f", "lavfi", "-i", video, *sound,
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
        "-b:v", str(bit_rate), "-maxrate", str(bit_rate), "-bufsize", str(bit_rate),
        *codec_audio, "-shortest", str(dest),
    )  # fmt: skip
    return dest


def colour_clip(dest: Path, *, audio_seconds: float | None = None) -> Path:
    """2 s of red then one blue frame (320×240, 25 fps): the first frames are red, the last is blue.

    With ``audio_seconds``, a tone that long plays along, so the sound can outlast the picture.
    """
    video = "color=c=red:s=320x240:r=25:d=2[a];color=c=blue:s=320x240:r=25:d=0.04[b];[a][b]concat=n=2:v=1:a=0"
    sound = ["-f", "lavfi", "-i", f"sine=f=440:d={audio_seconds}"] if audio_seconds else []
    ffmpeg(
        "-f", "lavfi", "-i", video, *sound,
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
        *(["-c:a", "aac"] if audio_seconds else []), str(dest),
    )  # fmt: skip
    return dest


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR or a JPEG's start-of-frame marker."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    assert data.startswith(b"\xff\xd8"), "neither PNG nor JPEG"
    at = 2
    while at < len(data):
        assert data[at] == 0xFF, "broken JPEG marker"
        marker = data[at + 1]
        (length,) = struct.unpack(">H", data[at + 2 : at + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[at + 5 : at + 9])
            return width, height
        at += 2 + length
    raise AssertionError("no start-of-frame marker in the JPEG")


def average_colour(image: Path) -> tuple[float, float, float]:
    """The mean (red, green, blue) of a picture, 0-255, decoded by ffmpeg."""
    raw = subprocess.run(  # noqa: S603
        [
            FFMPEG,
            "-hide_banner",
            "-loglevel",
            "error",
            "-i",
            str(image),
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout
    pixels = len(raw) // 3
    return (sum(raw[0::3]) / pixels, sum(raw[1::3]) / pixels, sum(raw[2::3]) / pixels)


def top_level_boxes(path: Path) -> list[str]:
    """The types of an MP4's top-level boxes, in file order (``moov`` before ``mdat`` = faststart)."""
    kinds: list[str] = []
    with path.open("rb") as handle:
        while header := handle.read(8):
            size, kind = struct.unpack(">I4s", header)
            kinds.append(kind.decode("latin-1"))
            if size == 1:
                (size,) = struct.unpack(">Q", handle.read(8))
                handle.seek(size - 16, os.SEEK_CUR)
            elif size == 0:
                break
            else:
                handle.seek(size - 8, os.SEEK_CUR)
    return kinds


def ffmpeg_children() -> list[int]:
    """Process ids of this process's children that run ffmpeg (none should outlive a media call)."""
    found = []
    me = str(os.getpid())
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as handle:
                stat = handle.read()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        parent = stat[stat.rindex(")") + 2 :].split()[1]
        if parent == me and name.startswith("ffmpeg"):
            found.append(int(entry))
    return found
