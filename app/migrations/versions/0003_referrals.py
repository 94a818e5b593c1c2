"""Referrals: each player's code, each referee's referral, and when a player's
first referral-qualifying event arrived.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("points_account") as table:
        table.add_column(
            sa.Column("first_qualifying_at", sa.DateTime(timezone=True), nullable=True)
        )
    op.create_table(
        "referral_code",
        sa.Column("player_id", sa.String(), primary_key=True),
        sa.Column("code", sa.String(), nullable=False),
        sa.UniqueConstraint("code", name="uq_referral_code_code"),
    )
    op.create_table(
        "referral",
        sa.Column("referee_id", sa.String(), primary_key=True),
        sa.Column("referrer_id", sa.String(), nullable=False),
        sa.Column("code", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=True),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("qualified_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index(
        "ix_referral_referrer_id_status", "referral", ["referrer_id", "status", "qualified_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_referral_referrer_id_status", table_name="referral")
    op.drop_table("referral")
    op.drop_table("referral_code")
    with op.batch_alter_table("points_account") as table:
        table.drop_column("first_qualifying_at")
