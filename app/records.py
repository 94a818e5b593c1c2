"""Durable history in SQL: every unlock a player earned, kept beyond the counter store.

The counter store (Redis or embedded SQLite) decides and claims unlocks; this
module keeps a copy that survives a Redis flush and feeds `Player.unlocks`.
Copying is idempotent on (player_id, key), the unlock's identity, so a copy that
is retried after a crash, or done by two workers at once, still records each
unlock exactly once.

While events are recorded, unlocks are copied by the group commit
(app.recording) in the transaction of their burst; `save_unlocks` takes a
connection so that it can be one statement of that transaction, and it
returns the unlocks that were new, which that same transaction hands to
webhooks (app.webhooks.outbox).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Index, Text, UniqueConstraint, func
from sqlmodel import Field, Session, SQLModel, col, select

from app.sql import Database, UTCDateTime, per_database, record_id, table, translated_errors


class UnlockRecord(SQLModel, table=True):
    """One unlock a player earned; `id` is the paging cursor of a player's history."""

    __tablename__ = "unlock_record"
    __table_args__ = (
        UniqueConstraint("player_id", "key", name="uq_unlock_record_player_id_key"),
        Index("ix_unlock_record_player_id_id", "player_id", "id"),
    )

    id: int | None = record_id()
    key: str
    player_id: str
    kind: str
    title: str
    badge_id: str | None = None
    points: int | None = None
    unlocked_at: datetime = Field(sa_type=UTCDateTime)
    outbox_id: str
    payload: str = Field(sa_type=Text)


UNLOCKS = table(UnlockRecord)
_COPY = per_database(
    lambda insert: (
        insert(UNLOCKS)
        .on_conflict_do_nothing(index_elements=["player_id", "key"])
        .returning(UNLOCKS.c.player_id, UNLOCKS.c.key)
    )
)


@dataclass(frozen=True, slots=True)
class UnlockData:
    """An unlock to copy into history, as the service describes it from the outbox."""

    key: str
    player_id: str
    kind: str
    title: str
    badge_id: str | None
    points: int | None
    unlocked_at: datetime
    outbox_id: str
    payload: str

    def __post_init__(self) -> None:
        # Refused here rather than at INSERT, where it would read as a database failure.
        if self.unlocked_at.tzinfo is None:
            raise ValueError(f"unlocked_at must be timezone-aware, got {self.unlocked_at!r}")


_UNLOCK_COLUMNS = [f.name for f in dataclasses.fields(UnlockData)]


def save_unlocks(connection: Connection, unlocks: Sequence[UnlockData]) -> list[UnlockData]:
    """Copy unlocks into history; an unlock already there is skipped. Returns the
    new ones (what webhooks announce: app.webhooks.outbox)."""
    if not unlocks:
        return []
    # Shallow on purpose: dataclasses.asdict deep-copies, which cost more than the insert.
    rows = [{name: getattr(unlock, name) for name in _UNLOCK_COLUMNS} for unlock in unlocks]
    new = {(row.player_id, row.key) for row in connection.execute(_COPY(connection), rows)}
    copied = []
    for unlock in unlocks:
        identity = (unlock.player_id, unlock.key)
        if identity in new:
            new.discard(identity)  # the same unlock twice in one call is new once
            copied.append(unlock)
    return copied


def list_unlocks(
    database: Database, player_id: str, after: int | None, limit: int
) -> list[UnlockRecord]:
    """A player's unlocks in the order they were recorded, strictly after record id `after`."""
    if limit < 0:
        raise ValueError(f"limit must not be negative, got {limit}")
    statement = select(UnlockRecord).where(UnlockRecord.player_id == player_id)
    if after is not None:
        statement = statement.where(col(UnlockRecord.id) > after)
    statement = statement.order_by(col(UnlockRecord.id)).limit(limit)
    with translated_errors(database), Session(database) as session:
        return list(session.exec(statement).all())


def list_of_kind(database: Database, kind: str, after: int, limit: int) -> list[UnlockRecord]:
    """Every player's unlocks of one kind, in the order recorded, after record id `after`."""
    statement = (
        select(UnlockRecord)
        .where(UnlockRecord.kind == kind, col(UnlockRecord.id) > after)
        .order_by(col(UnlockRecord.id))
        .limit(limit)
    )
    with translated_errors(database), Session(database) as session:
        return list(session.exec(statement).all())


def counts_by_key(database: Database) -> dict[str, int]:
    """How many players hold each unlock key in history."""
    statement = select(UnlockRecord.key, func.count()).group_by(col(UnlockRecord.key))
    with translated_errors(database), Session(database) as session:
        return {key: count for key, count in session.exec(statement).all()}
