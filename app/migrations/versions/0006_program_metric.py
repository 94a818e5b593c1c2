"""Which metrics each program version counted the journal's events in (backfill).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision: str | None = "0005"
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
