"""Remember where a job came from (Continue, Remix, Animate with Kling), and index finished jobs for
the estimates of how long the next one takes.

``parent_job_id`` points at the job a Continue or Remix was made from (``NULL`` for every job made
before this revision, and for new requests); ``origin`` says how (``NULL``: a slash command). The new
index serves "this server's last few videos of this model and duration", read for every estimate.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parent_job_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("origin", sa.String(length=16), nullable=True))
        batch_op.create_foreign_key("fk_jobs_parent_job_id_jobs", "jobs", ["parent_job_id"], ["id"])
        batch_op.create_index(
            "ix_jobs_guild_id_model_duration_completed_at",
            ["guild_id", "model", "duration", "completed_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_guild_id_model_duration_completed_at")
        batch_op.drop_constraint("fk_jobs_parent_job_id_jobs", type_="foreignkey")
        batch_op.drop_column("origin")
        batch_op.drop_column("parent_job_id")
