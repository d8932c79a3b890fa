"""``python -m benchmarks [--update] [NAME ...]``: run the benchmarks (all four by default), one after another.

``make bench`` writes their figures to ``benchmarks/out/`` (untracked); ``make bench-update`` passes
``--update`` and rewrites the committed ``benchmarks/results/``. Each benchmark prints a verdict line per
target; the exit status is 1 when any benchmark missed a target or broke. The benchmarks are imported and
their ``main()`` called (not run through ``runpy``, which warns when a benchmark is already imported by
another one, as ``benchmarks.delivery`` imports ``benchmarks.scale``).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

BENCHMARKS = ("ledger", "ack", "delivery", "scale", "media")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help=f"some of {', '.join(BENCHMARKS)} (default all)"
    )
    parser.add_argument("--update", action="store_true", help="rewrite the committed benchmarks/results/")
    args = parser.parse_args(argv)
    names = args.names or list(BENCHMARKS)
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"no benchmark named {', '.join(unknown)}; there are {', '.join(BENCHMARKS)}")
    statuses: dict[str, int] = {}
    for name in names:
        print(f"== benchmarks.{name}", flush=True)
        run: Callable[[list[str]], int] = importlib.import_module(f"benchmarks.{name}").main
        statuses[name] = run(["--update"] if args.update else [])
    print(
        "== " + ", ".join(f"{name}: {'ok' if status == 0 else 'FAILED'}" for name, status in statuses.items())
    )
    return 0 if all(status == 0 for status in statuses.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
