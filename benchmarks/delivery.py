"""Delivery benchmark: how soon a finished video is posted, and at what cost in status calls.

Run with ``python -m benchmarks.delivery`` from the repository root (``--per-model`` to change the
size; the default run takes about three minutes of real time). The delivery worker
(:mod:`cogs.delivery`) polls adaptively (:mod:`ulazai.polling`): it follows Kling 2.6's progress and,
for Kling 3.0, which reports none, places its status calls where completions are likely, from the
completion times of the server's finished jobs of the same model, duration and quality
(:mod:`ulazai.completion`, :mod:`generation.completion_windows`). This measures whether that beats the
provider documentation's own example loop (generate, then ``status; if final: break; sleep(10)``), in
the same run, on the same fake provider, with the same task durations.

**History.** A bot that has been running has finished jobs to learn from; a fresh benchmark database has
none. So before the run the database is given :data:`HISTORY` finished jobs of each kind the run asks
for (Kling 3.0 5 s Standard, Kling 2.6 5 s), with provider times drawn from the same 60-180 s range
(another seed), written through the storage's own transitions on a clock of their own (every credit
accounted for, the videos marked delivered so the worker leaves them alone). ``--no-history`` leaves it
empty: the worker then falls back to the provider's ``estimated_time``.

How: :func:`tests.harness.running_bot` starts everything for real on 127.0.0.1: the fake Discord
gateway and REST API, the UlazAI sandbox, a fresh SQLite database and the real ``KlingBot`` with its
delivery worker (``MAX_CONCURRENT_GENERATIONS`` 100, ``PROVIDER_MAX_RPS`` 5, the default). Fifty
members each ask for one video with ``/video text`` (25 on Kling 3.0, 25 on Kling 2.6, by default), so
the worker also edits status cards as it would in production. At the same moment the *example loop*
starts one task per worker job, with the same model and the same provider duration, each in its own
asyncio task that does exactly what the docs' Python example does (async, on its own aiohttp session,
with the docs' payloads); when it sees ``completed`` it downloads the video with the bot's own
:func:`ulazai.download.download_video` and posts it to the same fake Discord channel as a file, like
the worker does. The example loop's calls do **not** go through the bot's rate limiter (the docs'
example has none): it is measured as written.

Provider durations are spread over the documented 60-180 s (stratified: one uniformly random duration
in each of ``--per-model`` equal slices of that range, seeded; the same list for both models and both
contenders). The stock sandbox gives every new task the same ``task_seconds``; :class:`TimedSandbox`
gives each new task the duration promised to its prompt instead (a mapping on the sandbox's ``tasks``
dict, so no sandbox code is changed). The provider's estimates are the sandbox's defaults, i.e. the
docs' own: "60-180 seconds" for Kling 3.0, "60-90 seconds" for 2.6 (so 2.6 tasks often outlast their
estimate, as the worker must cope with). Time runs at real speed: the worker's constants are in real
seconds, so a time-scaled run would distort exactly what is measured.

What is measured, per job (all times ``time.monotonic()`` in this one process):

* **delay** = the posted message's arrival at the fake Discord (``RecordedCall.at``) minus the moment
  the provider task completed (the sandbox's ``created_at + seconds``); split into *detect* (completion
  to the client receiving the ``completed`` status answer) and *post* (that answer to the message:
  download, status card, upload);
* **status calls per job**: the sandbox's request log, ``route == "status"``, per task.

Percentiles are nearest-rank. Targets, per model, each against the example loop in the same run:
Kling 3.0's median delay at most 0.40 of the loop's, Kling 2.6's at most 0.20, both with no more status
calls than it (the overall figures, and the earlier overall target of a third, are reported too).

Results go to ``delivery.json`` and ``delivery.md`` in ``benchmarks/out/`` (``--update``: the committed
``benchmarks/results/``; see :mod:`benchmarks.output`). Exit status 1 when a target is missed or the
run broke (a job not delivered, a command refused).
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks import output
from benchmarks.ack import load_average, percentile, run_bounded
from benchmarks.scale import max_in_window
from sandbox import Sandbox, SandboxTask
from storage import DeliveredVia, JobRequest, JobState, Storage
from tests.fakes.discord_api import FakeDiscord
from tests.harness import API_KEY, TOKEN, Harness, running_bot
from ulazai.download import download_video
from ulazai.requests import KlingModel
from ulazai.results import TaskResult, TaskStatus

MODELS = ("kling-3.0", "kling-2.6")
PER_MODEL = 25
LOW, HIGH = 60.0, 180.0
EXAMPLE_INTERVAL = 10.0
TARGET_RATIO = 1 / 3
#: The per-model targets: the worker's median delay at most this share of the loop's.
MODEL_TARGETS: dict[str, float] = {"kling-3.0": 0.40, "kling-2.6": 0.20}
#: Finished jobs of each kind in the database before the run (the worker's history to learn from).
HISTORY = 100
HISTORY_SEED = 20261128
SEED = 20261121
MAX_CONCURRENT = 100
PROVIDER_RPS = 5.0
#: Seconds the whole async run may take (it needs ~HIGH + 30 s).
RUN_LIMIT = 480.0
RECEIPT_TITLE = "Your video is queued"


class RunBroken(Exception):
    """The run did not do what it measures (a refused command, a job not delivered, a failed task)."""


class _TimedTasks(dict[str, SandboxTask]):
    """The sandbox's ``tasks`` dict, giving each new task the duration promised to its prompt."""

    def __init__(self, durations: dict[str, float]) -> None:
        super().__init__()
        self.durations = durations

    def __setitem__(self, task_id: str, task: SandboxTask) -> None:
        seconds = self.durations.get(str(task.request.get("prompt", "")))
        if seconds is not None:
            task.seconds = seconds
        super().__setitem__(task_id, task)


