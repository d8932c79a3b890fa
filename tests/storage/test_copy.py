"""``python -m storage.copy``: a SQLite database with real data (made through the Storage facade)
copied into PostgreSQL and into another SQLite file, everything equal afterwards, and the copy keeps
working as the bot's database. Refusals: a destination with rows, a source not at head."""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from storage import DeliveredVia, JobState, Storage
from storage import copy as storage_copy
from storage.copy import CopyFailed, CopyRefused, copy_database, normalize_url
from storage.models import metadata
from tests.postgres import create_database, drop_database
from tests.storage.conftest import ENGINES
from tests.storage.helpers import FakeClock, check_ledger, claim, make_job, migrate_in_thread

ROOT = Path(__file__).resolve().parents[2]
_databases = itertools.count()


@pytest.fixture(params=ENGINES)
def destination(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A brand-new, empty database: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/copy/bot.db"
        return
    server: str = request.getfixturevalue("postgres_server")
    name = f"kling_copy_{os.getpid()}_{next(_databases)}"
    url = create_database(server, name)
    yield url
    drop_database(server, name)


async def fill(url: str, clock: FakeClock) -> None:
    """A little of everything: two servers, settings, grants, jobs in several states, refunds, state."""
    async with Storage(url, clock=clock) as storage:
        await storage.migrate()
        await storage.update_guild_settings(1, allowance_credits=400, budget_credits=5000)
        await storage.update_guild_settings(2, allowance_credits=150)
        await storage.set_role_allowance(1, 77, 900)
        for user in range(10, 16):
            await storage.grant(1, user, 50 * user, actor_id=7, reason="welcome")
        await storage.grant(2, 10, 25, actor_id=8)
        jobs = [await make_job(storage, user_id=user, estimate=20 + user) for user in range(10, 16)]
        jobs.append(await make_job(storage, guild_id=2, user_id=10, estimate=60))
        claimed = await claim(storage, "w", limit=4)
        assert len(claimed) == 4
        for job in claimed[:3]:
            await storage.mark_submitting(job.id or 0, owner="w")
        done, failed, lost = claimed[:3]
        await storage.mark_processing(
            done.id or 0, owner="w", task_id="t-1", credits_used=done.estimate_credits
        )
        await storage.mark_completed(done.id or 0, owner="w", video_url="https://v.example/1.mp4")
        await storage.mark_delivered(
            done.id or 0, owner="w", message_id=123456789012345678, via=DeliveredVia.ATTACHMENT
        )
        await storage.fail(failed.id or 0, owner="w", reason="provider said no")
        await storage.mark_lost(lost.id or 0, owner="w", reason="timed out")
        clock.advance(timedelta(days=8))  # a new week: allowances expire and refill
        await storage.balance(1, 10)
        await storage.cancel(jobs[-2].id or 0, actor_id=15, reason="changed my mind")
        await storage.set_bot_state("command_tree_hash", "abc123")
        await check_ledger(storage)


async def snapshot(url: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table, through the models' types, ordered by primary key."""
    async with Storage(url) as storage, storage.engine.connect() as conn:
        rows = {}
        for t in metadata.sorted_tables:
            result = await conn.execute(sa.select(t).order_by(*t.primary_key.columns))
            rows[t.name] = [dict(row) for row in result.mappings()]
        return rows


async def test_copy_sqlite_into_each_engine_keeps_every_row(destination: str, tmp_path: Path) -> None:
    source = f"sqlite+aiosqlite:///{tmp_path}/source.db"
    clock = FakeClock()
    await fill(source, clock)

    report = await copy_database(source, destination, batch=3)  # small batches: many pages per table

    before, after = await snapshot(source), await snapshot(destination)
    assert after == before
    assert report.rows == {name: len(rows) for name, rows in before.items()}
    assert report.rows["ledger_entries"] > 3 * 3
    assert report.members == 7
    async with Storage(destination, clock=clock) as copy:
        await check_ledger(copy)
        # The copy is the bot's database from now on: new ids follow the copied ones.
        job = await make_job(copy, user_id=20, estimate=30)
        assert job.id == max(j["id"] for j in before["jobs"]) + 1
        await copy.grant(1, 20, 5, actor_id=7)
        assert (await copy.get_job(job.id or 0)) is not None
        await check_ledger(copy)
        states = {j["state"] for j in before["jobs"]}
        assert {JobState.DELIVERED, JobState.FAILED, JobState.LOST, JobState.CANCELLED} <= states


async def test_a_destination_with_rows_is_refused_and_left_alone(tmp_path: Path) -> None:
    source = f"sqlite+aiosqlite:///{tmp_path}/source.db"
    target = f"sqlite+aiosqlite:///{tmp_path}/target.db"
    await fill(source, FakeClock())
    async with Storage(target) as storage:
        await storage.migrate()
        await storage.grant(9, 9, 1, actor_id=1)
    before = await snapshot(target)
    with pytest.raises(CopyRefused, match="already holds rows"):
        await copy_database(source, target)
    assert await snapshot(target) == before


async def test_a_source_behind_head_is_refused(tmp_path: Path) -> None:
    source = f"sqlite+aiosqlite:///{tmp_path}/old.db"
    await asyncio.to_thread(migrate_in_thread, source, "0001")
    with pytest.raises(CopyRefused, match="is at revision 0001"):
        await copy_database(source, f"sqlite+aiosqlite:///{tmp_path}/new.db")
    with pytest.raises(CopyRefused, match="does not exist"):
        await copy_database(f"sqlite:///{tmp_path}/missing.db", f"sqlite:///{tmp_path}/new.db")
    with pytest.raises(CopyRefused, match="same database"):
        await copy_database(source, source)


def test_urls_as_operators_paste_them() -> None:
    assert normalize_url("postgres://u:p@h/db") == "postgresql+asyncpg://u:p@h/db"
    assert normalize_url("postgresql://u@h/db") == "postgresql+asyncpg://u@h/db"
    assert normalize_url("sqlite:///data/kling-bot.db") == "sqlite+aiosqlite:///data/kling-bot.db"
    assert normalize_url("sqlite+aiosqlite:///x.db") == "sqlite+aiosqlite:///x.db"


def _run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603
        [sys.executable, "-W", "error::RuntimeWarning", "-m", "storage.copy", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.postgres
def test_the_documented_command_copies_into_postgresql(tmp_path: Path, postgres_server: str) -> None:
    """``python -m storage.copy sqlite:///data/kling-bot.db postgresql://...`` as the README says."""
    (tmp_path / "data").mkdir()
    asyncio.run(fill(f"sqlite+aiosqlite:///{tmp_path}/data/kling-bot.db", FakeClock()))
    name = f"kling_copy_cli_{os.getpid()}"
    url = create_database(postgres_server, name)
    plain = url.replace("postgresql+asyncpg://", "postgresql://")
    try:
        result = _run_cli("sqlite:///data/kling-bot.db", plain, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.strip().splitlines()
        assert lines[-1].startswith("Copied ")
        assert "ledger sums of 7 member(s) verified" in lines[-1]
        assert any(line.startswith("ledger_entries: ") for line in lines)

        again = _run_cli("sqlite:///data/kling-bot.db", plain, cwd=tmp_path)
        assert again.returncode == 2
        (line,) = again.stderr.strip().splitlines()
        assert line.startswith("Not copied: ")
        assert "already holds rows" in line
    finally:
        drop_database(postgres_server, name)


@pytest.mark.parametrize(
    ("sabotage", "message"),
    [
        ("DELETE FROM ledger_entries WHERE id = (SELECT MAX(id) FROM ledger_entries)", "row counts differ"),
        ("UPDATE ledger_entries SET bonus_delta = bonus_delta + 1 WHERE id = 1", "ledger sums differ"),
        (
            "UPDATE member_accounts SET bonus_credits = bonus_credits + 1 WHERE user_id = 12",
            "ledger sums differ",
        ),
    ],
)
async def test_a_copy_that_does_not_verify_is_rolled_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sabotage: str, message: str
) -> None:
    """The checks are real: spoil the copy inside its transaction, and nothing is committed."""
    source = f"sqlite+aiosqlite:///{tmp_path}/source.db"
    target = f"sqlite+aiosqlite:///{tmp_path}/target.db"
    await fill(source, FakeClock())
    original = storage_copy._move_sequences

    async def spoil(dst: AsyncConnection) -> None:
        await original(dst)
        await dst.execute(sa.text(sabotage))

    monkeypatch.setattr(storage_copy, "_move_sequences", spoil)
    with pytest.raises(CopyFailed, match=message):
        await copy_database(source, target)
    assert all(rows == [] for rows in (await snapshot(target)).values())
