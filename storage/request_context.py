"""What a new request reads before anything is reserved: the server's settings, the member's ban and
whether the provider line is paused, in one read-only transaction of three statements.

Every ``/video`` request needs all three before its reservation (the settings for its checks, the ban
to refuse a banned member, the pause for the receipt's note). Read one by one they were three units of
work, each its own connection checkout, greenlet and commit, on the bot's hottest path; one burst of
50 requests paid 150 of them. A server never seen before has no settings row yet: ``settings`` is then
``None`` and :meth:`storage.Storage.request_context` stores the defaults in a unit of work of its own
(once per server).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from storage.guilds import SELECT_SETTINGS
from storage.models import ACCOUNT_ROW, Ban, GuildSettings, table
from storage.provider_account import ACCOUNT

BANS = table(Ban)
SELECT_BAN = sa.select(BANS).where(BANS.c.guild_id == sa.bindparam("g"), BANS.c.user_id == sa.bindparam("u"))
SELECT_PAUSED = sa.select(ACCOUNT.c.paused).where(ACCOUNT.c.id == ACCOUNT_ROW)


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
    """The three rows for ``who`` (guild id, user id) in one read-only transaction; synchronous, for
    :func:`storage.database.run_on_connection`."""
    guild_id, user_id = who
    with connection.begin():
        settings = connection.execute(SELECT_SETTINGS, {"g": guild_id}).mappings().one_or_none()
        ban = connection.execute(SELECT_BAN, {"g": guild_id, "u": user_id}).mappings().one_or_none()
        paused = connection.execute(SELECT_PAUSED).scalar_one_or_none()
    return Rows(
        None if settings is None else dict(settings), None if ban is None else dict(ban), bool(paused)
    )
