"""Alembic environment: async engines, SQLite batch mode, models as the target metadata.

The URL comes from, in order: the ``url`` attribute set by :func:`storage.database.alembic_config`
(how the bot migrates itself), ``-x url=...`` on the command line, then ``DATABASE_URL`` read as the
bot reads it (the environment, then ``.env`` in the current folder), and finally the SQLite default.
On PostgreSQL the migration transaction holds an advisory lock (:func:`storage.database.hold_migration_lock`),
so processes started together migrate one after another. A caller may also hand over an open synchronous connection in the ``connection``
attribute (tests use this to migrate inside their own transaction).
"""

from __future__ import annotations

import asyncio
from logging.config import fileConfig
from typing import Any, Literal

from alembic import context
from sqlalchemy.engine import Connection

from config import DatabaseSettings
from storage.database import create_engine, hold_migration_lock
from storage.models import EnumText, UTCDateTime, metadata

config = context.config

if config.config_file_name is not None and not config.attributes.get("url"):
    # Only when run from the command line with alembic.ini: the bot configures its own logging.
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _url() -> str:
    url = config.attributes.get("url") or context.get_x_argument(as_dictionary=True).get("url")
    # Read like the bot reads it (environment, then .env in the current folder, then the default), so a
    # manual `alembic upgrade head` migrates the database the bot uses, not a stray default SQLite file.
    return str(url or DatabaseSettings().database_url)


def _render_item(type_: str, obj: Any, autogen_context: Any) -> str | Literal[False]:
    """Render our aware-UTC type as the plain column type it is, so scripts never import storage."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if type_ == "type" and isinstance(obj, EnumText):
        return f"sa.String(length={obj.impl.length})"
    return False


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        # Our SQLite connections run real transactions (BEGIN IMMEDIATE), so DDL is transactional.
        transactional_ddl=True,
        compare_type=True,
        render_item=_render_item,
    )


def _run_sync(connection: Connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        hold_migration_lock(connection)  # PostgreSQL: one process migrates at a time
        context.run_migrations()


async def _run_async(url: str) -> None:
    # Foreign keys off on SQLite: batch mode copies tables, which enforcement would get in the way of.
    engine = create_engine(url, foreign_keys=False, null_pool=True)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run_sync)
    finally:
        await engine.dispose()


def run_migrations_offline() -> None:
    """Emit SQL to stdout instead of running it (``alembic upgrade head --sql``)."""
    context.configure(
        url=_url(),
        target_metadata=metadata,
        literal_binds=True,
        render_as_batch=_url().startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_sync(connection)
    else:
        asyncio.run(_run_async(_url()))


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
