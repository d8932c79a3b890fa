"""The Docker health check: fresh or not, and the shards' states and latencies in its answer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import healthcheck


def beat(path: Path, stamp: float, shards: dict[str, dict[str, object]] | None) -> None:
    path.write_text(f"{stamp:.0f}\n" + ("" if shards is None else json.dumps({"shards": shards}) + "\n"))


def test_a_fresh_beat_is_healthy_and_names_each_shard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "heartbeat"
    shards: dict[str, dict[str, object]] = {
        "3": {"state": "connected", "latency_ms": 41.5},
        "1": {"state": "connected", "latency_ms": None},
    }
    beat(path, 1_000, shards)
    assert healthcheck.is_healthy(path, 120, now=1_100)
    assert not healthcheck.is_healthy(path, 120, now=1_121)
    assert healthcheck.shards_line(path) == "shard 1 connected, shard 3 connected 41.5 ms"
    monkeypatch.setenv("HEARTBEAT_FILE", str(path))
    monkeypatch.setenv("HEARTBEAT_MAX_AGE", "1000000000000")
    assert healthcheck.main() == 0
    assert capsys.readouterr().out.strip() == "healthy (shard 1 connected, shard 3 connected 41.5 ms)"


def test_an_old_style_or_missing_beat(tmp_path: Path) -> None:
    path = tmp_path / "heartbeat"
    assert not healthcheck.is_healthy(path, 120)
    beat(path, 1_000, None)  # a beat from before the shards were recorded
    assert healthcheck.is_healthy(path, 120, now=1_001)
    assert healthcheck.shards_line(path) == ""
