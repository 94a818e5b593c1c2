"""Analytics: the days each player was active and the challenge instances each
player started; every challenge instance already completed counts as started.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

#: Completed instances copied per INSERT.
_CHUNK = 1000


def upgrade() -> None:
    op.create_table(
        "player_activity",
        sa.Column("player_id", sa.String(), primary_key=True),
        sa.Column("day", sa.Date(), primary_key=True),
    )
    op.create_index("ix_player_activity_day_player_id", "player_activity", ["day", "player_id"])
    attempts = op.create_table(
        "challenge_attempt",
        sa.Column("challenge_id", sa.String(), primary_key=True),
        sa.Column("unlock_key", sa.String(), primary_key=True),
        sa.Column("player_id", sa.String(), primary_key=True),
    )
    assert attempts is not None
    unlocks = sa.table("unlock_record", sa.column("key"), sa.column("player_id"), sa.column("kind"))
    completed = op.get_bind().execute(
        sa.select(unlocks.c.key, unlocks.c.player_id).where(unlocks.c.kind == "CHALLENGE")
    )
    while rows := completed.fetchmany(_CHUNK):
        # Unlock keys are challenge:<id> (a window) or challenge:<id>:<period key>.
        op.bulk_insert(
            attempts,
            [
                {"challenge_id": key.split(":")[1], "unlock_key": key, "player_id": player_id}
                for key, player_id in rows
            ],
        )


def downgrade() -> None:
    op.drop_table("challenge_attempt")
    op.drop_index("ix_player_activity_day_player_id", table_name="player_activity")
    op.drop_table("player_activity")
