"""Issue 15 (scale out): ``jobs.posted_deleted_at`` and ``member_accounts.fair_round``.

* ``jobs.posted_deleted_at``: when a posted video was deleted with its button. Until now a deleted
  video left its job pointing at a message that no longer exists, and ``/video jobs`` linked to it.
  Existing rows stay ``NULL`` (unknown: nothing recorded a deletion before).
* ``member_accounts.fair_round`` and ``jobs.fair_round``: the fair queue's rounds (:mod:`storage.rounds`),
  with an index the queue is read by; existing members and jobs start at round 0, the first.
* ``provider_pace``: the provider's call schedule shared by the processes of a deployment
  (:mod:`storage.pace`); empty until the first call.
* ``jobs.polled_at`` (the last status answer that said "not yet"): the worker learns from a server's
  finished jobs when similar ones complete (:mod:`ulazai.completion`), read along issue 12's index on
  server, model, duration and completion time. Jobs finished before have no ``polled_at``: their completion time is read
  as the moment the bot saw it.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("posted_deleted_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("polled_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("fair_round", sa.Integer(), server_default="0", nullable=False))
        batch_op.create_index("ix_jobs_state_fair_round_id", ["state", "fair_round", "id"], unique=False)
    with op.batch_alter_table("member_accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fair_round", sa.Integer(), server_default="0", nullable=False))
    op.create_table(
        "provider_pace",
        sa.Column("key", sa.String(length=32), nullable=False),
        sa.Column("next_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_provider_pace")),
    )


def downgrade() -> None:
    op.drop_table("provider_pace")
    with op.batch_alter_table("member_accounts", schema=None) as batch_op:
        batch_op.drop_column("fair_round")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_state_fair_round_id")
        batch_op.drop_column("fair_round")
        batch_op.drop_column("polled_at")
        batch_op.drop_column("posted_deleted_at")
