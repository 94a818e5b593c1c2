"""Schema migrations of the history database, configured in code (no alembic.ini).

`upgrade_database(url)` brings a database to the newest revision; it is what
`questline db upgrade` and the optional start-up migration call. Revisions live
in `versions/` inside the package, so an installed Questline carries them.

Several workers may start at once and each may migrate, so an upgrade runs in
one transaction that first takes a lock: a PostgreSQL advisory lock, or the
SQLite write lock (BEGIN IMMEDIATE). The second upgrader waits, then finds the
database at head and does nothing. Both databases have transactional DDL, so a
failed upgrade leaves the schema as it was.

To write a new revision against a database at head:

    from alembic import command
    from app.migrations import alembic_config
    from app.sql import make_database

    with make_database("sqlite:///dev.db").begin() as connection:
        command.revision(alembic_config(connection), "what changes", autogenerate=True)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event, text

# The modules defining tables besides app.records, so that SQLModel.metadata always
# describes the whole database (autogenerate, and the test comparing it with migrations).
from app import analytics, journal, points, program_metrics, referrals, rewards  # noqa: F401
from app.sql import Database, make_database, translated_errors
from app.webhooks import tables  # noqa: F401

# Any fixed 64-bit number, shared by every Questline process migrating one database.
_POSTGRES_LOCK_KEY = 0x5155_4553_544C_494E  # "QUESTLIN"


def alembic_config(connection: Connection) -> Config:
    """Alembic configuration that migrates on `connection` (see env.py)."""
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent))
    config.attributes["connection"] = connection
    return config


def upgrade_database(database_url: str) -> None:
    """Migrate the database at `database_url` to the newest revision; safe to run concurrently."""
    database = make_database(database_url)
    if database.dialect.name == "sqlite":
        _begin_immediate(database)
    try:
        with translated_errors(database), database.begin() as connection:
            if database.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _POSTGRES_LOCK_KEY}
                )
            command.upgrade(alembic_config(connection), "head")
    finally:
        database.dispose()


def _begin_immediate(database: Database) -> None:
    """Make every transaction of `engine` take SQLite's write lock when it begins.

    pysqlite would otherwise run DDL outside any transaction, and two upgraders
    could both find no version table and both create it (SQLAlchemy's recipe
    for pysqlite transactions).
    """

    @event.listens_for(database, "connect")
    def _driver_leaves_transactions_to_us(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(database, "begin")
    def _begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
