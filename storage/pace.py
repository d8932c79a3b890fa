"""The provider's call schedule, shared by every process of a deployment (PostgreSQL).

``PROVIDER_MAX_RPS`` is the provider account's budget, whatever the number of bot processes. The
schedule is one row, ``provider_pace``: the start of the next free call slot. A process reserves the
next ``count`` slots in one statement (``next_at = max(next_at, now) + count * interval``) and learns
when the first of them starts; slots are ``interval`` apart for the whole deployment, so no one-second
window holds more than the budget, however the processes come and go.

Why a schedule in the database and not shares of the rate handed to the live processes (through a
heartbeat table): shares must be re-read by everyone when a process joins, and until they are the
newcomer's share comes on top of the old ones; a process of a deployment of N at ``rate / N`` may still
start ``ceil(rate / N)`` calls in a second, together more than the budget; and a dead process's share
comes back only when its heartbeat expires. With one schedule nobody holds a share: a process reserves
only what it is about to use (at most half a second of slots at a time), so a dead one leaves at most
that unused, and its budget is everyone's again at once. It costs one short ``UPDATE`` on one row per
batch of calls, a few per second.

Times are the database's own clock (``clock_timestamp()``), so processes on hosts whose clocks differ
still share one schedule; the caller gets a delay, not a time. On SQLite there is one process and the
bot paces itself in memory (:class:`ulazai.ratelimit.RateLimiter`).
"""

from __future__ import annotations

from typing import Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection

#: The one schedule (the provider account of the deployment).
PROVIDER_KEY: Final = "ulazai"

_RESERVE = sa.text(
    """
    INSERT INTO provider_pace (key, next_at)
    VALUES (:key, clock_timestamp() + make_interval(secs => :span))
    ON CONFLICT (key) DO UPDATE
        SET next_at = GREATEST(provider_pace.next_at, clock_timestamp()) + make_interval(secs => :span)
    RETURNING EXTRACT(EPOCH FROM (provider_pace.next_at - clock_timestamp())) - :span
    """
)


def reserve(connection: Connection, request: tuple[int, float]) -> float:
    """Reserve the next ``count`` slots, ``interval`` seconds apart (``request``); returns the seconds
    until the first one starts (zero or less: now). Synchronous, for
    :func:`storage.database.run_on_connection`; PostgreSQL only."""
    count, interval = request
    with connection.begin():
        delay = connection.execute(
            _RESERVE, {"key": PROVIDER_KEY, "span": float(count * interval)}
        ).scalar_one()
    return float(delay)
