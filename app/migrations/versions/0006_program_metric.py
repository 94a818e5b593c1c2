"""Which metrics each program version counted the journal's events in (backfill).

Revision ID: 0006
Revises: 0007

0006 was set aside for the designer tools, but the webhooks' 0007 landed
first, on 0005: this one follows it, so the history stays one line.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "program_metric",
        sa.Column("version", sa.String(), primary_key=True),
        sa.Column("metric_id", sa.String(), primary_key=True),
    )


def downgrade() -> None:
    op.drop_table("program_metric")
