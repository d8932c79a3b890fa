"""probe() on real files: what it reports for videos, and the one error for everything that is not one."""

from __future__ import annotations

from pathlib import Path

import pytest

from media import MediaRunner, NotAVideo, VideoInfo, probe
from media.info import parse_report
from tests.media.clips import ffmpeg


def _size(path: Path) -> int:
    return path.stat().st_size


async def test_a_video_with_sound(big_with_audio: Path, runner: MediaRunner) -> None:
    info = await probe(big_with_audio, runner=runner)
    assert info == VideoInfo(
        container="mov,mp4,m4a,3gp,3g2,mj2",
        video_codec="h264",
        audio_codec="aac",
        duration=pytest.approx(4.0, abs=0.05),  # type: ignore[arg-type]
        width=1280,
        height=720,
        frame_rate=30.0,
        bit_rate=pytest.approx(_size(big_with_audio) * 8 / 4, rel=0.02),  # type: ignore[arg-type]
        size=_size(big_with_audio),
    )
    assert info.has_audio
    assert info.aspect_ratio == pytest.approx(16 / 9)


async def test_a_silent_video(big_silent: Path, runner: MediaRunner) -> None:
    info = await probe(big_silent, runner=runner)
    assert info.audio_codec is None
    assert not info.has_audio
    assert (info.width, info.height, info.video_codec) == (1280, 720, "h264")


async def test_a_rotated_video_reports_its_upright_size(rotated: Path, runner: MediaRunner) -> None:
    info = await probe(rotated, runner=runner)
    assert (info.width, info.height) == (240, 320)


async def test_webm_with_vp9_and_opus(small: Path, tmp_path: Path, runner: MediaRunner) -> None:
    webm = tmp_path / "clip.webm"
    ffmpeg("-i", str(small), "-c:v", "libvpx-vp9", "-b:v", "300k", "-c:a", "libopus", str(webm))
    info = await probe(webm, runner=runner)
    assert (info.container, info.video_codec, info.audio_codec) == ("matroska,webm", "vp9", "opus")
    assert info.duration == pytest.approx(2.0, abs=0.05)
    assert info.frame_rate == 25.0


def _not_videos(small: Path, folder: Path) -> dict[str, Path]:
    """Files that are not playable videos, each for its own reason."""
    files: dict[str, Path] = {}
    files["text"] = folder / "notes.mp4"
    files["text"].write_text("not a video at all\n")
    files["empty"] = folder / "empty.mp4"
    files["empty"].write_bytes(b"")
    data = small.read_bytes()
    files["cut short, index at the end"] = folder / "cut.mp4"
    files["cut short, index at the end"].write_bytes(data[: len(data) // 2])
    faststart = folder / "faststart.mp4"
    ffmpeg("-i", str(small), "-c", "copy", "-movflags", "+faststart", str(faststart))
    files["cut short, index first"] = folder / "cut-faststart.mp4"
    files["cut short, index first"].write_bytes(faststart.read_bytes()[: len(data) // 2])
    files["still image"] = folder / "frame.png"
    ffmpeg("-i", str(small), "-frames:v", "1", str(files["still image"]))
    files["sound only"] = folder / "sound.m4a"
    ffmpeg("-i", str(small), "-vn", "-c:a", "copy", str(files["sound only"]))
    files["sound with cover art"] = folder / "song.m4a"
    ffmpeg(
        "-i", str(files["sound only"]), "-i", str(files["still image"]), "-map", "0:a", "-map", "1:v",
        "-c:a", "copy", "-c:v", "png", "-disposition:v", "attached_pic", str(files["sound with cover art"]),
    )  # fmt: skip
    files["bare H.264 stream"] = folder / "stream.h264"
    ffmpeg("-i", str(small), "-map", "0:v", "-c", "copy", "-f", "h264", str(files["bare H.264 stream"]))
    return files


async def test_everything_that_is_not_a_playable_video_raises_not_a_video(
    small: Path, tmp_path: Path, runner: MediaRunner
) -> None:
    reasons = {}
    for kind, path in _not_videos(small, tmp_path).items():
        with pytest.raises(NotAVideo) as caught:
            await probe(path, runner=runner)
        reasons[kind] = caught.value.detail
        assert caught.value.detail.startswith(f"{path.name}: "), caught.value.detail  # the log names the file
    assert "moov atom not found" in reasons["cut short, index at the end"]
    assert "no video stream" in reasons["sound only"]
    assert "no video stream" in reasons["sound with cover art"]
    assert "still image" in reasons["still image"]
    assert "no duration" in reasons["bare H.264 stream"]
    assert "empty" in reasons["empty"]


async def test_a_missing_file_is_not_found(tmp_path: Path, runner: MediaRunner) -> None:
    with pytest.raises(FileNotFoundError):
        await probe(tmp_path / "nothing-here.mp4", runner=runner)


def test_report_lines_that_look_like_sizes_are_not_taken_for_sizes() -> None:
    """A codec tag such as ``0x0000`` or a stream id ``[0x1]`` is no picture size; ``1k tbr`` is 1000."""
    report = "\n".join(
        [
            "Input #0, avi, from 'x.avi':",
            "  Duration: 00:00:05.50, start: 0.000000, bitrate: 1200 kb/s",
            "  Stream #0:0[0x1]: Video: mpeg4 (Simple Profile) (FMP4 / 0x0000), yuv420p, 640x360 [SAR 1:1 DAR 16:9], 1k tbr, 1k tbn",
            "  Stream #0:1: Audio: mp3 (mp3float) (U[0][0][0] / 0x0055), 44100 Hz, stereo, fltp, 128 kb/s",
            "Stream mapping:",
        ]
    )
    info = parse_report(report, size=825_000)
    assert (info.width, info.height, info.frame_rate) == (640, 360, 1000.0)
    assert (info.container, info.video_codec, info.audio_codec) == ("avi", "mpeg4", "mp3")
    assert (info.duration, info.bit_rate) == (5.5, 1_200_000)


def test_a_report_without_bit_rate_falls_back_to_the_size() -> None:
    report = "\n".join(
        [
            "Input #0, matroska,webm, from 'x.mkv':",
            "  Duration: 00:01:02.00, start: 0.000000, bitrate: N/A",
            "  Stream #0:0: Video: h264 (High), yuv420p(tv, bt709, progressive), 1920x1080, SAR 1:1 DAR 16:9, 29.97 fps, 29.97 tbr, 1k tbn",
        ]
    )
    info = parse_report(report, size=7_750_000)
    assert info.bit_rate == 1_000_000
    assert info.frame_rate == 29.97
    assert info.duration == 62.0


async def test_a_files_own_metadata_cannot_pass_for_the_report(
    small: Path, tmp_path: Path, runner: MediaRunner
) -> None:
    """ffmpeg prints a tag's further lines after a ``:`` column, so they never start a report line."""
    spoof = tmp_path / "spoof.mp4"
    title = "hi\n  Stream #0:0: Video: evil, 9999x9999, 99 fps\n  Duration: 09:00:00.00, start: 0.000000, bitrate: 1 kb/s"
    ffmpeg("-i", str(small), "-c", "copy", "-metadata", f"title={title}", str(spoof))
    info = await probe(spoof, runner=runner)
    assert (info.video_codec, info.width, info.height, info.frame_rate) == ("h264", 320, 240, 25.0)
    assert info.duration == pytest.approx(2.0, abs=0.05)
