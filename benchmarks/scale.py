"""Scale benchmark: 5,000 jobs in flight in one bot process, the relay of a 200 MB video, and 10,000
jobs in flight between two bot processes on PostgreSQL (:mod:`benchmarks.scale_processes`, run after
the rest; ``--processes-only`` for that part alone, ``--no-processes`` without it).

Run with ``python -m benchmarks.scale`` from the repository root (``--jobs``, ``--rps``, ``--steady`` to
change the size; the default run takes about three minutes). Two questions from the issue:

1. **5,000 generations in flight in one process.** Peak resident memory (target under 250 MB), CPU
   time per job, and the provider's rate limit: provider calls per second never above
   ``PROVIDER_MAX_RPS`` in any one-second window.
2. **Relay of a 200 MB video** (the worker downloads every video to re-host it on Discord): peak
   resident memory growth during it (target under 32 MB).

How: the UlazAI sandbox and the fake Discord run in a **child process** (``--serve-fakes``, pinned
to the second core when there is one), so the measured process holds only what production holds: the
real ``KlingBot`` built as :func:`bot.run` builds it (its own ``UlazAIClient``, retry policy and
``RateLimiter``; the shared session; discord.py connected to the fake gateway), its SQLite database
and its delivery worker (pinned to the first core, with SQLite's thread). Memory is read from
``/proc/self/status``: ``VmHWM`` (the kernel's peak RSS, reset by writing 5 to ``/proc/self/clear_refs``
before each measurement) and ``VmRSS`` sampled by a thread; CPU time is ``os.times()`` (user + system,
all threads of the process).

The relay comes first, while the process is small: one Kling 2.6 job whose video is 200 MiB (the
sandbox pads its sample MP4 with a ``free`` box and streams it); the worker downloads it through the
bot's session (:mod:`ulazai.download` streams to a temporary file) and posts it as a link (it is over
the fake server's 10 MiB upload limit). Then :func:`ulazai.download.download_video` is called directly
on the same URL through the same session, and measured alone.

Then 5,000 jobs (half Kling 3.0, half 2.6, from 1,000 members) are created with
``Storage.create_job`` while the worker is held (its ``max_in_flight`` set to 0), and released at once
with ``max_in_flight`` 5,000. Two settings differ from the defaults, on purpose:

* ``PROVIDER_MAX_RPS`` is 50 (default 5): at 5 calls/s, submitting 5,000 jobs alone takes 1,000 s;
* the worker's ``max_in_flight`` (``MAX_CONCURRENT_GENERATIONS``) is set to 5,000 directly after
  start-up, so the worker is held while the jobs are created and released at once.

Every sandbox task takes ``--task-seconds`` (300 s by default, announced as 240-360 s), longer than submitting them all, so all
5,000 are in flight together; the estimates are the documented ones ("60-180 seconds" for 3.0,
"60-90 seconds" for 2.6), so polling behaves as in production: it starts 60 s after each submission
and from then on wants far more than 50 calls/s (2,500 Kling 3.0 jobs polled every 5 s alone would be
500/s), i.e. the limiter is saturated and the worker runs flat out. The window measured is from the
release until every job is ``processing`` (submitted), plus ``--steady`` seconds of polling (60 by
default); no video completes inside it, so delivery is not part of the 5,000 (the relay measures it).

Provider calls per second are counted twice: when each call leaves the bot's rate limiter (wrapped
to note the time; this is what the limiter promises) and when it arrives at the sandbox (an outer
middleware of the child's sandbox; this is what the provider would count, network jitter included).
The figure is the most calls in any one-second window ``[t, t + 1)``.

Each target gets a PASS/FAIL line; the exit status is 1 when one is missed or the run broke. Results go
to ``scale.json`` and ``scale.md`` in ``benchmarks/out/`` (``--update``: the committed ``benchmarks/results/``;
see :mod:`benchmarks.output`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import sqlite3
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import aiohttp
import discord
from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import SecretStr

import bot as bot_module
from benchmarks import output
from benchmarks.ack import load_average, run_bounded
from benchmarks.memory import RssSampler, memory_kb, reset_peak
from bot import KlingBot
from cogs.delivery import Delivery
from config import Settings
from sandbox import Sandbox
from storage import JobRequest, JobState, Storage
from tests.fakes.discord_api import FakeDiscord
from tests.harness import API_KEY, TOKEN
from ulazai.download import download_video
from ulazai.pricing import estimate_credits
from ulazai.requests import GenerationMode, KlingModel, Quality, VideoSpec

JOBS = 5_000
MEMBERS = 1_000
RPS = 50.0
TASK_SECONDS = 300.0
STEADY = 60.0
RELAY_BYTES = 200 * 1024 * 1024
TARGET_RSS_MB = 250.0
TARGET_RELAY_GROWTH_MB = 32.0
#: The worker's hold while jobs are created, and the configured cap (config refuses more than 1,000).
CONFIGURED_MAX_CONCURRENT = 1_000
#: Seconds the whole async run may take, and the most the submission phase may take.
RUN_LIMIT = 600.0
SUBMIT_LIMIT = 400.0
MIB = 1024 * 1024


class RunBroken(Exception):
    """The run did not do what it measures."""


# --------------------------------------------------------------------------------------------------
# Memory and CPU of a process.
# --------------------------------------------------------------------------------------------------


def cpu_seconds() -> float:
    """User + system CPU time of this process (all threads: SQLite's included)."""
    times = os.times()
    return times.user + times.system


def mb(kb: float) -> float:
    return round(kb / 1024, 1)


def max_in_window(times: Sequence[float], window: float = 1.0) -> int:
    """The most events in any half-open window ``[t, t + window)``."""
    ordered = sorted(times)
    best = 0
    end = 0
    for start, t in enumerate(ordered):
        end = max(end, start)
        while end < len(ordered) and ordered[end] < t + window:
            end += 1
        best = max(best, end - start)
    return best


@contextlib.contextmanager
def pinned(core: int | None) -> Iterator[int | None]:
    """Pin this process to ``core`` when the OS allows it (and there is such a core)."""
    if core is None or not hasattr(os, "sched_setaffinity") or core not in os.sched_getaffinity(0):
        yield None
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {core})
    try:
        yield core
    finally:
        os.sched_setaffinity(0, before)


