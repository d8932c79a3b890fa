"""Copy the bot's data into a new database: ``python -m storage.copy SRC_URL DST_URL``.

For moving from SQLite to PostgreSQL (or between any two databases the bot runs on), with the bot
stopped. What it does, and why:

* **SRC must be at this code's head revision** (start the bot on it once, or ``alembic upgrade
  head``), so both sides have the same columns; it is only read, never migrated.
* **DST is migrated to head first** (its schema comes from the migrations, exactly as the bot makes
  it) and must hold no rows: copying into a database in use would mix two ledgers.
* **Every table, parents first** (the models' foreign-key order), in batches of ``--batch`` rows by
  primary key, through the models' column types (aware UTC datetimes, JSON, job states), in **one
  transaction** on DST: it is all copied or nothing is. SRC is read in one transaction too, so the
  copy is a consistent snapshot (``BEGIN IMMEDIATE`` on SQLite; ``REPEATABLE READ`` on PostgreSQL).
* **PostgreSQL's id sequences** are moved past the copied ids, so the next job or ledger row the bot
  inserts does not collide with a copied one.
* **Verified before commit**: the row count of every table, and per member the ledger's sums (every
  delta and amount, and the entry count) and the account's balance columns, must equal SRC's;
  otherwise the transaction is rolled back and the command exits 1.

Exit status 0 when copied and verified, 2 when refused before anything was copied (bad arguments,
SRC not at head, DST not empty), 1 when the copy failed. URLs are never printed with their password.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import make_url
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from storage.database import alembic_config, create_engine, sqlite_file, upgrade_to_head
from storage.models import LedgerEntry, MemberAccount, metadata, table

BATCH = 1000
EXIT_FAILED = 1
EXIT_REFUSED = 2


class CopyRefused(Exception):
    """Nothing was copied; ``str()`` is the one line saying why."""


class CopyFailed(Exception):
    """The copy was rolled back; ``str()`` is the one line saying why."""


@dataclass(frozen=True, slots=True)
class CopyReport:
    """What was copied: rows per table (in copy order) and the members whose ledgers were compared."""

    rows: dict[str, int]
    members: int


def normalize_url(url: str) -> str:
    """Accept the URLs operators paste (``postgres://``, ``postgresql://``, ``sqlite:///``) and use the
    async drivers the bot runs on."""
    url = url.strip()
    for plain in ("postgres://", "postgresql://"):
        if url.startswith(plain):
            return "postgresql+asyncpg://" + url.removeprefix(plain)
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url.removeprefix("sqlite:///")
    return url


def safe(url: str) -> str:
    """``url`` for printing: the password hidden."""
    return make_url(url).render_as_string(hide_password=True)


def _head() -> str:
    head = ScriptDirectory.from_config(alembic_config("sqlite+aiosqlite://")).get_current_head()
    if head is None:  # pragma: no cover - the repository always has migrations
        raise CopyRefused("no migrations found")
    return head


def _revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def _counts(conn: AsyncConnection, names: Sequence[str] | None = None) -> dict[str, int]:
    """Rows per table (every model table, or those of ``names`` that exist)."""
    counts: dict[str, int] = {}
    for t in metadata.sorted_tables:
        if names is None or t.name in names:
            counts[t.name] = (await conn.execute(sa.select(sa.func.count()).select_from(t))).scalar_one()
    return counts


async def _member_sums(conn: AsyncConnection) -> dict[tuple[int, int], tuple[int, ...]]:
    """Per member: the ledger's entry count and sums, then the account's balance columns."""
    ledger, accounts = table(LedgerEntry), table(MemberAccount)
    sums: dict[tuple[int, int], tuple[int, ...]] = {}
    rows = await conn.execute(
        sa.select(
            ledger.c.guild_id,
            ledger.c.user_id,
            sa.func.count(),
            sa.func.sum(ledger.c.amount),
            sa.func.sum(ledger.c.allowance_delta),
            sa.func.sum(ledger.c.bonus_delta),
            sa.func.sum(ledger.c.reserved_delta),
        ).group_by(ledger.c.guild_id, ledger.c.user_id)
    )
    for guild_id, user_id, *figures in rows:
        sums[(guild_id, user_id)] = tuple(int(f or 0) for f in figures)
    balances = await conn.execute(
        sa.select(
            accounts.c.guild_id,
            accounts.c.user_id,
            accounts.c.allowance_credits,
            accounts.c.bonus_credits,
            accounts.c.reserved_credits,
            accounts.c.allowance_granted,
            accounts.c.active_jobs,
        )
    )
    for guild_id, user_id, *figures in balances:
        sums[(guild_id, user_id)] = sums.get((guild_id, user_id), (0, 0, 0, 0, 0)) + tuple(figures)
    return sums


async def _check_source(src: AsyncConnection, url: str) -> None:
    revision = await src.run_sync(_revision)
    if revision is None:
        raise CopyRefused(f"{safe(url)} has no migrated bot schema (no alembic_version): nothing to copy")
    if revision != _head():
        raise CopyRefused(
            f"{safe(url)} is at revision {revision}, this code at {_head()}: start the bot on it once "
            "(or run alembic upgrade head) before copying"
        )


async def _refuse_unless_empty(engine: AsyncEngine, url: str) -> None:
    async with engine.connect() as conn:
        present = await conn.run_sync(lambda c: sa.inspect(c).get_table_names())
        counts = await _counts(conn, present)
    full = {name: n for name, n in counts.items() if n}
    if full:
        listed = ", ".join(f"{n} in {name}" for name, n in full.items())
        raise CopyRefused(f"{safe(url)} already holds rows ({listed}): copy only into an empty database")


async def _copy_table(src: AsyncConnection, dst: AsyncConnection, t: sa.Table, batch: int) -> int:
    """Every row of ``t``, ``batch`` at a time in primary-key order (keyset pagination)."""
    key = list(t.primary_key.columns)
    copied = 0
    last: tuple[Any, ...] | None = None
    while True:
        query = sa.select(t).order_by(*key).limit(batch)
        if last is not None:
            after = sa.tuple_(*(sa.bindparam(None, v, type_=c.type) for c, v in zip(key, last, strict=True)))
            query = query.where(sa.tuple_(*key) > after)
        rows = (await src.execute(query)).mappings().all()
        if not rows:
            return copied
        await dst.execute(t.insert(), [dict(row) for row in rows])
        copied += len(rows)
        last = tuple(rows[-1][c.name] for c in key)


async def _move_sequences(dst: AsyncConnection) -> None:
    """PostgreSQL: each serial id's sequence continues after the largest copied id."""
    if dst.dialect.name != "postgresql":
        return
    for t in metadata.sorted_tables:
        auto = t.autoincrement_column
        if auto is None:
            continue
        sequence = sa.func.pg_get_serial_sequence(t.name, auto.name)
        after_last = sa.func.coalesce(sa.func.max(auto), 0) + 1
        await dst.execute(sa.select(sa.func.setval(sequence, after_last, False)).select_from(t))


async def copy_database(src_url: str, dst_url: str, *, batch: int = BATCH) -> CopyReport:
    """Copy everything from ``src_url`` into the empty ``dst_url`` (see the module docstring)."""
    src_url, dst_url = normalize_url(src_url), normalize_url(dst_url)
    if make_url(src_url) == make_url(dst_url):
        raise CopyRefused("SRC_URL and DST_URL are the same database")
    if batch < 1:
        raise CopyRefused("--batch must be at least 1")
    source_file = sqlite_file(src_url)
    if source_file is not None and not source_file.is_file():
        raise CopyRefused(f"{source_file} does not exist")
    src_engine, dst_engine = create_engine(src_url), create_engine(dst_url)
    try:
        async with src_engine.connect() as probe:
            await _check_source(probe, src_url)
        await _refuse_unless_empty(dst_engine, dst_url)
        await upgrade_to_head(dst_url)
        await _refuse_unless_empty(dst_engine, dst_url)
        async with src_engine.connect() as src_conn:
            if src_engine.dialect.name == "postgresql":  # one snapshot for every table
                await src_conn.execution_options(isolation_level="REPEATABLE READ")
            async with src_conn.begin(), dst_engine.begin() as dst:
                return await _copy_all(src_conn, dst, batch)
    finally:
        await src_engine.dispose()
        await dst_engine.dispose()


async def _copy_all(src: AsyncConnection, dst: AsyncConnection, batch: int) -> CopyReport:
    """Copy, then verify, inside the two open transactions (a :class:`CopyFailed` rolls DST back)."""
    rows = {t.name: await _copy_table(src, dst, t, batch) for t in metadata.sorted_tables}
    await _move_sequences(dst)
    expected, copied = await _counts(src), await _counts(dst)
    if copied != expected:
        raise CopyFailed(f"row counts differ after copying (source {expected}, copy {copied})")
    source_sums, copy_sums = await _member_sums(src), await _member_sums(dst)
    if copy_sums != source_sums:
        differ = sorted(
            k for k in source_sums.keys() | copy_sums.keys() if source_sums.get(k) != copy_sums.get(k)
        )
        raise CopyFailed(
            f"ledger sums differ after copying for {len(differ)} member(s), the first (guild, user) {differ[0]}"
        )
    return CopyReport(rows=rows, members=len(source_sums))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m storage.copy",
        description="Copy the bot's data into a new, empty database (stop the bot first).",
    )
    parser.add_argument(
        "src_url", metavar="SRC_URL", help="the database to copy, e.g. sqlite:///data/kling-bot.db"
    )
    parser.add_argument(
        "dst_url",
        metavar="DST_URL",
        help="the empty database to fill, e.g. postgresql://user:password@host/kling",
    )
    parser.add_argument("--batch", type=int, default=BATCH, help=f"rows per insert (default {BATCH})")
    args = parser.parse_args(argv)
    try:
        report = asyncio.run(copy_database(args.src_url, args.dst_url, batch=args.batch))
    except CopyRefused as error:
        print(f"Not copied: {error}.", file=sys.stderr)
        return EXIT_REFUSED
    except (CopyFailed, sa.exc.SQLAlchemyError, OSError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        print(f"Copy failed, nothing was committed: {reason}", file=sys.stderr)
        return EXIT_FAILED
    for name, count in report.rows.items():
        print(f"{name}: {count:,} row(s)")
    print(
        f"Copied {sum(report.rows.values()):,} rows into {safe(normalize_url(args.dst_url))}; row counts and "
        f"ledger sums of {report.members:,} member(s) verified."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
