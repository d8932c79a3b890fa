"""fit(): real encodes of 12 MiB clips to a 10 MiB limit, the down-scaling rule, and the refusals."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

import media.encode as fit_module
from media import CannotFit, MediaRunner, NotAVideo, Plan, VideoInfo, budget_for, fit, plan_encode, probe
from media.encode import (
    AUDIO_BIT_RATE,
    MIN_BITS_PER_PIXEL,
    MIN_SHORT_SIDE,
    SAFETY_MIN_BYTES,
    SECOND_TRY_STEP,
    second_try,
)
from tests.media.clips import MiB, top_level_boxes

LIMIT = 10 * MiB


def _assert_fitted_copy(original: VideoInfo, fitted: VideoInfo, path: Path, limit: int) -> None:
    assert path.stat().st_size == fitted.size <= budget_for(limit) < limit
    assert (fitted.container, fitted.video_codec) == ("mov,mp4,m4a,3gp,3g2,mj2", "h264")
    assert fitted.duration == pytest.approx(original.duration, rel=0.05)
    assert fitted.aspect_ratio == pytest.approx(original.aspect_ratio, rel=0.01)
    assert fitted.audio_codec == ("aac" if original.has_audio else None)
    boxes = top_level_boxes(path)
    assert boxes.index("moov") < boxes.index("mdat"), boxes  # +faststart


async def test_a_12_mib_clip_with_sound_fits_under_10_mib(
    big_with_audio: Path, tmp_path: Path, runner: MediaRunner
) -> None:
    original = await probe(big_with_audio, runner=runner)
    fitted = await fit(big_with_audio, LIMIT, dest=tmp_path / "out.mp4", runner=runner)
    assert fitted.path == tmp_path / "out.mp4"
    assert fitted.info == await probe(fitted.path, runner=runner)  # it plays
    _assert_fitted_copy(original, fitted.info, fitted.path, LIMIT)
    assert (fitted.info.width, fitted.info.height) == (1280, 720)  # plenty of bits: no down-scaling
    assert fitted.plan.audio_bit_rate == AUDIO_BIT_RATE
    assert fitted.attempts in (1, 2)


async def test_a_12_mib_silent_clip_fits_and_stays_silent(big_silent: Path, runner: MediaRunner) -> None:
    original = await probe(big_silent, runner=runner)
    fitted = await fit(big_silent, LIMIT, runner=runner)  # no dest: a new temporary file
    try:
        assert fitted.path.suffix == ".mp4"
        _assert_fitted_copy(original, fitted.info, fitted.path, LIMIT)
        assert fitted.plan.audio_bit_rate == 0
    finally:
        fitted.path.unlink()


async def test_a_tight_limit_scales_the_picture_down_keeping_its_shape(
    big_with_audio: Path, tmp_path: Path, runner: MediaRunner
) -> None:
    original = await probe(big_with_audio, runner=runner)
    limit = 600_000
    plan = plan_encode(original, limit)
    assert plan.width < original.width
    fitted = await fit(big_with_audio, limit, dest=tmp_path / "small.mp4", runner=runner)
    _assert_fitted_copy(original, fitted.info, fitted.path, limit)
    assert (fitted.info.width, fitted.info.height) == (fitted.plan.width, fitted.plan.height)
    assert fitted.info.width % 2 == fitted.info.height % 2 == 0
    assert min(fitted.info.width, fitted.info.height) >= MIN_SHORT_SIDE


async def test_a_clip_that_cannot_fit_is_refused_in_a_sentence_and_leaves_no_file(
    big_with_audio: Path, tmp_path: Path, runner: MediaRunner
) -> None:
    dest = tmp_path / "never.mp4"
    with pytest.raises(CannotFit) as caught:
        await fit(big_with_audio, 150_000, dest=dest, runner=runner)
    assert caught.value.sentence == (
        "This 4 s video is too long to fit in 146 KB: it would have to be shrunk below 240p, "
        "where it is no longer worth watching."
    )
    assert caught.value.limit_bytes == 150_000
    assert caught.value.duration == pytest.approx(4.0, abs=0.05)
    assert not dest.exists()


async def test_fit_refuses_what_is_not_a_video(tmp_path: Path, runner: MediaRunner) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 4096)
    with pytest.raises(NotAVideo):
        await fit(junk, LIMIT, dest=tmp_path / "out.mp4", runner=runner)
    assert not (tmp_path / "out.mp4").exists()


def _info(**changes: object) -> VideoInfo:
    values: dict[str, object] = {
        "container": "mov,mp4,m4a,3gp,3g2,mj2",
        "video_codec": "h264",
        "audio_codec": "aac",
        "duration": 10.0,
        "width": 1920,
        "height": 1080,
        "frame_rate": 30.0,
        "bit_rate": 40_000_000,
        "size": 50_000_000,
    }
    values.update(changes)
    return VideoInfo(**values)  # type: ignore[arg-type]


def test_the_budget_keeps_a_margin() -> None:
    assert budget_for(10 * MiB) == 10_485_760 - 209_716  # 2 %, rounded up
    assert budget_for(1_000_000) == 1_000_000 - SAFETY_MIN_BYTES


def test_the_plan_spends_the_budget_over_the_duration() -> None:
    plan = plan_encode(_info(), 10 * MiB)
    assert (plan.width, plan.height, plan.audio_bit_rate) == (1920, 1080, AUDIO_BIT_RATE)
    total = (plan.video_bit_rate + plan.audio_bit_rate) * 10 / 8
    assert 0.9 * budget_for(10 * MiB) < total < budget_for(10 * MiB)
    longer = plan_encode(_info(duration=20.0), 10 * MiB)
    assert longer.video_bit_rate == pytest.approx(
        (plan.video_bit_rate + AUDIO_BIT_RATE) / 2 - AUDIO_BIT_RATE, rel=0.01
    )


def test_the_plan_never_exceeds_the_source_bit_rate_and_a_second_try_is_lower() -> None:
    thin = _info(bit_rate=2_000_000)
    first = plan_encode(thin, 100 * MiB)
    assert first.video_bit_rate == 2_000_000
    slightly_over = round(budget_for(100 * MiB) * 1.01)
    assert second_try(thin, 100 * MiB, first, slightly_over).video_bit_rate == 1_800_000
    far_over = plan_encode(_info(), 10 * MiB)
    second = second_try(_info(), 10 * MiB, far_over, 2 * budget_for(10 * MiB))
    assert second.video_bit_rate < 0.5 * far_over.video_bit_rate


def test_down_scaling_starts_below_the_bits_per_pixel_threshold() -> None:
    def bits_per_pixel(info: VideoInfo, limit: int) -> float:
        plan = plan_encode(info, limit)
        return plan.video_bit_rate / (plan.width * plan.height * 30.0)

    roomy = plan_encode(_info(duration=15.0), 10 * MiB)  # about 0.08 bits per pixel at 1080p30
    assert (roomy.width, roomy.height) == (1920, 1080)
    tight = plan_encode(_info(duration=60.0), 10 * MiB)  # about 0.02 at 1080p: scaled
    assert tight.width < 1920
    assert tight.width / tight.height == pytest.approx(16 / 9, rel=0.01)
    assert bits_per_pixel(_info(duration=60.0), 10 * MiB) >= MIN_BITS_PER_PIXEL
    assert bits_per_pixel(_info(duration=60.0), 10 * MiB) < MIN_BITS_PER_PIXEL * 1.05


def test_portrait_and_odd_sizes_come_out_even_and_upright() -> None:
    plan = plan_encode(_info(width=1081, height=1921, duration=60.0), 10 * MiB)
    assert plan.width % 2 == plan.height % 2 == 0
    assert plan.height > plan.width
    assert plan.width / plan.height == pytest.approx(1081 / 1921, rel=0.01)
    same = plan_encode(_info(width=1281, height=719), 100 * MiB)
    assert (same.width, same.height) == (1280, 718)


def test_refusals_say_why() -> None:
    with pytest.raises(CannotFit) as caught:
        plan_encode(_info(duration=3600.0), 10 * MiB)
    assert caught.value.sentence == (
        "This 1 h 0 min video is too long to fit in 10 MB: its sound alone would fill the file."
    )
    with pytest.raises(CannotFit) as caught:
        plan_encode(_info(duration=600.0, audio_codec=None), 10 * MiB)
    assert "10 min video" in caught.value.sentence
    assert "below 240p" in caught.value.sentence


async def test_a_first_try_that_comes_out_too_big_is_followed_by_a_smaller_second(
    small: Path, tmp_path: Path, runner: MediaRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first plan at 1.5 times the right bit rate stands in for an encoder that overshoots."""
    limit = 200_000
    real_plan = fit_module.plan_encode

    def overshooting_first_plan(
        info: VideoInfo, limit_bytes: int, *, video_bit_rate: float | None = None
    ) -> Plan:
        plan = real_plan(info, limit_bytes, video_bit_rate=video_bit_rate)
        return replace(plan, video_bit_rate=plan.video_bit_rate * 3 // 2) if video_bit_rate is None else plan

    monkeypatch.setattr(fit_module, "plan_encode", overshooting_first_plan)
    fitted = await fit(small, limit, dest=tmp_path / "out.mp4", runner=runner)
    assert fitted.attempts == 2
    source = await probe(small, runner=runner)
    assert fitted.plan.video_bit_rate <= SECOND_TRY_STEP * 1.5 * real_plan(source, limit).video_bit_rate
    _assert_fitted_copy(source, fitted.info, fitted.path, limit)


async def test_two_tries_that_both_come_out_too_big_are_refused(
    small: Path, tmp_path: Path, runner: MediaRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a rate tolerance of -50 % both tries aim half as high again as the budget allows."""
    monkeypatch.setattr(fit_module, "RATE_TOLERANCE", -0.5)
    dest = tmp_path / "out.mp4"
    with pytest.raises(CannotFit) as caught:
        await fit(small, 200_000, dest=dest, runner=runner)
    assert caught.value.sentence == (
        "This video would not shrink into 195 KB: even a second, smaller encode came out too big."
    )
    assert not dest.exists()
