"""A process's memory as the kernel reports it, for the benchmarks' RSS figures (Linux ``/proc``).

``VmHWM`` is the kernel's peak RSS, reset to the current RSS by writing 5 to ``/proc/self/clear_refs``
(Linux 4.0+), so a benchmark can measure the peak of one part of a run; :class:`RssSampler` reads
``VmRSS`` from a thread as well, independent of a busy event loop, for kernels that refuse the reset.
"""

from __future__ import annotations

import threading


def memory_kb(pid: int | str = "self") -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` (peak RSS) of a process, in kB, from ``/proc/<pid>/status``."""
    found: dict[str, int] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(rest.split()[0])
    return found


def reset_peak() -> bool:
    """Reset this process's ``VmHWM`` to its current RSS; ``False`` if not allowed."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")
    except OSError:
        return False
    return True


class RssSampler:
    """A thread reading ``VmRSS`` every ``every`` seconds while the ``with`` block runs."""

    def __init__(self, every: float) -> None:
        self.every = every
        self.peak_kb = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, memory_kb()["VmRSS"])
            self.samples += 1
            self._stop.wait(self.every)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kb = max(self.peak_kb, memory_kb()["VmRSS"])
