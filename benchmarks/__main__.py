"""``python -m benchmarks`` (``make bench``): run every benchmark, each writing to benchmarks/results/."""

from __future__ import annotations

import runpy

BENCHMARKS = ("benchmarks.ledger", "benchmarks.ack")

if __name__ == "__main__":
    for name in BENCHMARKS:
        print(f"== {name}")
        runpy.run_module(name, run_name="__main__")
