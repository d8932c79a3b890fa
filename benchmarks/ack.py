"""Acknowledgement benchmark: how fast 50 simultaneous ``/video text`` commands are acknowledged.

Run with ``python -m benchmarks.ack`` from the repository root (``--rounds``/``--members`` to change
the size). Discord gives a bot 3 seconds to acknowledge an interaction, and a member who sees nothing
for a moment presses the command again; so the video commands' first await is the acknowledgement (an
ephemeral ``defer``), before any database, upload or provider call. This measures that promise where it
is hardest to keep: a burst of commands arriving at once, each of which, right after its
acknowledgement, goes on to do real work (database reads, the reservation transaction, the public
status card, the receipt) on the same event loop.

What is measured, per command: the seconds from the fake Discord dispatching ``INTERACTION_CREATE`` on
the gateway socket to the bot's interaction callback arriving at the fake's REST handler
(``CallbackRecord.elapsed`` of :mod:`tests.fakes.discord_api`: ``time.monotonic()`` when the callback
request is received, minus the one taken just before the gateway frame is written), and the time
until the receipt (the first followup, which replaces the "thinking" message, with the cost), i.e.
the whole request flow.

The receipt is judged against a **bare reference** measured in the same run through the same fake: a
command that only defers and follows up (no database, no checks), sent in a burst of the same size
before each measured round (``/bench-bare``, added to this bot's tree for the benchmark only). That is
the floor discord.py, the fake and one core set for a deferral and a followup; the request flow may
cost at most 3x that. Each bare burst starts once the previous round's status cards are all posted
(they follow the receipts), so the floor is measured on a bot with nothing else to do but its worker.

How: :func:`tests.harness.running_bot` starts everything for real on 127.0.0.1 - the fake Discord
gateway and REST API, the UlazAI sandbox, a fresh SQLite database and the real ``KlingBot`` through the
real discord.py client. The whole process is pinned to one CPU core, so the bot, the fake Discord and
the sandbox (and the database thread) all share that core: the honest worst case, where every
microsecond the fakes spend is a microsecond the bot does not get. 50 members with plenty of bonus
credits each send one command per round (models and options mixed), all at once; a warm-up round comes
first, then several measured rounds. The delivery worker runs meanwhile, as in production (it submits,
polls and posts the jobs of earlier rounds); ``--no-worker`` leaves it out. Every callback must be a
deferral (type 5), ephemeral, and every command must have created exactly one job; otherwise the run is
broken (exit status 1).

Also recorded, to explain the tail: the garbage collector's pauses (a full collection stops the event
loop, and this process also holds the fakes' objects), how much of them fell inside each round's
acknowledgements, and the machine's load average (other processes may share the pinned core).

Percentiles are nearest-rank over all measured commands. Targets: the acknowledgement's p99 under
150 ms; the receipt's p99 at most 500 ms, and at most 3x the bare reference's receipt p99.

Results go to ``ack.json`` and ``ack.md`` in ``benchmarks/out/`` (``--update``: the committed
``benchmarks/results/``; see :mod:`benchmarks.output`). Exit status 1 when the target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Coroutine, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import discord
from discord import app_commands

from benchmarks import output
from tests.fakes.discord_api import FakeInteraction, FakeMessage
from tests.harness import Harness, running_bot

MEMBERS = 50
ROUNDS = 5
WARMUP = 10
TARGET_P99_MS = 150.0
TARGET_RECEIPT_P99_MS = 500.0
#: The receipt's p99 may be at most this many times the bare defer-and-follow-up's.
TARGET_RECEIPT_RATIO = 3.0
BARE_COMMAND = "bench-bare"
#: Bonus credits per member: far more than ROUNDS + 1 of the dearest request below.
BONUS_CREDITS = 1_000_000
#: Seconds of quiet between rounds, so each round is a fresh burst rather than the tail of the last.
PAUSE = 0.25
#: Seconds the whole async run may take (it needs ~10-20 s), and the grace given to tasks left over.
RUN_LIMIT = 120.0
SHUTDOWN_GRACE = 5.0
#: The options of the commands, cycled over the members (every one valid, so none is refused).
VARIANTS: tuple[dict[str, Any], ...] = (
    {"model": "kling-2.6"},
    {"model": "kling-3.0"},
    {"model": "kling-3.0", "quality": "pro", "duration": 10, "sound": True},
    {"model": "kling-2.6", "duration": 10, "aspect_ratio": "9:16"},
    {"model": "kling-3.0", "duration": 8, "aspect_ratio": "1:1", "multi_shot": True},
)
#: The receipt's title when the job was created (a refusal is a plain sentence without an embed).
RECEIPT_TITLE = "Your video is queued"


@dataclass(frozen=True)
class Pause:
    start: float
    end: float
    generation: int

    @property
    def seconds(self) -> float:
        return self.end - self.start


class GcPauses:
    """The garbage collector's pauses while recording: a collection stops the event loop too, and a
    full one (generation 2) walks every tracked object of the process, fakes included.

    Times are ``time.monotonic()``, the fake's clock, so pauses can be matched to acknowledgements.
    """

    def __init__(self) -> None:
        self.pauses: list[Pause] = []
        self.recording = False
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.monotonic()
        elif self.recording:
            self.pauses.append(Pause(self._started, time.monotonic(), int(info.get("generation", -1))))

    @property
    def full(self) -> list[Pause]:
        return [p for p in self.pauses if p.generation == 2]

    def within(self, start: float, end: float) -> float:
        """Seconds of pauses between ``start`` and ``end``."""
        return sum(max(0.0, min(end, p.end) - max(start, p.start)) for p in self.pauses)

    @contextlib.contextmanager
    def installed(self) -> Iterator[GcPauses]:
        gc.callbacks.append(self)
        try:
            yield self
        finally:
            gc.callbacks.remove(self)


class RunBroken(Exception):
    """The run did not do what it measures (a refused command, a wrong callback, a missing job)."""


@dataclass
class Sample:
    """One command: its acknowledgement and receipt latencies, in seconds."""

    round: int
    user_id: int
    model: str
    interaction_id: int
    dispatched_at: float
    ack: float
    receipt: float


@dataclass
class Figures:
    count: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float


@dataclass
class RoundFigures:
    round: int
    commands: int
    dispatch_spread_ms: float
    ack_p50_ms: float
    ack_p99_ms: float
    ack_max_ms: float
    receipt_p99_ms: float
    wall_seconds: float
    gc_ms_while_acking: float


@dataclass
class Report:
    ack: Figures
    receipt: Figures
    bare_ack: Figures
    bare_receipt: Figures
    receipt_ratio: float
    rounds: list[RoundFigures]
    target_p99_ms: float
    target_receipt_p99_ms: float
    target_receipt_ratio: float
    ack_passed: bool
    receipt_passed: bool
    ratio_passed: bool
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.ack_passed and self.receipt_passed and self.ratio_passed


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile: the smallest value with at least ``p`` % of the values at or below it."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def figures(seconds: Sequence[float]) -> Figures:
    def ms(value: float) -> float:
        return round(value * 1000, 2)

    return Figures(
        count=len(seconds),
        p50_ms=ms(percentile(seconds, 50)),
        p95_ms=ms(percentile(seconds, 95)),
        p99_ms=ms(percentile(seconds, 99)),
        max_ms=ms(max(seconds)),
    )


def received_at(message: FakeMessage) -> float:
    """When the receipt arrived: after a deferral it is an edit of the "thinking" message."""
    call = message.edits[0] if message.edits else message.request
    if call is None:
        raise RunBroken(f"followup {message.id} has no recorded request")
    return call.at


async def one_command(harness: Harness, round_no: int, user_id: int, options: dict[str, Any]) -> Sample:
    """Send one ``/video text``, check its acknowledgement and receipt, return both latencies."""
    interaction: FakeInteraction = await harness.command(
        "video",
        "text",
        prompt=f"benchmark round {round_no}: a lighthouse at dusk, member {user_id}",
        user_id=user_id,
        channel_id=harness.videos,
        **options,
    )
    callback = await interaction.wait_callback(timeout=10)
    if callback.type != 5 or not callback.ephemeral:
        raise RunBroken(
            f"interaction {interaction.id}: expected an ephemeral deferral (type 5), got type "
            f"{callback.type} with flags {callback.flags}"
        )
    receipt = await interaction.wait_followup(timeout=20)
    titles = [embed.get("title") for embed in receipt.embeds]
    if not receipt.ephemeral or RECEIPT_TITLE not in titles:
        raise RunBroken(
            f"interaction {interaction.id}: expected an ephemeral receipt, got {receipt.content!r} {titles}"
        )
    return Sample(
        round=round_no,
        user_id=user_id,
        model=str(options["model"]),
        interaction_id=interaction.id,
        dispatched_at=interaction.dispatched_at,
        ack=callback.elapsed,
        receipt=received_at(receipt) - interaction.dispatched_at,
    )


def add_bare_command(harness: Harness) -> None:
    """``/bench-bare``: a deferral and a followup, nothing else (the reference). A global command that
    is never synced: the fake builds its interaction from the name, and discord.py finds it in the tree."""

    @app_commands.command(name=BARE_COMMAND, description="Benchmark reference: defer, then follow up")
    async def bare(interaction: discord.Interaction[Any]) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        await interaction.followup.send(
            "Done.", ephemeral=True, allowed_mentions=discord.AllowedMentions.none()
        )

    harness.bot.tree.add_command(bare)


async def one_bare(harness: Harness, round_no: int, user_id: int) -> Sample:
    interaction = await harness.fake.send_command(BARE_COMMAND, user_id=user_id, channel_id=harness.videos)
    callback = await interaction.wait_callback(timeout=10)
    if callback.type != 5 or not callback.ephemeral:
        raise RunBroken(f"bare interaction {interaction.id}: expected an ephemeral deferral")
    followup = await interaction.wait_followup(timeout=20)
    if followup.content != "Done.":
        raise RunBroken(f"bare interaction {interaction.id}: unexpected followup {followup.content!r}")
    return Sample(
        round=round_no,
        user_id=user_id,
        model="bare",
        interaction_id=interaction.id,
        dispatched_at=interaction.dispatched_at,
        ack=callback.elapsed,
        receipt=received_at(followup) - interaction.dispatched_at,
    )


async def bare_burst(harness: Harness, round_no: int, members: Sequence[int]) -> list[Sample]:
    return list(await asyncio.gather(*(one_bare(harness, round_no, user_id) for user_id in members)))


async def burst(harness: Harness, round_no: int, members: Sequence[int]) -> tuple[list[Sample], float]:
    """All ``members`` send a command at once; returns the samples and the round's wall time."""
    started = time.perf_counter()
    samples = await asyncio.gather(
        *(
            one_command(harness, round_no, user_id, VARIANTS[(index + round_no) % len(VARIANTS)])
            for index, user_id in enumerate(members)
        )
    )
    return list(samples), time.perf_counter() - started


