"""``/metrics`` and ``/healthz`` over HTTP, served from inside the bot's process (aiohttp.web).

Started only when ``METRICS_PORT`` is set, on ``METRICS_HOST`` (127.0.0.1 by default: the numbers are
for the operator, not the internet). ``/metrics`` first refreshes the gauges that come from the
database (``refresh``), then answers the registry in Prometheus' text format. ``/healthz`` answers
``200 ok`` when the gateway is connected and the delivery worker finished a pass in the last
:data:`WORKER_MAX_AGE` seconds, else ``503`` and the reason in one line: the Docker ``HEALTHCHECK``
(``healthcheck.py``) reads it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Final

from aiohttp import web

from telemetry.metrics import CONTENT_TYPE, Metrics

log = logging.getLogger(__name__)

#: The worker finishes a pass four times a second; this long without one, it is stuck or stopped.
WORKER_MAX_AGE: Final = 30.0
#: The longest ``/metrics`` waits for the database's gauges before answering with the last values.
REFRESH_TIMEOUT: Final = 5.0


def health_problem(
    *, closed: bool, connected: bool, worker_age: float | None, max_age: float | None = None
) -> str | None:
    """Why the bot is unhealthy, in one line, or ``None`` when it is healthy.

    ``connected``: the gateway is up and ready; ``worker_age``: seconds since the delivery worker
    last finished a pass (``None``: it never did, or does not run in this process); ``max_age``:
    how old that may be (default :data:`WORKER_MAX_AGE`).
    """
    max_age = WORKER_MAX_AGE if max_age is None else max_age
    if closed:
        return "the bot is shutting down"
    if not connected:
        return "not connected to the Discord gateway"
    if worker_age is None:
        return "the delivery worker has not finished a pass yet"
    if worker_age > max_age:
        return f"the delivery worker has not finished a pass for {worker_age:.0f} s"
    return None


class MetricsServer:
    """The HTTP server; ``async with`` it, or :meth:`start` and :meth:`close`."""

    def __init__(
        self,
        metrics: Metrics,
        *,
        health: Callable[[], str | None],
        refresh: Callable[[], Awaitable[None]],
        host: str,
        port: int,
    ) -> None:
        self.metrics = metrics
        self.health = health
        self.refresh = refresh
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        if runner.addresses:  # the bound socket: the real port, when 0 asked for any free one
            self.port = int(runner.addresses[0][1])
        log.info("Serving /metrics and /healthz on http://%s:%d", self.host, self.port)

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, request: web.Request) -> web.Response:
        try:
            await asyncio.wait_for(self.refresh(), REFRESH_TIMEOUT)
        except Exception:
            log.warning("Could not refresh the gauges for /metrics; answering the last values", exc_info=True)
        body = self.metrics.exposition()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    async def _healthz(self, request: web.Request) -> web.Response:
        problem = self.health()
        if problem is None:
            return web.Response(text="ok\n")
        return web.Response(status=503, text=problem + "\n")
