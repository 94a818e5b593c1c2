"""The event journal: every accepted event, kept in SQL with what it caused.

The counters in the store are a projection of the journal: `questline
rebuild` replays it into an empty store after Redis was lost, and designers'
tools read real history from it. A row is written in the group commit's
transaction (app.recording), with the unlocks, grants and activity of the
same event, so an acknowledged event is always in the journal.

An event's identity is (player, event id), as it is in the store, whose
duplicate check is per player: two players may use the same event id. A
duplicate is written again with ON CONFLICT DO NOTHING, which heals a
journal row that a crash between the store and the commit left out.

Players' profiles (timezone, attributes), which plan their events, are kept
beside it (`PlayerProfile`), written by `updatePlayer` before it answers, so
that a rebuild plans with them too.

Rows older than the retention (QUESTLINE_JOURNAL_RETENTION, by `occurred_at`)
are purged in small transactions by `purge`, so purging never holds the
write lock long enough to delay recording.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Index,
    Row,
    Text,
    UniqueConstraint,
    delete,
    func,
    select,
    tuple_,
)
from sqlmodel import Field, SQLModel

from app.sql import (
    Database,
    UTCDateTime,
    chunks,
    per_database,
    record_id,
    table,
    translated_errors,
    upsert,
    writing,
)
from engine.engine import Recorded
from engine.events import Event

#: Rows deleted per purge transaction.
PURGE_CHUNK = 1000
#: Rows read per page while replaying.
REPLAY_PAGE = 1000


class JournalEntry(SQLModel, table=True):
    """One accepted event; `id` is the order in which events were recorded."""

    __tablename__ = "event_journal"
    __table_args__ = (
        UniqueConstraint("player_id", "event_id", name="uq_event_journal_player_id_event_id"),
        Index("ix_event_journal_occurred_at", "occurred_at"),
    )

    id: int | None = record_id()
    event_id: str
    player_id: str
    type: str
    value: float
    occurred_at: datetime = Field(sa_type=UTCDateTime)
    properties: str = Field(sa_type=Text)
    recorded_at: datetime = Field(sa_type=UTCDateTime)
    program_version: str
    #: The unlock keys the event caused, as a JSON list.
    unlock_keys: str = Field(sa_type=Text)
    #: What the sender sent (`digest`): a resent id with another payload is refused.
    digest: str


class PlayerProfile(SQLModel, table=True):
    """A player's profile as last set; None: not set (the default applies)."""

    __tablename__ = "player_profile"

    player_id: str = Field(primary_key=True)
    timezone: str | None = None
    #: The audience attributes, as a JSON object.
    attributes: str | None = Field(default=None, sa_type=Text)


JOURNAL = table(JournalEntry)
PROFILES = table(PlayerProfile)
_APPEND = per_database(
    lambda insert: insert(JOURNAL).on_conflict_do_nothing(index_elements=["player_id", "event_id"])
)


@dataclass(frozen=True, slots=True)
class Journaled:
    """A journal row as replay reads it back."""

    id: int
    event: Event
    recorded_at: datetime
    program_version: str
    unlock_keys: list[str]


def digest(event: Event) -> str:
    """A fingerprint of an event as its sender sent it (type, value, occurredAt
    or none, properties), to tell a retry from a different event reusing an id."""
    sent = event.occurred_at.astimezone(UTC).isoformat() if event.occurred_at else None
    payload = [event.type, float(event.value), sent, event.properties]
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def row_of(recorded: Recorded, sent: Event) -> dict[str, object]:
    """The journal row of a recorded event (its checked form: `occurred_at` is
    set) and of the event as sent (its digest)."""
    event = recorded.event
    return {
        "event_id": event.id,
        "player_id": event.player_id,
        "type": event.type,
        "value": event.value,
        "occurred_at": event.occurred_at,
        "properties": json.dumps(event.properties, separators=(",", ":")),
        "recorded_at": recorded.recorded_at,
        "program_version": recorded.program_version,
        "unlock_keys": json.dumps([unlock.key for unlock in recorded.unlocks]),
        "digest": digest(sent),
    }


def append(connection: Connection, rows: Sequence[dict[str, object]]) -> None:
    """Journal recorded events; an event already there is skipped."""
    if rows:
        connection.execute(_APPEND(connection), rows)


def entries(
    database: Database,
    after: int = 0,
    page: int = REPLAY_PAGE,
    since: datetime | None = None,
    until: datetime | None = None,
    versions: Collection[str] | None = None,
) -> Iterator[Journaled]:
    """Every journal row in the order events were recorded, read a page at a
    time; with `since`/`until`, only events that occurred in [since, until);
    with `versions`, only those recorded under these program versions."""
    window = _window(since, until)
    if versions is not None:
        window.append(JOURNAL.c.program_version.in_(sorted(versions)))
    while True:
        with translated_errors(database), database.connect() as connection:
            rows = connection.execute(
                select(JOURNAL)
                .where(JOURNAL.c.id > after, *window)
                .order_by(JOURNAL.c.id)
                .limit(page)
            ).all()
        for row in rows:
            yield journaled(row)
        if len(rows) < page:
            return
        after = rows[-1].id