# --------------------------------------------------------------------------------------------------
# The fakes' process.
# --------------------------------------------------------------------------------------------------


class CountingSandbox(Sandbox):
    """The sandbox, noting when each provider call *arrives* (the stock log notes when it is answered).

    ``GET /_bench/arrivals`` returns those times (``time.monotonic()``, the same clock as the bot's on
    Linux), the number of tasks, and the answers per route and status.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.arrivals: list[float] = []

    def _build_app(self) -> web.Application:
        app = super()._build_app()
        app.middlewares.insert(0, self._count_arrival)
        app.router.add_get("/_bench/arrivals", self._arrivals)
        return app

    @web.middleware
    async def _count_arrival(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(("/kling30/api/", "/kling26/api/")):
            self.arrivals.append(time.monotonic())
        return await handler(request)

    async def _arrivals(self, request: web.Request) -> web.StreamResponse:
        """Arrival times, and answers per route and status, between ``?since=`` and ``?until=`` (monotonic)."""
        since = float(request.query.get("since", "-inf"))
        until = float(request.query.get("until", "inf"))
        routes: dict[str, int] = {}
        for recorded in self.requests:
            if since <= recorded.time <= until:
                key = f"{recorded.route} {recorded.status}"
                routes[key] = routes.get(key, 0) + 1
        arrivals = [t for t in self.arrivals if since <= t <= until]
        return web.json_response({"arrivals": arrivals, "tasks": len(self.tasks), "routes": routes})


async def serve_fakes(task_seconds: float) -> None:
    """Run the sandbox and the fake Discord until stdin closes; print where they listen first."""
    sandbox = CountingSandbox(api_key=API_KEY, task_seconds=task_seconds)
    await sandbox.start("127.0.0.1", 0)
    fake = FakeDiscord()
    await fake.start()
    fake.add_default_guild()
    info = {
        "pid": os.getpid(),
        "sandbox": sandbox.base_url,
        "api_base": fake.api_base,
        "gateway": fake.gateway_url,
        "guild_id": fake.guild_id,
        "channel_id": fake.channel_ids["videos"],
        "admin_id": fake.admin_id,
    }
    print(json.dumps(info), flush=True)
    try:
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    finally:
        await fake.close()
        await sandbox.close()


@dataclass
class Fakes:
    process: asyncio.subprocess.Process
    pid: int
    sandbox: str
    api_base: str
    gateway: str
    guild_id: int
    channel_id: int
    admin_id: int


@contextlib.asynccontextmanager
async def fakes_process(task_seconds: float, core: int | None) -> AsyncIterator[Fakes]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks.scale",
        "--serve-fakes",
        "--task-seconds",
        str(task_seconds),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        if not line:
            raise RunBroken("the fakes' process ended before it was ready")
        info = json.loads(line)
        if core is not None and hasattr(os, "sched_setaffinity"):
            with contextlib.suppress(OSError):
                os.sched_setaffinity(process.pid, {core})
        yield Fakes(process=process, **info)
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 15)
        except TimeoutError:
            process.kill()
            await process.wait()


# --------------------------------------------------------------------------------------------------
# The measured process: the bot.
# --------------------------------------------------------------------------------------------------


@dataclass
class Relay:
    """Memory during the relay of one big video, in MB (RSS growth over the RSS just before)."""

    video_mb: float
    worker_baseline_rss_mb: float
    worker_peak_growth_hwm_mb: float
    worker_peak_growth_sampled_mb: float
    worker_seconds: float
    worker_notes: str
    direct_baseline_rss_mb: float
    direct_peak_growth_hwm_mb: float
    direct_peak_growth_sampled_mb: float
    direct_seconds: float
    direct_mb_per_s: float
    target_growth_mb: float
    passed: bool


@dataclass
class Scale:
    jobs: int
    provider_max_rps: float
    baseline_rss_mb: float
    peak_rss_hwm_mb: float
    peak_rss_sampled_mb: float
    rss_all_submitted_mb: float
    rss_end_mb: float
    target_rss_mb: float
    rss_passed: bool
    submit_seconds: float
    cpu_submit_seconds: float
    cpu_ms_per_job_submit: float
    steady_seconds: float
    cpu_steady_seconds: float
    cpu_steady_share_of_core: float
    calls_steady: int
    cpu_ms_per_call_steady: float
    cpu_ms_per_job_window: float
    calls_total: int
    calls_generate: int
    calls_status: int
    max_calls_any_second_bot: int
    max_calls_any_second_wire: int
    max_calls_any_second_provider: int
    rate_passed: bool
    states_at_end: dict[str, int]
    provider_routes: dict[str, int]
    loop_lag_p99_ms: float
    loop_lag_max_ms: float
    #: Stalls over 0.5 s: (seconds after the release, milliseconds).
    loop_stalls: list[tuple[float, float]]
    fakes_peak_rss_mb: float | None
    peak_submitting: int
    peak_working_tasks: int
    working_tasks_at_end: int
    generate_latency: dict[str, float]
    status_latency: dict[str, float]
    lease_renewals: int
    #: request → done of the worker's database writes, per storage method.
    db_latency: dict[str, dict[str, float]]
    overdue_polls_at_end: int
    most_overdue_poll_s: float


@dataclass
class Report:
    relay: Relay
    scale: Scale
    passed: bool
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Collected:
    relay: Relay | None = None
    scale: Scale | None = None
    #: When each provider call's headers were written (``wire_clock``), for the whole run.
    wire: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class CallClock:
    """Notes when each provider call of the bot leaves its rate limiter (i.e. is sent), how long each
    generate and status call took from the worker's request to the answer (rate limiter included), and
    when the worker renewed a lease (a database write per job in the worker's hands every lease/3 s)."""

    def __init__(self, bot: KlingBot) -> None:
        self.sent: list[float] = []
        #: (started, seconds) per call, by client method.
        self.calls: dict[str, list[tuple[float, float]]] = {"generate": [], "status": []}
        self.renewals: list[float] = []
        client = bot.ulazai
        limiter = getattr(client, "_limiter", None)
        if limiter is None:
            raise RunBroken("the bot's client has no rate limiter")
        acquire: Callable[[], Awaitable[None]] = limiter.acquire

        async def noted_acquire() -> None:
            await acquire()
            self.sent.append(time.monotonic())

        limiter.acquire = noted_acquire
        for name, calls in self.calls.items():
            setattr(client, name, self._timed(getattr(client, name), calls))
        renew: Callable[..., Awaitable[Any]] = bot.storage.renew_lease

        async def noted_renew(*args: Any, **kwargs: Any) -> Any:
            self.renewals.append(time.monotonic())
            return await renew(*args, **kwargs)

        bot.storage.renew_lease = noted_renew  # type: ignore[method-assign]
        # The worker's database writes: on SQLite they queue for the one pooled connection, and one
        # that waits longer than the pool's timeout fails (SQLAlchemy's TimeoutError).
        self.db: dict[str, list[tuple[float, float]]] = {
            name: [] for name in ("mark_submitting", "mark_processing", "release_lease", "renew_lease")
        }
        for name, calls in self.db.items():
            setattr(bot.storage, name, self._timed(getattr(bot.storage, name), calls))

    @staticmethod
    def _timed(
        method: Callable[..., Awaitable[Any]], calls: list[tuple[float, float]]
    ) -> Callable[..., Awaitable[Any]]:
        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.monotonic()
            try:
                return await method(*args, **kwargs)
            finally:
                calls.append((started, time.monotonic() - started))

        return timed

    def latency(self, name: str, start: float, end: float) -> dict[str, float]:
        """p50/p99/max seconds of the calls started between ``start`` and ``end``."""
        calls = self.calls[name] if name in self.calls else self.db[name]
        values = sorted(seconds for started, seconds in calls if start <= started <= end)
        if not values:
            return {"count": 0}
        return {
            "count": len(values),
            "p50_s": round(values[len(values) // 2], 2),
            "p99_s": round(values[min(len(values) - 1, int(len(values) * 0.99))], 2),
            "max_s": round(values[-1], 2),
        }


def wire_clock(sent: list[float]) -> aiohttp.TraceConfig:
    """A trace on the bot's session noting when each provider call's headers reach the socket: between
    the limiter's release and this moment the call waits for the event loop (and a free connection)."""
    trace = aiohttp.TraceConfig()

    async def headers_sent(
        session: aiohttp.ClientSession, context: Any, params: aiohttp.TraceRequestHeadersSentParams
    ) -> None:
        if params.url.path.startswith(("/kling30/api/", "/kling26/api/")):
            sent.append(time.monotonic())

    trace.on_request_headers_sent.append(headers_sent)
    return trace


class LoopLag:
    """How late a 50 ms sleep wakes up: what every task of the bot waits for the event loop."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        #: (when the sleep started, lag) of every lag over half a second.
        self.stalls: list[tuple[float, float]] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            started = time.monotonic()
            await asyncio.sleep(0.05)
            lag = time.monotonic() - started - 0.05
            self.lags.append(lag)
            if lag > 0.5:
                self.stalls.append((started, lag))

    def __enter__(self) -> LoopLag:
        self._task = asyncio.create_task(self._run())
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._task is not None:
            self._task.cancel()


def overdue_polls(database: Path) -> tuple[int, float]:
    """Processing jobs whose next poll is due but not yet made, and the most overdue one's lateness (s)."""
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)) as db:
        count, worst = db.execute(
            "SELECT COUNT(*), MAX((julianday('now') - julianday(next_attempt_at)) * 86400) FROM jobs "
            "WHERE state = 'processing' AND julianday(next_attempt_at) <= julianday('now')"
        ).fetchone()
    return int(count), round(float(worst or 0.0), 1)


def states(database: Path) -> dict[str, int]:
    """Jobs per state, read with a separate read-only connection (blocking: run it in a thread)."""
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)) as db:
        return {
            str(state): int(count)
            for state, count in db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state")
        }


