"""Points: the ledger, each player's account (balance and tier), earn-rule cap
usage, redemptions and reward stock.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def _id() -> sa.Column[int]:
    # BIGINT on PostgreSQL; on SQLite only INTEGER PRIMARY KEY is an auto-incremented rowid.
    return sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    )


def upgrade() -> None:
    op.create_table(
        "points_ledger",
        _id(),
        sa.Column("player_id", sa.String(), nullable=False),
        sa.Column("delta", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("reference", sa.String(), nullable=False),
        sa.Column("note", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("player_id", "reason", "reference", name="uq_points_ledger_source"),
    )
    op.create_index("ix_points_ledger_player_id_id", "points_ledger", ["player_id", "id"])
    op.create_index(
        "ix_points_ledger_player_id_expires_at", "points_ledger", ["player_id", "expires_at"]
    )
    op.create_index(
        "ix_points_ledger_player_id_created_at", "points_ledger", ["player_id", "created_at"]
    )
    op.create_table(
        "points_account",
        sa.Column("player_id", sa.String(), primary_key=True),
        sa.Column("balance", sa.Integer(), nullable=False),
        sa.Column("lifetime_earned", sa.Integer(), nullable=False),
        sa.Column("debited", sa.Integer(), nullable=False),
        sa.Column("tier_id", sa.String(), nullable=True),
        sa.Column("tier_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("tier_unlock", sa.String(), nullable=True),
        sa.Column("reviewed", sa.String(), nullable=True),
    )
    op.create_table(
        "points_cap_usage",
        sa.Column("player_id", sa.String(), primary_key=True),
        sa.Column("bucket", sa.String(), primary_key=True),
        sa.Column("points", sa.Integer(), nullable=False),
    )
    op.create_table(
        "redemption",
        _id(),
        sa.Column("player_id", sa.String(), nullable=False),
        sa.Column("reward_id", sa.String(), nullable=False),
        sa.Column("cost", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint(
            "player_id", "idempotency_key", name="uq_redemption_player_id_idempotency_key"
        ),
    )
    op.create_index("ix_redemption_player_id_reward_id", "redemption", ["player_id", "reward_id"])
    op.create_table(
        "reward_stock",
        sa.Column("reward_id", sa.String(), primary_key=True),
        sa.Column("redeemed", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("reward_stock")
    op.drop_index("ix_redemption_player_id_reward_id", table_name="redemption")
    op.drop_table("redemption")
    op.drop_table("points_cap_usage")
    op.drop_table("points_account")
    for index in ("created_at", "expires_at", "id"):
        op.drop_index(f"ix_points_ledger_player_id_{index}", table_name="points_ledger")
    op.drop_table("points_ledger")
