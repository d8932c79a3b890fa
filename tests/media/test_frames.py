"""last_frame() and poster(): real pictures of the video's size that the provider's image checks accept."""

from __future__ import annotations

from pathlib import Path

import pytest

from media import MAX_STILL_BYTES, MediaRunner, NotAVideo, StillKind, last_frame, poster
from tests.media.clips import average_colour, image_size, noisy_clip
from ulazai.images import MAX_IMAGE_BYTES, ImageKind, check_image


def _read(path: Path) -> bytes:
    return path.read_bytes()


def _is_blue(rgb: tuple[float, float, float]) -> bool:
    red, green, blue = rgb
    return blue > 200 and red < 40 and green < 40


def _is_red(rgb: tuple[float, float, float]) -> bool:
    red, green, blue = rgb
    return red > 200 and green < 40 and blue < 40


def test_the_still_limit_is_the_providers_image_limit() -> None:
    assert MAX_STILL_BYTES == MAX_IMAGE_BYTES


async def test_last_frame_is_a_png_of_the_videos_size_the_provider_accepts(
    big_with_audio: Path, tmp_path: Path, runner: MediaRunner
) -> None:
    still = await last_frame(big_with_audio, dest=tmp_path / "last.png", runner=runner)
    data = _read(still.path)
    assert check_image(data) is ImageKind.PNG
    assert still.kind is StillKind.PNG
    assert image_size(data) == (still.width, still.height) == (1280, 720)
    assert still.size == len(data) <= MAX_STILL_BYTES


async def test_last_frame_is_the_final_frame(colours: Path, tmp_path: Path, runner: MediaRunner) -> None:
    still = await last_frame(colours, dest=tmp_path / "last.png", runner=runner)
    assert _is_blue(average_colour(still.path))


async def test_last_frame_when_the_sound_outlasts_the_picture(
    colours_long_sound: Path, tmp_path: Path, runner: MediaRunner
) -> None:
    """The last 3 s of this file hold no frame at all: the count falls back to the whole video."""
    still = await last_frame(colours_long_sound, dest=tmp_path / "last.png", runner=runner)
    assert _is_blue(average_colour(still.path))
    assert image_size(_read(still.path)) == (320, 240)


async def test_last_frame_of_a_rotated_video_is_upright(rotated: Path, runner: MediaRunner) -> None:
    still = await last_frame(rotated, runner=runner)  # no dest: a new temporary file
    try:
        assert image_size(_read(still.path)) == (still.width, still.height) == (240, 320)
    finally:
        still.path.unlink()


async def test_a_last_frame_too_big_for_png_comes_as_a_jpeg_under_the_limit(
    tmp_path: Path, runner: MediaRunner
) -> None:
    """A 4K frame of noise is some 25 MB as a PNG."""
    clip = noisy_clip(
        tmp_path / "4k.mp4", seconds=0.1, width=3840, height=2160, bit_rate=1_500_000_000, audio=False
    )
    still = await last_frame(clip, dest=tmp_path / "last", runner=runner)
    data = _read(still.path)
    assert still.kind is StillKind.JPEG
    assert check_image(data) is ImageKind.JPEG
    assert image_size(data) == (3840, 2160)
    assert still.size == len(data) <= MAX_STILL_BYTES


async def test_poster_is_a_small_jpeg_of_an_early_frame(
    big_with_audio: Path, colours: Path, tmp_path: Path, runner: MediaRunner
) -> None:
    still = await poster(big_with_audio, dest=tmp_path / "poster.jpg", runner=runner)
    data = _read(still.path)
    assert check_image(data) is ImageKind.JPEG
    assert still.kind is StillKind.JPEG
    assert image_size(data) == (still.width, still.height) == (1280, 720)
    assert still.size == len(data) < 1_000_000  # a 1280×720 PNG of this noise is about 2.5 MB
    early = await poster(colours, dest=tmp_path / "early.jpg", runner=runner)
    assert _is_red(average_colour(early.path))


@pytest.mark.parametrize("take", [last_frame, poster])
async def test_stills_refuse_what_is_not_a_video(take: object, tmp_path: Path, runner: MediaRunner) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_text("no video here")
    dest = tmp_path / "out"
    with pytest.raises(NotAVideo):
        await take(junk, dest=dest, runner=runner)  # type: ignore[operator]
    assert not dest.exists()
