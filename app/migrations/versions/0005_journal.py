"""The event journal, players' profiles, and each account's running figure of qualifying points.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "event_journal",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("event_id", sa.String(), nullable=False),
        sa.Column("player_id", sa.String(), nullable=False),
        sa.Column("type", sa.String(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("properties", sa.Text(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("program_version", sa.String(), nullable=False),
        sa.Column("unlock_keys", sa.Text(), nullable=False),
        sa.Column("digest", sa.String(), nullable=False),
        sa.UniqueConstraint("player_id", "event_id", name="uq_event_journal_player_id_event_id"),
    )
    op.create_index("ix_event_journal_occurred_at", "event_journal", ["occurred_at"])
    op.create_table(
        "player_profile",
        sa.Column("player_id", sa.String(), primary_key=True),
        sa.Column("timezone", sa.String(), nullable=True),
        sa.Column("attributes", sa.Text(), nullable=True),
    )
    # Existing accounts start with no running figure: the first grant counts it
    # from the ledger (qualifying_since NULL).
    with op.batch_alter_table("points_account") as table:
        table.add_column(sa.Column("qualifying", sa.Integer(), nullable=False, server_default="0"))
        table.add_column(sa.Column("qualifying_since", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("points_account") as table:
        table.drop_column("qualifying_since")
        table.drop_column("qualifying")
    op.drop_table("player_profile")
    op.drop_index("ix_event_journal_occurred_at", table_name="event_journal")
    op.drop_table("event_journal")
