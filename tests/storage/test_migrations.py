"""Migrations: the migrated schema is exactly the models, and upgrading keeps every balance and job."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from storage import DeliveredVia, JobState, Storage, upgrade_to_head
from storage.database import DEFAULT_DATABASE_URL, alembic_config
from storage.models import metadata
from tests.postgres import create_database, drop_database
from tests.storage.conftest import ENGINES
from tests.storage.helpers import FakeClock, check_ledger, claim, ledger_entries, make_job, migrate_in_thread

_databases = itertools.count()


@pytest.fixture(params=ENGINES)
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A brand-new, empty database on each engine."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/fresh/bot.db"
        return
    server: str = request.getfixturevalue("postgres_server")
    name = f"kling_migrations_{next(_databases)}"
    url = create_database(server, name)
    yield url
    drop_database(server, name)


async def _schema_diff(url: str) -> list[Any]:
    async with Storage(url) as storage, storage.engine.connect() as conn:

        def diff(sync_conn: sa.Connection) -> list[Any]:
            context = MigrationContext.configure(sync_conn, opts={"compare_type": True})
            return list(compare_metadata(context, metadata))

        return await conn.run_sync(diff)


async def test_migrated_schema_equals_the_models(empty_url: str) -> None:
    await upgrade_to_head(empty_url)
    assert await _schema_diff(empty_url) == []


async def test_upgrade_keeps_balances_and_jobs(empty_url: str) -> None:
    """Build data, take the schema back to the first revision (what an old database has), upgrade to
    head, and find everything as it was. (The data is made at head: today's code cannot write to an
    older schema, since it reads and writes every column of today's models.)"""
    await upgrade_to_head(empty_url)
    clock = FakeClock()
    async with Storage(empty_url, clock=clock) as storage:
        await storage.grant(1, 10, 500, actor_id=7)
        await storage.update_guild_settings(1, allowance_credits=400, budget_credits=5000)
        queued = await make_job(storage, estimate=120)
        done = await make_job(storage, estimate=200, user_id=11)
        await claim(storage, "w", limit=5)
        await storage.mark_submitting(done.id or 0, owner="w")
        await storage.mark_processing(done.id or 0, owner="w", task_id="t-1", credits_used=180)
        before = [await storage.balance(1, 10), await storage.balance(1, 11)]
        ledger_before = await ledger_entries(storage, 1, 10) + await ledger_entries(storage, 1, 11)

    await asyncio.to_thread(command.downgrade, alembic_config(empty_url), "0001")
    await upgrade_to_head(empty_url)

    async with Storage(empty_url, clock=clock) as storage:
        assert [await storage.balance(1, 10), await storage.balance(1, 11)] == before
        ledger_after = await ledger_entries(storage, 1, 10) + await ledger_entries(storage, 1, 11)
        assert [e.model_dump() for e in ledger_after] == [e.model_dump() for e in ledger_before]
        reloaded = await storage.get_job(queued.id or 0)
        assert reloaded is not None
        assert (reloaded.state, reloaded.estimate_credits, reloaded.prompt) == (
            JobState.QUEUED,
            120,
            queued.prompt,
        )
        processed = await storage.get_job(done.id or 0)
        assert processed is not None
        assert (processed.state, processed.provider_task_id, processed.member_charged) == (
            JobState.PROCESSING,
            "t-1",
            180,
        )
        assert (await storage.guild_spend(1)).spent == 300
        await check_ledger(storage)
        # And the upgraded database keeps working.
        await storage.mark_completed(done.id or 0, owner="w", video_url="https://v/1.mp4")
    assert await _schema_diff(empty_url) == []


async def _delivered(storage: Storage, via: DeliveredVia, notes: str | None) -> int:
    """A job taken through to delivered, ``via`` something, with the worker's ``notes``."""
    job_id = (await make_job(storage, estimate=10)).id or 0
    await claim(storage, "w")
    await storage.mark_submitting(job_id, owner="w")
    await storage.mark_processing(job_id, owner="w", task_id=f"t-{job_id}", credits_used=10)
    await storage.mark_completed(job_id, owner="w", video_url=f"https://v/{job_id}.mp4")
    await storage.mark_delivered(job_id, owner="w", message_id=900 + job_id, via=via, notes=notes)
    return job_id


async def test_upgrade_fills_delivered_via_from_the_delivery_notes(empty_url: str) -> None:
    """Jobs delivered before ``delivered_via`` existed get it from the notes the worker wrote."""
    await upgrade_to_head(empty_url)
    link, dm = DeliveredVia.LINK, DeliveredVia.DIRECT_MESSAGE
    async with Storage(empty_url, clock=FakeClock()) as storage:
        await storage.grant(1, 10, 1000, actor_id=7)
        expected = {
            await _delivered(storage, DeliveredVia.ATTACHMENT, "attached"): DeliveredVia.ATTACHMENT,
            await _delivered(
                storage, link, "posted as a link: it is 30.0 MB, more than this server's 10.0 MB upload limit"
            ): link,
            await _delivered(
                storage, link, "posted as a link: Discord refused the file as too large for this server"
            ): link,
            await _delivered(
                storage, dm, "sent by direct message: the channel refused it (Discord error 10003)"
            ): dm,
            await _delivered(storage, link, None): None,  # no notes: nothing to tell from
            await _delivered(storage, link, "uploaded 12 MB"): None,  # not the worker's words
            (await make_job(storage, estimate=10)).id or 0: None,  # not delivered
        }

    await asyncio.to_thread(command.downgrade, alembic_config(empty_url), "0001")
    async with Storage(empty_url) as storage, storage.engine.connect() as conn:
        columns = await conn.run_sync(lambda c: {col["name"] for col in sa.inspect(c).get_columns("jobs")})
    assert "delivered_via" not in columns
    assert "delivery_notes" in columns
    await upgrade_to_head(empty_url)

    async with Storage(empty_url) as storage:
        loaded = [await storage.get_job(job_id) for job_id in expected]
    found = {job.id: job.delivered_via for job in loaded if job is not None}
    assert found == expected
    assert all(via is None or type(via) is DeliveredVia for via in found.values())
    assert await _schema_diff(empty_url) == []


async def test_downgrade_to_nothing_and_back(empty_url: str) -> None:
    await upgrade_to_head(empty_url)
    await asyncio.to_thread(command.downgrade, alembic_config(empty_url), "base")
    async with Storage(empty_url) as storage, storage.engine.connect() as conn:
        tables = await conn.run_sync(lambda c: sa.inspect(c).get_table_names())
    assert set(tables) <= {"alembic_version"}
    await upgrade_to_head(empty_url)
    assert await _schema_diff(empty_url) == []


async def test_upgrade_does_not_block_the_event_loop(empty_url: str) -> None:
    """The bot awaits this from its running loop: other coroutines keep running meanwhile."""
    ticks = 0
    longest_gap = 0.0

    async def ticker() -> None:
        nonlocal ticks, longest_gap
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.005)
            now = time.monotonic()
            longest_gap = max(longest_gap, now - last)
            last = now
            ticks += 1

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    started = time.monotonic()
    await upgrade_to_head(empty_url)
    elapsed = time.monotonic() - started
    task.cancel()
    assert ticks >= 3, f"only {ticks} ticks in {elapsed:.2f}s"
    # A migration run on the loop would stall it for about the whole upgrade; in a thread, the loop only
    # waits its turn for the GIL and the CPU (longer on a busy machine, never most of the upgrade).
    assert longest_gap < max(0.5, elapsed * 0.75), (
        f"the loop stalled for {longest_gap:.2f}s of {elapsed:.2f}s"
    )