async def cards_posted(harness: Harness, samples: Sequence[Sample], *, limit: float = 20.0) -> None:
    """Wait until every job of ``samples`` has its status card (cards follow the receipts: see
    :mod:`cogs.front_desk`), so they are not posted during the next bare burst, which would then
    measure a busy bot instead of the floor."""
    waiting = {sample.interaction_id for sample in samples}
    deadline = time.monotonic() + limit
    while waiting:
        for interaction_id in list(waiting):
            job = await harness.storage.get_job_by_interaction(interaction_id)
            if job is not None and job.status_message_id is not None:
                waiting.discard(interaction_id)
        if waiting:
            if time.monotonic() > deadline:
                raise RunBroken(f"{len(waiting)} status card(s) not posted within {limit:g} s")
            await asyncio.sleep(0.02)


async def check_jobs(harness: Harness, sent: dict[int, list[int]]) -> None:
    """Each command created exactly one job: per member, the jobs' interaction ids are those sent."""
    for user_id, interaction_ids in sent.items():
        jobs = await harness.storage.list_jobs(harness.guild_id, user_id, limit=len(interaction_ids) + 10)
        found = sorted(job.interaction_id for job in jobs)
        if found != sorted(interaction_ids):
            raise RunBroken(
                f"member {user_id}: {len(interaction_ids)} command(s) sent but jobs for interactions "
                f"{found} (expected {sorted(interaction_ids)})"
            )


