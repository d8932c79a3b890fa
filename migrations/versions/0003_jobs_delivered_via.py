"""Record how each video was delivered (attachment, link, direct message) in ``jobs.delivered_via``.

Until now only the free-text ``delivery_notes`` said it, as the worker wrote them: "attached",
"posted as a link: <why>" or "sent by direct message: <why>". Delivered rows get the column filled
from those words, read the way the bot read them (any note mentioning a direct message was one);
a row whose notes say none of these is left ``NULL`` (unknown).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

jobs = sa.table("jobs", sa.column("delivery_notes", sa.Text()), sa.column("delivered_via", sa.String(16)))


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("delivered_via", sa.String(length=16), nullable=True))
    notes = jobs.c.delivery_notes
    op.execute(
        jobs.update()
        .where(notes.is_not(None))
        .values(
            delivered_via=sa.case(
                (notes.contains("direct message"), "direct_message"),
                (notes == "attached", "attachment"),
                (notes.startswith("posted as a link"), "link"),
                else_=sa.null(),
            )
        )
    )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("delivered_via")
