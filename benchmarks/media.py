"""Media benchmark: fitting a 15 s 1080p30 clip of 40 MiB into Discord's 10 MiB, on one core.

Run with ``python -m benchmarks.media`` from the repository root (``--runs`` to change how many fits are
measured, default 3; a run takes about a minute). Three targets from the issue, for
:func:`media.fit` with the bot's defaults (one worker, one thread, ``-preset superfast``):

* **wall time** of the whole ``fit`` call (the probe of the source, the encode or encodes, the probe
  of the result) as a ratio to the clip's duration, on one core: at most 1.0×;
* **peak RSS of the encoding process** (the ffmpeg child): at most 300 MB;
* **the caller's own RSS growth** while it awaits the fit (the bot's process, which only drains two
  pipes): at most 16 MB.

How: the clip is generated first, with the bundled ffmpeg: 15 s of ffmpeg's moving ``testsrc2``
pattern under temporal grain (``noise=alls=30:allf=t+u``, fixed seed), 1920×1080 at 30 fps, H.264 at
about 21.5 Mb/s, with a 48 kHz AAC tone: 38 to 44 MiB. Grain is harder to encode than most real
footage (every frame differs everywhere) and easier than pure noise. Then a **fresh Python process**
(``--measure``) is pinned to one core (its ffmpeg children inherit the pin, and share that core with
it), imports :mod:`media` and nothing of the bot, and awaits ``fit(clip, 10 MiB)`` ``--runs`` times,
each into a new file. Per run it measures:

* wall time: ``time.monotonic()`` around the ``await``;
* the children's CPU time and peak RSS: ``getrusage(RUSAGE_CHILDREN)``, whose ``ru_maxrss`` is the
  largest RSS any waited-for child reached; the measuring process has no other children, so it is
  exactly the fit's ffmpeg runs (the clip was made by the parent process);
* its own RSS growth: the peak of ``VmRSS`` (sampled by a thread every 5 ms) and ``VmHWM`` (the kernel's
  peak, reset before each run through ``/proc/self/clear_refs``) minus ``VmRSS`` just before the run.

The verdicts use the median wall time and the largest of the memory figures. The machine's load
average is recorded: other processes may share the pinned core, which shows in the wall time but not
in the CPU time. Exit status 1 when a target is missed or the run breaks.

Results go to ``media.json`` and ``media.md`` in ``benchmarks/out/`` (``--update``: the committed
``benchmarks/results/``; see :mod:`benchmarks.output`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import output
from benchmarks.memory import RssSampler, memory_kb, reset_peak

MiB = 1024 * 1024
LIMIT = 10 * MiB
SECONDS = 15
TARGET_RATIO = 1.0
TARGET_CHILD_RSS_MB = 300.0
TARGET_GROWTH_MB = 16.0


def make_clip(dest: Path) -> float:
    """The 15 s 1080p30 clip of about 40 MiB (see the module docstring); returns the seconds it took."""
    import imageio_ffmpeg

    started = time.monotonic()
    video = f"testsrc2=s=1920x1080:r=30:d={SECONDS},noise=alls=30:allf=t+u:all_seed=11"
    subprocess.run(  # noqa: S603 - the bundled ffmpeg, our own arguments
        [
            imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
            "-f", "lavfi", "-i", video, "-f", "lavfi", "-i", f"sine=f=440:d={SECONDS}:sample_rate=48000",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
            "-b:v", "21500k", "-maxrate", "21500k", "-bufsize", "43000k",
            "-c:a", "aac", "-b:a", "128k", "-ac", "2", "-shortest", str(dest),
        ],
        check=True,
        timeout=600,
    )  # fmt: skip
    return time.monotonic() - started


@dataclass
class Run:
    wall_seconds: float
    ratio: float
    children_cpu_seconds: float
    cpu_ratio: float
    children_peak_rss_mb: float
    own_rss_before_mb: float
    own_growth_mb: float
    attempts: int
    output_bytes: int
    output_size: str
    video_bit_rate: int


async def measure_runs(clip: Path, runs: int, folder: Path) -> list[dict[str, Any]]:
    from media import MediaRunner, fit, probe

    runner = MediaRunner(workers=1, timeout=600)
    await runner.ffmpeg()  # found once, as the bot's first fit would (a child of its own: ffmpeg -version)
    info = await probe(clip, runner=runner)
    results = []
    for number in range(runs):
        usage_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        before = memory_kb()["VmRSS"]
        reset_peak()
        with RssSampler(0.005) as sampler:
            started = time.monotonic()
            fitted = await fit(clip, LIMIT, dest=folder / f"fitted-{number}.mp4", runner=runner)
            wall = time.monotonic() - started
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        peak = max(sampler.peak_kb, memory_kb()["VmHWM"])
        cpu = (usage.ru_utime - usage_before.ru_utime) + (usage.ru_stime - usage_before.ru_stime)
        run = Run(
            wall_seconds=round(wall, 2),
            ratio=round(wall / info.duration, 3),
            children_cpu_seconds=round(cpu, 2),
            cpu_ratio=round(cpu / info.duration, 3),
            children_peak_rss_mb=round(usage.ru_maxrss / 1024, 1),
            own_rss_before_mb=round(before / 1024, 1),
            own_growth_mb=round((peak - before) / 1024, 1),
            attempts=fitted.attempts,
            output_bytes=fitted.info.size,
            output_size=f"{fitted.info.width}x{fitted.info.height}",
            video_bit_rate=fitted.plan.video_bit_rate,
        )
        results.append(asdict(run))
        print(json.dumps({"progress": asdict(run)}), file=sys.stderr, flush=True)
    return results


def measure(clip: Path, runs: int, core: int | None) -> None:
    """The ``--measure`` process: pin, fit ``runs`` times, print one JSON line."""
    if core is not None:
        os.sched_setaffinity(0, {core})
    with tempfile.TemporaryDirectory(prefix="bench-media-out-") as folder:
        results = asyncio.run(measure_runs(clip, runs, Path(folder)))
    pinned = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    print(json.dumps({"runs": results, "pinned": pinned}), flush=True)


def load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def markdown(result: dict[str, Any]) -> str:
    m = result["meta"]
    v = result["verdicts"]
    lines = [
        "# Media benchmark",
        "",
        f"`python -m benchmarks.media` on {m['date']}: {m['python']}, {m['cpus']} CPU(s), imageio-ffmpeg "
        f"{m['imageio_ffmpeg']}; the measuring process and its ffmpeg children pinned to CPU {m['core']}.",
        f"Source: {m['clip_seconds']:g} s, {m['clip_size']} at {m['clip_fps']:g} fps, "
        f"{m['clip_bytes'] / MiB:.1f} MiB ({m['clip_bit_rate'] / 1e6:.1f} Mb/s, H.264 + AAC: moving test "
        f"pattern under temporal grain). `fit(clip, 10 MiB)` with one worker and one thread, "
        f"{len(result['runs'])} times.",
        "",
        "| run | wall s | wall / duration | children CPU s | CPU / duration | ffmpeg peak RSS MB "
        "| caller RSS growth MB | tries | output | video b/s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for number, r in enumerate(result["runs"], 1):
        lines.append(
            f"| {number} | {r['wall_seconds']} | {r['ratio']} | {r['children_cpu_seconds']} | {r['cpu_ratio']} "
            f"| {r['children_peak_rss_mb']} | {r['own_growth_mb']} | {r['attempts']} "
            f"| {r['output_size']}, {r['output_bytes'] / MiB:.2f} MiB | {r['video_bit_rate']:,} |"
        )
    lines += [
        "",
        "| target | figure | goal | verdict |",
        "|---|---:|---:|---|",
        f"| wall time / clip duration, one core (median) | {v['ratio']['value']} | ≤ {TARGET_RATIO} "
        f"| **{v['ratio']['verdict']}** |",
        f"| peak RSS of the encoding process (largest) | {v['child_rss_mb']['value']} MB "
        f"| ≤ {TARGET_CHILD_RSS_MB:g} MB | **{v['child_rss_mb']['verdict']}** |",
        f"| the caller's RSS growth (largest) | {v['growth_mb']['value']} MB | ≤ {TARGET_GROWTH_MB:g} MB "
        f"| **{v['growth_mb']['verdict']}** |",
        "",
        "Wall time covers the whole call: probing the source, the encode (two if the first came out too",
        "big), probing the result. Children CPU s is the CPU time of those ffmpeg runs (user + system);",
        "where it is well under the wall time, other processes were sharing the pinned core.",
        "ffmpeg peak RSS is `getrusage(RUSAGE_CHILDREN).ru_maxrss`: the largest RSS of any ffmpeg run of",
        "the measuring process so far (the kernel keeps a maximum, so later runs repeat it unless they",
        "exceed it). Caller RSS growth is over the measuring process's RSS just before the run "
        f"({result['runs'][0]['own_rss_before_mb']} MB: Python, asyncio and media/).",
        f"1-minute load average: {m['load_average_before']} before, {m['load_average_after']} after "
        f"(on {m['cpus']} CPUs). Clip generation took {m['clip_generation_seconds']} s, not measured.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--core", type=int, default=None, help="CPU to pin to (default: the last allowed)")
    parser.add_argument("--measure", type=Path, default=None, help=argparse.SUPPRESS)
    output.add_output_options(parser)
    args = parser.parse_args(argv)
    if args.measure is not None:
        measure(args.measure, args.runs, args.core)
        return 0

    import imageio_ffmpeg

    from media import probe

    core = args.core if args.core is not None else max(os.sched_getaffinity(0))
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="bench-media-") as folder:
        clip = Path(folder) / "source-1080p30-15s.mp4"
        generation = make_clip(clip)
        info = asyncio.run(probe(clip))
        if not 38 * MiB <= info.size <= 44 * MiB:
            print(f"the source clip is {info.size / MiB:.1f} MiB, not about 40 MiB", file=sys.stderr)
            return 1
        child = subprocess.run(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "benchmarks.media", "--measure", str(clip), "--runs", str(args.runs),
             "--core", str(core)],
            stdout=subprocess.PIPE,
            text=True,
            check=False,
            timeout=3600,
        )  # fmt: skip
    if child.returncode != 0:
        print(f"the measuring process failed (exit status {child.returncode})", file=sys.stderr)
        return 1
    measured = json.loads(child.stdout.strip().splitlines()[-1])
    runs = measured["runs"]
    ratio = statistics.median(r["ratio"] for r in runs)
    child_rss = max(r["children_peak_rss_mb"] for r in runs)
    growth = max(r["own_growth_mb"] for r in runs)

    def verdict(value: float, goal: float) -> dict[str, Any]:
        return {"value": value, "goal": goal, "verdict": "PASS" if value <= goal else "FAIL"}

    result = {
        "meta": {
            "date": datetime.now(UTC).strftime("%Y-%m-%d"),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "core": core,
            "pinned": measured["pinned"],
            "imageio_ffmpeg": imageio_ffmpeg.__version__,
            "clip_seconds": info.duration,
            "clip_size": f"{info.width}x{info.height}",
            "clip_fps": info.frame_rate,
            "clip_bytes": info.size,
            "clip_bit_rate": info.bit_rate,
            "clip_generation_seconds": round(generation, 1),
            "limit_bytes": LIMIT,
            "load_average_before": load_before,
            "load_average_after": load_average(),
        },
        "runs": runs,
        "verdicts": {
            "ratio": verdict(ratio, TARGET_RATIO),
            "child_rss_mb": verdict(child_rss, TARGET_CHILD_RSS_MB),
            "growth_mb": verdict(growth, TARGET_GROWTH_MB),
        },
    }
    out_dir = output.output_dir(args)
    (out_dir / "media.json").write_text(json.dumps(result, indent=2) + "\n")
    (out_dir / "media.md").write_text(markdown(result))
    for name, v in result["verdicts"].items():
        print(output.verdict(f"{name} <= {v['goal']}", v["verdict"] == "PASS", str(v["value"])))
    print(f"results in {out_dir / 'media.md'}")
    return output.exit_status([v["verdict"] == "PASS" for v in result["verdicts"].values()])


if __name__ == "__main__":
    sys.exit(main())
