"""The scale benchmark's part with several processes: two bot processes on one PostgreSQL database.

Run by ``python -m benchmarks.scale`` (after its one-process part; ``--processes-only`` for this part
alone). Questions from issue 15:

* **10,000 jobs in flight between two processes**, each running one gateway shard
  (``SHARD_COUNT=2``) and its delivery worker: peak resident memory **per process** (target
  ≤ 250 MB), read from ``/proc/<pid>/status`` (``VmHWM``, the kernel's own peak).
* **One provider budget**: the provider's calls per second, counted where they arrive (the sandbox
  of the fakes' process, ``/_bench/arrivals``), never above ``PROVIDER_MAX_RPS`` in any one-second
  window, for both processes together.
* **Database statements per status poll**, reported: each bot process counts the SQL statements it
  sends (SQLAlchemy's ``before_cursor_execute``; transaction control such as ``BEGIN``/``COMMIT``
  is not a statement there) inside each status poll (the poll's own writes), inside the claims that
  hand out polls, and inside the shared pace's reservations, and writes the counts to a file.

How: a throw-away PostgreSQL cluster (:func:`tests.postgres.temporary_cluster`, or the server of
``KLING_BENCH_POSTGRES_URL``); the fakes' child process of :mod:`benchmarks.scale` (sandbox and fake
Discord); the 10,000 jobs (half Kling 3.0, half 2.6, from 1,000 members) created in the database
first; then two bot processes, ``python -m benchmarks.scale_processes --bot``, which is ``bot.py``'s
``main()`` with the statement counters installed, started at the same moment with
``PROVIDER_MAX_RPS`` 100 and ``MAX_CONCURRENT_GENERATIONS`` 10,000. Each sandbox task takes 300 s and
is announced as 150-450 s, so the jobs are submitted (about 110 s at 90 calls/s, if the two cores keep
up) before most status calls begin; the measured window is from the start until every job is
``processing``, plus ``--steady`` seconds (90) in which the first submitted jobs' status calls come
due, as many as the budget allows.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.memory import memory_kb
from benchmarks.scale import (
    Fakes,
    RunBroken,
    control,
    create_job,
    fakes_process,
    max_in_window,
    mb,
)
from storage import JobState, Storage
from tests.harness import API_KEY
from tests.processes import bot_env
from ulazai.requests import KlingModel

JOBS = 10_000
MEMBERS = 1_000
RPS = 100.0
TASK_SECONDS = 300.0
STEADY = 90.0
TARGET_RSS_MB = 250.0
#: The most the submission phase may take, and the whole part.
SUBMIT_LIMIT = 420.0

#: Where, in a bot process, the statement being sent belongs (``None``: anywhere else).
_WHERE: contextvars.ContextVar[str | None] = contextvars.ContextVar("where", default=None)


# --------------------------------------------------------------------------------------------------
# Inside each bot process: bot.py's main(), counting statements.
# --------------------------------------------------------------------------------------------------


def _counted(counters: dict[str, int], where: str, method: Callable[..., Awaitable[Any]]) -> Any:
    async def counting(*args: Any, **kwargs: Any) -> Any:
        token = _WHERE.set(where)
        counters[f"{where}_calls"] += 1
        try:
            result = await method(*args, **kwargs)
        finally:
            _WHERE.reset(token)
        if isinstance(result, list):
            counters[f"{where}_items"] += len(result)
        return result

    return counting


def bot_child(counters_path: Path) -> int:
    """``bot.py``'s ``main()`` with the counters; they are written to ``counters_path`` every second."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    import bot
    from generation.worker import Worker

    counters: dict[str, int] = dict.fromkeys(
        [
            f"{where}_{what}"
            for where in ("poll", "claim", "pace")
            for what in ("calls", "items", "statements")
        ]
        + ["statements"],
        0,
    )

    def count(*_: Any) -> None:
        counters["statements"] += 1
        where = _WHERE.get()
        if where is not None:
            counters[f"{where}_statements"] += 1

    event.listen(Engine, "before_cursor_execute", count)
    Worker.poll = _counted(counters, "poll", Worker.poll)  # type: ignore[method-assign]
    Storage.claim_for_poll = _counted(counters, "claim", Storage.claim_for_poll)  # type: ignore[method-assign]
    Storage.reserve_provider_slots = _counted(counters, "pace", Storage.reserve_provider_slots)  # type: ignore[method-assign]

    def write() -> None:
        tmp = counters_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(counters))
        tmp.replace(counters_path)

    stop = threading.Event()

    def keep_writing() -> None:
        while not stop.wait(1.0):
            write()

    writer = threading.Thread(target=keep_writing, name="bench-counters", daemon=True)
    writer.start()
    try:
        return bot.main()
    finally:
        stop.set()
        write()


