"""Storage fixtures: every test that takes ``storage`` runs on SQLite and on PostgreSQL.

Both engines start from a schema made by the real migrations, once per session: SQLite tests get a
copy of a migrated template file, PostgreSQL tests share one migrated database, emptied with
``TRUNCATE`` before each test (much faster than a database per test).
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from storage import Storage
from storage.database import create_engine
from storage.models import metadata
from tests.storage.helpers import SCRATCH, FakeClock, migrate_in_thread

ENGINES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    migrate_in_thread(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_migrated(postgres_url: str) -> str:
    migrate_in_thread(postgres_url)
    return postgres_url


@pytest.fixture(params=ENGINES)
def engine_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def migrated_url(engine_name: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated database (not emptied: PostgreSQL may hold other tests' rows)."""
    if engine_name == "sqlite":
        path = tmp_path / "bot.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite+aiosqlite:///{path}"
    url: str = request.getfixturevalue("postgres_migrated")
    return url


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def storage(migrated_url: str, engine_name: str, clock: FakeClock) -> AsyncIterator[Storage]:
    """A :class:`Storage` on an empty, migrated database with a fake clock."""
    opened = Storage(migrated_url, clock=clock, pool_size=None if engine_name == "sqlite" else 20)
    if engine_name == "postgres":
        names = ", ".join(t.name for t in metadata.sorted_tables)
        async with opened.engine.begin() as conn:
            await conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def scratch_path(sqlite_template: Path, tmp_path: Path) -> Path:
    """A migrated SQLite file of its own, for tests of the SQLite driver."""
    path = tmp_path / "scratch.db"
    shutil.copyfile(sqlite_template, path)
    return path


@pytest.fixture
async def scratch_engine(scratch_path: Path) -> AsyncIterator[AsyncEngine]:
    """The bot's engine on ``scratch_path``, with a ``scratch`` table of notes (helpers.SCRATCH)."""
    engine = create_engine(f"sqlite+aiosqlite:///{scratch_path}")
    async with engine.begin() as conn:
        await conn.execute(SCRATCH)
    try:
        yield engine
    finally:
        await engine.dispose()
