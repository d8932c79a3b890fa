"""Runs ffmpeg as a child process: a few at a time, each killed at a time limit, never on the event loop.

Every decode and encode of :mod:`media` is one ``ffmpeg`` child started with
:func:`asyncio.create_subprocess_exec`. The event loop only waits on the child and drains its two pipes
(a few kilobytes of report and progress lines); the video itself flows from file to file inside the
child, so the bot's memory does not grow with the video's size.

Three guards keep fifty simultaneous deliveries from starving the bot's interactions:

* **A slot per child.** At most ``workers`` (``MEDIA_WORKERS``, default 1) children run at once for the
  whole bot; the others wait their turn (in order) on a semaphore. A probe is a child too.
* **One thread each, at the lowest priority.** ffmpeg gets ``-threads`` ``threads`` (default 1) for
  decoding, filtering and encoding, and starts under Linux's ``SCHED_IDLE`` policy (and niceness
  :data:`NICE`, where that policy is missing), set before ``exec`` so every thread ffmpeg starts has it:
  an idle-class task runs only when nothing else wants the CPU, and the bot's event loop preempts it
  the moment it wakes, so interactions are acknowledged as fast during an encode as without one. The
  child gets a process group of its own (a Ctrl-C meant for the bot stays the bot's) but stays in the
  bot's *session*: with Linux's autogroup scheduling (on by default on desktops and many servers) a
  new session is a new scheduling group, which CFS shares the CPU with as an equal whatever its tasks'
  policy, so an idle-class encoder in a session of its own took two thirds of a shared core from
  the bot (``benchmarks/encode_ack.py``: 3x slower acknowledgements with two encodes).
* **A hard time limit.** A child still running after ``timeout`` seconds (``MEDIA_TIMEOUT_SECONDS``) is
  killed with SIGKILL and the call raises :class:`~media.errors.MediaTimeout`. The time spent waiting
  for a slot does not count. A cancelled call kills its child too, so a shutting-down bot leaves no
  encoder behind.

The semaphore is kept per event loop: the bot has one loop, so the limit is the bot's; the test suite
runs a loop per test, and an :class:`asyncio.Semaphore` must not be shared across loops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import weakref
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import imageio_ffmpeg

from media.errors import MediaError, MediaTimeout

__all__ = ["NICE", "Completed", "MediaRunner", "configure", "default_runner"]

log = logging.getLogger(__name__)

#: The niceness given to every ffmpeg child (0 is normal, 19 the lowest priority).
NICE = 19

#: How much of ffmpeg's report is kept: its head (where ``-i`` describes the input) and its tail (where
#: the last error is). A broken file can make ffmpeg print an error per frame; the rest is dropped.
_HEAD_BYTES = 64 * 1024
_TAIL_BYTES = 16 * 1024
_TELLING = re.compile(r"error|invalid|partial|corrupt|not found|unsupported|no such", re.IGNORECASE)
_COMPONENT = re.compile(r"^\[[^\]]*\]\s*")


@dataclass(frozen=True, slots=True)
class Completed:
    """What a finished ffmpeg child left: its exit status, its report, its last progress values."""

    returncode: int
    report: str
    progress: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def reason(self) -> str:
        """The report's most telling line about a failure: the first error ffmpeg's parts logged
        (``moov atom not found``, ``partial file``), or else its last line."""
        lines = [line.strip() for line in self.report.splitlines() if line.strip()]
        for line in lines:
            if "matches no streams" in line:
                return "no stream of the kind asked for"
        for line in lines:
            if line.startswith("[") and _TELLING.search(line):
                return _COMPONENT.sub("", line)
        return lines[-1] if lines else f"exit status {self.returncode}"

    @property
    def frames(self) -> int:
        """Frames ffmpeg wrote to its first output (``-progress``'s ``frame``), 0 when unknown."""
        try:
            return int(self.progress.get("frame", "0"))
        except ValueError:
            return 0


class MediaRunner:
    """Starts ffmpeg children: at most ``workers`` at once, ``threads`` threads each, ``timeout`` s each.

    ``ffmpeg`` is the binary to run; by default the one inside the ``imageio-ffmpeg`` wheel (found on
    first use, off the event loop). One runner is meant to serve the whole bot (see
    :func:`default_runner`); a test or a benchmark may make its own.
    """

    def __init__(
        self, *, workers: int = 1, timeout: float = 300.0, threads: int = 1, ffmpeg: str | None = None
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        if timeout <= 0:
            raise ValueError("timeout must be above 0")
        if threads < 1:
            raise ValueError("threads must be at least 1")
        self.workers = workers
        self.timeout = timeout
        self.threads = threads
        self._ffmpeg = ffmpeg
        self._slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )
        self._running = 0
        self._waiting = 0

    @property
    def running(self) -> int:
        """ffmpeg children alive right now (never more than ``workers``)."""
        return self._running

    @property
    def waiting(self) -> int:
        """Calls waiting for a free slot right now."""
        return self._waiting

    async def ffmpeg(self) -> str:
        """The ffmpeg binary's path (``imageio_ffmpeg`` checks it by running it, so not on the loop)."""
        if self._ffmpeg is None:
            try:
                self._ffmpeg = str(await asyncio.to_thread(imageio_ffmpeg.get_ffmpeg_exe))
            except RuntimeError as error:
                raise MediaError(f"no ffmpeg binary: {error}") from error
        return self._ffmpeg

    @contextlib.asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        slots = self._slots.get(loop)
        if slots is None:
            slots = self._slots[loop] = asyncio.Semaphore(self.workers)
        self._waiting += 1
        try:
            await slots.acquire()
        finally:
            self._waiting -= 1
        try:
            yield
        finally:
            slots.release()

    async def run(self, args: Sequence[str], *, what: str, time_limit: float | None = None) -> Completed:
        """Run ``ffmpeg args`` in a slot and return how it ended; a child over its time is killed.

        ``what`` names the job for errors and logs ("probe clip.mp4"). ``-progress pipe:1`` is added,
        so :attr:`Completed.progress` holds the child's last progress values. A non-zero exit status is
        returned, not raised: what it means depends on the caller. ``time_limit`` overrides the
        runner's ``timeout`` for this run.
        """
        limit = self.timeout if time_limit is None else time_limit
        binary = await self.ffmpeg()
        command = [binary, "-hide_banner", "-nostdin", "-nostats", "-progress", "pipe:1", *args]
        async with self._slot():
            log.debug("ffmpeg: %s: %s", what, " ".join(command[1:]))
            try:
                child = await asyncio.create_subprocess_exec(
                    *command,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                    process_group=0,  # a Ctrl-C meant for the bot is the bot's; not a new session
                    preexec_fn=_lowest_priority,
                )
            except OSError as error:
                raise MediaError(f"cannot start ffmpeg ({binary}): {error}") from error
            self._running += 1
            try:
                assert child.stdout is not None
                assert child.stderr is not None
                async with asyncio.timeout(limit), asyncio.TaskGroup() as group:
                    progress = group.create_task(_read_progress(child.stdout))
                    report = group.create_task(_read_report(child.stderr))
                    returncode = await child.wait()
            except TimeoutError:
                raise MediaTimeout(what, limit) from None
            finally:
                if child.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        child.kill()
                    await child.wait()
                self._running -= 1
        return Completed(returncode, report.result(), progress.result())


def _lowest_priority() -> None:
    """In the child, before ``exec``: the idle scheduling class, and the highest niceness."""
    with contextlib.suppress(AttributeError, OSError):  # not Linux, or refused: niceness still applies
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, NICE)


