"""Docker ``HEALTHCHECK``: exit 0 when the bot's heartbeat file is fresh, 1 otherwise.

Runs as its own short process (no event loop to block). ``HEARTBEAT_FILE`` and ``HEARTBEAT_MAX_AGE``
(seconds, default 120) may be set in the environment. The answer names each gateway shard of the
process, its state and latency, as the bot wrote them with the beat (``docker inspect`` shows it).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def is_healthy(path: Path, max_age: float, now: float | None = None) -> bool:
    try:
        stamp = float(path.read_text(encoding="utf-8").split("\n", 1)[0].strip())
    except (OSError, ValueError):
        return False
    return ((now if now is not None else time.time()) - stamp) <= max_age


def shards_line(path: Path) -> str:
    """``shard 0 connected 41.2 ms, shard 1 connected 38.0 ms`` from the beat's second line, if any."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
        shards = json.loads(lines[1])["shards"] if len(lines) > 1 else {}
    except (OSError, ValueError, KeyError, TypeError):
        return ""
    parts = []
    for shard_id, state in sorted(shards.items(), key=lambda item: int(item[0])):
        latency = state.get("latency_ms")
        parts.append(
            f"shard {shard_id} {state.get('state')}" + (f" {latency} ms" if latency is not None else "")
        )
    return ", ".join(parts)


def main() -> int:
    path = Path(os.environ.get("HEARTBEAT_FILE", "data/heartbeat"))
    max_age = float(os.environ.get("HEARTBEAT_MAX_AGE", "120"))
    healthy = is_healthy(path, max_age)
    shards = shards_line(path)
    detail = f" ({shards})" if shards else ""
    print(f"healthy{detail}" if healthy else f"unhealthy: no fresh heartbeat in {path}{detail}")
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
