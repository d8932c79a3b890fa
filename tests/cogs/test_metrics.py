"""Metrics and health over HTTP, through the real bot: ``/metrics`` scraped with a real HTTP client and
read with prometheus_client's own parser, counters moved by exactly what a known sequence of jobs did;
``/healthz`` (and the Docker health check that asks it) flipping to 503 when the worker stops."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

import healthcheck
from storage import JobState
from telemetry import server
from tests.cogs.test_delivery import FAST, request, wait_state
from tests.harness import Harness, running_bot

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    async with running_bot(tmp_path, metrics_port=0) as h:
        h.sandbox.estimated_time.update(FAST)
        yield h


def port_of(h: Harness) -> int:
    assert h.bot.metrics_server is not None
    return h.bot.metrics_server.port


async def get(h: Harness, path: str) -> tuple[int, str, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port_of(h)}{path}") as answer,
    ):
        return answer.status, answer.headers.get("Content-Type", ""), await answer.text()


async def scrape(h: Harness) -> Samples:
    status, content_type, text = await get(h, "/metrics")
    assert status == 200
    assert content_type.startswith("text/plain; version=")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    return after.get(key, 0.0) - before.get(key, 0.0)


async def test_counters_move_by_exactly_what_a_known_sequence_of_jobs_did(harness: Harness) -> None:
    h = harness
    before = await scrape(h)
    names = {name for name, _ in before}
    for documented in (
        "kling_jobs_total",
        "kling_credits_total",
        "kling_queue_depth",
        "kling_jobs_in_flight",
        "kling_interaction_ack_seconds_count",
        "kling_receipt_seconds_count",
        "kling_provider_call_seconds_count",
        "kling_delivery_delay_seconds_count",
        "kling_videos_posted_total",
        "kling_provider_paused",
    ):
        assert documented in names, documented

    delivered = await request(h)  # 55 reserved, settled to 55, posted as an attachment
    await wait_state(h, delivered, JobState.DELIVERED)
    h.sandbox.fail_next_tasks(1, reason="content policy violation")
    failed = await request(h)  # 55 reserved, settled, then refunded
    await wait_state(h, failed, JobState.FAILED)
    await h.answer(await h.command("kling-admin", "review", user_id=h.admin_id, channel=h.general))
    waiting = await request(h)  # 55 reserved, waits for review, then the member cancels it
    receipt = await h.fake.wait_for_message(
        h.videos, lambda m: m.ephemeral and f"video:cancel:{waiting}" in m.custom_ids()
    )
    press = await h.fake.send_component(f"video:cancel:{waiting}", message_id=receipt.id, user_id=h.member_id)
    assert (await press.wait_callback()).type == 6  # acknowledged first (a deferred update of the receipt)
    await wait_state(h, waiting, JobState.CANCELLED)
    after = await scrape(h)

    def jobs(state: str) -> float:
        return moved(before, after, "kling_jobs_total", model="kling-2.6", state=state)

    assert {s: jobs(s) for s in ("queued", "delivered", "failed", "lost", "cancelled", "rejected")} == {
        "queued": 2,
        "delivered": 1,
        "failed": 1,
        "lost": 0,
        "cancelled": 1,
        "rejected": 0,
    }
    assert moved(before, after, "kling_credits_total", kind="reserved") == 165
    assert moved(before, after, "kling_credits_total", kind="charged") == 110
    assert moved(before, after, "kling_credits_total", kind="refunded") == 110
    assert moved(before, after, "kling_provider_calls_total", endpoint="generate", status="201") == 2
    statuses = moved(before, after, "kling_provider_calls_total", endpoint="status", status="200")
    assert statuses == len(h.provider_calls("status"))
    assert moved(before, after, "kling_provider_call_seconds_count", endpoint="generate") == 2
    assert moved(before, after, "kling_videos_posted_total", via="attachment") == 1
    assert moved(before, after, "kling_delivery_delay_seconds_count") == 1
    # Three requests, the review command and the Cancel press: five acknowledgements, three receipts.
    assert moved(before, after, "kling_interaction_ack_seconds_count") == 5
    assert moved(before, after, "kling_receipt_seconds_count") == 3
    assert after[("kling_queue_depth", frozenset())] == 0
    assert after[("kling_jobs_in_flight", frozenset())] == 0
    assert after[("kling_provider_paused", frozenset())] == 0


async def test_healthz_is_ok_and_turns_503_when_the_worker_stops(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness
    for _ in range(40):  # the worker's first pass may still be on its way
        if (await get(h, "/healthz"))[0] == 200:
            break
        await asyncio.sleep(0.1)
    assert (await get(h, "/healthz"))[::2] == (200, "ok\n")
    monkeypatch.setenv("METRICS_PORT", str(port_of(h)))
    monkeypatch.setenv("METRICS_HOST", "0.0.0.0")  # noqa: S104 - listening everywhere: asked on 127.0.0.1
    assert await asyncio.to_thread(healthcheck.main) == 0

    h.bot.cogs["Delivery"].loop.cancel()  # type: ignore[attr-defined]
    monkeypatch.setattr(server, "WORKER_MAX_AGE", 1.0)
    for _ in range(50):
        status, _, text = await get(h, "/healthz")
        if status == 503:
            break
        await asyncio.sleep(0.1)
    assert status == 503
    assert text.startswith("the delivery worker has not finished a pass for ")
    assert text.count("\n") == 1
    assert await asyncio.to_thread(healthcheck.main) == 1


def test_the_health_check_reads_the_heartbeat_without_a_metrics_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    beat = tmp_path / "heartbeat"
    monkeypatch.delenv("METRICS_PORT", raising=False)
    monkeypatch.setenv("HEARTBEAT_FILE", str(beat))
    assert healthcheck.main() == 1
    beat.write_text("9999999999\n")
    assert healthcheck.main() == 0
    monkeypatch.setenv("METRICS_PORT", "1")  # nobody listens there
    assert healthcheck.main() == 1
    assert (
        capsys.readouterr()
        .out.splitlines()[-1]
        .startswith("unhealthy: no answer from http://127.0.0.1:1/healthz")
    )


def test_healthz_urls() -> None:
    assert healthcheck.healthz_url("127.0.0.1", "9100") == "http://127.0.0.1:9100/healthz"
    assert healthcheck.healthz_url("::", "9100") == "http://127.0.0.1:9100/healthz"
    assert healthcheck.healthz_url("::1", "9100") == "http://[::1]:9100/healthz"
    with pytest.raises(ValueError, match="invalid literal"):
        healthcheck.healthz_url("127.0.0.1", "nine")


def test_health_problems_in_one_line() -> None:
    assert server.health_problem(closed=False, connected=True, worker_age=0.3) is None
    assert server.health_problem(closed=True, connected=True, worker_age=0.3) == "the bot is shutting down"
    assert server.health_problem(closed=False, connected=False, worker_age=0.3) == (
        "not connected to the Discord gateway"
    )
    assert server.health_problem(closed=False, connected=True, worker_age=None) == (
        "the delivery worker has not finished a pass yet"
    )
    assert server.health_problem(closed=False, connected=True, worker_age=31) == (
        "the delivery worker has not finished a pass for 31 s"
    )
