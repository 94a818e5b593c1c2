"""`questline simulate` and `simulateProgram`: a candidate program tried on real history.

The journal's events of a window are replayed, in the order they were
recorded and each at its recording moment (as `questline rebuild` does),
through the program in use and through the candidate, each into its own
SQLite store in memory: the live store, the ledger and subscribers never
hear of it. Both replays of a batch run side by side (each store works on a
thread of its own). Each side's results are tallied (engine.simulation) and
compared, rule by rule.

Players' profiles are those `updatePlayer` last set. A window starts from
nothing: counters, streaks and points that players had before `since` are
not carried in, so compare the two sides with each other rather than with
live figures.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from itertools import islice
from typing import Any
from zoneinfo import ZoneInfo

from anyio import to_thread

from app import journal, records
from app.journal import Journaled
from app.sql import Database
from engine.engine import Engine, EngineSettings
from engine.periods import resolve_timezone
from engine.program.program import Program
from engine.simulation import Simulated, Tally, compare, rule_of, spend_of
from engine.store import store_from_url

#: Journal events replayed per store call (on each side).
REPLAY_BATCH = 2000
MEMORY = "sqlite://:memory:"

#: Told (events replayed, events in the window) as the replay advances.
Progress = Callable[[int, int], None]


class _Side:
    """One program replaying into its own store in memory."""

    def __init__(self, program: Program, settings: EngineSettings) -> None:
        self.store = store_from_url(MEMORY, announce=False)
        self.engine = Engine(program, self.store, settings)
        self.default_timezone = resolve_timezone(program.info.timezone or settings.default_timezone)
        self.timezones: dict[str, ZoneInfo] = {}
        self.tally = Tally(program, lambda p: self.timezones.get(p, self.default_timezone))

    async def welcome(self, player_id: str, profile: tuple[str | None, Any] | None) -> None:
        """Describe a player met for the first time, as their profile says."""
        if profile is None:
            return
        timezone, attributes = profile
        await self.engine.set_player(player_id, timezone=timezone, attributes=attributes)
        if timezone is not None:
            self.timezones[player_id] = resolve_timezone(timezone)

    async def replay(self, batch: Sequence[Journaled]) -> None:
        results = await self.engine.replay(
            [entry.event for entry in batch], [entry.recorded_at for entry in batch]
        )
        for result in results:
            self.tally.add(result)


async def simulate(
    current: Program,
    candidate: Program,
    database: Database,
    settings: EngineSettings,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    players: int | None = None,
    limit: int | None = None,
    progress: Progress | None = None,
) -> Simulated:
    """Replay the window's events through both programs and compare them.

    `players` keeps only the events of the first N players met in the window;
    `limit` stops after that many events (the answer says it was cut)."""
    window_events = await to_thread.run_sync(journal.count, database, since, until)
    profiles = {
        player_id: (timezone, attributes)
        for player_id, timezone, attributes in await to_thread.run_sync(journal.profiles, database)
    }
    sides = _Side(current, settings), _Side(candidate, settings)
    met: set[str] = set()
    spend = Decimal(0)
    replayed = 0
    try:
        entries = journal.entries(database, since=since, until=until)
        while batch := await to_thread.run_sync(lambda: list(islice(entries, REPLAY_BATCH))):
            kept = []
            for entry in batch:
                player_id = entry.event.player_id
                if player_id not in met:
                    if players is not None and len(met) >= players:
                        continue
                    met.add(player_id)
                    for side in sides:
                        await side.welcome(player_id, profiles.get(player_id))
                kept.append(entry)
            if limit is not None:
                kept = kept[: limit - replayed]
            await asyncio.gather(*(side.replay(kept) for side in sides))
            for entry in kept:
                spend += spend_of((current, candidate), entry.event)
            replayed += len(kept)
            if progress is not None:
                progress(replayed, window_events)
            if limit is not None and replayed >= limit:
                break
        history = Counter[str]()
        for key, count in (await to_thread.run_sync(records.counts_by_key, database)).items():
            rule = rule_of(key)
            if rule is not None:
                history[rule] += count
    finally:
        for side in sides:
            await side.store.close()
    before, after = sides[0].tally, sides[1].tally
    return Simulated(
        comparison=compare(before, after, replayed, met, spend, history),
        since=since,
        until=until,
        window_events=window_events,
        limit=limit,
        current_version=current.version,
        candidate_version=candidate.version,
    )