class TimedSandbox(Sandbox):
    """A :class:`~sandbox.Sandbox` whose tasks each take their own time, chosen by prompt.

    The stock sandbox gives every new task ``task_seconds``; here :attr:`durations` maps a prompt to
    its task's duration (others keep ``task_seconds``). The task is created by the sandbox's own code,
    and its duration set before anyone can ask about it (no ``await`` in between).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.durations: dict[str, float] = {}
        self.tasks = _TimedTasks(self.durations)

    def completed_at(self, task_id: str) -> float:
        task = self.tasks[task_id]
        return task.created_at + task.seconds


@dataclass
class Sample:
    """One job of one contender; times are ``time.monotonic()``."""

    contender: str  # "worker" or "example"
    model: str
    index: int
    task_id: str
    provider_seconds: float
    completed_at: float
    detect_started_at: float  # the status call that answered "completed" was started
    detected_at: float  # ... and answered
    posted_at: float
    status_calls: int = 0

    @property
    def delay(self) -> float:
        return self.posted_at - self.completed_at

    @property
    def detect(self) -> float:
        return self.detected_at - self.completed_at

    @property
    def post(self) -> float:
        return self.posted_at - self.detected_at

    @property
    def detecting_call(self) -> float:
        return self.detected_at - self.detect_started_at


@dataclass
class Figures:
    """One contender on one set of jobs."""

    jobs: int
    delay_p50_s: float
    delay_p95_s: float
    delay_max_s: float
    delay_mean_s: float
    detect_mean_s: float
    post_mean_s: float
    detecting_call_mean_s: float
    status_calls_per_job: float
    status_calls_total: int


@dataclass
class Verdict:
    scope: str  # "overall", "kling-3.0", "kling-2.6"
    worker: Figures
    example: Figures
    median_ratio: float
    target_ratio: float
    median_passed: bool
    calls_passed: bool

    @property
    def passed(self) -> bool:
        return self.median_passed and self.calls_passed


@dataclass
class Report:
    verdicts: list[Verdict]
    passed: bool
    rate_limiter: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)
    jobs: list[dict[str, Any]] = field(default_factory=list)


def durations(per_model: int, seed: int, low: float = LOW, high: float = HIGH) -> list[float]:
    """One random duration in each of ``per_model`` equal slices of [low, high], shuffled."""
    rng = random.Random(seed)
    width = (high - low) / per_model
    values = [round(low + width * (i + rng.random()), 2) for i in range(per_model)]
    rng.shuffle(values)
    return values


def prompt_for(contender: str, model: str, index: int) -> str:
    return f"delivery benchmark {contender} {model} #{index}: a lighthouse at dusk, waves below"


def example_payload(model: str, prompt: str) -> tuple[str, dict[str, Any]]:
    """The docs' own request bodies (the 2.6 page's Python example; the 3.0 page's field reference)."""
    if model == "kling-2.6":
        body = {
            "prompt": prompt,
            "generationMode": "text_to_video",
            "duration": "5",
            "aspectRatio": "16:9",
            "sound": False,
        }
        return "kling26", body
    body = {
        "prompt": prompt,
        "generationMode": "text_to_video",
        "durationSeconds": 5,
        "qualityMode": "std",
        "sound": False,
        "aspectRatio": "16:9",
    }
    return "kling30", body


