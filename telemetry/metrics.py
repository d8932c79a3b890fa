"""One bot process's instruments, in its own Prometheus registry.

The names are the operator's contract (README, *Metrics and health*): counters count what this process
did since it started (with several processes, each serves its own, and Prometheus sums them), gauges say
what the database holds now (every process reports the same value: take ``max``, not ``sum``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from typing import Final

import aiohttp
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

#: What ``/metrics`` answers with (the text exposition format).
CONTENT_TYPE: Final = CONTENT_TYPE_LATEST

#: The states ``kling_jobs_total`` counts a job reaching.
JOB_STATES: Final = ("queued", "delivered", "failed", "lost", "cancelled", "rejected")
CREDIT_KINDS: Final = ("reserved", "charged", "refunded")
POSTED_VIA: Final = ("attachment", "fitted", "link", "dm")
PROVIDER_ENDPOINTS: Final = ("upload", "generate", "status")

#: Discord's epoch (2015-01-01), in milliseconds: a snowflake's top bits count from it.
DISCORD_EPOCH_MS: Final = 1_420_070_400_000
_CALLBACK_PATH = re.compile(r"/interactions/(\d+)/[^/]+/callback$")


def snowflake_time(snowflake: int) -> float:
    """When Discord made the object with this id (Unix seconds, millisecond precision)."""
    return ((snowflake >> 22) + DISCORD_EPOCH_MS) / 1000


class Metrics:
    """The instruments, each named as the README documents; see the module docstring."""

    def __init__(self, models: Iterable[str] = ()) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
        self.jobs = Counter(
            "kling_jobs", "Jobs that reached a state (by this process)", ["model", "state"], registry=registry
        )
        self.credits = Counter(
            "kling_credits",
            "Member credits held for new jobs (reserved), settled to the provider's price (charged), "
            "and given back by failed, lost, cancelled and rejected jobs (refunded)",
            ["kind"],
            registry=registry,
        )
        self.queue_depth = Gauge(
            "kling_queue_depth", "Jobs queued for the provider (whole bot)", registry=registry
        )
        self.jobs_in_flight = Gauge(
            "kling_jobs_in_flight",
            "Jobs being submitted or generated at the provider (whole bot)",
            registry=registry,
        )
        self.ack_seconds = Histogram(
            "kling_interaction_ack_seconds",
            "From Discord creating an interaction to the bot's acknowledgement arriving back",
            buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0),
            registry=registry,
        )
        self.receipt_seconds = Histogram(
            "kling_receipt_seconds",
            "From a video request to the member's receipt",
            buckets=(0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0),
            registry=registry,
        )
        self.provider_calls = Counter(
            "kling_provider_calls",
            "Calls to UlazAI, every attempt (status: the HTTP status, or 'none' when no answer came)",
            ["endpoint", "status"],
            registry=registry,
        )
        self.provider_call_seconds = Histogram(
            "kling_provider_call_seconds",
            "How long one call to UlazAI took",
            ["endpoint"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0),
            registry=registry,
        )
        self.delivery_delay_seconds = Histogram(
            "kling_delivery_delay_seconds",
            "From the status answer that reported a video complete to its posted message",
            buckets=(0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0),
            registry=registry,
        )
        self.videos_posted = Counter(
            "kling_videos_posted", "Videos posted, by how they went", ["via"], registry=registry
        )
        self.provider_paused = Gauge(
            "kling_provider_paused",
            "1 while submissions are paused (the account needs attention)",
            registry=registry,
        )
        # Every series exists from the start, at 0: a rate() over a series born mid-way misses its first step.
        for model in models:
            for state in JOB_STATES:
                self.jobs.labels(model=model, state=state)
        for kind in CREDIT_KINDS:
            self.credits.labels(kind=kind)
        for via in POSTED_VIA:
            self.videos_posted.labels(via=via)
        for endpoint in PROVIDER_ENDPOINTS:
            self.provider_call_seconds.labels(endpoint=endpoint)

    # -- what the bot tells it ---------------------------------------------------------------------

    def job_reached(self, model: str, state: str) -> None:
        self.jobs.labels(model=model, state=state).inc()

    def moved_credits(self, kind: str, amount: int) -> None:
        if amount > 0:
            self.credits.labels(kind=kind).inc(amount)

    def queue(self, *, queued: int, in_flight: int) -> None:
        self.queue_depth.set(queued)
        self.jobs_in_flight.set(in_flight)

    def receipt(self, seconds: float) -> None:
        self.receipt_seconds.observe(max(0.0, seconds))

    def provider_call(self, endpoint: str, status: int | None, seconds: float) -> None:
        self.provider_calls.labels(endpoint=endpoint, status="none" if status is None else str(status)).inc()
        self.provider_call_seconds.labels(endpoint=endpoint).observe(max(0.0, seconds))

    def posted(self, via: str, delay: float | None) -> None:
        self.videos_posted.labels(via=via).inc()
        if delay is not None:
            self.delivery_delay_seconds.observe(max(0.0, delay))

    def paused(self, paused: bool) -> None:
        self.provider_paused.set(1 if paused else 0)

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format."""
        return generate_latest(self.registry)

    # -- interaction acknowledgements, seen on the wire --------------------------------------------

    def ack_trace(self) -> aiohttp.TraceConfig:
        """A trace for discord.py's HTTP session (``Client(http_trace=...)``): every interaction callback
        (the acknowledgement of a command, a button or a modal, whatever code sent it) is timed from
        the interaction's creation, which its id carries. The URL's token is never kept or logged."""
        trace = aiohttp.TraceConfig()

        async def on_request_end(
            session: aiohttp.ClientSession, context: object, params: aiohttp.TraceRequestEndParams
        ) -> None:
            if params.method != "POST" or not 200 <= params.response.status < 300:
                return
            match = _CALLBACK_PATH.search(params.url.path)
            if match is not None:
                self.ack_seconds.observe(max(0.0, time.time() - snowflake_time(int(match[1]))))

        trace.on_request_end.append(on_request_end)
        return trace


__all__ = ["CONTENT_TYPE", "Metrics", "snowflake_time"]
