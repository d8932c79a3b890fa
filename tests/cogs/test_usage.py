"""``/kling-admin usage`` through the real bot: an embed, a PNG chart that decodes, and a CSV whose rows
and sums match the ledger, over jobs spread across several days; drawn while other interactions are
acknowledged in time."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from PIL import Image

from cogs.admin import ADMIN_REFUSAL
from storage import JobState
from storage.models import Job, LedgerEntry, table
from tests.cogs.test_delivery import FAST, request, wait_state
from tests.fakes.discord_api import FakeMessage
from tests.harness import Harness, running_bot
from tests.storage.helpers import check_ledger


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    async with running_bot(tmp_path) as h:
        h.sandbox.estimated_time.update(FAST)
        yield h


async def report(h: Harness, **options: Any) -> FakeMessage:
    answer: FakeMessage = await h.answer(
        await h.command("kling-admin", "usage", user_id=h.admin_id, **options)
    )
    assert answer.ephemeral
    assert answer.allowed_mentions == {"parse": []}
    return answer


async def created(h: Harness, job_id: int, days_ago: float) -> None:
    """Move a job back in time (the report reads when jobs were created)."""
    jobs = table(Job)
    moment = h.storage.now() - timedelta(days=days_ago)
    async with h.storage.engine.begin() as conn:
        await conn.execute(sa.update(jobs).where(jobs.c.id == job_id).values(created_at=moment))


async def ledger_net(h: Harness, job_ids: list[int]) -> int:
    """What the ledger took from members for these jobs (their allowance and bonus movements)."""
    ledger = table(LedgerEntry)
    async with h.storage.engine.connect() as conn:
        total = await conn.execute(
            sa.select(sa.func.sum(ledger.c.allowance_delta + ledger.c.bonus_delta)).where(
                ledger.c.job_id.in_(job_ids)
            )
        )
        return -int(total.scalar_one() or 0)


def field(embed: dict[str, Any], name: str) -> str:
    return str(next(f["value"] for f in embed["fields"] if f["name"] == name))


async def test_the_report_carries_a_chart_and_a_csv_that_match_the_ledger(harness: Harness) -> None:
    h = harness
    other = h.fake.add_member(h.guild_id, name="other").user_id
    await h.storage.update_guild_settings(h.guild_id, budget_credits=3100, budget_period="monthly")
    await h.storage.grant(h.guild_id, other, 500, actor_id=None)
    plan = [  # (member, model, days ago, fails)
        (h.member_id, "kling-2.6", 5.5, False),
        (h.member_id, "kling-2.6", 3.2, False),
        (other, "kling-3.0", 1.1, False),
        (other, "kling-2.6", 2.4, True),
        (h.member_id, "kling-2.6", 10.0, False),  # before the week: not in the report
    ]
    ids = []
    for member, model, _, fails in plan:
        if fails:
            h.sandbox.fail_next_tasks(1, reason="content policy violation")
        job_id = await request(h, user_id=member, model=model)
        await wait_state(h, job_id, JobState.FAILED if fails else JobState.DELIVERED)
        ids.append(job_id)
    for job_id, (_, _, days, _) in zip(ids, plan, strict=True):
        await created(h, job_id, days)
    in_week = ids[:4]

    answer = await report(h)
    (embed,) = answer.embeds
    assert embed["title"] == "Video usage: the last 7 days"
    assert field(embed, "Credits spent") == "210"  # 55 + 55 + 100; the failed one was refunded
    assert field(embed, "Videos delivered") == "3"
    assert field(embed, "Failed or lost") == "1"
    assert field(embed, "Credits refunded") == "55"
    assert field(embed, "Top members") == f"1. <@{h.member_id}>: 110 credits\n2. <@{other}>: 100 credits"
    assert field(embed, "By model") == "Kling 2.6: 3 requests, 110 credits\nKling 3.0: 1 request, 100 credits"
    assert field(embed, "Server budget left").endswith("of 3,100 credits this month")
    assert embed["image"]["url"].split("?")[0].endswith("/usage.png")  # the attached chart, in the embed
    files = {f.filename: f for f in answer.files}
    assert set(files) == {"usage.png", "usage.csv"}
    assert files["usage.png"].data[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(io.BytesIO(files["usage.png"].data)) as chart:
        chart.verify()
    with Image.open(io.BytesIO(files["usage.png"].data)) as chart:
        assert chart.format == "PNG"
        assert chart.width >= 600

    rows = list(csv.DictReader(io.StringIO(files["usage.csv"].data.decode("utf-8"))))
    assert [int(r["job_id"]) for r in rows] == in_week
    assert list(rows[0]) == [
        "job_id", "member_id", "model", "mode", "duration", "quality", "sound", "credits_estimated",
        "credits_charged", "state", "created", "delivered",
    ]  # fmt: skip
    assert "A calm lake" not in files["usage.csv"].data.decode("utf-8")  # never the prompt
    assert sum(int(r["credits_charged"]) for r in rows) == await ledger_net(h, in_week) == 210
    for row, (member, model, _, fails) in zip(rows, plan, strict=False):
        assert (int(row["member_id"]), row["model"]) == (member, model)
        assert row["state"] == ("failed" if fails else "delivered")
        assert bool(row["delivered"]) is not fails
        assert int(row["credits_estimated"]) == (100 if model == "kling-3.0" else 55)
    await check_ledger(h.storage)


async def test_a_member_without_manage_server_gets_no_report(harness: Harness) -> None:
    h = harness
    interaction = await h.command("kling-admin", "usage", user_id=h.member_id, period="month")
    refusal = await interaction.wait_callback()
    assert (refusal.type, refusal.ephemeral, refusal.content) == (4, True, ADMIN_REFUSAL)
    assert refusal.embeds == []


async def test_the_chart_draws_while_twenty_interactions_are_acknowledged_in_time(harness: Harness) -> None:
    h = harness
    await h.storage.update_guild_settings(h.guild_id, budget_credits=100, budget_period="daily")
    await wait_state(h, await request(h), JobState.DELIVERED)
    usage = await h.command("kling-admin", "usage", user_id=h.admin_id, period="day")
    others = await asyncio.gather(*(h.command("credits") for _ in range(20)))
    for interaction in [usage, *others]:
        callback = await interaction.wait_callback()
        assert callback.elapsed < 3.0
    answer = await usage.wait_followup(timeout=30)
    assert {f.filename for f in answer.files} == {"usage.png", "usage.csv"}
    assert answer.embeds[0]["title"] == "Video usage: the last 24 hours"
    for interaction in others:
        assert (await interaction.wait_followup()).embeds
