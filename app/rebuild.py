"""`questline rebuild`: the counter store, rebuilt from the event journal.

After Redis is lost (or the embedded store's file), the journal still holds
every accepted event. A rebuild replays it into an empty store with the
program in use: profiles first (as `updatePlayer` last set them), then the
events in the order they were recorded, each planned at the moment it was
recorded (its checks, period buckets, expiries and unlock times are those of
the first recording), then the unlocks no event decides (tier changes), from
the unlock history. The order recorded, not `occurred_at`, is what the store
saw: replaying it gives back the very same counters, streaks and claims.

Nothing is announced again (the store publishes nothing while rebuilding)
and nothing is granted again: the ledger is SQL's and stays as it is.
Events recorded under an older program version are replayed under the
program in use, and profiles as they are now: a player whose timezone
changed over time is replayed in the latest one. `--dry-run` rebuilds into
memory instead and reports which players would differ from the store now.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice

from anyio import to_thread

from app import journal, program_metrics, records
from app.journal import Journaled
from app.settings import Settings
from app.sql import Database, make_database
from engine.engine import Engine, utc_now
from engine.errors import ConfigurationError
from engine.program.loader import load_program
from engine.store import store_from_url
from engine.store.base import Store
from engine.unlocks import UnlockKind
from engine.urls import redacted

#: Events replayed per store call.
REPLAY_BATCH = 500
#: Unlocks of history read per page.
HISTORY_PAGE = 1000
#: Unlocks of one player compared by a dry run, at most.
UNLOCKS_READ = 100_000
MEMORY = "sqlite://:memory:"


@dataclass
class Rebuilt:
    """What a rebuild did, or with `--dry-run` would do."""

    events: int = 0
    players: set[str] = field(default_factory=set)
    profiles: int = 0
    restored_unlocks: int = 0
    #: Players whose progress or unlocks in the store differ from the rebuild (dry run).
    differences: dict[str, list[str]] = field(default_factory=dict)


async def rebuild(
    settings: Settings, *, dry_run: bool = False, progress: Callable[[int], None] | None = None
) -> Rebuilt:
    """Replay the journal into the empty store of `settings` (into memory with
    `dry_run`); `progress` is told how many events are replayed so far."""
    program = load_program(settings.seed_path)
    database = make_database(settings.database_url)
    target = store_from_url(MEMORY if dry_run else settings.store_url, announce=False)
    moment = _ReplayClock()
    engine = Engine(program, target, settings.engine_settings(), moment)
    rebuilt = Rebuilt()
    try:
        if not dry_run:
            await _require_empty(target, settings.store_url)
        rebuilt.profiles = await restore_profiles(engine, database)
        await _replay(engine, database, rebuilt, progress)
        await _restore_tier_changes(engine, database, moment, rebuilt)
        if dry_run:
            moment.now = utc_now()
            rebuilt.differences = await _compare(engine, settings, rebuilt.players)
        else:
            # Every journaled event is now counted in every metric of the program in use.
            versions = await to_thread.run_sync(journal.versions, database)
            await to_thread.run_sync(program_metrics.add, database, versions, program.metrics)
    finally:
        await target.close()
        database.dispose()
    return rebuilt


class _ReplayClock:
    """The rebuild's clock: the moment of what is being replayed."""

    def __init__(self) -> None:
        self.now = utc_now()

    def __call__(self) -> datetime:
        return self.now


async def _require_empty(store: Store, url: str) -> None:
    async for _player in store.outbox_players():
        raise ConfigurationError(
            f"the store {redacted(url)} already holds unlocks; a rebuild replays the journal "
            "into an empty store: empty it (FLUSHDB, or a new SQLite file) or point "
            "QUESTLINE_STORE_URL at a new one"
        )


async def restore_profiles(engine: Engine, database: Database) -> int:
    """Give the engine's store every profile kept beside the journal; return how many."""
    restored = 0
    for player_id, timezone, attributes in await to_thread.run_sync(journal.profiles, database):
        await engine.set_player(player_id, timezone=timezone, attributes=attributes)
        restored += 1
    return restored


async def batches(entries: Iterator[Journaled]) -> AsyncIterator[list[Journaled]]:
    """Journal rows, REPLAY_BATCH at a time, read on a worker thread."""
    while batch := await to_thread.run_sync(lambda: list(islice(entries, REPLAY_BATCH))):
        yield batch


async def _replay(
    engine: Engine, database: Database, rebuilt: Rebuilt, progress: Callable[[int], None] | None
) -> None:
    async for batch in batches(journal.entries(database)):
        await engine.replay([e.event for e in batch], [e.recorded_at for e in batch])
        rebuilt.events += len(batch)
        rebuilt.players.update(e.event.player_id for e in batch)
        if progress is not None:
            progress(rebuilt.events)


async def _restore_tier_changes(
    engine: Engine, database: Database, moment: _ReplayClock, rebuilt: Rebuilt
) -> None:
    """Claim again the tier changes of history, each at its own time (the
    service claimed them from the ledger, not from an event)."""
    after = 0
    while page := await to_thread.run_sync(
        records.list_of_kind, database, UnlockKind.TIER.value, after, HISTORY_PAGE
    ):
        for record in page:
            moment.now = record.unlocked_at
            rebuilt.restored_unlocks += len(await engine.claim(record.player_id, record.key))
        assert page[-1].id is not None
        after = page[-1].id


async def _compare(
    rebuilt_engine: Engine, settings: Settings, players: set[str]
) -> dict[str, list[str]]:
    """Where the store now and the rebuild disagree, player by player."""
    live = store_from_url(settings.store_url)
    live_engine = Engine(rebuilt_engine.program, live, settings.engine_settings())
    differences: dict[str, list[str]] = {}
    try:
        for player_id in sorted(players):
            found = []
            now = await live_engine.progress(player_id)
            then = await rebuilt_engine.progress(player_id)
            for part in ("challenges", "milestones", "streaks", "badges"):
                if getattr(now, part) != getattr(then, part):
                    found.append(f"{part} differ")
            kept = await _unlock_keys(live_engine, player_id)
            replayed = await _unlock_keys(rebuilt_engine, player_id)
            if kept - replayed:
                found.append(f"unlocks only in the store: {', '.join(sorted(kept - replayed))}")
            if replayed - kept:
                found.append(f"unlocks only in the rebuild: {', '.join(sorted(replayed - kept))}")
            if found:
                differences[player_id] = found
    finally:
        await live.close()
    return differences


async def _unlock_keys(engine: Engine, player_id: str) -> set[str]:
    return {unlock.key for unlock in await engine.unlocks(player_id, None, UNLOCKS_READ)}
