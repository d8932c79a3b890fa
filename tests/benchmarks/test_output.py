"""Benchmark runs leave the committed results alone, state a verdict per target, and exit 1 on a miss.

One real, small run of the ledger benchmark (SQLite, a few hundred reservations: seconds, not the
full run), and the ``python -m benchmarks`` dispatcher with stand-in benchmarks.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

import benchmarks.__main__ as dispatcher
from benchmarks import output

ROOT = Path(__file__).resolve().parents[2]


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_a_small_ledger_run_writes_elsewhere_and_its_status_follows_its_verdicts(tmp_path: Path) -> None:
    committed = _digest(output.RESULTS)
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-W", "error::RuntimeWarning", "-m", "benchmarks.ledger",
         "--reservations", "300", "--engine", "sqlite", "--out", str(tmp_path)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
        timeout=300, check=False,
    )  # fmt: skip
    assert _digest(output.RESULTS) == committed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ledger.json", "ledger.md"]
    verdicts = [line for line in result.stdout.splitlines() if line.startswith("Target: ")]
    rate, sound = verdicts
    assert rate.startswith("Target: >= 1,000 reservations/s on SQLite ")
    assert sound.startswith("Target: no double-spend on sqlite: ")
    assert all(v.rsplit(": ", 1)[1].startswith(("PASS (", "FAIL (")) for v in verdicts), verdicts
    missed = any(": FAIL (" in v for v in verdicts)
    assert result.returncode == (1 if missed else 0), result.stdout + result.stderr
    markdown = (tmp_path / "ledger.md").read_text(encoding="utf-8")
    assert "no double-spend on sqlite: **PASS**" in markdown


def test_the_default_folder_is_untracked_and_update_means_the_committed_one(tmp_path: Path) -> None:
    assert output.OUT == ROOT / "benchmarks" / "out"
    assert "benchmarks/out/" in (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
    parser = argparse.ArgumentParser()
    output.add_output_options(parser)
    assert parser.parse_args([]).out is None
    assert output.output_dir(parser.parse_args(["--out", str(tmp_path / "x")])) == tmp_path / "x"
    assert parser.parse_args(["--update"]).update
    with pytest.raises(SystemExit):
        parser.parse_args(["--update", "--out", str(tmp_path)])
    assert output.exit_status([True, True]) == 0
    assert output.exit_status([True, False]) == 1
    assert output.verdict("x < 1", False, "2") == "Target: x < 1: FAIL (2)"


def test_the_dispatcher_runs_each_benchmark_and_fails_when_one_missed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[tuple[str, list[str]]] = []

    def fake(name: str, status: int) -> types.ModuleType:
        module = types.ModuleType(name)

        def main(argv: list[str]) -> int:
            calls.append((name, argv))
            return status

        module.main = main  # type: ignore[attr-defined]
        return module

    modules = {f"benchmarks.{n}": fake(n, 1 if n == "delivery" else 0) for n in dispatcher.BENCHMARKS}
    monkeypatch.setattr(importlib, "import_module", modules.__getitem__)
    assert dispatcher.main([]) == 1
    assert calls == [(n, []) for n in dispatcher.BENCHMARKS]
    assert "delivery: FAILED" in capsys.readouterr().out
    calls.clear()
    assert dispatcher.main(["--update", "ledger", "ack"]) == 0
    assert calls == [("ledger", ["--update"]), ("ack", ["--update"])]


def test_python_m_benchmarks_starts_without_a_runpy_warning() -> None:
    result = subprocess.run(
        [sys.executable, "-W", "error", "-m", "benchmarks", "--help"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "--update" in result.stdout