async def control(session: aiohttp.ClientSession, fakes: Fakes, config: dict[str, Any]) -> None:
    async with session.post(f"{fakes.sandbox}/_sandbox/config", json=config) as response:
        if response.status != 200:
            raise RunBroken(f"the sandbox refused {config}: {await response.text()}")


async def create_job(
    storage: Storage, fakes: Fakes, user_id: int, interaction_id: int, model: KlingModel
) -> int:
    """A job as ``/video text`` creates it (5 s, std for 3.0), reserving the member's credits."""
    spec = VideoSpec(model=model, prompt=f"scale benchmark job {interaction_id}: a calm lake at dawn")
    request = JobRequest(
        model=model.value,
        mode=GenerationMode.TEXT_TO_VIDEO.value,
        prompt=spec.prompt,
        duration=spec.duration,
        quality=Quality.STD.value if model is KlingModel.V3_0 else None,
    )
    job = await storage.create_job(
        interaction_id=interaction_id,
        guild_id=fakes.guild_id,
        user_id=user_id,
        channel_id=fakes.channel_id,
        request=request,
        estimate=estimate_credits(spec),
    )
    assert job.id is not None
    return job.id


async def wait_for(
    storage: Storage, job_id: int, wanted: JobState, within: float
) -> tuple[JobState, str | None, str | None]:
    deadline = time.monotonic() + within
    while True:
        job = await storage.get_job(job_id)
        if job is None:
            raise RunBroken(f"job {job_id} vanished")
        if job.state is wanted:
            return job.state, job.video_url, job.delivery_notes
        if job.state in (JobState.FAILED, JobState.LOST) or time.monotonic() > deadline:
            raise RunBroken(f"job {job_id} is {job.state} ({job.error}), not {wanted}")
        await asyncio.sleep(0.05)


