"""Docker ``HEALTHCHECK``: exit 0 when the bot is healthy, 1 otherwise, with one line saying which.

Runs as its own short process (no event loop to block), reading the environment only. With
``METRICS_PORT`` set, it asks the bot's ``/healthz`` (on ``METRICS_HOST``, by default 127.0.0.1; an
address that listens everywhere is asked on 127.0.0.1): healthy when the gateway is connected and the
delivery worker finished a pass in the last 30 s, and the answer's line says why not. Otherwise it
reads the heartbeat file the bot rewrites every 15 s (``HEARTBEAT_FILE``, at most ``HEARTBEAT_MAX_AGE``
seconds old, default 120).


Runs as its own short process (no event loop to block). ``HEARTBEAT_FILE`` and ``HEARTBEAT_MAX_AGE``
(seconds, default 120) may be set in the environment. The answer names each gateway shard of the
process, its state and latency, as the bot wrote them with the beat (``docker inspect`` shows it).
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

#: How long /healthz may take to answer (the HEALTHCHECK itself allows 10 s).
HTTP_TIMEOUT = 5.0
_EVERYWHERE = {"", "0.0.0.0", "::", "[::]"}  # noqa: S104 - names of the wildcard, never bound here


def is_healthy(path: Path, max_age: float, now: float | None = None) -> bool:
    try:
        stamp = float(path.read_text(encoding="utf-8").split("\n", 1)[0].strip())
    except (OSError, ValueError):
        return False
    return ((now if now is not None else time.time()) - stamp) <= max_age


def healthz_url(host: str, port: str) -> str:
    host = host.strip()
    if host in _EVERYWHERE:
        host = "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{int(port)}/healthz"


def ask_healthz(url: str, timeout: float = HTTP_TIMEOUT) -> tuple[bool, str]:
    """``(healthy, the line to print)`` from the bot's own ``/healthz``."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:  # noqa: S310 - our own http URL
            return answer.status == 200, answer.read(500).decode("utf-8", "replace").strip() or "ok"
    except urllib.error.HTTPError as error:
        reason = error.read(500).decode("utf-8", "replace").strip()
        return False, reason or f"/healthz answered HTTP {error.code}"
    except (OSError, ValueError) as error:
        return False, f"no answer from {url} ({error})"


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
    port = os.environ.get("METRICS_PORT", "").strip()
    if port:
        try:
            url = healthz_url(os.environ.get("METRICS_HOST", "127.0.0.1"), port)
        except ValueError:
            print(f"unhealthy: METRICS_PORT is not a port number ({port!r})")
            return 1
        healthy, line = ask_healthz(url)
        print("healthy" if healthy else f"unhealthy: {line}")
        return 0 if healthy else 1
    path = Path(os.environ.get("HEARTBEAT_FILE", "data/heartbeat"))
    max_age = float(os.environ.get("HEARTBEAT_MAX_AGE", "120"))
    healthy = is_healthy(path, max_age)
    shards = shards_line(path)
    detail = f" ({shards})" if shards else ""
    print(f"healthy{detail}" if healthy else f"unhealthy: no fresh heartbeat in {path}{detail}")
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
