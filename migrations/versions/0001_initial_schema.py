"""Initial schema: guild settings, member accounts, jobs, the credit ledger and bot state.

Revision ID: 0001
Revises:
Create Date: 2026-11-21 13:54:41.627594
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "bot_state",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_bot_state")),
    )
    op.create_table(
        "guild_settings",
        sa.Column("guild_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("allowed_channel_ids", sa.JSON(), nullable=False),
        sa.Column("review_channel_id", sa.BigInteger(), nullable=True),
        sa.Column("audit_channel_id", sa.BigInteger(), nullable=True),
        sa.Column("blocklist_terms", sa.JSON(), nullable=False),
        sa.Column("default_model", sa.String(length=16), nullable=False),
        sa.Column("allowance_credits", sa.Integer(), nullable=False),
        sa.Column("allowance_period", sa.String(length=16), nullable=False),
        sa.Column("role_allowances", sa.JSON(), nullable=False),
        sa.Column("directory_discount", sa.Boolean(), nullable=False),
        sa.Column("max_active_jobs", sa.Integer(), nullable=False),
        sa.Column("budget_credits", sa.Integer(), nullable=True),
        sa.Column("budget_period", sa.String(length=16), nullable=False),
        sa.Column("budget_period_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("budget_spent", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("guild_id", name=op.f("pk_guild_settings")),
    )
    op.create_table(
        "member_accounts",
        sa.Column("guild_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("allowance_granted", sa.Integer(), nullable=False),
        sa.Column("allowance_credits", sa.Integer(), nullable=False),
        sa.Column("bonus_credits", sa.Integer(), nullable=False),
        sa.Column("reserved_credits", sa.Integer(), nullable=False),
        sa.Column("active_jobs", sa.Integer(), nullable=False),
        sa.Column("last_moved", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("active_jobs >= 0", name=op.f("ck_member_accounts_active_jobs_not_negative")),
        sa.CheckConstraint("allowance_credits >= 0", name=op.f("ck_member_accounts_allowance_not_negative")),
        sa.CheckConstraint("bonus_credits >= 0", name=op.f("ck_member_accounts_bonus_not_negative")),
        sa.CheckConstraint("reserved_credits >= 0", name=op.f("ck_member_accounts_reserved_not_negative")),
        sa.ForeignKeyConstraint(
            ["guild_id"], ["guild_settings.guild_id"], name=op.f("fk_member_accounts_guild_id_guild_settings")
        ),
        sa.PrimaryKeyConstraint("guild_id", "user_id", name=op.f("pk_member_accounts")),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("interaction_id", sa.BigInteger(), nullable=False),
        sa.Column("guild_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("channel_id", sa.BigInteger(), nullable=False),
        sa.Column("status_message_id", sa.BigInteger(), nullable=True),
        sa.Column("review_message_id", sa.BigInteger(), nullable=True),
        sa.Column("posted_message_id", sa.BigInteger(), nullable=True),
        sa.Column("reviewed_by", sa.BigInteger(), nullable=True),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("model", sa.String(length=16), nullable=False),
        sa.Column("mode", sa.String(length=32), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("duration", sa.Integer(), nullable=False),
        sa.Column("quality", sa.String(length=16), nullable=True),
        sa.Column("aspect_ratio", sa.String(length=16), nullable=True),
        sa.Column("sound", sa.Boolean(), nullable=False),
        sa.Column("multi_shot", sa.Boolean(), nullable=False),
        sa.Column("directory_optin", sa.Boolean(), nullable=False),
        sa.Column("image_urls", sa.JSON(), nullable=False),
        sa.Column("start_frame_url", sa.Text(), nullable=True),
        sa.Column("end_frame_url", sa.Text(), nullable=True),
        sa.Column("estimate_credits", sa.Integer(), nullable=False),
        sa.Column("hold_allowance", sa.Integer(), nullable=False),
        sa.Column("hold_bonus", sa.Integer(), nullable=False),
        sa.Column("spent_allowance", sa.Integer(), nullable=False),
        sa.Column("spent_bonus", sa.Integer(), nullable=False),
        sa.Column("credit_period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("shortfall_credits", sa.Integer(), nullable=False),
        sa.Column("budget_period_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("budget_counted", sa.Integer(), nullable=False),
        sa.Column("provider_task_id", sa.String(length=128), nullable=True),
        sa.Column("credits_used", sa.Integer(), nullable=True),
        sa.Column("credits_charged", sa.Integer(), nullable=True),
        sa.Column("eta_low_seconds", sa.Integer(), nullable=True),
        sa.Column("eta_high_seconds", sa.Integer(), nullable=True),
        sa.Column("progress", sa.Integer(), nullable=True),
        sa.Column("video_url", sa.Text(), nullable=True),
        sa.Column("delivery_notes", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("lease_owner", sa.String(length=128), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["guild_id", "user_id"],
            ["member_accounts.guild_id", "member_accounts.user_id"],
            name=op.f("fk_jobs_guild_id_user_id_member_accounts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
        sa.UniqueConstraint("interaction_id", name=op.f("uq_jobs_interaction_id")),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index("ix_jobs_guild_id_user_id_id", ["guild_id", "user_id", "id"], unique=False)
        batch_op.create_index("ix_jobs_state_next_attempt_at", ["state", "next_attempt_at"], unique=False)

    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("guild_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("actor_id", sa.BigInteger(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("allowance_delta", sa.Integer(), nullable=False),
        sa.Column("bonus_delta", sa.Integer(), nullable=False),
        sa.Column("reserved_delta", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["guild_id", "user_id"],
            ["member_accounts.guild_id", "member_accounts.user_id"],
            name=op.f("fk_ledger_entries_guild_id_user_id_member_accounts"),
        ),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_ledger_entries_job_id_jobs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_entries")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_ledger_entries_idempotency_key")),
    )
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_ledger_entries_guild_id_user_id_id", ["guild_id", "user_id", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_ledger_entries_guild_id_user_id_id")

    op.drop_table("ledger_entries")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_state_next_attempt_at")
        batch_op.drop_index("ix_jobs_guild_id_user_id_id")

    op.drop_table("jobs")
    op.drop_table("member_accounts")
    op.drop_table("guild_settings")
    op.drop_table("bot_state")
