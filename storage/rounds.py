"""The fair queue's rounds (start-time fair queueing with unit costs; see :mod:`storage.scheduling`).

Every job gets a round when it is created, ``max(queue's current round, member's next round)``, and
moves its member's next round one past it (the reservation does both, in its debit of the member's
account: :mod:`storage.accounts`). The queue serves the lowest round first and, when it hands a job out,
moves its current round up to that job's. The current round is kept in ``bot_state``.
"""

from __future__ import annotations

from typing import Final

import sqlalchemy as sa
from sqlmodel import col

from storage.models import BotState

#: Where the queue's current round is kept.
ROUND_KEY: Final = "fair_queue_round"

#: The queue's current round, inside a statement (0 before the first job was ever handed out).
CURRENT_ROUND: Final = sa.func.coalesce(
    sa.select(sa.cast(col(BotState.value), sa.Integer))
    .where(col(BotState.key) == ROUND_KEY)
    .scalar_subquery(),
    0,
)
