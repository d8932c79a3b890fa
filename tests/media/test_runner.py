"""MediaRunner: real ffmpeg children, never more than the limit at once, killed at the time limit or on cancel."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

import media.runner as runner_module
from media import MediaError, MediaRunner, MediaTimeout, configure, default_runner, fit, probe
from media.runner import NICE
from tests.media.clips import FFMPEG, ffmpeg_children


def _logging_ffmpeg(folder: Path) -> tuple[Path, Path]:
    """An ``ffmpeg`` that notes when each run starts and ends (nanoseconds), then runs the real one."""
    log = folder / "runs.log"
    script = folder / "ffmpeg"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "start $(date +%s%N)" >> "{log}"\n'
        f'"{FFMPEG}" "$@"\n'
        "status=$?\n"
        f'echo "end $(date +%s%N)" >> "{log}"\n'
        'exit "$status"\n'
    )
    script.chmod(0o755)
    return script, log


def _most_at_once(log: Path) -> int:
    events = sorted(
        (int(stamp), 1 if kind == "start" else -1)
        for kind, stamp in (line.split() for line in log.read_text().splitlines())
    )
    assert sum(step for _, step in events) == 0, "a run never ended"
    most = now = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


@pytest.mark.parametrize("workers", [1, 2])
async def test_never_more_children_than_workers(workers: int, small: Path, tmp_path: Path) -> None:
    script, log = _logging_ffmpeg(tmp_path)
    runner = MediaRunner(workers=workers, timeout=120, ffmpeg=str(script))
    seen: list[tuple[int, int]] = []

    async def watch() -> None:
        while True:
            seen.append((runner.running, runner.waiting))
            await asyncio.sleep(0.002)

    watcher = asyncio.create_task(watch())
    try:
        results = await asyncio.gather(
            *(fit(small, 10_000_000, dest=tmp_path / f"out-{n}.mp4", runner=runner) for n in range(4))
        )
    finally:
        watcher.cancel()
    assert all(result.info.duration > 0 for result in results)
    assert len(log.read_text().splitlines()) == 2 * 4 * 3  # each fit: a probe, one encode, a probe
    assert _most_at_once(log) == workers
    assert max(running for running, _ in seen) <= workers
    assert max(waiting for _, waiting in seen) >= 4 - workers  # the others queued


async def test_a_child_past_its_time_limit_is_killed(big_with_audio: Path, tmp_path: Path) -> None:
    runner = MediaRunner(workers=1, timeout=1.0)
    dest = tmp_path / "out.mp4"
    started = time.monotonic()
    with pytest.raises(MediaTimeout) as caught:
        await fit(big_with_audio, 10 * 1024 * 1024, dest=dest, runner=runner)
    assert time.monotonic() - started < 6
    assert caught.value.seconds == 1.0
    assert caught.value.what in ("probe big-audio.mp4", "fit big-audio.mp4 (try 1)")
    assert ffmpeg_children() == []
    assert runner.running == 0
    assert not dest.exists()


def _priority_of(pid: int) -> set[tuple[int, int]]:
    """(niceness, scheduling policy) of every thread of ``pid`` (``/proc/<pid>/task/*/stat``)."""
    found = set()
    for stat_file in Path(f"/proc/{pid}/task").glob("*/stat"):
        stat = stat_file.read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        found.add((int(fields[16]), int(fields[38])))
    return found


async def test_a_cancelled_call_kills_its_child_which_ran_at_low_priority(
    big_with_audio: Path, tmp_path: Path, runner: MediaRunner
) -> None:
    dest = tmp_path / "out.mp4"
    task = asyncio.create_task(fit(big_with_audio, 10 * 1024 * 1024, dest=dest, runner=runner))
    priorities: list[set[tuple[int, int]]] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not priorities:
        await asyncio.sleep(0.05)
        if dest.exists() and (children := ffmpeg_children()):  # the encode has started writing
            priorities = [_priority_of(pid) for pid in children]
            groups = [(os.getsid(pid), os.getpgid(pid)) for pid in children]
    # Every thread of the one child: the idle scheduling class, at the highest niceness.
    assert priorities == [{(NICE, os.SCHED_IDLE)}]
    # In the bot's session (a session of its own is a scheduling group of its own under Linux's
    # autogroup, which the idle class does not hold back), in a process group of its own (no Ctrl-C).
    ((session, group),) = groups
    assert session == os.getsid(0)
    assert group not in (os.getpgid(0), session)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ffmpeg_children() == []
    assert runner.running == 0
    assert not dest.exists()


async def test_the_event_loop_keeps_running_during_an_encode(
    big_with_audio: Path, tmp_path: Path, runner: MediaRunner
) -> None:
    gaps: list[float] = []

    async def tick() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    started = time.monotonic()
    try:
        await fit(big_with_audio, 10 * 1024 * 1024, dest=tmp_path / "out.mp4", runner=runner)
    finally:
        ticker.cancel()
    assert time.monotonic() - started > 1  # a real encode ran meanwhile
    assert len(gaps) > 50
    assert max(gaps) < 0.5, max(gaps)


def test_one_runner_serves_one_event_loop_after_another(small: Path) -> None:
    """The semaphore is per loop: a runner used under a second loop does not trip on the first's."""
    runner = MediaRunner(workers=1, timeout=60)

    async def three_probes() -> list[float]:
        return [
            info.duration for info in await asyncio.gather(*(probe(small, runner=runner) for _ in range(3)))
        ]

    assert asyncio.run(three_probes()) == asyncio.run(three_probes())


async def test_a_missing_binary_is_a_media_error(small: Path, tmp_path: Path) -> None:
    runner = MediaRunner(ffmpeg=str(tmp_path / "no-ffmpeg-here"))
    with pytest.raises(MediaError, match="cannot start ffmpeg"):
        await probe(small, runner=runner)
    assert runner.running == 0


def test_the_process_wide_runner_is_configured_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner_module, "_default", None)
    assert default_runner() is default_runner()
    assert (default_runner().workers, default_runner().timeout) == (1, 300.0)
    configured = configure(workers=3, timeout=42.0)
    assert default_runner() is configured
    assert (configured.workers, configured.timeout, configured.threads) == (3, 42.0, 1)


@pytest.mark.parametrize("bad", [{"workers": 0}, {"timeout": 0}, {"threads": 0}])
def test_nonsense_limits_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        MediaRunner(**bad)  # type: ignore[arg-type]
