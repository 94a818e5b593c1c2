"""The designer's tools on the running service: simulate, explain, backfill.

A facade over app.simulate, app.explain and app.backfill that hands them the
service's engine, history database and settings, so that resolvers ask it
for answers and never reach into the service.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from anyio import to_thread
from sqlalchemy import Engine as Database

from app.console.candidates import Candidate, check_candidate, check_file_name
from app.settings import Settings
from app.simulate import simulate
from engine.engine import Engine
from engine.errors import ProgramError, SeedIssue
from engine.simulation import Simulated


class Designer:
    def __init__(self, engine: Engine, database: Database, settings: Settings) -> None:
        self.engine = engine
        self.database = database
        self.settings = settings

    async def simulate(
        self, files: Sequence[tuple[str, str]], since: datetime | None, until: datetime | None
    ) -> Simulated:
        """Replay the window through the program in use and a candidate made of
        `files` (name, YAML text) with the seed folder's other files; at most
        QUESTLINE_SIMULATE_MAX_EVENTS events. A broken candidate raises
        ProgramError with every issue, file:line."""
        misnamed = [
            SeedIssue(name, None, "", problem)
            for name, _ in files
            if (problem := check_file_name(name)) is not None
        ]
        if misnamed:
            raise ProgramError(misnamed)
        checked = await to_thread.run_sync(
            check_candidate,
            [Candidate(name, text) for name, text in files],
            self.settings.seed_path,
        )
        if checked.program is None:
            raise ProgramError(checked.issues)
        return await simulate(
            self.engine.program,
            checked.program,
            self.database,
            self.settings.engine_settings(),
            since=since,
            until=until,
            limit=self.settings.simulate_max_events,
        )
