"""The operator's cockpit (issue 14): bans, the provider account's shared pause, low-balance alerts.

``bans`` holds the members an admin stopped from making videos in a server. ``provider_account`` is
one row (created on first use, not here, so a freshly migrated database stays empty for
``python -m storage.copy``) that every process reads: whether submissions are paused after a 401/402,
when the last probe went, the balance the provider last reported. Guild settings get the alert
threshold (0: off), whether its line was written for the current crossing, and which pause the
server's audit log was told of. Jobs get ``delivered_at`` (filled from ``updated_at`` for the jobs
delivered before, the moment they were last touched).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "bans",
        sa.Column("guild_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("banned_by", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["guild_id"], ["guild_settings.guild_id"], name=op.f("fk_bans_guild_id_guild_settings")
        ),
        sa.PrimaryKeyConstraint("guild_id", "user_id", name=op.f("pk_bans")),
    )
    op.create_table(
        "provider_account",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_probe_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("credits_remaining", sa.Integer(), nullable=True),
        sa.Column("credits_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_account")),
    )
    with op.batch_alter_table("guild_settings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("credits_alert", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(
            sa.Column("credits_alert_sent", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("pause_notified_at", sa.DateTime(timezone=True), nullable=True))
    # The defaults filled the existing rows; the models give every new row its values.
    with op.batch_alter_table("guild_settings", schema=None) as batch_op:
        batch_op.alter_column("credits_alert", server_default=None)
        batch_op.alter_column("credits_alert_sent", server_default=None)
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True))
    # A job delivered before this column existed was last touched when it was delivered.
    jobs = sa.table(
        "jobs",
        sa.column("state", sa.String(20)),
        sa.column("updated_at", sa.DateTime(timezone=True)),
        sa.column("delivered_at", sa.DateTime(timezone=True)),
    )
    op.execute(jobs.update().where(jobs.c.state == "delivered").values(delivered_at=jobs.c.updated_at))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("delivered_at")
    with op.batch_alter_table("guild_settings", schema=None) as batch_op:
        batch_op.drop_column("pause_notified_at")
        batch_op.drop_column("credits_alert_sent")
        batch_op.drop_column("credits_alert")
    op.drop_table("provider_account")
    op.drop_table("bans")
