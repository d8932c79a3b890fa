"""Alembic environment: async engines, SQLite batch mode, models as the target metadata.

The URL comes from, in order: the ``url`` attribute set by :func:`storage.database.alembic_config`
(how the bot migrates itself), ``-x url=...`` on the command line, ``DATABASE_URL``, and finally the
SQLite default. A caller may also hand over an open synchronous connection in the ``connection``
attribute (tests use this to migrate inside their own transaction).
"""

from __future__ import annotations

import asyncio
import os
from logging.config import fileConfig
from typing import Any, Literal

from alembic import context
from sqlalchemy.engine import Connection

from storage.database import DEFAULT_DATABASE_URL, create_engine
from storage.models import EnumText, UTCDateTime, metadata

config = context.config

if config.config_file_name is not None and not config.attributes.get("url"):
    # Only when run from the command line with alembic.ini: the bot configures its own logging.
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _url() -> str:
    url = config.attributes.get("url") or context.get_x_argument(as_dictionary=True).get("url")
    return str(url or os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL)


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
