"""What a new request reads before anything is reserved: the server's settings, the member's ban and
whether the provider line is paused, in one statement.

Every ``/video`` request needs all three before its reservation (the settings for its checks, the ban
to refuse a banned member, the pause for the receipt's note). Read one by one they were three units of
work, each its own connection checkout, greenlet and commit, on the bot's hottest path; one burst of
50 requests paid 150 of them. Then one unit of work of three statements; now one statement (the
settings row and the ban joined to the asked-for server, the pause as a scalar subquery).
A server never seen before has no settings row yet: ``settings`` is then ``None`` and
:meth:`storage.Storage.request_context` stores the defaults in a unit of work of its own (once per
server).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from storage.guilds import GUILDS
from storage.models import ACCOUNT_ROW, Ban, GuildSettings, table
from storage.provider_account import ACCOUNT

BANS = table(Ban)
_ASKED = sa.select(sa.bindparam("g", type_=sa.BigInteger).label("guild_id")).subquery("asked")
_BAN_PREFIX = "ban_"
#: The settings row (``NULL`` columns for a server never seen), the ban's columns prefixed ``ban_``
#: (``NULL`` when not banned) and ``paused``, as one row, for guild ``g`` and user ``u``.
SELECT_CONTEXT = sa.select(
    *GUILDS.c,
    *(column.label(_BAN_PREFIX + column.name) for column in BANS.c),
    sa.select(ACCOUNT.c.paused).where(ACCOUNT.c.id == ACCOUNT_ROW).scalar_subquery().label("paused"),
).select_from(
    _ASKED.outerjoin(GUILDS, GUILDS.c.guild_id == _ASKED.c.guild_id).outerjoin(
        BANS, sa.and_(BANS.c.guild_id == _ASKED.c.guild_id, BANS.c.user_id == sa.bindparam("u"))
    )
)


@dataclass(frozen=True, slots=True)
class RequestContext:
    """The server's settings, the member's ban (``None``: not banned) and the provider line's pause."""

    settings: GuildSettings
    ban: Ban | None
    paused: bool


@dataclass(frozen=True, slots=True)
class Rows:
    """The raw rows :func:`read` found (``settings``: ``None`` for a server never seen)."""

    settings: dict[str, Any] | None
    ban: dict[str, Any] | None
    paused: bool


def read(connection: Connection, who: tuple[int, int]) -> Rows:
    """The three rows for ``who`` (guild id, user id) in one statement, its own transaction;
    synchronous, for :func:`storage.database.run_on_connection`."""
    guild_id, user_id = who
    with connection.begin():
        row = connection.execute(SELECT_CONTEXT, {"g": guild_id, "u": user_id}).mappings().one()
    settings = {column.name: row[column.name] for column in GUILDS.c}
    ban = {column.name: row[_BAN_PREFIX + column.name] for column in BANS.c}
    return Rows(
        None if settings["guild_id"] is None else settings,
        None if ban["user_id"] is None else ban,
        bool(row["paused"]),
    )
