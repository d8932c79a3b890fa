"""Where a benchmark writes its figures, how it states its verdicts, and its exit status.

A run writes to ``benchmarks/out/`` (untracked, in ``.gitignore``), so ``make bench`` never leaves the
working tree dirty; the committed figures in ``benchmarks/results/`` (the ones the README quotes) are
rewritten only on request: ``--update`` (``make bench-update``). Every target gets one line,
``Target: <what>: PASS|FAIL (<figure>)``, and a run that misses any target exits with status 1, as
does a run that broke.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Final

HERE = Path(__file__).resolve().parent
#: The committed figures, quoted by the README; written only with --update.
RESULTS: Final = HERE / "results"
#: Where an ordinary run writes (untracked).
OUT: Final = HERE / "out"

EXIT_OK: Final = 0
EXIT_MISSED: Final = 1


def add_output_options(parser: argparse.ArgumentParser) -> None:
    """``--update`` (write the committed results) and ``--out DIR`` (write elsewhere)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--update",
        action="store_true",
        help=f"rewrite the committed figures in {RESULTS.relative_to(HERE.parent)}/ (make bench-update)",
    )
    group.add_argument(
        "--out", type=Path, default=None, help=f"where to write (default {OUT.relative_to(HERE.parent)}/)"
    )


def output_dir(args: argparse.Namespace) -> Path:
    """The folder chosen by :func:`add_output_options`' options, created."""
    folder: Path = RESULTS if args.update else (args.out or OUT)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def verdict(target: str, passed: bool, figure: str) -> str:
    """The one line stating whether ``target`` was met."""
    return f"Target: {target}: {'PASS' if passed else 'FAIL'} ({figure})"


def exit_status(passed: list[bool]) -> int:
    """0 when every target was met, else :data:`EXIT_MISSED`."""
    return EXIT_OK if all(passed) else EXIT_MISSED