@dataclass
class Collected:
    """What a run gathers; filled as it goes, so a bot that will not shut down cannot lose it."""

    samples: list[Sample] = field(default_factory=list)
    bare: list[Sample] = field(default_factory=list)
    walls: list[float] = field(default_factory=list)
    jobs: int = 0
    tracked_objects: int = 0
    complete: bool = False


async def run(
    rounds: int, members: int, warmup: int, *, worker: bool, gc_pauses: GcPauses, out: Collected
) -> None:
    """Start the bot, set up the members, warm up, run the measured rounds, check the jobs."""
    # Only pass worker= to leave the delivery worker out, so the default is the harness's own.
    options: dict[str, Any] = {} if worker else {"worker": False}
    with tempfile.TemporaryDirectory(prefix="kling-ack-") as folder:
        async with running_bot(Path(folder), **options) as harness:
            guild_id = harness.guild_id
            user_ids = [
                harness.fake.add_member(guild_id, name=f"bench-{n:02d}").user_id for n in range(members)
            ]
            # Room for every job of a member at once (without the worker they all stay queued), and
            # no price quote first: what is measured is a request that goes straight to the queue.
            await harness.storage.update_guild_settings(
                guild_id, max_active_jobs=rounds + 2, confirm_above_credits=0
            )
            for user_id in user_ids:
                await harness.storage.grant(
                    guild_id, user_id, BONUS_CREDITS, actor_id=harness.admin_id, reason="ack benchmark"
                )
            sent: dict[int, list[int]] = {user_id: [] for user_id in user_ids}
            add_bare_command(harness)

            warm, _ = await burst(harness, 0, user_ids[:warmup])
            await bare_burst(harness, 0, user_ids[:warmup])
            for sample in warm:
                sent[sample.user_id].append(sample.interaction_id)
            gc_pauses.recording = True
            for round_no in range(1, rounds + 1):
                await asyncio.sleep(PAUSE)
                out.bare += await bare_burst(harness, round_no, user_ids)
                await asyncio.sleep(PAUSE)
                measured, wall = await burst(harness, round_no, user_ids)
                await cards_posted(harness, measured)  # so the next bare burst meets a quiet bot
                out.samples += measured
                out.walls.append(wall)
                for sample in measured:
                    sent[sample.user_id].append(sample.interaction_id)
            gc_pauses.recording = False
            await check_jobs(harness, sent)
            out.jobs = sum(len(ids) for ids in sent.values())
            out.tracked_objects = len(gc.get_objects())
            out.complete = True