async def _read_progress(stream: asyncio.StreamReader) -> dict[str, str]:
    """The last value of each ``key=value`` line ffmpeg's ``-progress`` writes."""
    values: dict[str, str] = {}
    async for raw in stream:
        key, sep, value = raw.decode("utf-8", "replace").strip().partition("=")
        if sep:
            values[key] = value
    return values


async def _read_report(stream: asyncio.StreamReader) -> str:
    """ffmpeg's stderr, bounded: the first :data:`_HEAD_BYTES` and the last :data:`_TAIL_BYTES`."""
    head = bytearray()
    tail = bytearray()
    dropped = False
    while chunk := await stream.read(65536):
        room = _HEAD_BYTES - len(head)
        if room > 0:
            head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            tail += chunk
            if len(tail) > _TAIL_BYTES:
                del tail[: len(tail) - _TAIL_BYTES]
                dropped = True
    text = head.decode("utf-8", "replace")
    if tail:
        text += ("\n[…]\n" if dropped else "") + tail.decode("utf-8", "replace")
    return text


_default: MediaRunner | None = None


def default_runner() -> MediaRunner:
    """The process-wide runner the module-level functions use unless given one."""
    global _default
    if _default is None:
        _default = MediaRunner()
    return _default


def configure(*, workers: int = 1, timeout: float = 300.0, threads: int = 1) -> MediaRunner:
    """Replace the process-wide runner (the bot calls this once, from its settings) and return it."""
    global _default
    _default = MediaRunner(workers=workers, timeout=timeout, threads=threads)
    return _default
