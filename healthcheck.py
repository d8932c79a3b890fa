"""Docker ``HEALTHCHECK``: exit 0 when the bot's heartbeat file is fresh, 1 otherwise.

Runs as its own short process (no event loop to block). ``HEARTBEAT_FILE`` and ``HEARTBEAT_MAX_AGE``
(seconds, default 120) may be set in the environment.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path


def is_healthy(path: Path, max_age: float, now: float | None = None) -> bool:
    try:
        stamp = float(path.read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return False
    return ((now if now is not None else time.time()) - stamp) <= max_age


def main() -> int:
    path = Path(os.environ.get("HEARTBEAT_FILE", "data/heartbeat"))
    max_age = float(os.environ.get("HEARTBEAT_MAX_AGE", "120"))
    healthy = is_healthy(path, max_age)
    print("healthy" if healthy else f"unhealthy: no fresh heartbeat in {path}")
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