async def relay(bot: KlingBot, fakes: Fakes, control_session: aiohttp.ClientSession) -> Relay:
    """One 200 MiB video through the worker, then through ``download_video`` alone."""
    storage = bot.storage
    await control(
        control_session,
        fakes,
        {"video_bytes": RELAY_BYTES, "task_seconds": 1.0, "estimated_time": {"kling-2.6": "1-2 seconds"}},
    )
    # Let start-up settle, so the baseline is the idle bot.
    await asyncio.sleep(2)
    baseline = memory_kb()["VmRSS"]
    if not reset_peak():
        raise RunBroken("cannot reset VmHWM (/proc/self/clear_refs): peak growth cannot be measured")
    started = time.monotonic()
    with RssSampler(0.005) as sampler:
        job_id = await create_job(storage, fakes, fakes.admin_id, 1, KlingModel.V2_6)
        _, url, notes = await wait_for(storage, job_id, JobState.DELIVERED, within=180)
    worker_seconds = time.monotonic() - started
    worker_hwm = memory_kb()["VmHWM"]
    if url is None:
        raise RunBroken("the relayed job has no video URL")

    await asyncio.sleep(1)
    direct_baseline = memory_kb()["VmRSS"]
    reset_peak()
    started = time.monotonic()
    with RssSampler(0.005) as direct_sampler:
        video = await download_video(bot.http_session, url, allow_private=True)
    direct_seconds = time.monotonic() - started
    direct_hwm = memory_kb()["VmHWM"]
    size = video.size
    await asyncio.to_thread(video.cleanup)
    if size != RELAY_BYTES:
        raise RunBroken(f"downloaded {size} bytes, not {RELAY_BYTES}")
    await control(
        control_session, fakes, {"video_bytes": None, "estimated_time": {"kling-2.6": "60-90 seconds"}}
    )
    growth = max(worker_hwm - baseline, direct_hwm - direct_baseline)
    return Relay(
        video_mb=round(RELAY_BYTES / MIB, 1),
        worker_baseline_rss_mb=mb(baseline),
        worker_peak_growth_hwm_mb=mb(worker_hwm - baseline),
        worker_peak_growth_sampled_mb=mb(sampler.peak_kb - baseline),
        worker_seconds=round(worker_seconds, 2),
        worker_notes=notes or "",
        direct_baseline_rss_mb=mb(direct_baseline),
        direct_peak_growth_hwm_mb=mb(direct_hwm - direct_baseline),
        direct_peak_growth_sampled_mb=mb(direct_sampler.peak_kb - direct_baseline),
        direct_seconds=round(direct_seconds, 2),
        direct_mb_per_s=round(RELAY_BYTES / MIB / direct_seconds, 1),
        target_growth_mb=TARGET_RELAY_GROWTH_MB,
        passed=mb(growth) < TARGET_RELAY_GROWTH_MB,
    )