# --------------------------------------------------------------------------------------------------
# The benchmark's side.
# --------------------------------------------------------------------------------------------------


@dataclass
class BotFigures:
    name: str
    peak_rss_mb: float
    rss_end_mb: float
    polls: int
    statements: int
    statements_in_polls: int
    polls_claimed: int
    statements_in_poll_claims: int
    pace_reservations: int
    statements_in_pace: int
    exit_status: int | None


@dataclass
class ProcessesFigures:
    jobs: int
    provider_max_rps: float
    task_seconds: float
    submit_seconds: float
    steady_seconds: float
    bots: list[BotFigures]
    max_peak_rss_mb: float
    target_rss_mb: float
    rss_passed: bool
    calls_total: int
    calls_generate: int
    calls_status: int
    max_calls_any_second: int
    rate_passed: bool
    statements_per_poll: float
    claim_statements_per_poll: float
    pace_statements_per_call: float
    states_at_end: dict[str, int]
    #: The most jobs processing at the provider at once (read every 2 s).
    peak_in_flight: int
    fakes_peak_rss_mb: float | None
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.rss_passed and self.rate_passed


async def _start_child(
    name: str, folder: Path, settings: dict[str, str]
) -> tuple[asyncio.subprocess.Process, Path]:
    folder.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - set-up, before the bot runs
    counters = folder / "counters.json"
    with (folder / "bot.log").open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "benchmarks.scale_processes",
            "--bot",
            str(counters),
            cwd=folder,
            env=bot_env(folder, **settings),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log,
        )
    return process, counters


async def _stop(process: asyncio.subprocess.Process) -> int:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 60)
        except TimeoutError:
            process.kill()
    return await process.wait()


async def _states(storage: Storage, guild_id: int) -> dict[str, int]:
    return {str(state): count for state, count in (await storage.unfinished_jobs(guild_id)).items()}


