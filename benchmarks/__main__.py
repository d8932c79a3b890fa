"""``python -m benchmarks`` (``make bench``): run every benchmark, each writing to benchmarks/results/."""

from __future__ import annotations

import runpy
import sys

BENCHMARKS = (
    "benchmarks.ledger",
    "benchmarks.ack",
    "benchmarks.delivery",
    "benchmarks.scale",
    "benchmarks.media",
)


def main() -> int:
    failed = []
    for name in BENCHMARKS:
        print(f"== {name}", flush=True)
        try:
            runpy.run_module(name, run_name="__main__")
        except SystemExit as stop:  # each benchmark ends with sys.exit(status)
            if stop.code not in (None, 0):
                failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
