"""Test videos for tests/media/, made once per session (generating them costs a few seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest

from media import MediaRunner
from tests.media.clips import MiB, colour_clip, ffmpeg, noisy_clip


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("clips")


def _twelve_mib(path: Path) -> Path:
    assert 12 * MiB <= path.stat().st_size <= 14 * MiB, path.stat().st_size
    return path


@pytest.fixture(scope="session")
def big_with_audio(clips: Path) -> Path:
    """4 s of moving noise at 1280×720, 30 fps, with sound: 12 to 14 MiB."""
    return _twelve_mib(noisy_clip(clips / "big-audio.mp4", seconds=4, bit_rate=23_500_000, audio=True))


@pytest.fixture(scope="session")
def big_silent(clips: Path) -> Path:
    """The same without a sound track."""
    return _twelve_mib(noisy_clip(clips / "big-silent.mp4", seconds=4, bit_rate=23_500_000, audio=False))


@pytest.fixture(scope="session")
def small(clips: Path) -> Path:
    """2 s of moving noise at 320×240, 25 fps, with sound: a quick clip for probes and the runner."""
    return noisy_clip(
        clips / "small.mp4", seconds=2, width=320, height=240, rate=25, bit_rate=400_000, audio=True
    )


@pytest.fixture(scope="session")
def colours(clips: Path) -> Path:
    """Red frames, then one blue frame at the end."""
    return colour_clip(clips / "colours.mp4")


@pytest.fixture(scope="session")
def colours_long_sound(clips: Path) -> Path:
    """Red, then blue at 2.04 s, while the sound plays on for 6 s (the picture ends long before the file)."""
    return colour_clip(clips / "colours-long-sound.mp4", audio_seconds=6)


@pytest.fixture(scope="session")
def rotated(clips: Path, small: Path) -> Path:
    """``small`` stored as it is but flagged to be shown turned by 90°, as phones record upright video."""
    dest = clips / "rotated.mp4"
    ffmpeg("-display_rotation", "90", "-i", str(small), "-c", "copy", str(dest))
    return dest


@pytest.fixture
def runner() -> MediaRunner:
    """A runner of its own per test (one worker, a time limit far above anything the tests need)."""
    return MediaRunner(workers=1, timeout=120)
