"""Which metrics each program version counted the journal's events in.

A reload that adds a metric leaves the events recorded before it uncounted
there; `questline backfill` replays them into it. To know which events those
are, the service writes down the metrics of every program version it serves
(at start and at each reload), and a backfill adds the metrics it replayed
a version's events into. A version nobody wrote down (events journaled
before this table existed) counted something unknown: backfill leaves its
events alone rather than count them twice.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlmodel import Field, SQLModel

from app.sql import Database, per_database, table, translated_errors, writing
from engine.program.program import Program

#: The metric id of the row that says a version was served at all (it may count none).
SERVED = ""


class ProgramMetric(SQLModel, table=True):
    """Events recorded under `version` are counted in `metric_id`."""

    __tablename__ = "program_metric"

    version: str = Field(primary_key=True)
    metric_id: str = Field(primary_key=True)


PROGRAM_METRICS = table(ProgramMetric)
_ADD = per_database(
    lambda insert: insert(PROGRAM_METRICS).on_conflict_do_nothing(
        index_elements=["version", "metric_id"]
    )
)


def serving(database: Database, program: Program) -> None:
    """Write down a version about to serve: its events count in its metrics."""
    add(database, [program.version], program.metrics)


def add(database: Database, versions: Iterable[str], metric_ids: Iterable[str]) -> None:
    """Write down that these versions' events are counted in these metrics."""
    rows = [
        {"version": version, "metric_id": metric_id}
        for version in versions
        for metric_id in {SERVED, *metric_ids}
    ]
    if rows:
        with writing(database) as connection:
            connection.execute(_ADD(connection), rows)


def counted(database: Database) -> dict[str, set[str]]:
    """Every version written down, with the metrics its events are counted in."""
    found: dict[str, set[str]] = {}
    with translated_errors(database), database.connect() as connection:
        for version, metric_id in connection.execute(select(PROGRAM_METRICS)).all():
            found.setdefault(version, set())
            if metric_id != SERVED:
                found[version].add(metric_id)
    return found
