"""The running service: engine, store, unlock feed and durable history together.

Built and started inside the app's lifespan (never at import). Recording an
event and copying its unlocks to SQL happen before the answer is sent, so an
acknowledged unlock is never only in Redis; a retried event re-copies its
original unlocks, which makes the copy idempotent and self-healing.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict

from anyio import to_thread
from sqlalchemy import Engine as Database

from app import records
from app.metrics import Metrics
from app.migrations import upgrade_database
from app.settings import Settings
from engine.engine import Engine, EngineSettings, Recorded
from engine.errors import CursorError
from engine.events import Event
from engine.feed import Feed
from engine.program.loader import load_program
from engine.store import store_from_url
from engine.store.base import Store
from engine.unlocks import Unlock, UnlockKind
from schema.context import HistoryPage

logger = logging.getLogger("questline.service")


def unlock_data(unlock: Unlock) -> records.UnlockData:
    return records.UnlockData(
        key=unlock.key,
        player_id=unlock.player_id,
        kind=unlock.kind.value,
        title=unlock.title,
        badge_id=unlock.badge,
        points=unlock.points,
        unlocked_at=unlock.unlocked_at,
        outbox_id=unlock.id,
        payload=json.dumps(asdict(unlock), default=str),
    )


def unlock_of_record(record: records.UnlockRecord) -> Unlock:
    return Unlock(
        id=record.outbox_id,
        key=record.key,
        kind=UnlockKind(record.kind),
        player_id=record.player_id,
        title=record.title,
        badge=record.badge_id,
        points=record.points,
        unlocked_at=record.unlocked_at,
    )


class Service:
    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self._store: Store | None = None
        self._engine: Engine | None = None
        self._feed: Feed | None = None
        self._database: Database | None = None
        self._reload_lock = asyncio.Lock()

    @property
    def engine(self) -> Engine:
        assert self._engine is not None, "the service is not started"
        return self._engine

    @property
    def feed(self) -> Feed:
        assert self._feed is not None, "the service is not started"
        return self._feed

    @property
    def database(self) -> Database:
        assert self._database is not None, "the service is not started"
        return self._database

    async def start(self) -> None:
        settings = self.settings
        program = await to_thread.run_sync(load_program, settings.seed_path)
        if settings.migrate_on_start:
            await to_thread.run_sync(upgrade_database, settings.database_url)
        self._database = records.make_engine(settings.database_url)
        self._store = store_from_url(settings.store_url)
        self._engine = Engine(
            program,
            self._store,
            EngineSettings(
                default_timezone=settings.default_timezone,
                late_tolerance=settings.late_event_tolerance,
                future_tolerance=settings.future_event_tolerance,
                max_batch=settings.max_batch,
            ),
        )
        self._feed = Feed(self._store)
        await self._feed.start()
        logger.info("program %r version %s loaded", program.info.name, program.version)

    async def stop(self) -> None:
        if self._feed is not None:
            await self._feed.stop()
        if self._store is not None:
            await self._store.close()
        if self._database is not None:
            self._database.dispose()

    async def record(self, events: Sequence[Event]) -> list[Recorded]:
        results = await self.engine.record_many(events)
        unlocks = [unlock for result in results for unlock in result.unlocks]
        if unlocks:
            await to_thread.run_sync(
                records.save_unlocks, self.database, [unlock_data(u) for u in unlocks]
            )
        self.metrics.recorded(results)
        return results

    async def history(self, player_id: str, after: str | None, first: int) -> HistoryPage:
        cursor = None
        if after is not None:
            if not after.isdigit():
                raise CursorError(f"{after!r} is not a history cursor; pass an edge's `cursor`")
            cursor = int(after)
        found = await to_thread.run_sync(
            records.list_unlocks, self.database, player_id, cursor, first + 1
        )
        return HistoryPage(
            unlocks=[(str(record.id), unlock_of_record(record)) for record in found[:first]],
            has_next_page=len(found) > first,
        )

    async def reload_program(self) -> tuple[str, bool]:
        """Validate the seed folder and swap it in; a broken one raises ProgramError."""
        async with self._reload_lock:
            program = await to_thread.run_sync(load_program, self.settings.seed_path)
            changed = program.version != self.engine.program.version
            if changed:
                self.engine.use_program(program)
                logger.info("program reloaded: version %s", program.version)
            return program.version, changed

    async def ready(self) -> None:
        """Raise StoreError unless the store and the database answer."""
        await self.engine.store.ping()
        await to_thread.run_sync(records.ping_database, self.database)
