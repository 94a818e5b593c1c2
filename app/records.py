"""Durable history in SQL: every unlock a player earned, kept beyond the counter store.

The counter store (Redis or embedded SQLite) decides and claims unlocks; this
module keeps a copy that survives a Redis flush and feeds `Player.unlocks`.
Copying is idempotent on (player_id, key), the unlock's identity, so a copy that
is retried after a crash, or done by two workers at once, still records each
unlock exactly once.

SQLite is the default, PostgreSQL the production database. The functions are
synchronous on a plain SQLAlchemy engine, and the async service calls them with
`anyio.to_thread.run_sync` (or `asyncio.to_thread`): an async engine would need
aiosqlite for the default database, these calls are short single statements,
and a thread keeps one code path for both databases and for the CLI. Driver
errors are translated into `DatabaseError` here and never leak further.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Dialect,
    Engine,
    Index,
    Integer,
    Text,
    TypeDecorator,
    UniqueConstraint,
    create_engine,
    event,
    func,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlmodel import Field, Session, SQLModel, col, select

from engine.errors import ConfigurationError, StoreError

# How long a SQLite connection waits for another one's write lock.
_SQLITE_BUSY_MS = 10_000
_SUPPORTED = (
    "use sqlite:///path/to/file.db or postgresql+psycopg://user:password@host/database "
    "(QUESTLINE_DATABASE_URL)"
)


class DatabaseError(StoreError):
    """The history database failed; same code as the counter store (STORE_UNAVAILABLE)."""


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on every database.

    SQLite has no time zone type and would hand back naive values; storing UTC
    and re-attaching it keeps both databases returning the same thing.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"a naive datetime cannot be stored: {value!r}; attach a time zone")
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def record_id() -> Any:
    """An autoincrement primary key: BIGINT on PostgreSQL; on SQLite only
    INTEGER PRIMARY KEY is an auto-incremented rowid."""
    return Field(
        default=None, primary_key=True, sa_type=BigInteger().with_variant(Integer(), "sqlite")
    )


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


def make_engine(database_url: str) -> Engine:
    """An engine for the history database; nothing connects until first use.

    `postgresql://` and `postgres://` are read as psycopg 3, the driver we ship.
    """
    try:
        url = make_url(database_url)
    except ArgumentError:
        raise ConfigurationError(
            f"database URL {database_url!r} cannot be parsed; {_SUPPORTED}"
        ) from None
    backend = url.get_backend_name()
    if backend == "sqlite":
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _configure_sqlite)
        return engine
    if backend in ("postgresql", "postgres"):
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+psycopg")
        return create_engine(url, pool_pre_ping=True)
    raise ConfigurationError(f"database {backend!r} is not supported; {_SUPPORTED}")


def _configure_sqlite(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    """Wait for the write lock instead of failing, and let readers run beside a writer.

    WAL mode is stored in the file, so only the first connections to a new
    database switch it; that switch needs a moment alone with the file and
    SQLite reports "database is locked" without waiting for the busy timeout,
    hence the short retry.
    """
    dbapi_connection.execute(f"PRAGMA busy_timeout = {_SQLITE_BUSY_MS}")
    deadline = time.monotonic() + _SQLITE_BUSY_MS / 1000
    while True:
        try:
            dbapi_connection.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


@contextmanager
def translated_errors(engine: Engine) -> Iterator[None]:
    """Turn driver and pool failures into `DatabaseError` that say what to do."""
    try:
        yield
    except (DBAPIError, PoolTimeoutError) as error:
        where = engine.url.render_as_string(hide_password=True)
        original = getattr(error, "orig", None) or error
        if _is_missing_table(original):
            message = f"the database {where} has no Questline tables: run `questline db upgrade`"
        else:
            message = f"the database {where} is unavailable: {original}"
        raise DatabaseError(message) from error


def _is_missing_table(error: BaseException) -> bool:
    # sqlite3 has no error code for it; PostgreSQL's is SQLSTATE 42P01 (undefined_table).
    return "no such table" in str(error) or getattr(error, "sqlstate", None) == "42P01"


def save_unlocks(engine: Engine, unlocks: Sequence[UnlockData]) -> int:
    """Copy unlocks into history; an unlock already there is skipped. Returns how many were new."""
    if not unlocks:
        return 0
    table = UnlockRecord.metadata.tables[UnlockRecord.__tablename__]
    insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
    statement = (
        insert(table)
        .on_conflict_do_nothing(index_elements=["player_id", "key"])
        .returning(table.c.id)
    )
    rows = [dataclasses.asdict(unlock) for unlock in unlocks]
    with translated_errors(engine), engine.begin() as connection:
        return len(connection.execute(statement, rows).all())


def list_unlocks(
    engine: Engine, player_id: str, after: int | None, limit: int
) -> list[UnlockRecord]:
    """A player's unlocks in the order they were recorded, strictly after record id `after`."""
    if limit < 0:
        raise ValueError(f"limit must not be negative, got {limit}")
    statement = select(UnlockRecord).where(UnlockRecord.player_id == player_id)
    if after is not None:
        statement = statement.where(col(UnlockRecord.id) > after)
    statement = statement.order_by(col(UnlockRecord.id)).limit(limit)
    with translated_errors(engine), Session(engine) as session:
        return list(session.exec(statement).all())


def count_unlocks(engine: Engine, player_id: str) -> int:
    statement = (
        select(func.count()).select_from(UnlockRecord).where(UnlockRecord.player_id == player_id)
    )
    with translated_errors(engine), Session(engine) as session:
        return session.exec(statement).one()


def ping_database(engine: Engine) -> None:
    """Raise `DatabaseError` unless the database answers; for readiness checks."""
    with translated_errors(engine), engine.connect() as connection:
        connection.execute(text("SELECT 1"))