async def scale(
    bot: KlingBot,
    fakes: Fakes,
    control_session: aiohttp.ClientSession,
    database: Path,
    *,
    jobs: int,
    members: int,
    rps: float,
    task_seconds: float,
    steady: float,
    wire: list[float],
) -> Scale:
    storage = bot.storage
    delivery = cast(Delivery | None, bot.get_cog("Delivery"))
    if delivery is None:
        raise RunBroken("the delivery worker is not loaded")
    # The estimate brackets the task, as the provider's does: the first status calls come only after
    # every job has been submitted, so all of them are in flight together.
    low, high = int(task_seconds * 0.8), int(task_seconds * 1.2)
    estimate = f"{low}-{high} seconds"
    await control(
        control_session,
        fakes,
        {"task_seconds": task_seconds, "estimated_time": {"kling-3.0": estimate, "kling-2.6": estimate}},
    )
    per_member = -(-jobs // members)
    await storage.update_guild_settings(
        fakes.guild_id, max_active_jobs=per_member, allowance_credits=per_member * 200
    )
    delivery.worker.max_in_flight = 0  # hold the worker while the jobs arrive
    for n in range(jobs):
        model = KlingModel.V3_0 if n % 2 == 0 else KlingModel.V2_6
        await create_job(storage, fakes, 10_000_000 + n % members, 1_000 + n, model)
    counts = await asyncio.to_thread(states, database)
    if counts.get(JobState.QUEUED.value, 0) != jobs:
        raise RunBroken(f"expected {jobs} queued jobs, found {counts}")
    await asyncio.sleep(2)  # the worker's passes over a full queue, before anything is released

    clock = CallClock(bot)
    baseline = memory_kb()["VmRSS"]
    reset_peak()
    with RssSampler(0.1) as sampler, LoopLag() as lag:
        cpu_start, t_start = cpu_seconds(), time.monotonic()
        delivery.worker.max_in_flight = jobs
        peak_submitting = peak_working = 0
        while True:
            await asyncio.sleep(1)
            counts = await asyncio.to_thread(states, database)
            peak_submitting = max(peak_submitting, counts.get(JobState.SUBMITTING.value, 0))
            peak_working = max(peak_working, len(delivery.worker.working))
            if counts.get(JobState.PROCESSING.value, 0) == jobs:
                break
            ended = {s: counts.get(s, 0) for s in (JobState.FAILED.value, JobState.LOST.value)}
            if any(ended.values()):
                raise RunBroken(f"jobs ended while being submitted: {counts}")
            if time.monotonic() - t_start > SUBMIT_LIMIT:
                raise RunBroken(f"not all submitted within {SUBMIT_LIMIT:.0f} s: {counts}")
        cpu_submitted, t_submitted = cpu_seconds(), time.monotonic()
        rss_submitted = memory_kb()["VmRSS"]
        calls_at_submitted = len(clock.sent)
        steady_end = time.monotonic() + steady
        while (left := steady_end - time.monotonic()) > 0:
            await asyncio.sleep(min(1.0, left))
            peak_working = max(peak_working, len(delivery.worker.working))
        working_end = len(delivery.worker.working)
        cpu_end, t_end = cpu_seconds(), time.monotonic()
        calls_at_end = len(clock.sent)
        overdue = await asyncio.to_thread(overdue_polls, database)
    peak = memory_kb()["VmHWM"]
    rss_end = memory_kb()["VmRSS"]
    counts = await asyncio.to_thread(states, database)
    async with control_session.get(
        f"{fakes.sandbox}/_bench/arrivals", params={"since": str(t_start), "until": str(t_end)}
    ) as response:
        provider = await response.json()
    arrivals = [t for t in provider["arrivals"] if t_start <= t <= t_end]
    sent = [t for t in clock.sent if t_start <= t <= t_end]
    routes = {k: int(v) for k, v in provider["routes"].items()}
    generate = sum(v for k, v in routes.items() if k.startswith("generate"))
    status = sum(v for k, v in routes.items() if k.startswith("status"))
    max_bot, max_provider = max_in_window(sent), max_in_window(arrivals)
    max_wire = max_in_window([t for t in wire if t_start <= t <= t_end])
    fakes_memory = memory_kb(fakes.pid).get("VmHWM")
    lags = sorted(lag.lags) or [0.0]
    cpu_submit = cpu_submitted - cpu_start
    cpu_steady = cpu_end - cpu_submitted
    steady_calls = calls_at_end - calls_at_submitted
    return Scale(
        jobs=jobs,
        provider_max_rps=rps,
        baseline_rss_mb=mb(baseline),
        peak_rss_hwm_mb=mb(peak),
        peak_rss_sampled_mb=mb(sampler.peak_kb),
        rss_all_submitted_mb=mb(rss_submitted),
        rss_end_mb=mb(rss_end),
        target_rss_mb=TARGET_RSS_MB,
        rss_passed=mb(peak) < TARGET_RSS_MB,
        submit_seconds=round(t_submitted - t_start, 1),
        cpu_submit_seconds=round(cpu_submit, 2),
        cpu_ms_per_job_submit=round(cpu_submit / jobs * 1000, 3),
        steady_seconds=round(t_end - t_submitted, 1),
        cpu_steady_seconds=round(cpu_steady, 2),
        cpu_steady_share_of_core=round(cpu_steady / (t_end - t_submitted), 3),
        calls_steady=steady_calls,
        cpu_ms_per_call_steady=round(cpu_steady / steady_calls * 1000, 3) if steady_calls else 0.0,
        cpu_ms_per_job_window=round((cpu_end - cpu_start) / jobs * 1000, 3),
        calls_total=len(sent),
        calls_generate=generate,
        calls_status=status,
        max_calls_any_second_bot=max_bot,
        max_calls_any_second_wire=max_wire,
        max_calls_any_second_provider=max_provider,
        rate_passed=max(max_bot, max_wire, max_provider) <= rps,
        states_at_end=counts,
        provider_routes=routes,
        loop_lag_p99_ms=round(lags[min(len(lags) - 1, int(len(lags) * 0.99))] * 1000, 1),
        loop_lag_max_ms=round(lags[-1] * 1000, 1),
        loop_stalls=[(round(at - t_start, 1), round(seconds * 1000)) for at, seconds in lag.stalls],
        fakes_peak_rss_mb=mb(fakes_memory) if fakes_memory is not None else None,
        peak_submitting=peak_submitting,
        peak_working_tasks=peak_working,
        working_tasks_at_end=working_end,
        generate_latency=clock.latency("generate", t_start, t_end),
        status_latency=clock.latency("status", t_start, t_end),
        lease_renewals=sum(1 for t in clock.renewals if t_start <= t <= t_end),
        db_latency={name: clock.latency(name, t_start, t_end) for name in clock.db},
        overdue_polls_at_end=overdue[0],
        most_overdue_poll_s=overdue[1],
    )


async def run(args: argparse.Namespace, bot_core: int | None, fakes_core: int | None, out: Collected) -> None:
    with tempfile.TemporaryDirectory(prefix="kling-scale-") as folder:
        database = Path(folder) / "bot.db"
        url = f"sqlite+aiosqlite:///{database}"
        async with fakes_process(args.task_seconds, fakes_core) as fakes:
            config = Settings(
                _env_file=None,
                discord_token=SecretStr(TOKEN),
                ulazai_api_key=SecretStr(API_KEY),
                ulazai_base_url=fakes.sandbox,
                database_url=url,
                dev_guild_id=fakes.guild_id,
                heartbeat_file=Path(folder) / "heartbeat",
                discord_api_base_url=fakes.api_base,
                discord_gateway_url=fakes.gateway,
                provider_max_rps=args.rps,
                max_concurrent_generations=CONFIGURED_MAX_CONCURRENT,
            )
            saved = (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)
            bot_module.point_discord_at(config.discord_api_base_url, config.discord_gateway_url)
            timeout = aiohttp.ClientTimeout(total=120, connect=15)  # what bot.run gives the session
            try:
                async with (
                    Storage(config.database_url) as storage,
                    aiohttp.ClientSession(timeout=timeout, trace_configs=[wire_clock(out.wire)]) as session,
                    aiohttp.ClientSession() as control_session,
                ):
                    await storage.migrate()
                    bot = KlingBot(config, session, storage)
                    await bot.login(TOKEN)
                    connection = asyncio.create_task(bot.connect())
                    try:
                        await asyncio.wait_for(bot.wait_until_ready(), 30)
                        out.relay = await relay(bot, fakes, control_session)
                        print(
                            f"relay: +{out.relay.worker_peak_growth_hwm_mb} MB through the worker, "
                            f"+{out.relay.direct_peak_growth_hwm_mb} MB directly",
                            flush=True,
                        )
                        out.scale = await scale(
                            bot,
                            fakes,
                            control_session,
                            database,
                            jobs=args.jobs,
                            members=min(MEMBERS, args.jobs),
                            rps=args.rps,
                            task_seconds=args.task_seconds,
                            steady=args.steady,
                            wire=out.wire,
                        )
                    finally:
                        closing = time.monotonic()
                        await bot.close()
                        await asyncio.wait_for(connection, 30)
                        if time.monotonic() - closing > 5:
                            out.notes.append(
                                f"closing the bot took {time.monotonic() - closing:.1f} s with "
                                f"{args.jobs} jobs in flight"
                            )
            finally:
                discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = saved


def findings(s: Scale) -> list[str]:
    """What the figures say, in sentences built from the figures themselves."""
    lines = []
    per_job_kb = (s.peak_rss_hwm_mb - s.baseline_rss_mb) * 1024 / max(1, s.peak_working_tasks)
    lines.append(
        f"- Memory: RSS grew from {s.baseline_rss_mb} MB (the idle bot with {s.jobs:,} queued jobs) to a "
        f"peak of {s.peak_rss_hwm_mb} MB while up to {s.peak_working_tasks:,} jobs were being worked at once "
        f"(one asyncio task each, plus its lease-renewing task): about {per_job_kb:.0f} kB per job in the "
        f"worker's hands. At the end {s.working_tasks_at_end:,} such tasks were still alive, RSS "
        f"{s.rss_end_mb} MB."
    )
    generate = s.generate_latency
    lines.append(
        f"- The worker claimed every queued job at once and marked it `submitting` *before* waiting for the "
        f"rate limiter: up to {s.peak_submitting:,} jobs were `submitting` together, and a generate call "
        f"waited p50 {generate.get('p50_s')} s, max {generate.get('max_s')} s from the worker's request to "
        f"the answer (the limiter's queue). Meanwhile each held job renewed its lease every "
        f"10 s (a third of the default 30-s lease): {s.lease_renewals:,} lease writes in the window. Had the process died then, all "
        f"those jobs would have been marked lost and refunded, though most never reached the provider."
    )
    slowest = max(s.db_latency.items(), key=lambda item: item[1].get("max_s", 0.0))
    lines.append(
        f"- Database: the worker's writes queue for SQLite's one pooled connection behind every other job's; "
        f"the slowest, `{slowest[0]}`, took up to {slowest[1].get('max_s')} s (p99 {slowest[1].get('p99_s')} s). "
        "The pool gives up after 60 s: a `mark_processing` that times out *after* a successful generate "
        "call leaves the job `submitting` until its lease expires, and it is then marked lost and refunded "
        "although the provider started (and charged) the video."
    )
    status = s.status_latency
    if s.overdue_polls_at_end:
        lines.append(
            f"- Polling cannot keep up at this size: status calls waited p50 {status.get('p50_s')} s in the "
            f"limiter's FIFO (behind the generate calls first); at the end {s.overdue_polls_at_end:,} jobs "
            f"were overdue for a poll, the worst by {s.most_overdue_poll_s} s. The schedule asks for far more "
            f"than {s.provider_max_rps:g} calls/s (Kling 3.0 alone: every 5 s per job inside its estimate), "
            "and nothing adapts it to the budget, so a finished video would wait about that long to be noticed."
        )
    else:
        lines.append("- Polling kept up: no job was overdue for a poll at the end.")
    stalls = ", ".join(f"{ms:,.0f} ms at +{at:g} s" for at, ms in s.loop_stalls[:6]) or "none"
    consequence = (
        ": a slash command arriving then waits as long for its acknowledgement (Discord allows 3 s)."
        if s.loop_lag_max_ms > 1000
        else "."
    )
    lines.append(
        f"- The event loop stalled up to {s.loop_lag_max_ms:,.0f} ms (p99 {s.loop_lag_p99_ms} ms; stalls over "
        f"0.5 s after the release: {stalls}){consequence}"
    )
    rate = (
        f"- Rate: the limiter released at most {s.max_calls_any_second_bot} calls in any second; at most "
        f"{s.max_calls_any_second_wire} were written to the socket and {s.max_calls_any_second_provider} "
        "arrived at the provider in any second. "
    )
    if s.max_calls_any_second_wire <= s.provider_max_rps < s.max_calls_any_second_provider:
        rate += (
            "The bot never sent more than the limit; the extra call bunched on the way in (the TCP "
            "delivery and the sandbox's own event loop time-stamp arrivals a little late or early). The "
            "limiter keeps no margin below the limit, so a provider that counts arrivals strictly would "
            "see such a second as one call over."
        )
    elif s.max_calls_any_second_wire > s.provider_max_rps:
        rate += (
            "The limiter spaces the moments calls *leave it*; a call whose coroutine then waits for the busy "
            "event loop is written later, so calls bunch behind a stall and the socket sees more than the limit."
        )
    else:
        rate += "Never above the limit."
    lines.append(rate)
    return lines


def markdown(r: Report) -> str:
    m, s, rl = r.meta, r.scale, r.relay

    def verdict(ok: bool) -> str:
        return "**PASS**" if ok else "**FAIL**"

    def rate_row(name: str, value: int) -> str:
        return f"| most provider calls in any 1 s, {name} | {value} | ≤ {s.provider_max_rps:g} | {verdict(value <= s.provider_max_rps)} |"

    lines = [
        "# Scale benchmark",
        "",
        f"`python -m benchmarks.scale` on {m['date']}: {m['python']}, {m['cpus']} CPU(s). The measured process",
        f"holds the real `KlingBot` (worker, SQLite, its own client and rate limiter){m['pinning']}; the",
        "UlazAI sandbox and the fake Discord run in a child process. RSS from `/proc/self/status`",
        "(`VmHWM` reset before each measurement, `VmRSS` sampled by a thread), CPU = `os.times()` user + system.",
        "",
        f"## {s.jobs:,} jobs in flight",
        "",
        f"Half Kling 3.0, half 2.6, from {m['members']:,} members, created while the worker was held, then released",
        f"at once. `PROVIDER_MAX_RPS` = {s.provider_max_rps:g} (default 5: submitting {s.jobs:,} would take "
        f"{s.jobs / 5:,.0f} s);",
        f"`MAX_CONCURRENT_GENERATIONS` is capped at {CONFIGURED_MAX_CONCURRENT:,} by `config.py`, so the worker's "
        f"`max_in_flight` was set to {s.jobs:,} directly.",
        f"Every task takes {m['task_seconds']:g} s, announced as 80-120 % of that, so all are in flight together; "
        f"window = release → all `processing` ({s.submit_seconds} s) + {s.steady_seconds} s of polling.",
        "",
        "| figure | value | target | |",
        "|---|---:|---:|---|",
        f"| peak RSS (VmHWM) | {s.peak_rss_hwm_mb} MB | < {s.target_rss_mb:g} MB | {verdict(s.rss_passed)} |",
        f"| peak RSS (sampled every 0.1 s) | {s.peak_rss_sampled_mb} MB | | |",
        f"| RSS before release ({s.jobs:,} queued) / all submitted / end | {s.baseline_rss_mb} / "
        f"{s.rss_all_submitted_mb} / {s.rss_end_mb} MB | | |",
        rate_row("released by the bot's limiter", s.max_calls_any_second_bot),
        rate_row("written to the socket", s.max_calls_any_second_wire),
        rate_row("arriving at the provider", s.max_calls_any_second_provider),
        f"| CPU per job, submission phase | {s.cpu_ms_per_job_submit} ms | | |",
        f"| CPU per job, whole window | {s.cpu_ms_per_job_window} ms | | |",
        f"| CPU while polling flat out | {s.cpu_steady_share_of_core:.0%} of a core, {s.cpu_ms_per_call_steady} ms "
        "per status call | | |",
        f"| jobs worked at once (tasks) peak / end | {s.peak_working_tasks:,} / {s.working_tasks_at_end:,} | | |",
        f"| jobs `submitting` at once, peak | {s.peak_submitting:,} | | |",
        f"| generate call, request → answer, p50 / max | {s.generate_latency.get('p50_s')} / "
        f"{s.generate_latency.get('max_s')} s | | |",
        f"| status call, request → answer, p50 / max | {s.status_latency.get('p50_s')} / "
        f"{s.status_latency.get('max_s')} s | | |",
        f"| lease renewals (database writes) | {s.lease_renewals:,} | | |",
        *(
            f"| `Storage.{name}`, request → done, p50 / p99 / max | {d.get('p50_s')} / {d.get('p99_s')} / "
            f"{d.get('max_s')} s | | |"
            for name, d in s.db_latency.items()
        ),
        f"| polls overdue at the end / worst | {s.overdue_polls_at_end:,} / {s.most_overdue_poll_s} s | | |",
        f"| event-loop lag (50 ms sleep) p99 / max | {s.loop_lag_p99_ms} / {s.loop_lag_max_ms} ms | | |",
        f"| fakes' process peak RSS (not the bot) | {s.fakes_peak_rss_mb} MB | | |",
        "",
        f"Provider calls in the window: {s.calls_total:,} released by the bot's limiter; the sandbox answered "
        + ", ".join(f"{k}: {v:,}" for k, v in sorted(s.provider_routes.items()))
        + f". Jobs at the end: {', '.join(f'{k} {v:,}' for k, v in sorted(s.states_at_end.items()))}.",
        "",
        *findings(s),
        "",
        f"## Relay of a {rl.video_mb:g} MB video",
        "",
        "| path | RSS before | peak growth (VmHWM) | peak growth (sampled, 5 ms) | seconds |",
        "|---|---:|---:|---:|---:|",
        f"| worker: download, post (as a link) | {rl.worker_baseline_rss_mb} MB | {rl.worker_peak_growth_hwm_mb} MB "
        f"| {rl.worker_peak_growth_sampled_mb} MB | {rl.worker_seconds} |",
        f"| `download_video` alone | {rl.direct_baseline_rss_mb} MB | {rl.direct_peak_growth_hwm_mb} MB "
        f"| {rl.direct_peak_growth_sampled_mb} MB | {rl.direct_seconds} ({rl.direct_mb_per_s} MB/s) |",
        "",
        f"Target: peak growth under {rl.target_growth_mb:g} MB: {verdict(rl.passed)}. The worker's note: "
        f"“{rl.worker_notes}”: it downloaded all {rl.video_mb:g} MB to learn that the video is too big to "
        "attach (the answer's Content-Length already said so).",
        "",
        f"1-minute load average: {m['load_average_before']} before, {m['load_average_after']} after; "
        f"{m['seconds']} s in all.",
    ]
    lines += [f"Note: {note}" for note in m["notes"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=JOBS, help="jobs in flight")
    parser.add_argument("--rps", type=float, default=RPS, help="PROVIDER_MAX_RPS for the run")
    parser.add_argument("--task-seconds", type=float, default=TASK_SECONDS, help="how long each task takes")
    parser.add_argument(
        "--steady", type=float, default=STEADY, help="seconds measured after all are submitted"
    )
    parser.add_argument("--serve-fakes", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--processes-only", action="store_true", help="only the two-process part")
    parser.add_argument("--no-processes", action="store_true", help="without the two-process part")
    parser.add_argument(
        "--processes-jobs", type=int, default=10_000, help="jobs in flight between the two processes"
    )
    output.add_output_options(parser)
    args = parser.parse_args(argv)
    if args.serve_fakes:
        asyncio.run(serve_fakes(args.task_seconds))
        return 0
    if args.jobs < 1 or args.rps <= 0 or args.steady < 0 or args.task_seconds <= 0:
        parser.error("need --jobs >= 1, --rps > 0, --steady >= 0 and --task-seconds > 0")

    if args.processes_only:
        return processes_part(args, None)
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    bot_core, fakes_core = (cores[0], cores[1]) if len(cores) >= 2 else (None, None)
    started = time.perf_counter()
    load_before = load_average()
    out = Collected()
    with pinned(bot_core) as core:
        print(
            f"Scale benchmark: the 200 MB relay, then {args.jobs:,} jobs at {args.rps:g} provider calls/s "
            f"(bot process {'on CPU ' + str(core) if core is not None else 'not pinned'}, fakes in a child "
            f"process{' on CPU ' + str(fakes_core) if fakes_core is not None else ''}).",
            flush=True,
        )
        try:
            stuck = run_bounded(run(args, bot_core, fakes_core, out), RUN_LIMIT)
        except (RunBroken, TimeoutError) as error:
            if out.relay is None or out.scale is None:
                print(f"The run broke: {error!r}", file=sys.stderr)
                return 1
            stuck = []
            out.notes.append(f"the run did not end cleanly: {error!r}")
    if stuck:
        out.notes.append(f"{len(stuck)} task(s) ignored their cancellation at exit: {', '.join(stuck[:5])}")
    if out.relay is None or out.scale is None:
        print("The run broke: no figures", file=sys.stderr)
        return 1
    pinning = (
        f", pinned to CPU {bot_core} (the fakes' process to CPU {fakes_core})" if bot_core is not None else ""
    )
    meta = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "python": f"Python {platform.python_version()}",
        "platform": platform.platform(),
        "cpus": os.cpu_count() or 1,
        "pinning": pinning,
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "jobs": args.jobs,
        "members": min(MEMBERS, args.jobs),
        "provider_max_rps": args.rps,
        "configured_max_concurrent_generations": CONFIGURED_MAX_CONCURRENT,
        "worker_max_in_flight": args.jobs,
        "task_seconds": args.task_seconds,
        "steady_seconds": args.steady,
        "relay_bytes": RELAY_BYTES,
        "seconds": round(time.perf_counter() - started, 1),
        "notes": out.notes,
    }
    result = Report(
        relay=out.relay,
        scale=out.scale,
        passed=out.relay.passed and out.scale.rss_passed and out.scale.rate_passed,
        meta=meta,
    )
    folder = output.output_dir(args)
    (folder / "scale.json").write_text(json.dumps(asdict(result), indent=2) + "\n")
    (folder / "scale.md").write_text(markdown(result))
    processes_status = 0 if args.no_processes else processes_part(args, result)

    s, rl = result.scale, result.relay
    rows = [
        ("peak RSS (VmHWM)", f"{s.peak_rss_hwm_mb} MB", f"< {TARGET_RSS_MB:g} MB", s.rss_passed),
        (
            "max calls in any 1 s (bot / provider)",
            f"{s.max_calls_any_second_bot} / {s.max_calls_any_second_provider}",
            f"<= {s.provider_max_rps:g}",
            s.rate_passed,
        ),
        ("CPU per job (submission)", f"{s.cpu_ms_per_job_submit} ms", "", None),
        ("CPU per job (whole window)", f"{s.cpu_ms_per_job_window} ms", "", None),
        ("submission of all jobs", f"{s.submit_seconds} s", "", None),
        (
            "relay peak growth (worker / direct)",
            f"{rl.worker_peak_growth_hwm_mb} / {rl.direct_peak_growth_hwm_mb} MB",
            f"< {TARGET_RELAY_GROWTH_MB:g} MB",
            rl.passed,
        ),
    ]
    for name, value, _target, ok in rows:
        if ok is None:  # the figures without a target; the targets get their verdict lines below
            print(f"{name:<40} {value:>18}")
    print(f"jobs at the end: {s.states_at_end}; {meta['seconds']} s in all; results in {folder / 'scale.md'}")
    for note in out.notes:
        print(f"Warning: {note}", file=sys.stderr)
    targets = [(name, value, target, ok) for name, value, target, ok in rows if ok is not None]
    for name, value, target, ok in targets:
        print(output.verdict(f"{name} {target}", bool(ok), value))
    return max(output.exit_status([bool(ok) for *_, ok in targets]), processes_status)


def processes_part(args: argparse.Namespace, one_process: Report | None) -> int:
    """Run :mod:`benchmarks.scale_processes` and add its figures to ``scale.json`` and ``scale.md`` (after
    the one-process part's, when it ran); returns its exit status."""
    from benchmarks import scale_processes

    print(
        f"Two processes on PostgreSQL: {args.processes_jobs:,} jobs, PROVIDER_MAX_RPS "
        f"{scale_processes.RPS:g} for both (a few minutes).",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="kling-scale-processes-") as folder:
        try:
            figures = scale_processes.run_part(
                Path(folder),
                jobs=args.processes_jobs,
                rps=scale_processes.RPS,
                task_seconds=scale_processes.TASK_SECONDS,
                steady=scale_processes.STEADY,
            )
        except (RunBroken, TimeoutError) as error:
            print(f"The two-process run broke: {error!r}", file=sys.stderr)
            return 1
    folder_out = output.output_dir(args)
    payload: dict[str, Any] = asdict(one_process) if one_process is not None else {}
    payload["processes"] = asdict(figures)
    (folder_out / "scale.json").write_text(json.dumps(payload, indent=2) + "\n")
    text = markdown(one_process) if one_process is not None else "# Scale benchmark\n"
    (folder_out / "scale.md").write_text(text + "\n" + "\n".join(scale_processes.markdown(figures)) + "\n")
    for bot_figures in figures.bots:
        polls = bot_figures.polls or 1
        print(
            f"{bot_figures.name}: peak RSS {bot_figures.peak_rss_mb} MB, {bot_figures.polls:,} status polls, "
            f"{round(bot_figures.statements_in_polls / polls, 2)} statements per poll"
        )
    for note in figures.notes:
        print(f"Warning: {note}", file=sys.stderr)
    checks = [
        (
            "peak RSS per process",
            figures.rss_passed,
            f"<= {figures.target_rss_mb:g} MB",
            f"{figures.max_peak_rss_mb} MB",
        ),
        (
            "provider calls in any 1 s, both processes",
            figures.rate_passed,
            f"<= {figures.provider_max_rps:g}",
            str(figures.max_calls_any_second),
        ),
    ]
    for name, ok, target, value in checks:
        print(output.verdict(f"{name} {target}", ok, value))
    print(
        f"database statements per status poll: {figures.statements_per_poll} (+ {figures.claim_statements_per_poll} "
        f"claiming it, + {figures.pace_statements_per_call} per call for the shared pace)"
    )
    return output.exit_status([ok for _, ok, *_ in checks])


if __name__ == "__main__":
    sys.exit(main())