async def run_processes(
    url: str, folder: Path, *, jobs: int, rps: float, task_seconds: float, steady: float
) -> ProcessesFigures:
    """Everything described in the module docstring, on the (empty) PostgreSQL database ``url``."""
    notes: list[str] = []
    async with fakes_process(task_seconds, None) as fakes, Storage(url) as storage:
        await storage.migrate()
        await _prepare(storage, fakes, jobs, task_seconds)
        common = {
            "ULAZAI_API_KEY": API_KEY,
            "ULAZAI_BASE_URL": fakes.sandbox,
            "DATABASE_URL": url,
            "DISCORD_API_BASE_URL": fakes.api_base,
            "DISCORD_GATEWAY_URL": fakes.gateway,
            "SHARD_COUNT": "2",
            "PROVIDER_MAX_RPS": str(rps),
            "MAX_CONCURRENT_GENERATIONS": str(jobs),
            "LOG_LEVEL": "WARNING",
        }
        started = time.monotonic()
        children = [
            await _start_child(f"shard{shard}", folder / f"shard{shard}", {**common, "SHARD_IDS": str(shard)})
            for shard in (0, 1)
        ]
        rss_end: dict[int, float] = {}
        try:
            peak_in_flight = [0]
            submitted_at = await _until_all_processing(
                storage, fakes, jobs, children, started, peak_in_flight
            )
            steady_end = time.monotonic() + steady
            while time.monotonic() < steady_end:
                await asyncio.sleep(1)
                if any(process.returncode is not None for process, _ in children):
                    raise RunBroken("a bot process ended during the steady phase")
            ended = time.monotonic()
            peaks = {process.pid: memory_kb(process.pid) for process, _ in children}
            rss_end = {pid: mb(values["VmRSS"]) for pid, values in peaks.items()}
            counts = await _states(storage, fakes.guild_id)
        finally:
            statuses = [await _stop(process) for process, _ in children]
        provider = await _arrivals(fakes, started, ended)
        fakes_memory = memory_kb(fakes.pid).get("VmHWM")
    bots = []
    for (process, counters_path), status in zip(children, statuses, strict=True):
        counters = json.loads(counters_path.read_text()) if counters_path.exists() else {}
        bots.append(
            BotFigures(
                name=counters_path.parent.name,
                peak_rss_mb=mb(peaks[process.pid]["VmHWM"]),
                rss_end_mb=rss_end.get(process.pid, 0.0),
                polls=counters.get("poll_calls", 0),
                statements=counters.get("statements", 0),
                statements_in_polls=counters.get("poll_statements", 0),
                polls_claimed=counters.get("claim_items", 0),
                statements_in_poll_claims=counters.get("claim_statements", 0),
                pace_reservations=counters.get("pace_calls", 0),
                statements_in_pace=counters.get("pace_statements", 0),
                exit_status=status,
            )
        )
        if status != 0:
            notes.append(
                f"{counters_path.parent.name} exited with status {status} (log: {counters_path.parent}/bot.log)"
            )
    routes = provider["routes"]
    generate = sum(v for k, v in routes.items() if k.startswith("generate"))
    status_calls = sum(v for k, v in routes.items() if k.startswith("status"))
    polls = sum(b.polls for b in bots) or 1
    calls = len(provider["arrivals"]) or 1
    peak = max(b.peak_rss_mb for b in bots)
    busiest = max_in_window(provider["arrivals"])
    return ProcessesFigures(
        jobs=jobs,
        provider_max_rps=rps,
        task_seconds=task_seconds,
        submit_seconds=round(submitted_at - started, 1),
        steady_seconds=round(ended - submitted_at, 1),
        bots=bots,
        max_peak_rss_mb=peak,
        target_rss_mb=TARGET_RSS_MB,
        rss_passed=peak <= TARGET_RSS_MB,
        calls_total=len(provider["arrivals"]),
        calls_generate=generate,
        calls_status=status_calls,
        max_calls_any_second=busiest,
        rate_passed=busiest <= rps,
        statements_per_poll=round(sum(b.statements_in_polls for b in bots) / polls, 2),
        claim_statements_per_poll=round(
            sum(b.statements_in_poll_claims for b in bots) / max(1, sum(b.polls_claimed for b in bots)), 2
        ),
        pace_statements_per_call=round(sum(b.statements_in_pace for b in bots) / calls, 3),
        states_at_end=counts,
        peak_in_flight=peak_in_flight[0],
        fakes_peak_rss_mb=mb(fakes_memory) if fakes_memory is not None else None,
        notes=notes,
    )


async def _prepare(storage: Storage, fakes: Fakes, jobs: int, task_seconds: float) -> None:
    """The sandbox's task length and estimate, and the queued jobs (before any bot runs)."""
    import aiohttp

    low, high = int(task_seconds * 0.5), int(task_seconds * 1.5)
    estimate = f"{low}-{high} seconds"
    async with aiohttp.ClientSession() as session:
        await control(
            session,
            fakes,
            {"task_seconds": task_seconds, "estimated_time": {"kling-3.0": estimate, "kling-2.6": estimate}},
        )
    members = min(MEMBERS, jobs)
    per_member = -(-jobs // members)
    await storage.update_guild_settings(
        fakes.guild_id, max_active_jobs=per_member, allowance_credits=per_member * 200
    )
    for n in range(jobs):
        model = KlingModel.V3_0 if n % 2 == 0 else KlingModel.V2_6
        await create_job(storage, fakes, 10_000_000 + n % members, 1_000 + n, model)


async def _until_all_processing(
    storage: Storage,
    fakes: Fakes,
    jobs: int,
    children: list[tuple[asyncio.subprocess.Process, Path]],
    started: float,
    peak: list[int],
) -> float:
    while True:
        await asyncio.sleep(2)
        for process, counters in children:
            if process.returncode is not None:
                raise RunBroken(
                    f"a bot process ended early (status {process.returncode}; see {counters.parent}/bot.log)"
                )
        counts = await _states(storage, fakes.guild_id)
        peak[0] = max(peak[0], counts.get(JobState.PROCESSING.value, 0))
        if not counts.get(JobState.QUEUED.value, 0) and not counts.get(JobState.SUBMITTING.value, 0):
            return time.monotonic()  # every job was submitted
        if time.monotonic() - started > SUBMIT_LIMIT:
            raise RunBroken(f"not all submitted within {SUBMIT_LIMIT:.0f} s: {counts}")


async def _arrivals(fakes: Fakes, since: float, until: float) -> dict[str, Any]:
    import aiohttp

    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{fakes.sandbox}/_bench/arrivals", params={"since": str(since), "until": str(until)}
        ) as response,
    ):
        provider: dict[str, Any] = await response.json()
    provider["routes"] = {k: int(v) for k, v in provider["routes"].items()}
    return provider