@dataclass
class ExampleOutcome:
    task_id: str
    detect_started_at: float
    detected_at: float
    message_id: int


async def example_loop(
    session: aiohttp.ClientSession,
    base_url: str,
    model: str,
    prompt: str,
    *,
    api_base: str,
    channel_id: int,
    user_id: int,
    interval: float,
) -> ExampleOutcome:
    """The docs' Python example, async: generate; then status, break when final, sleep ``interval``.

    Then what a bot built on it would do next: download the video and post it as a file.
    """
    prefix, body = example_payload(model, prompt)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with session.post(f"{base_url}/{prefix}/api/generate/", headers=headers, json=body) as response:
        answer = await response.json()
        if response.status not in (200, 201):
            raise RunBroken(f"example generate answered {response.status}: {answer}")
    task_id = str(answer["data"]["task_id"] if "data" in answer else answer["task_id"])
    while True:
        started = time.monotonic()
        async with session.get(f"{base_url}/{prefix}/api/status/{task_id}/", headers=headers) as response:
            status = await response.json()
        data = status.get("data", status)
        if data["status"] == "completed":
            detected = time.monotonic()
            video_url = str(data["video_url"])
            break
        if data["status"] == "failed":
            raise RunBroken(f"example task {task_id} failed: {data}")
        await asyncio.sleep(interval)
    video = await download_video(session, video_url, allow_private=True)
    try:
        payload = await asyncio.to_thread(video.path.read_bytes)
    finally:
        await asyncio.to_thread(video.cleanup)
    form = aiohttp.FormData()
    form.add_field(
        "payload_json",
        json.dumps(
            {
                "content": f"<@{user_id}> your video is ready!",
                "attachments": [{"id": 0, "filename": f"example-{task_id}.mp4"}],
                "allowed_mentions": {"parse": [], "users": [str(user_id)]},
            }
        ),
    )
    form.add_field("files[0]", payload, filename=f"example-{task_id}.mp4", content_type="video/mp4")
    async with session.post(
        f"{api_base}/channels/{channel_id}/messages", data=form, headers={"Authorization": f"Bot {TOKEN}"}
    ) as response:
        message = await response.json()
        if response.status != 200:
            raise RunBroken(f"the example loop's post was refused ({response.status}): {message}")
    return ExampleOutcome(task_id, started, detected, int(message["id"]))


@dataclass
class StatusCall:
    task_id: str
    started: float
    answered: float
    status: TaskStatus


class StatusRecorder:
    """Wraps the bot's ``UlazAIClient.status`` to note when each call started and what it answered.

    The time between the two includes the wait for the bot's global rate limiter, which is also
    measured on its own (``waits``: seconds each provider call of the bot waited for its turn, for
    status calls and for the others, i.e. generate).
    """

    def __init__(self, harness: Harness) -> None:
        self.calls: list[StatusCall] = []
        self.waits: dict[str, list[float]] = {"status": [], "generate": []}
        client = harness.bot.ulazai
        status: Callable[[KlingModel, str], Awaitable[TaskResult]] = client.status
        in_status: contextvars.ContextVar[bool] = contextvars.ContextVar("in_status", default=False)

        async def recorded_status(model: KlingModel, task_id: str) -> TaskResult:
            started = time.monotonic()
            in_status.set(True)  # this task's own context: the worker runs each poll in its own task
            try:
                result = await status(model, task_id)
            finally:
                in_status.set(False)
            self.calls.append(StatusCall(task_id, started, time.monotonic(), result.status))
            return result

        client.status = recorded_status  # type: ignore[method-assign]
        limiter = getattr(client, "_limiter", None)
        if limiter is not None:
            acquire: Callable[[], Awaitable[None]] = limiter.acquire

            async def timed_acquire() -> None:
                started = time.monotonic()
                await acquire()
                self.waits["status" if in_status.get() else "generate"].append(time.monotonic() - started)

            limiter.acquire = timed_acquire

    def detecting(self, task_id: str) -> StatusCall:
        for call in self.calls:
            if call.task_id == task_id and call.status is TaskStatus.COMPLETED:
                return call
        raise RunBroken(f"no status call of the worker saw task {task_id} completed")


