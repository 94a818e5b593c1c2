"""What every SQL module of the service shares: the database, errors, upserts, transactions.

The durable records (history, ledger, referrals, redemptions, analytics, the
event journal) live in SQLite by default and in PostgreSQL in production.
The functions that use them are synchronous on a plain SQLAlchemy engine and
the async service runs them on worker threads: an async engine would need
aiosqlite for the default database, and a thread keeps one code path for both
databases and for the CLI. Driver errors are translated into `DatabaseError`
here and never leak further.
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import fields
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import (
    BigInteger,
    Connection,
    DateTime,
    Dialect,
    Engine,
    Integer,
    Row,
    Table,
    TypeDecorator,
    create_engine,
    event,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.sql import Executable, Select
from sqlmodel import Field, SQLModel

from engine.errors import ConfigurationError, StoreError
from engine.extras import extra
from engine.urls import redacted

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

#: How long a SQLite connection waits for another one's write lock.
SQLITE_BUSY_MS = 10_000
#: Rows per IN list, well under any database's limit of bound parameters.
CHUNK = 1000
_SUPPORTED = (
    "use sqlite:///path/to/file.db or postgresql+psycopg://user:password@host/database "
    "(QUESTLINE_DATABASE_URL)"
)

Upsert = postgresql.Insert | sqlite.Insert
T = TypeVar("T")
Record = TypeVar("Record", bound="DataclassInstance")

#: SQLAlchemy's Engine, the history database's pool of connections: called a
#: database here, since the engine is the rules engine (engine.engine.Engine).
Database = Engine


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


def table(model: type[SQLModel]) -> Table:
    return SQLModel.metadata.tables[str(model.__tablename__)]


def make_database(database_url: str, timeout: float | None = None) -> Database:
    """The history database's pool; nothing connects until first use.

    `postgresql://` and `postgres://` are read as psycopg 3, the driver of the
    `postgres` extra (`pip install 'questline[postgres]'`), imported only here.
    PostgreSQL's pool keeps 20 connections open: with SQLAlchemy's default of
    5, a burst of readers on worker threads opened and closed dozens of
    connections a second (overflow is closed when returned). `timeout`
    (seconds; the service's QUESTLINE_DATABASE_TIMEOUT, none for migrations)
    bounds connecting, waiting for a pooled connection and each statement on
    PostgreSQL.
    """
    try:
        url = make_url(database_url)
    except ArgumentError:
        raise ConfigurationError(
            f"database URL {redacted(database_url)!r} cannot be parsed; {_SUPPORTED}"
        ) from None
    backend = url.get_backend_name()
    if backend == "sqlite":
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _configure_sqlite)
        return engine
    if backend in ("postgresql", "postgres"):
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+psycopg")
        pool: dict[str, Any] = {"pool_pre_ping": True, "pool_size": 20, "max_overflow": 20}
        if timeout is not None:
            pool["pool_timeout"] = timeout
            pool["connect_args"] = {
                "connect_timeout": max(1, math.ceil(timeout)),
                "options": f"-c statement_timeout={int(timeout * 1000)}",
            }
        with extra("postgres", ("psycopg",), f"the database {redacted(database_url)}"):
            return create_engine(url, **pool)
    raise ConfigurationError(f"database {backend!r} is not supported; {_SUPPORTED}")


def _configure_sqlite(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    """Wait for the write lock instead of failing, and let readers run beside a writer.

    WAL mode is stored in the file, so only the first connections to a new
    database switch it; that switch needs a moment alone with the file and
    SQLite reports "database is locked" without waiting for the busy timeout,
    hence the short retry.
    """
    dbapi_connection.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_MS}")
    deadline = time.monotonic() + SQLITE_BUSY_MS / 1000
    while True:
        try:
            dbapi_connection.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def count_work(
    database: Database, statement: Callable[[], object], commit: Callable[[], object]
) -> None:
    """Call `statement` for every statement sent to the database and `commit`
    for every commit: the figures behind `sql_statements_per_event`."""
    event.listen(database, "before_cursor_execute", lambda *_args: statement())
    event.listen(database, "commit", lambda *_args: commit())


def row_as(kind: type[Record], row: Row[Any], /, **converted: object) -> Record:
    """A dataclass of `kind` from the row's columns of the same names;
    `converted` gives the fields whose column needs converting or is named
    otherwise."""
    columns = row._mapping
    return kind(
        **{
            f.name: converted[f.name] if f.name in converted else columns[f.name]
            for f in fields(kind)
        }
    )


def scan(database: Database, page_after: Callable[[str], Select[Any]], page: int) -> Iterator[str]:
    """Every key a keyset query finds, `page` at a time: `page_after(after)`
    selects the keys after `after` in order. Each page is read in a short
    transaction of its own, so the caller may write between keys."""
    after = ""
    while True:
        with translated_errors(database), database.connect() as connection:
            found = list(connection.execute(page_after(after).limit(page)).scalars())
        yield from found
        if len(found) < page:
            return
        after = found[-1]


@contextmanager
def translated_errors(database: Database) -> Iterator[None]:
    """Turn driver and pool failures into `DatabaseError` that say what to do."""
    try:
        yield
    except (DBAPIError, PoolTimeoutError) as error:
        where = redacted(database.url.render_as_string(hide_password=False))
        original = getattr(error, "orig", None) or error
        if _is_missing_table(original):
            # Permanent until an operator acts: not STORE_UNAVAILABLE, which clients retry.
            raise ConfigurationError(
                f"the database {where} has no Questline tables: run `questline db upgrade`"
            ) from error
        raise DatabaseError(f"the database {where} is unavailable: {original}") from error


def _is_missing_table(error: BaseException) -> bool:
    # sqlite3 has no error code for it; PostgreSQL's is SQLSTATE 42P01 (undefined_table).
    return "no such table" in str(error) or getattr(error, "sqlstate", None) == "42P01"


@contextmanager
def writing(database: Database) -> Iterator[Connection]:
    """A write transaction; on SQLite it takes the write lock at once, so two
    writers never both read and then fail to upgrade their lock."""
    with translated_errors(database), database.begin() as connection:
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        yield connection


def upsert(connection: Connection, target: Table) -> Upsert:
    """INSERT ... ON CONFLICT for the connection's database."""
    if connection.dialect.name == "postgresql":
        return postgresql.insert(target)
    return sqlite.insert(target)


def per_database(
    build: Callable[[Callable[[Table], Upsert]], Executable],
) -> Callable[[Connection], Executable]:
    """An INSERT ... ON CONFLICT built once for each database, not on every call:
    building a statement and its cache key was ~40% of granting's time."""
    built = {"postgresql": build(postgresql.insert), "sqlite": build(sqlite.insert)}
    return lambda connection: built[
        "postgresql" if connection.dialect.name == "postgresql" else "sqlite"
    ]


def chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    """Slices of `CHUNK` items: a batch's IN list may be longer than a database accepts."""
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def ping_database(database: Database) -> None:
    """Raise `DatabaseError` unless the database answers; for readiness checks."""
    with translated_errors(database), database.connect() as connection:
        connection.execute(text("SELECT 1"))
