"""Acknowledgements while videos are re-encoded: 50 simultaneous ``/video text`` with two encodes running.

Run with ``python -m benchmarks.encode_ack``. Fitting a video over a server's upload limit (:mod:`media`)
runs ffmpeg in child processes: the bot's event loop must keep acknowledging interactions meanwhile. This
measures it where it is hardest: the whole process is pinned to one CPU core, and the ffmpeg children
inherit that pin, so the bot, the fakes, SQLite and two encodes share one core (the children run in
Linux's idle scheduling class, which is how :mod:`media` keeps them from starving the bot).

The same bot answers alternating rounds of 50 simultaneous commands (the burst of
:mod:`benchmarks.ack`): *quiet* rounds with no encode, and *busy* rounds during which two
:func:`media.fit` calls are re-encoding a 10 s 1280×720 clip of moving noise (about 28 MiB) to 10 MiB
through the bot's own media runner (``MEDIA_WORKERS=2``). A busy round starts only once both ffmpeg
children are running, and the encodes are cancelled (killed) after the round. The delivery worker is
left out, so the encodes are the only background work.

Target: the acknowledgement's p99 in busy rounds within 1.5× of the quiet rounds' p99, in the same run.
Results go to ``encode_ack.json`` and ``encode_ack.md`` in ``benchmarks/out/`` (``--update``: the
committed ``benchmarks/results/``); exit status 1 when the target is missed or the run broke.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import media
from benchmarks import output
from benchmarks.ack import BONUS_CREDITS, RunBroken, Sample, burst, figures, load_average, one_core
from tests.harness import running_bot
from tests.media.clips import noisy_clip

MEMBERS = 50
ROUNDS = 4  # of each kind
TARGET_RATIO = 1.5
LIMIT = 10 * 1024 * 1024
ENCODES = 2
PAUSE = 0.5


@dataclass
class Result:
    quiet_ms: dict[str, float]
    busy_ms: dict[str, float]
    ratio: float
    passed: bool
    meta: dict[str, Any]


async def start_encodes(clip: Path, folder: Path) -> list[asyncio.Task[media.Fitted]]:
    """Two fits of ``clip``, running; returns once both ffmpeg children are at work."""
    runner = media.default_runner()
    tasks = [
        asyncio.create_task(media.fit(clip, LIMIT, dest=folder / f"fit-{n}-{time.monotonic_ns()}.mp4"))
        for n in range(ENCODES)
    ]
    deadline = time.monotonic() + 30
    while runner.running < ENCODES:  # the probe runs first; wait for the encodes themselves
        if time.monotonic() > deadline:
            raise RunBroken("the encodes did not start")
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)  # past the probes, into the encodes
    if runner.running < ENCODES:
        raise RunBroken("an encode ended before the round: use a longer clip")
    return tasks


async def stop(tasks: list[asyncio.Task[media.Fitted]]) -> bool:
    """Cancel (kill) the encodes; ``True`` when both were still running, as a busy round requires."""
    alive = all(not task.done() for task in tasks)
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, media.MediaError):
            await task
    return alive


async def run(rounds: int, members: int, clip: Path, folder: Path) -> tuple[list[Sample], list[Sample]]:
    quiet: list[Sample] = []
    busy: list[Sample] = []
    async with running_bot(folder, worker=False, media_workers=ENCODES) as harness:
        guild_id = harness.guild_id
        user_ids = [harness.fake.add_member(guild_id, name=f"bench-{n:02d}").user_id for n in range(members)]
        # Requests that go straight through: quotes are not what is measured here.
        await harness.storage.update_guild_settings(
            guild_id, max_active_jobs=2 * rounds + 2, confirm_above_credits=0
        )
        for user_id in user_ids:
            await harness.storage.grant(guild_id, user_id, BONUS_CREDITS, actor_id=harness.admin_id)
        await burst(harness, 0, user_ids[:10])  # warm-up
        for round_no in range(1, 2 * rounds + 1):
            await asyncio.sleep(PAUSE)
            if round_no % 2:
                samples, _ = await burst(harness, round_no, user_ids)
                quiet += samples
                continue
            tasks = await start_encodes(clip, folder)
            samples, _ = await burst(harness, round_no, user_ids)
            if not await stop(tasks):
                raise RunBroken("an encode ended during a busy round: use a longer clip")
            busy += samples
    return quiet, busy


def markdown(r: Result) -> str:
    m = r.meta
    return "\n".join(
        [
            "# Acknowledgements while two videos are re-encoded",
            "",
            f"{m['date']}, {m['python']}, {m['cpus']} CPUs, everything pinned to CPU {m['cpu_pinned']} "
            f"(the ffmpeg children too, in the idle scheduling class). {m['members']} simultaneous `/video text` per round, "
            f"{m['rounds']} quiet and {m['rounds']} busy rounds alternating; busy rounds run two `media.fit` "
            f"encodes of a {m['clip_mib']} MiB 10 s 1280×720 clip to 10 MiB.",
            "",
            "| rounds | commands | p50 | p95 | p99 | max |",
            "|---|---|---|---|---|---|",
            *(
                f"| {name} | {f['count']:.0f} | {f['p50_ms']} ms | {f['p95_ms']} ms | **{f['p99_ms']} ms** | "
                f"{f['max_ms']} ms |"
                for name, f in (("quiet (no encode)", r.quiet_ms), ("busy (two encodes)", r.busy_ms))
            ),
            "",
            f"p99 busy / quiet: **{r.ratio:.2f}×** (target ≤ {TARGET_RATIO}×): "
            f"**{'PASS' if r.passed else 'FAIL'}**.",
            "",
            f"Load average {m['load_average_before']} before, {m['load_average_after']} after.",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="rounds of each kind")
    parser.add_argument("--members", type=int, default=MEMBERS)
    output.add_output_options(parser)
    args = parser.parse_args(argv)
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="kling-encode-ack-") as name:
        folder = Path(name)
        clip = noisy_clip(folder / "clip.mp4", seconds=10, bit_rate=23_500_000, audio=True)
        with one_core() as core:
            try:
                quiet, busy = asyncio.run(run(args.rounds, args.members, clip, folder))
            except RunBroken as error:
                print(f"The run broke: {error}", file=sys.stderr)
                return 1
        clip_mib = round(clip.stat().st_size / 2**20, 1)
    quiet_f, busy_f = figures([s.ack for s in quiet]), figures([s.ack for s in busy])
    ratio = busy_f.p99_ms / quiet_f.p99_ms if quiet_f.p99_ms else float("inf")
    result = Result(
        quiet_ms=asdict(quiet_f),
        busy_ms=asdict(busy_f),
        ratio=round(ratio, 2),
        passed=ratio <= TARGET_RATIO,
        meta={
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "python": f"Python {platform.python_version()}",
            "cpus": os.cpu_count(),
            "cpu_pinned": core,
            "members": args.members,
            "rounds": args.rounds,
            "clip_mib": clip_mib,
            "load_average_before": load_before,
            "load_average_after": load_average(),
        },
    )
    out = output.output_dir(args)
    (out / "encode_ack.json").write_text(json.dumps(asdict(result), indent=2) + "\n")
    (out / "encode_ack.md").write_text(markdown(result))
    print(f"quiet: p99 {quiet_f.p99_ms} ms; busy (two encodes): p99 {busy_f.p99_ms} ms")
    print(output.verdict(f"busy p99 <= {TARGET_RATIO}x quiet p99", result.passed, f"{result.ratio}x"))
    return output.exit_status([result.passed])


if __name__ == "__main__":
    sys.exit(main())