@dataclass
class Collected:
    samples: list[Sample] = field(default_factory=list)
    limiter_waits: dict[str, list[float]] = field(default_factory=dict)
    provider_calls: dict[str, int] = field(default_factory=dict)
    #: The most provider calls of each contender answered in any one-second window.
    max_calls_any_second: dict[str, int] = field(default_factory=dict)
    complete: bool = False


async def send_request(h: Harness, user_id: int, model: str, prompt: str) -> int:
    """One ``/video text`` from a member, as Discord sends it; returns the job id."""
    interaction = await h.command("video", "text", user_id=user_id, prompt=prompt, model=model)
    callback = await interaction.wait_callback(timeout=10)
    if callback.type != 5:
        raise RunBroken(f"expected a deferral, got callback type {callback.type}")
    receipt = await interaction.wait_followup(timeout=20)
    if RECEIPT_TITLE not in [embed.get("title") for embed in receipt.embeds]:
        raise RunBroken(f"member {user_id}: the request was refused: {receipt.content!r}")
    job = await h.storage.get_job_by_interaction(interaction.id)
    if job is None or job.id is None:
        raise RunBroken(f"member {user_id}: no job for interaction {interaction.id}")
    return job.id


async def seed_history(
    url: str, guild_id: int, member_id: int, channel_id: int, count: int, span: tuple[float, float]
) -> None:
    """``count`` finished jobs of each kind the run asks for, in the database at ``url``: provider times
    spread over ``span`` as the run's are, through the storage's own transitions on a clock of their own (see the docstring)."""
    rng = random.Random(HISTORY_SEED)
    moment = [datetime.now(UTC) - timedelta(days=2)]
    kinds = (("kling-3.0", "std"), ("kling-2.6", None))
    async with Storage(url, clock=lambda: moment[0]) as storage:
        await storage.migrate()
        await storage.update_guild_settings(guild_id, max_active_jobs=count * len(kinds) + 1)
        await storage.grant(guild_id, member_id, 200 * count * len(kinds), actor_id=None)
        for n in range(count * len(kinds)):
            model, quality = kinds[n % len(kinds)]
            request = JobRequest(
                model=model, mode="text_to_video", prompt=f"history #{n}", duration=5, quality=quality
            )
            job = await storage.create_job(
                interaction_id=900_000_000 + n,
                guild_id=guild_id,
                user_id=member_id,
                channel_id=channel_id,
                request=request,
                estimate=55,
            )
            assert job.id is not None
            (claimed,) = await storage.claim_fair_for_submit("history", limit=1, max_in_flight=1)
            await storage.mark_submitting(claimed.id or 0, owner="history")
            await storage.mark_processing(claimed.id or 0, owner="history", task_id=f"h{n}", credits_used=55)
            moment[0] += timedelta(seconds=rng.uniform(*span))
            await storage.mark_completed(claimed.id or 0, owner="history", video_url="https://x/h.mp4")
            await storage.mark_delivered(
                claimed.id or 0, owner="history", message_id=n + 1, via=DeliveredVia.LINK, notes="history"
            )
            moment[0] += timedelta(seconds=1)


async def run(
    per_model: int, interval: float, seed: int, span: tuple[float, float], out: Collected, *, history: int
) -> None:
    spread = durations(per_model, seed, *span)
    sandbox = TimedSandbox(api_key=API_KEY, task_seconds=1.0)
    plan = [(model, index, spread[index]) for model in MODELS for index in range(per_model)]
    for model, index, seconds in plan:
        for contender in ("worker", "example"):
            sandbox.durations[prompt_for(contender, model, index)] = seconds
    await sandbox.start("127.0.0.1", 0)
    fake = FakeDiscord()
    await fake.start()
    fake.add_default_guild()
    try:
        with tempfile.TemporaryDirectory(prefix="kling-delivery-") as folder:
            url = f"sqlite+aiosqlite:///{folder}/bot.db"
            if history:  # before the bot starts, so its worker never sees these jobs queued
                past = fake.add_member(fake.guild_id, name="history").user_id
                await seed_history(url, fake.guild_id, past, fake.channel_ids["videos"], history, span)
            async with (
                running_bot(
                    Path(folder),
                    fake=fake,
                    database_url=url,
                    sandbox=sandbox,
                    max_concurrent_generations=MAX_CONCURRENT,
                    provider_max_rps=PROVIDER_RPS,
                ) as h,
                aiohttp.ClientSession() as example_session,
            ):
                await measure(h, sandbox, example_session, plan, interval, out)
    finally:
        await fake.close()
        await sandbox.close()