def markdown(p: ProcessesFigures) -> list[str]:
    def verdict(ok: bool) -> str:
        return "**PASS**" if ok else "**FAIL**"

    lines = [
        "## Two processes on PostgreSQL",
        "",
        f"{p.jobs:,} jobs in flight between two bot processes (`python -m benchmarks.scale_processes --bot`: "
        "`bot.py`'s `main()` with statement counters), one gateway shard each (`SHARD_COUNT=2`), on one "
        f"PostgreSQL database, `PROVIDER_MAX_RPS` {p.provider_max_rps:g} for both together, tasks of "
        f"{p.task_seconds:g} s. Every job was submitted {p.submit_seconds} s after the processes started "
        f"(at most {p.peak_in_flight:,} processing at the provider at once); then {p.steady_seconds} s of "
        "polling.",
        "",
        "| process | peak RSS (VmHWM) | RSS at the end | status polls | statements per poll | "
        "statements in poll claims | pace reservations | statements in all |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for b in p.bots:
        per_poll = round(b.statements_in_polls / b.polls, 2) if b.polls else 0
        lines.append(
            f"| {b.name} | {b.peak_rss_mb} MB | {b.rss_end_mb} MB | {b.polls:,} | {per_poll} | "
            f"{b.statements_in_poll_claims:,} for {b.polls_claimed:,} polls | {b.pace_reservations:,} | "
            f"{b.statements:,} |"
        )
    lines += [
        "",
        f"Target: peak RSS per process ≤ {p.target_rss_mb:g} MB: {verdict(p.rss_passed)} "
        f"(the larger: {p.max_peak_rss_mb} MB).",
        f"Target: provider calls in any one second ≤ {p.provider_max_rps:g} (both processes, where they "
        f"arrive): {verdict(p.rate_passed)} (at most {p.max_calls_any_second}; {p.calls_total:,} calls: "
        f"{p.calls_generate:,} generate, {p.calls_status:,} status).",
        f"Database statements per status poll (reported): {p.statements_per_poll} in the poll itself (its "
        f"release or transition), plus {p.claim_statements_per_poll} for the claim that handed it out, "
        f"plus {p.pace_statements_per_call} per provider call for the shared pace's reservations "
        "(transaction control not counted).",
        f"Jobs at the end: {p.states_at_end}. The fakes' process peaked at {p.fakes_peak_rss_mb} MB.",
    ]
    lines += [f"Note: {note}" for note in p.notes]
    return lines


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--bot":
        sys.exit(bot_child(Path(sys.argv[2])))
    sys.exit("run it through python -m benchmarks.scale")


def run_part(folder: Path, *, jobs: int, rps: float, task_seconds: float, steady: float) -> ProcessesFigures:
    """This part on a PostgreSQL server: ``KLING_BENCH_POSTGRES_URL``'s, or a throw-away cluster."""
    from benchmarks.ack import run_bounded
    from tests.postgres import create_database, drop_database, temporary_cluster

    out: list[ProcessesFigures] = []

    async def go(url: str) -> None:
        out.append(
            await run_processes(url, folder, jobs=jobs, rps=rps, task_seconds=task_seconds, steady=steady)
        )

    with contextlib.ExitStack() as stack:
        server = os.environ.get("KLING_BENCH_POSTGRES_URL") or stack.enter_context(temporary_cluster())
        url = create_database(server, "kling_scale_bench")
        try:
            run_bounded(go(url), SUBMIT_LIMIT + steady + 300)
        finally:
            drop_database(server, "kling_scale_bench")
    return out[0]
