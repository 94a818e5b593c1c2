"""Alembic environment: migrate on the connection that `upgrade_database` opened.

There is no alembic.ini and no offline (SQL script) mode: the connection comes
from `alembic_config(connection)`, already inside the transaction that holds
the migration lock.
"""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

# app.migrations imports every module that defines tables, so autogenerate sees them.
import app.migrations  # noqa: F401

connection = context.config.attributes.get("connection")
if context.is_offline_mode() or connection is None:
    raise RuntimeError(
        "Questline migrations run through `questline db upgrade` "
        "(app.migrations.upgrade_database), not the alembic command line"
    )

context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    # SQLite cannot ALTER most things in place; batch mode copies the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