async def measure(
    h: Harness,
    sandbox: TimedSandbox,
    session: aiohttp.ClientSession,
    plan: list[tuple[str, int, float]],
    interval: float,
    out: Collected,
) -> None:
    recorder = StatusRecorder(h)
    members = [h.fake.add_member(h.guild_id, name=f"bench-{n:03d}").user_id for n in range(len(plan))]
    # Both contenders start at the same moment: the members' commands and the example loop's tasks.
    examples = [
        asyncio.create_task(
            example_loop(
                session,
                sandbox.base_url,
                model,
                prompt_for("example", model, index),
                api_base=h.fake.api_base,
                channel_id=h.videos,
                user_id=members[n],
                interval=interval,
            )
        )
        for n, (model, index, _) in enumerate(plan)
    ]
    job_ids = await asyncio.gather(
        *(
            send_request(h, members[n], model, prompt_for("worker", model, index))
            for n, (model, index, _) in enumerate(plan)
        )
    )
    outcomes = await asyncio.gather(*examples)
    # Every worker job must end delivered (they finish within seconds of the example loop's).
    deadline = time.monotonic() + 120
    while True:
        jobs = [await h.storage.get_job(job_id) for job_id in job_ids]
        if all(job is not None and job.state is JobState.DELIVERED for job in jobs):
            break
        ended = [j for j in jobs if j is not None and j.state in (JobState.FAILED, JobState.LOST)]
        if ended or time.monotonic() > deadline:
            states = sorted({str(j.state) for j in jobs if j is not None})
            raise RunBroken(f"not every job was delivered: states {states}")
        await asyncio.sleep(0.5)

    status_calls: dict[str, int] = {}
    for request in sandbox.requests:
        if request.route == "status":
            task_id = request.path.rstrip("/").rsplit("/", 1)[-1]
            status_calls[task_id] = status_calls.get(task_id, 0) + 1
    for n, (model, index, seconds) in enumerate(plan):
        job = jobs[n]
        assert job is not None
        if job.provider_task_id is None or job.posted_message_id is None:
            raise RunBroken(f"job {job.id} delivered without a task id or a message")
        message = h.fake.messages[job.posted_message_id]
        if message.request is None or not message.files:
            raise RunBroken(f"job {job.id}: its message has no recorded request or no file")
        call = recorder.detecting(job.provider_task_id)
        out.samples.append(
            Sample(
                contender="worker",
                model=model,
                index=index,
                task_id=job.provider_task_id,
                provider_seconds=seconds,
                completed_at=sandbox.completed_at(job.provider_task_id),
                detect_started_at=call.started,
                detected_at=call.answered,
                posted_at=message.request.at,
                status_calls=status_calls.get(job.provider_task_id, 0),
            )
        )
        outcome = outcomes[n]
        posted = h.fake.messages[outcome.message_id]
        if posted.request is None or not posted.files:
            raise RunBroken(f"the example loop's message {outcome.message_id} has no request or no file")
        out.samples.append(
            Sample(
                contender="example",
                model=model,
                index=index,
                task_id=outcome.task_id,
                provider_seconds=seconds,
                completed_at=sandbox.completed_at(outcome.task_id),
                detect_started_at=outcome.detect_started_at,
                detected_at=outcome.detected_at,
                posted_at=posted.request.at,
                status_calls=status_calls.get(outcome.task_id, 0),
            )
        )
    for sample in out.samples:
        if sandbox.tasks[sample.task_id].seconds != sample.provider_seconds:
            raise RunBroken(f"task {sample.task_id} did not get its planned duration")
    out.limiter_waits = {kind: list(values) for kind, values in recorder.waits.items()}
    worker_tasks = {s.task_id for s in out.samples if s.contender == "worker"}
    routes: dict[str, int] = {}
    times: dict[str, list[float]] = {"worker": [], "example": []}
    for request in sandbox.requests:
        if request.route in ("generate", "status"):
            task_id = request.path.rstrip("/").rsplit("/", 1)[-1]
            mine = (
                task_id in worker_tasks
                if request.route == "status"
                else str((request.json_body or {}).get("prompt", "")).startswith("delivery benchmark worker")
            )
            key = f"{'worker' if mine else 'example'} {request.route}"
            routes[key] = routes.get(key, 0) + 1
            times["worker" if mine else "example"].append(request.time)
    out.provider_calls = dict(sorted(routes.items()))
    out.max_calls_any_second = {name: max_in_window(values) for name, values in times.items()}
    out.complete = True


