"""A throw-away PostgreSQL server for tests and benchmarks.

:func:`temporary_cluster` runs ``initdb`` into a temporary directory, starts the server with
``pg_ctl`` on 127.0.0.1 and a free port (unix sockets in the same directory, ``fsync=off`` for
speed), yields a URL to its ``postgres`` database, and stops and deletes everything afterwards.
When running as root (CI containers), the cluster runs as the ``postgres`` user, since ``initdb``
refuses root.

The binaries are looked up in ``$KLING_PG_BINDIR``, then ``/usr/lib/postgresql/*/bin`` (Debian's
layout, newest first), then ``PATH``. ``scripts/ensure-postgres.sh`` installs them when missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import make_url

SERVER_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",
    "shared_buffers": "64MB",
}


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server could be had (binaries missing, or the server would not start)."""


def find_bindir() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``, or ``None``."""
    configured = os.environ.get("KLING_PG_BINDIR")
    if configured and (Path(configured) / "initdb").exists():
        return Path(configured)

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", path.parent.name))

    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: version(p.parent), reverse=True
    )
    if debian:
        return debian[0].parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _run(command: list[str], *, as_user: str | None) -> None:
    if as_user is not None:
        command = ["runuser", "-u", as_user, "--", *command]
    result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        raise PostgresUnavailable(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")


@contextlib.contextmanager
def temporary_cluster() -> Iterator[str]:
    """Start a private PostgreSQL server; yield ``postgresql+asyncpg://postgres@127.0.0.1:PORT/postgres``."""
    bindir = find_bindir()
    if bindir is None:
        raise PostgresUnavailable(
            "PostgreSQL binaries not found (run scripts/ensure-postgres.sh, or set KLING_PG_BINDIR "
            "or KLING_TEST_POSTGRES_URL)"
        )
    as_user: str | None = None
    root = Path(tempfile.mkdtemp(prefix="kling-pg-"))
    if os.geteuid() == 0:
        as_user = "postgres"
        try:
            entry = pwd.getpwnam(as_user)
        except KeyError as error:
            shutil.rmtree(root, ignore_errors=True)
            raise PostgresUnavailable("running as root and there is no 'postgres' user") from error
        os.chown(root, entry.pw_uid, entry.pw_gid)
    data = root / "data"
    log_file = root / "server.log"
    started = False
    try:
        _run(
            [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
             "--no-locale", "--no-sync"],
            as_user=as_user,
        )  # fmt: skip
        options = " ".join(f"-c {key}={value}" for key, value in SERVER_SETTINGS.items())
        last_error: PostgresUnavailable | None = None
        for _attempt in range(3):  # the free port can be taken between probing and binding
            port = _free_port()
            try:
                _run(
                    [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log_file), "-w", "-t", "60",
                     "-o", f"-h 127.0.0.1 -p {port} -k {root} {options}", "start"],
                    as_user=as_user,
                )  # fmt: skip
            except PostgresUnavailable as error:
                last_error = error
                continue
            started = True
            break
        if not started:
            log_text = log_file.read_text(errors="replace") if log_file.exists() else ""
            raise PostgresUnavailable(f"PostgreSQL did not start: {last_error}\n{log_text}")
        yield f"postgresql+asyncpg://postgres@127.0.0.1:{port}/postgres"
    finally:
        if started:
            with contextlib.suppress(PostgresUnavailable):
                _run(
                    [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                    as_user=as_user,
                )
        shutil.rmtree(root, ignore_errors=True)


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _run_sql(url: str, *statements: str) -> None:
    async def go() -> None:
        # Retry briefly: right after start-up the server may still refuse connections.
        deadline = time.monotonic() + 10
        while True:
            try:
                connection = await asyncpg.connect(_asyncpg_dsn(url))
                break
            except (OSError, asyncpg.CannotConnectNowError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
        try:
            for statement in statements:
                await connection.execute(statement)
        finally:
            await connection.close()

    # In a worker thread with its own loop, so this works whether or not the caller runs one.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, go()).result()


def normalize_url(url: str) -> str:
    """Accept ``postgresql://`` or ``postgres://`` URLs and use the asyncpg driver."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def create_database(server_url: str, name: str) -> str:
    """Create a fresh, empty database ``name`` on the server of ``server_url``; return its URL."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise ValueError(f"unsafe database name {name!r}")
    _run_sql(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')
    return make_url(normalize_url(server_url)).set(database=name).render_as_string(hide_password=False)


def drop_database(server_url: str, name: str) -> None:
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise ValueError(f"unsafe database name {name!r}")
    _run_sql(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