def journaled(row: Row[Any]) -> Journaled:
    """A journal row read back."""
    return Journaled(
        id=row.id,
        event=Event(
            id=row.event_id,
            player_id=row.player_id,
            type=row.type,
            value=row.value,
            occurred_at=row.occurred_at,
            properties=json.loads(row.properties),
        ),
        recorded_at=row.recorded_at,
        program_version=row.program_version,
        unlock_keys=json.loads(row.unlock_keys),
    )


def _window(since: datetime | None, until: datetime | None) -> list[ColumnElement[bool]]:
    conditions = []
    if since is not None:
        conditions.append(JOURNAL.c.occurred_at >= since)
    if until is not None:
        conditions.append(JOURNAL.c.occurred_at < until)
    return conditions


def caused(database: Database, player_id: str, unlock_key: str) -> Journaled | None:
    """The event of a player that caused an unlock, None when no journaled
    event did (a tier change, or an event past the retention)."""
    quoted = json.dumps(unlock_key)
    with translated_errors(database), database.connect() as connection:
        rows = connection.execute(
            select(JOURNAL)
            .where(
                JOURNAL.c.player_id == player_id,
                JOURNAL.c.unlock_keys.contains(quoted, autoescape=True),
            )
            .order_by(JOURNAL.c.id)
        ).all()
    return next((journaled(row) for row in rows if unlock_key in json.loads(row.unlock_keys)), None)


def latest(database: Database, player_id: str, types: Sequence[str], limit: int) -> list[Journaled]:
    """A player's last `limit` events of these types, newest first."""
    with translated_errors(database), database.connect() as connection:
        rows = connection.execute(
            select(JOURNAL)
            .where(JOURNAL.c.player_id == player_id, JOURNAL.c.type.in_(list(types)))
            .order_by(JOURNAL.c.id.desc())
            .limit(limit)
        ).all()
    return [journaled(row) for row in rows]


def digests(database: Database, events: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """The digests kept for these (player, event id), where the journal has them."""
    wanted = sorted(set(events))
    found: dict[tuple[str, str], str] = {}
    with translated_errors(database), database.connect() as connection:
        for part in chunks(wanted):
            found.update(
                ((row.player_id, row.event_id), row.digest)
                for row in connection.execute(
                    select(JOURNAL.c.player_id, JOURNAL.c.event_id, JOURNAL.c.digest).where(
                        tuple_(JOURNAL.c.player_id, JOURNAL.c.event_id).in_(part)
                    )
                )
            )
    return found


def count(database: Database, since: datetime | None = None, until: datetime | None = None) -> int:
    """Journaled events, or those that occurred in [since, until)."""
    with translated_errors(database), database.connect() as connection:
        return int(
            connection.execute(
                select(func.count()).select_from(JOURNAL).where(*_window(since, until))
            ).scalar_one()
        )


def versions(database: Database) -> dict[str, int]:
    """How many journaled events each program version recorded."""
    with translated_errors(database), database.connect() as connection:
        rows = connection.execute(
            select(JOURNAL.c.program_version, func.count()).group_by(JOURNAL.c.program_version)
        ).all()
    return {version: int(events) for version, events in rows}


def players(database: Database) -> list[str]:
    """Every player with a journaled event."""
    with translated_errors(database), database.connect() as connection:
        return list(
            connection.execute(
                select(JOURNAL.c.player_id).distinct().order_by(JOURNAL.c.player_id)
            ).scalars()
        )


def purge(database: Database, before: datetime, chunk: int = PURGE_CHUNK) -> int:
    """Delete rows of events that occurred before `before`, `chunk` rows per
    transaction; returns how many were deleted."""
    purged = 0
    oldest = select(JOURNAL.c.id).where(JOURNAL.c.occurred_at < before).limit(chunk)
    while True:
        with writing(database) as connection:
            ids = list(connection.execute(oldest).scalars())
            if ids:
                connection.execute(delete(JOURNAL).where(JOURNAL.c.id.in_(ids)))
        purged += len(ids)
        if len(ids) < chunk:
            return purged


def save_profile(
    database: Database, player_id: str, timezone: str | None, attributes: Mapping[str, Any] | None
) -> None:
    """Keep what `updatePlayer` set; a field not given keeps its value."""
    values: dict[str, object] = {}
    if timezone is not None:
        values["timezone"] = timezone
    if attributes is not None:
        values["attributes"] = json.dumps(dict(attributes))
    with writing(database) as connection:
        statement = upsert(connection, PROFILES).values(player_id=player_id, **values)
        connection.execute(
            statement.on_conflict_do_update(index_elements=["player_id"], set_=values)
            if values
            else statement.on_conflict_do_nothing()
        )


def profiles(database: Database) -> Iterator[tuple[str, str | None, dict[str, Any] | None]]:
    """Every kept profile: (player, timezone, attributes)."""
    with translated_errors(database), database.connect() as connection:
        rows = connection.execute(select(PROFILES).order_by(PROFILES.c.player_id)).all()
    for row in rows:
        yield (
            row.player_id,
            row.timezone,
            None if row.attributes is None else json.loads(row.attributes),
        )