def run_bounded(main: Coroutine[Any, Any, None], limit: float) -> list[str]:
    """``asyncio.run`` with limits, so a task that will not stop cannot hang the benchmark.

    ``main`` gets ``limit`` seconds (else :class:`TimeoutError`); then every task still pending is
    cancelled and given :data:`SHUTDOWN_GRACE` seconds to finish. Returns the tasks that did not
    (``asyncio.run`` would wait for them forever); re-raises what ``main`` raised.
    """
    loop = asyncio.new_event_loop()
    try:
        task = loop.create_task(main)
        loop.run_until_complete(asyncio.wait({task}, timeout=limit))
        leftovers = [pending for pending in asyncio.all_tasks(loop) if not pending.done()]
        for pending in leftovers:
            pending.cancel()
        if leftovers:
            loop.run_until_complete(asyncio.wait(leftovers, timeout=SHUTDOWN_GRACE))
        stuck = [repr(left.get_coro()) for left in leftovers if not left.done() and left is not task]
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()
    if not task.done() or task.cancelled():
        raise TimeoutError(f"it took over {limit:.0f} s")
    task.result()
    return stuck


def load_average() -> float | None:
    """The 1-minute load average: other processes on the machine may share the pinned core."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def busy(meta: dict[str, Any]) -> bool:
    """Whether other work was likely competing for the pinned core (figures are then pessimistic)."""
    loads = [x for x in (meta["load_average_before"], meta["load_average_after"]) if x is not None]
    return bool(loads) and max(loads) > meta["cpus"] - 1 + 0.5


BUSY_NOTE = (
    "the machine was busy (1-minute load average {load_average_before} before, {load_average_after} "
    "after, on {cpus} CPU(s)), so other processes probably shared the pinned core; the tail is then "
    "pessimistic and varies from run to run."
)


@contextlib.contextmanager
def one_core() -> Iterator[int | None]:
    """Pin this process (and every thread it starts meanwhile) to its first allowed CPU core."""
    if not hasattr(os, "sched_setaffinity"):
        yield None
        return
    before = os.sched_getaffinity(0)
    core = min(before)
    os.sched_setaffinity(0, {core})
    try:
        yield core
    finally:
        os.sched_setaffinity(0, before)


def report(
    samples: list[Sample], bare: list[Sample], walls: list[float], gc_pauses: GcPauses, meta: dict[str, Any]
) -> Report:
    ack = figures([s.ack for s in samples])
    receipt = figures([s.receipt for s in samples])
    bare_receipt = figures([s.receipt for s in bare])
    ratio = round(receipt.p99_ms / bare_receipt.p99_ms, 2) if bare_receipt.p99_ms else float("inf")
    per_round = []
    for round_no, wall in enumerate(walls, start=1):
        these = [s for s in samples if s.round == round_no]
        acks = figures([s.ack for s in these])
        per_round.append(
            RoundFigures(
                round=round_no,
                commands=len(these),
                dispatch_spread_ms=round(
                    (max(s.dispatched_at for s in these) - min(s.dispatched_at for s in these)) * 1000, 2
                ),
                ack_p50_ms=acks.p50_ms,
                ack_p99_ms=acks.p99_ms,
                ack_max_ms=acks.max_ms,
                receipt_p99_ms=figures([s.receipt for s in these]).p99_ms,
                wall_seconds=round(wall, 3),
                gc_ms_while_acking=round(
                    gc_pauses.within(
                        min(s.dispatched_at for s in these), max(s.dispatched_at + s.ack for s in these)
                    )
                    * 1000,
                    2,
                ),
            )
        )
    return Report(
        ack=ack,
        receipt=receipt,
        bare_ack=figures([s.ack for s in bare]),
        bare_receipt=bare_receipt,
        receipt_ratio=ratio,
        rounds=per_round,
        target_p99_ms=TARGET_P99_MS,
        target_receipt_p99_ms=TARGET_RECEIPT_P99_MS,
        target_receipt_ratio=TARGET_RECEIPT_RATIO,
        ack_passed=ack.p99_ms < TARGET_P99_MS,
        receipt_passed=receipt.p99_ms <= TARGET_RECEIPT_P99_MS,
        ratio_passed=ratio <= TARGET_RECEIPT_RATIO,
        meta=meta,
    )


def markdown(r: Report) -> str:
    m = r.meta
    pinned = f"pinned to CPU {m['cpu_pinned']}" if m["cpu_pinned"] is not None else "NOT pinned"
    lines = [
        "# Acknowledgement benchmark",
        "",
        f"`python -m benchmarks.ack` on {m['date']}: {m['python']}, {m['cpus']} CPU(s), the whole process "
        f"{pinned}: the bot, the fake Discord, the UlazAI sandbox and SQLite share one core.",
        f"{m['rounds']} rounds of {m['members']} simultaneous `/video text` commands (Kling 3.0 and 2.6, mixed "
        f"options) by {m['members']} members, after a warm-up of {m['warmup']}; {m['jobs']} jobs created, "
        "one per command. "
        + (
            "The delivery worker ran meanwhile (submitting, polling and posting the jobs)."
            if m["delivery_worker"]
            else "The delivery worker was left out (`--no-worker`)."
        ),
        "",
        "Ack = `INTERACTION_CREATE` dispatched on the gateway → the bot's interaction callback (an ephemeral",
        "deferral) received by the fake's REST API. Receipt = the same start → the receipt followup, i.e.",
        "the request flow up to the member's answer (context read, checks, reservation, receipt; the",
        "public status card comes after the receipts). Bare = `/bench-bare`, a command",
        "that only defers and follows up (no database, no checks), in a burst of the same size before each",
        "measured round: the floor set by discord.py, the fake and the one core.",
        "",
        "| latency | commands | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    rows = (
        ("ack (defer)", r.ack),
        ("receipt", r.receipt),
        ("bare: ack", r.bare_ack),
        ("bare: followup", r.bare_receipt),
    )
    for name, f in rows:
        lines.append(f"| {name} | {f.count} | {f.p50_ms} | {f.p95_ms} | {f.p99_ms} | {f.max_ms} |")

    def verdict(passed: bool) -> str:
        return "PASS" if passed else "FAIL"

    lines += [
        "",
        f"Target: ack p99 under {r.target_p99_ms:.0f} ms on one core against the local fakes: "
        f"**{verdict(r.ack_passed)}** ({r.ack.p99_ms} ms).",
        f"Target: receipt p99 at most {r.target_receipt_p99_ms:.0f} ms: **{verdict(r.receipt_passed)}** "
        f"({r.receipt.p99_ms} ms).",
        f"Target: receipt p99 at most {r.target_receipt_ratio:.0f}x the bare followup's p99 in the same run: "
        f"**{verdict(r.ratio_passed)}** ({r.receipt_ratio}x: {r.receipt.p99_ms} ms vs {r.bare_receipt.p99_ms} ms).",
        "",
        "| round | commands | dispatch spread ms | ack p50 ms | ack p99 ms | ack max ms | GC ms while acking "
        "| receipt p99 ms | wall s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for rf in r.rounds:
        lines.append(
            f"| {rf.round} | {rf.commands} | {rf.dispatch_spread_ms} | {rf.ack_p50_ms} | {rf.ack_p99_ms} "
            f"| {rf.ack_max_ms} | {rf.gc_ms_while_acking} | {rf.receipt_p99_ms} | {rf.wall_seconds} |"
        )
    lines += [
        "",
        "Dispatch spread: from the first to the last `INTERACTION_CREATE` of the round leaving the fake.",
        "GC ms while acking: garbage-collector pauses between the round's first dispatch and its last",
        "acknowledgement (every task of the process waits them out).",
        f"Garbage-collector pauses during the measured rounds: {m['gc_pauses']}, longest "
        f"{m['gc_pause_max_ms']} ms; {m['gc_full_collections']} full collection(s), longest "
        f"{m['gc_full_pause_max_ms']} ms, over {m['gc_tracked_objects_at_end']:,} tracked objects (the fakes' "
        "included).",
        f"1-minute load average: {m['load_average_before']} before, {m['load_average_after']} after.",
    ]
    if busy(m):
        lines.append(f"Note: {BUSY_NOTE.format(**m)}")
    lines += [f"Warning: {problem}" for problem in m["shutdown_problems"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="measured rounds")
    parser.add_argument("--members", type=int, default=MEMBERS, help="simultaneous commands per round")
    parser.add_argument("--warmup", type=int, default=WARMUP, help="commands in the warm-up round")
    parser.add_argument(
        "--no-worker",
        action="store_true",
        help="leave the delivery worker out (by default it runs, submitting and posting the jobs meanwhile)",
    )
    output.add_output_options(parser)
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.members < 1 or not 0 <= args.warmup <= args.members:
        parser.error("need rounds >= 1, members >= 1 and 0 <= warmup <= members")

    started = time.perf_counter()
    load_before = load_average()
    with one_core() as core, GcPauses().installed() as gc_pauses:
        note = f"pinned to CPU {core}" if core is not None else "NOT pinned (no sched_setaffinity here)"
        print(
            f"Process {note}: the bot, the fake Discord, the UlazAI sandbox and SQLite share one core "
            "(the honest worst case)."
        )
        out = Collected()
        problems: list[str] = []
        try:
            stuck = run_bounded(
                run(
                    args.rounds,
                    args.members,
                    args.warmup,
                    worker=not args.no_worker,
                    gc_pauses=gc_pauses,
                    out=out,
                ),
                RUN_LIMIT,
            )
        except (RunBroken, TimeoutError) as error:
            if not out.complete:
                print(f"The run broke: {error}", file=sys.stderr)
                return 1
            stuck = []
            problems.append(f"the bot did not shut down within {RUN_LIMIT:.0f} s of the start")
        if stuck:
            problems.append(
                f"{len(stuck)} task(s) ignored their cancellation at exit: {', '.join(stuck[:5])}"
            )
    samples, walls, jobs, tracked = out.samples, out.walls, out.jobs, out.tracked_objects
    cpus = os.cpu_count() or 1
    meta = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "python": f"Python {platform.python_version()}",
        "platform": platform.platform(),
        "cpus": cpus,
        "cpu_pinned": core,
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "members": args.members,
        "rounds": args.rounds,
        "warmup": args.warmup,
        "delivery_worker": not args.no_worker,
        "jobs": jobs,
        "gc_pauses": len(gc_pauses.pauses),
        "gc_pause_max_ms": round(max((p.seconds for p in gc_pauses.pauses), default=0.0) * 1000, 2),
        "gc_full_collections": len(gc_pauses.full),
        "gc_full_pause_max_ms": round(max((p.seconds for p in gc_pauses.full), default=0.0) * 1000, 2),
        "gc_tracked_objects_at_end": tracked,
        "seconds": round(time.perf_counter() - started, 1),
        "shutdown_problems": problems,
    }
    result = report(samples, out.bare, walls, gc_pauses, meta)
    folder = output.output_dir(args)
    (folder / "ack.json").write_text(json.dumps(asdict(result), indent=2) + "\n")
    (folder / "ack.md").write_text(markdown(result))

    for name, f in (
        ("ack", result.ack),
        ("receipt", result.receipt),
        ("bare ack", result.bare_ack),
        ("bare fup", result.bare_receipt),
    ):
        print(
            f"{name:>8}: {f.count} commands, p50 {f.p50_ms} ms, p95 {f.p95_ms} ms, p99 {f.p99_ms} ms, "
            f"max {f.max_ms} ms"
        )
    print(f"{jobs} jobs, one per command; {meta['seconds']} s in all; results in {folder / 'ack.md'}")
    print(output.verdict(f"ack p99 < {TARGET_P99_MS:.0f} ms", result.ack_passed, f"{result.ack.p99_ms} ms"))
    print(
        output.verdict(
            f"receipt p99 <= {TARGET_RECEIPT_P99_MS:.0f} ms",
            result.receipt_passed,
            f"{result.receipt.p99_ms} ms",
        )
    )
    print(
        output.verdict(
            f"receipt p99 <= {TARGET_RECEIPT_RATIO:.0f}x the bare followup's",
            result.ratio_passed,
            f"{result.receipt_ratio}x ({result.receipt.p99_ms} ms vs {result.bare_receipt.p99_ms} ms)",
        )
    )
    if busy(meta):
        print(f"Note: {BUSY_NOTE.format(**meta)}")
    for problem in problems:
        print(f"Warning (not measured, but a bug to look at): {problem}", file=sys.stderr)
    return output.exit_status([result.ack_passed, result.receipt_passed, result.ratio_passed])


if __name__ == "__main__":
    sys.exit(main())
