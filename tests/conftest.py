"""Fixtures shared by the whole suite: a PostgreSQL server for the tests that need one, and a check that
no test leaves anything running.

``postgres_url`` (session) is the URL of a fresh, empty database. It comes from
``KLING_TEST_POSTGRES_URL`` (an existing server you can create databases on) or, by default, from
a throw-away cluster started in a temporary directory (see :mod:`tests.postgres`). When no server
can be had, the tests that need one are skipped locally - and fail under ``CI=true``, so CI can never
go green without running them.

``no_leftovers`` (autouse) fails a test that leaves tasks, threads or database connections behind,
naming them (see :mod:`tests.leftovers`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Iterator
from typing import NoReturn

import pytest

from tests import leftovers
from tests.postgres import (
    PostgresUnavailable,
    create_database,
    drop_database,
    normalize_url,
    temporary_cluster,
)

leftovers.install()


@pytest.fixture(autouse=True)
async def no_leftovers() -> AsyncIterator[None]:
    """Runs in the test's event loop and is torn down after every other function-scoped fixture."""
    untrack = leftovers.track_tasks(asyncio.get_running_loop())
    before = leftovers.snapshot()
    yield
    try:
        problems = await leftovers.check(before)
    finally:
        untrack()
    if problems:
        pytest.fail(leftovers.report(problems), pytrace=False)


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"PostgreSQL is required under CI=true: {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL unavailable: {reason}")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """URL of a PostgreSQL server's maintenance database (whoever uses it creates its own databases)."""
    external = os.environ.get("KLING_TEST_POSTGRES_URL")
    if external:
        yield normalize_url(external)
        return
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(temporary_cluster())
        except PostgresUnavailable as error:
            _unavailable(str(error))
        yield url


@pytest.fixture(scope="session")
def postgres_url(postgres_server: str) -> Iterator[str]:
    """URL of a fresh, empty database on the test server, dropped at the end of the session."""
    name = f"kling_test_{os.getpid()}"
    try:
        url = create_database(postgres_server, name)
    except Exception as error:  # any failure here means "no PostgreSQL"
        _unavailable(f"cannot create a database: {error}")
    yield url
    with contextlib.suppress(Exception):
        drop_database(postgres_server, name)