def figures(samples: Sequence[Sample]) -> Figures:
    delays = [s.delay for s in samples]
    calls = [s.status_calls for s in samples]

    def r(value: float) -> float:
        return round(value, 2)

    return Figures(
        jobs=len(samples),
        delay_p50_s=r(percentile(delays, 50)),
        delay_p95_s=r(percentile(delays, 95)),
        delay_max_s=r(max(delays)),
        delay_mean_s=r(statistics.fmean(delays)),
        detect_mean_s=r(statistics.fmean(s.detect for s in samples)),
        post_mean_s=r(statistics.fmean(s.post for s in samples)),
        detecting_call_mean_s=r(statistics.fmean(s.detecting_call for s in samples)),
        status_calls_per_job=r(statistics.fmean(calls)),
        status_calls_total=sum(calls),
    )


def verdict(scope: str, samples: Sequence[Sample]) -> Verdict:
    worker = figures([s for s in samples if s.contender == "worker"])
    example = figures([s for s in samples if s.contender == "example"])
    ratio = worker.delay_p50_s / example.delay_p50_s if example.delay_p50_s > 0 else float("inf")
    target = MODEL_TARGETS.get(scope, TARGET_RATIO)
    return Verdict(
        scope=scope,
        worker=worker,
        example=example,
        median_ratio=round(ratio, 3),
        target_ratio=round(target, 3),
        median_passed=worker.delay_p50_s <= example.delay_p50_s * target,
        calls_passed=worker.status_calls_total <= example.status_calls_total,
    )


def report(
    samples: list[Sample],
    waits: dict[str, list[float]],
    calls: dict[str, int],
    bursts: dict[str, int],
    meta: dict[str, Any],
) -> Report:
    verdicts = [verdict("overall", samples)] + [
        verdict(model, [s for s in samples if s.model == model]) for model in MODELS
    ]
    rate = {
        "provider_calls": calls,
        "max_calls_any_second": bursts,
        "limiter_waits": {
            kind: {
                "calls": len(values),
                "p50_s": round(percentile(values, 50), 3),
                "p95_s": round(percentile(values, 95), 3),
                "max_s": round(max(values), 3),
                "over_1s": sum(1 for w in values if w > 1.0),
            }
            for kind, values in waits.items()
            if values
        },
    }
    jobs = [
        {
            "contender": s.contender,
            "model": s.model,
            "index": s.index,
            "provider_seconds": s.provider_seconds,
            "delay_s": round(s.delay, 3),
            "detect_s": round(s.detect, 3),
            "post_s": round(s.post, 3),
            "detecting_call_s": round(s.detecting_call, 3),
            "status_calls": s.status_calls,
        }
        for s in sorted(samples, key=lambda s: (s.model, s.index, s.contender))
    ]
    passed = all(v.passed for v in verdicts if v.scope in MODEL_TARGETS)
    return Report(verdicts=verdicts, passed=passed, rate_limiter=rate, meta=meta, jobs=jobs)


def analysis(r: Report) -> list[str]:
    """Plain sentences about what the figures say, written from the figures themselves."""
    lines = []
    for v in r.verdicts:
        w, e = v.worker, v.example
        needed = round(e.delay_p50_s * v.target_ratio, 2)
        if v.median_passed:
            median = (
                f"median delay {w.delay_p50_s} s vs {e.delay_p50_s} s ({v.median_ratio:.2f}×): meets "
                f"≤ {v.target_ratio:g}×"
            )
        else:
            median = (
                f"median delay {w.delay_p50_s} s vs {e.delay_p50_s} s ({v.median_ratio:.2f}×): misses "
                f"≤ {v.target_ratio:g}× (needs ≤ {needed} s, {round(w.delay_p50_s - needed, 2)} s less)"
            )
        calls = f"status calls {w.status_calls_per_job}/job vs {e.status_calls_per_job}/job: " + (
            "no more than the example" if v.calls_passed else "MORE than the example"
        )
        lines.append(f"- **{v.scope}**: {median}; {calls}.")
    history = r.meta.get("history", 0)
    lines.append(
        f"- The worker learned from {history} finished jobs of each kind already in the database"
        if history
        else "- The database held no finished jobs (`--no-history`): the worker placed its calls by the "
        "provider's estimate"
    )
    lines[-1] += (
        " (Kling 3.0: denser where fewer of the tasks are still running, ∝ 1/√S(t); Kling 2.6: its "
        "progress points at the earliest possible end)."
    )
    polls = r.rate_limiter["limiter_waits"].get("status")
    if polls:
        lines.append(
            f"- The bot's {r.meta['provider_max_rps']:g} calls/s limiter is part of the delay: status calls "
            f"waited p50 {polls['p50_s']} s, p95 {polls['p95_s']} s, max {polls['max_s']} s for their turn "
            f"({polls['over_1s']} of {polls['calls']} over 1 s). Polling {r.meta['per_model']} Kling 3.0 jobs every "
            f"5 s inside their estimate alone asks {r.meta['per_model'] / 5:g} calls/s; the example loop, "
            "not limited, sent bursts the provider may refuse with 429."
        )
    return lines