async def test_a_newcomers_first_start_creates_the_sqlite_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert DEFAULT_DATABASE_URL == "sqlite+aiosqlite:///data/kling-bot.db"
    async with Storage() as storage:
        await storage.migrate()
        assert (await storage.balance(1, 2)).available == 300
    assert (tmp_path / "data" / "kling-bot.db").is_file()


def test_migrating_twice_is_a_no_op(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/twice.db"
    migrate_in_thread(url)
    migrate_in_thread(url)


async def test_upgrade_dates_the_end_of_jobs_that_already_ended(empty_url: str) -> None:
    """0005 fills ``ended_at`` from ``updated_at`` for jobs in an ending state (when their row last
    changed), so retention counts from then; unfinished jobs get none; the new settings get defaults."""
    await upgrade_to_head(empty_url)
    clock = FakeClock()
    async with Storage(empty_url, clock=clock) as storage:
        cancelled = await make_job(storage, estimate=10)
        await storage.cancel(cancelled.id or 0, actor_id=None)
        ended_at = clock.current
        clock.advance(days=3)
        waiting = await make_job(storage, estimate=10)
    await asyncio.to_thread(command.downgrade, alembic_config(empty_url), "0004")
    await upgrade_to_head(empty_url)
    async with Storage(empty_url, clock=clock) as storage:
        ended = await storage.get_job(cancelled.id or 0)
        still = await storage.get_job(waiting.id or 0)
        settings = await storage.get_guild_settings(1)
    assert ended is not None
    assert still is not None
    assert (ended.ended_at, ended.erase_requested, ended.erased_at) == (ended_at, False, None)
    assert still.ended_at is None
    assert (settings.confirm_above_credits, settings.retention_days) == (200, 90)
    assert await _schema_diff(empty_url) == []


async def test_upgrade_dates_the_deliveries_made_before_delivered_at(empty_url: str) -> None:
    """Jobs delivered before ``delivered_at`` existed get the moment they were last touched."""
    await upgrade_to_head(empty_url)
    async with Storage(empty_url, clock=FakeClock()) as storage:
        await storage.grant(1, 10, 1000, actor_id=7)
        delivered = await _delivered(storage, DeliveredVia.ATTACHMENT, "attached")
        waiting = (await make_job(storage, estimate=10)).id or 0
        touched = (await storage.get_job(delivered)).updated_at  # type: ignore[union-attr]
    await asyncio.to_thread(command.downgrade, alembic_config(empty_url), "0005")
    await upgrade_to_head(empty_url)
    async with Storage(empty_url) as storage:
        assert (await storage.get_job(delivered)).delivered_at == touched  # type: ignore[union-attr]
        assert (await storage.get_job(waiting)).delivered_at is None  # type: ignore[union-attr]
    assert await _schema_diff(empty_url) == []
