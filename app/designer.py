"""The designer's tools on the running service: simulate, explain, backfill.

A facade over app.simulate, app.explain and app.backfill that hands them the
service's engine, history database and settings, so that resolvers ask it
for answers and never reach into the service.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from anyio import to_thread

from app import journal
from app.backfill import Settle, backfill
from app.candidates import Candidate, check_candidate, check_file_name
from app.journal import Journaled
from app.settings import Settings
from app.simulate import simulate
from app.sql import Database
from engine.backfill import Backfilled
from engine.engine import Engine
from engine.errors import ProgramError, SeedIssue
from engine.explain import Explanation, JournalEvent, explain, matches, with_journal
from engine.simulation import Simulated

#: The player's latest events of the feeding types looked at for the last one that counted.
LAST_EVENTS_READ = 500


class Designer:
    def __init__(
        self, engine: Engine, database: Database, settings: Settings, settle: Settle
    ) -> None:
        self.engine = engine
        self.database = database
        self.settings = settings
        self._settle = settle

    async def backfill(
        self, dry_run: bool, progress: Callable[[int], None] | None = None
    ) -> Backfilled:
        """Give players what the program's new metrics and rules owe them from
        their history (app.backfill); with `dry_run`, only say what."""
        return await backfill(
            self.engine, self.database, self._settle, dry_run=dry_run, progress=progress
        )

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

    async def explain(self, player_id: str, target: str) -> Explanation:
        """Why a player has `target` or not yet, with the journal's events: the
        one that caused the unlock, and the last one that counted towards it."""
        engine = self.engine
        profile = await engine.profile(player_id)
        found = await explain(
            engine.program, engine.store, player_id, profile, engine.clock(), target
        )
        unlocked_by = None
        if found.unlocked:
            cause = await to_thread.run_sync(
                journal.caused, self.database, player_id, found.unlock_key
            )
            unlocked_by = _pointed(cause)
        feeds = matches(engine.program, found)
        recent = await to_thread.run_sync(
            journal.latest,
            self.database,
            player_id,
            sorted({event_type for event_type, _ in feeds}),
            LAST_EVENTS_READ,
        )
        counted = next(
            (
                entry
                for entry in recent
                if any(
                    entry.event.type == event_type
                    and (where is None or where(entry.event.properties))
                    for event_type, where in feeds
                )
            ),
            None,
        )
        return with_journal(found, unlocked_by, _pointed(counted))


def _pointed(entry: Journaled | None) -> JournalEvent | None:
    if entry is None:
        return None
    assert entry.event.occurred_at is not None  # journaled events are checked
    return JournalEvent(entry.id, entry.event.id, entry.event.type, entry.event.occurred_at)