def markdown(r: Report) -> str:
    m = r.meta
    lines = [
        "# Delivery benchmark",
        "",
        f"`python -m benchmarks.delivery` on {m['date']}: {m['python']}, {m['cpus']} CPU(s). The real bot "
        f"(delivery worker, `MAX_CONCURRENT_GENERATIONS` {m['max_concurrent_generations']}, "
        f"`PROVIDER_MAX_RPS` {m['provider_max_rps']}) against the UlazAI sandbox and the fake Discord on "
        f"127.0.0.1, in real time. {m['jobs_per_contender']} jobs per contender ({m['per_model']} per model), "
        f"provider durations spread over {m['durations_s'][0]:g}-{m['durations_s'][1]:g} s (seed {m['seed']}), the same for both "
        'contenders; estimates as documented (3.0: "60-180 seconds", 2.6: "60-90 seconds").',
        "",
        "*Worker*: `/video text` by 50 members, the bot's adaptive polling, status cards, post with the file.",
        f"*Example*: the docs' loop (generate; status; `sleep({m['example_interval']:g})`) on its own "
        "session, outside the bot's rate limiter, then the same download and a post of the file.",
        "Delay = message received by the fake Discord − provider task completed. Detect = completion → the",
        "`completed` status answer received; post = that answer → message (download, card, upload).",
        "",
        "| scope | contender | jobs | delay p50 s | p95 s | max s | mean s | detect s | post s "
        "| status calls/job | status calls |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for v in r.verdicts:
        for name, f in (("worker", v.worker), ("example (10 s)", v.example)):
            lines.append(
                f"| {v.scope} | {name} | {f.jobs} | {f.delay_p50_s} | {f.delay_p95_s} | {f.delay_max_s} "
                f"| {f.delay_mean_s} | {f.detect_mean_s} | {f.post_mean_s} | {f.status_calls_per_job} "
                f"| {f.status_calls_total} |"
            )
    lines += [
        "",
        "Targets: Kling 3.0's median delay ≤ 0.40 of the example loop's, Kling 2.6's ≤ 0.20, each with no "
        "more status calls than it (overall: ≤ 1/3, reported).",
        "",
        "| scope | median ratio | target | met | calls ≤ example | verdict |",
        "|---|---:|---:|---|---|---|",
    ]
    for v in r.verdicts:
        lines.append(
            f"| {v.scope} | {v.median_ratio} | ≤ {v.target_ratio:g} | {'yes' if v.median_passed else 'no'} "
            f"| {'yes' if v.calls_passed else 'no'} | **{'PASS' if v.passed else 'FAIL'}** |"
        )
    rl = r.rate_limiter
    lines += [
        "",
        *analysis(r),
        "",
        f"Rate limiter ({m['provider_max_rps']} calls/s, the bot's only), waits for a turn: "
        + "; ".join(
            f"{kind} calls ({w['calls']}) p50 {w['p50_s']} s, p95 {w['p95_s']} s, max {w['max_s']} s"
            for kind, w in rl["limiter_waits"].items()
        )
        + ". Provider calls: "
        + ", ".join(f"{k} {v}" for k, v in rl["provider_calls"].items())
        + ". The example loop is not rate limited (the docs' example has no limiter): the most calls any "
        f"one second saw were {rl['max_calls_any_second'].get('example')} from it, "
        f"{rl['max_calls_any_second'].get('worker')} from the worker.",
        f"1-minute load average: {m['load_average_before']} before, {m['load_average_after']} after; "
        f"{m['seconds']} s in all.",
    ]
    lines += [f"Note: {note}" for note in m["notes"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--per-model", type=int, default=PER_MODEL, help="jobs per model and contender")
    parser.add_argument("--interval", type=float, default=EXAMPLE_INTERVAL, help="the example loop's sleep")
    parser.add_argument("--seed", type=int, default=SEED, help="seed of the provider durations")
    parser.add_argument(
        "--no-history", action="store_true", help="no finished jobs in the database to learn from"
    )
    parser.add_argument(
        "--range",
        type=float,
        nargs=2,
        default=(LOW, HIGH),
        metavar=("LOW", "HIGH"),
        help="provider durations in seconds (default: the documented 60-180; shorter only for a smoke test)",
    )
    output.add_output_options(parser)
    args = parser.parse_args(argv)
    low, high = args.range
    if args.per_model < 1 or args.interval <= 0 or not 0 < low <= high:
        parser.error("need --per-model >= 1, --interval > 0 and 0 < LOW <= HIGH")

    started = time.perf_counter()
    load_before = load_average()
    print(
        f"Delivery benchmark: {args.per_model} jobs per model for the worker and as many for the docs' "
        f"example loop, {low:g}-{high:g} s each, in real time (about {high / 60 + 0.5:.0f} minutes).",
        flush=True,
    )
    out = Collected()
    notes: list[str] = []
    try:
        history = 0 if args.no_history else HISTORY
        stuck = run_bounded(
            run(args.per_model, args.interval, args.seed, (low, high), out, history=history), RUN_LIMIT
        )
    except (RunBroken, TimeoutError) as error:
        if not out.complete:
            print(f"The run broke: {error!r}", file=sys.stderr)
            return 1
        stuck = []
        notes.append(f"the bot did not shut down within {RUN_LIMIT:.0f} s of the start")
    if stuck:
        notes.append(f"{len(stuck)} task(s) ignored their cancellation at exit: {', '.join(stuck[:5])}")
    meta = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "python": f"Python {platform.python_version()}",
        "platform": platform.platform(),
        "cpus": os.cpu_count() or 1,
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "per_model": args.per_model,
        "jobs_per_contender": args.per_model * len(MODELS),
        "models": list(MODELS),
        "durations_s": [low, high],
        "seed": args.seed,
        "history": 0 if args.no_history else HISTORY,
        "example_interval": args.interval,
        "max_concurrent_generations": MAX_CONCURRENT,
        "provider_max_rps": PROVIDER_RPS,
        "estimated_time": {"kling-3.0": "60-180 seconds", "kling-2.6": "60-90 seconds"},
        "seconds": round(time.perf_counter() - started, 1),
        "notes": notes,
    }
    result = report(out.samples, out.limiter_waits, out.provider_calls, out.max_calls_any_second, meta)
    folder = output.output_dir(args)
    payload = asdict(result)
    for item, v in zip(payload["verdicts"], result.verdicts, strict=True):
        item["passed"] = v.passed
    (folder / "delivery.json").write_text(json.dumps(payload, indent=2) + "\n")
    (folder / "delivery.md").write_text(markdown(result))

    header = (
        f"{'scope':<10} {'contender':<8} {'jobs':>4} {'p50 s':>7} {'p95 s':>7} {'max s':>7} "
        f"{'detect':>7} {'post':>6} {'calls/job':>9}"
    )
    print(header)
    for v in result.verdicts:
        for name, f in (("worker", v.worker), ("example", v.example)):
            print(
                f"{v.scope:<10} {name:<8} {f.jobs:>4} {f.delay_p50_s:>7} {f.delay_p95_s:>7} "
                f"{f.delay_max_s:>7} {f.detect_mean_s:>7} {f.post_mean_s:>6} {f.status_calls_per_job:>9}"
            )
    overall, *per_model = result.verdicts
    print(
        f"overall (reported, not a target): median ratio {overall.median_ratio}, status calls "
        f"{overall.worker.status_calls_total} vs {overall.example.status_calls_total}"
    )
    print(f"{meta['seconds']} s in all; results in {folder / 'delivery.md'}")
    for note in notes:
        print(f"Warning: {note}", file=sys.stderr)
    passed = []
    for v in per_model:
        print(
            output.verdict(
                f"{v.scope} median delay <= {v.target_ratio:g} x the docs' loop's, no more status calls",
                v.passed,
                f"ratio {v.median_ratio}, status calls {v.worker.status_calls_total} vs "
                f"{v.example.status_calls_total}",
            )
        )
        passed.append(v.passed)
    return output.exit_status(passed)


if __name__ == "__main__":
    sys.exit(main())
