"""Concurrent start-ups: five processes migrating one fresh database at the same moment all succeed.

Each process imports everything, says it is ready, and waits for a shared "go" file, so the five
migrations really start together (the race the advisory lock closes on PostgreSQL: without it, two
processes create the same table and one fails on ``pg_type_typname_nsp_index``). Also: ``alembic``
run by hand reads ``DATABASE_URL`` from ``.env`` like the bot does.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory

from storage import Storage
from storage.database import alembic_config
from tests.postgres import create_database, drop_database
from tests.storage.conftest import ENGINES

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = 5
_databases = itertools.count()

#: One start-up's migration, as the bot runs it (Storage.migrate), released by the "go" file.
CHILD = """
import asyncio, logging, pathlib, sys, time
from storage import Storage
logging.basicConfig(level=logging.INFO, format="%(name)s %(message)s")
url, ready, go = sys.argv[1], pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
ready.touch()
while not go.exists():
    time.sleep(0.005)

async def main() -> None:
    async with Storage(url) as storage:
        await storage.migrate()

asyncio.run(main())
"""


@pytest.fixture(params=ENGINES)
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/db/bot.db"
        return
    server: str = request.getfixturevalue("postgres_server")
    name = f"kling_lock_{os.getpid()}_{next(_databases)}"
    url = create_database(server, name)
    yield url
    drop_database(server, name)


def _head() -> str:
    head = ScriptDirectory.from_config(alembic_config("sqlite+aiosqlite://")).get_current_head()
    assert head is not None
    return head


async def _versions(url: str) -> list[str]:
    async with Storage(url) as storage, storage.engine.connect() as conn:
        rows = await conn.execute(sa.text("SELECT version_num FROM alembic_version"))
        return [row[0] for row in rows]


async def test_five_processes_migrating_at_once_all_come_up(fresh_url: str, tmp_path: Path) -> None:
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CHILD,
            fresh_url,
            str(tmp_path / f"ready-{n}"),
            str(go),
            cwd=tmp_path,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        for n in range(PROCESSES)
    ]
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"ready-{n}").exists() for n in range(PROCESSES)):
        assert time.monotonic() < deadline, "the migrating processes did not start"
        await asyncio.sleep(0.02)
    go.touch()
    outputs = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in processes)), 120)
    logs = [out.decode(errors="replace") for out, _ in outputs]
    assert [p.returncode for p in processes] == [0] * PROCESSES, "\n\n".join(logs)
    assert not any("Traceback" in log for log in logs), "\n\n".join(logs)
    assert await _versions(fresh_url) == [_head()]
    async with Storage(fresh_url) as storage:  # and the schema works
        assert (await storage.balance(1, 2)).available == 300


def test_alembic_by_hand_reads_database_url_from_dot_env(tmp_path: Path) -> None:
    """`alembic upgrade head` in the bot's folder migrates the database named in .env, not the default."""
    target = tmp_path / "from-dotenv.db"
    (tmp_path / ".env").write_text(f"DATABASE_URL=sqlite+aiosqlite:///{target}\n", encoding="utf-8")
    # No PYTHONPATH: alembic.ini puts the repository on sys.path itself, from any folder.
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "PYTHONPATH"}}
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "alembic", "-c", str(ROOT / "alembic.ini"), "upgrade", "head"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert target.is_file()
    assert not (tmp_path / "data").exists()  # the default SQLite file was not created
    assert asyncio.run(_versions(f"sqlite+aiosqlite:///{target}")) == [_head()]
