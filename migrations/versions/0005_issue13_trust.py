"""Price quotes before spending, and erasing members' words (issue 13).

* ``guild_settings.confirm_above_credits`` (default 200) and ``retention_days`` (default 90);
* ``jobs.ended_at`` (filled from ``updated_at`` for jobs already in an ending state: the last time
  those rows changed is when they ended), ``erase_requested`` and ``erased_at``, with an index on
  ``(erased_at, ended_at)`` for the retention's sweep;
* the ``quotes`` table.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ENDING_STATES = ("delivered", "failed", "rejected", "cancelled", "lost")

jobs = sa.table(
    "jobs",
    sa.column("state", sa.String(20)),
    sa.column("updated_at", sa.DateTime(timezone=True)),
    sa.column("ended_at", sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    with op.batch_alter_table("guild_settings", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("confirm_above_credits", sa.Integer(), nullable=False, server_default="200")
        )
        batch_op.add_column(sa.Column("retention_days", sa.Integer(), nullable=False, server_default="90"))
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("erase_requested", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_jobs_erased_at_ended_at", ["erased_at", "ended_at"], unique=False)
    op.execute(jobs.update().where(jobs.c.state.in_(ENDING_STATES)).values(ended_at=jobs.c.updated_at))
    op.create_table(
        "quotes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("interaction_id", sa.BigInteger(), nullable=False),
        sa.Column("guild_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("channel_id", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("estimate_credits", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quotes")),
        sa.UniqueConstraint("interaction_id", name=op.f("uq_quotes_interaction_id")),
    )
    with op.batch_alter_table("quotes", schema=None) as batch_op:
        batch_op.create_index("ix_quotes_guild_id_user_id", ["guild_id", "user_id"], unique=False)
        batch_op.create_index("ix_quotes_state_expires_at", ["state", "expires_at"], unique=False)


def downgrade() -> None:
    op.drop_table("quotes")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_erased_at_ended_at")
        batch_op.drop_column("erased_at")
        batch_op.drop_column("erase_requested")
        batch_op.drop_column("ended_at")
    with op.batch_alter_table("guild_settings", schema=None) as batch_op:
        batch_op.drop_column("retention_days")
        batch_op.drop_column("confirm_above_credits")
