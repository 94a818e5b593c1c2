"""The running service: the facade the GraphQL layer and the console talk to.

Built and started inside the app's lifespan (never at import). It puts the
engine, the store, the unlock feed and the SQL database together and hands
out none of them: the schema sees the methods of `schema.service.Service`,
so nothing can record an event without its durable copy, grants and
analytics. The work itself lives in modules of its own:

- app.recording: one atomic store call, then the durable SQL work
  group-committed (unlock copies, points, analytics rows, the event journal,
  webhook deliveries), answered only after that commit, so an acknowledged
  event, unlock or grant is never only in Redis. A retried event re-writes
  all of it idempotently (each row is unique by its source), which heals a
  crash between the store and the commit;
- app.history: paging the durable unlock history, and copying at start-up
  every outbox entry history lacks, for unlocks whose event is never retried;
- app.reloading: a program reload, and every worker converging on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from anyio import to_thread

from app import journal, program_metrics
from app.analytics import Analytics
from app.designer import Designer
from app.economy import Economy
from app.history import History
from app.metrics import Metrics
from app.migrations import upgrade_database
from app.recording import Recorder
from app.reloading import Reloads
from app.settings import Settings
from app.sql import Database, count_work, make_database, ping_database
from app.webhooks.service import Webhooks
from engine.engine import Clock, Engine, Recorded, utc_now
from engine.errors import QuestlineError
from engine.events import Event
from engine.feed import Feed
from engine.leaderboards import Standings
from engine.profiles import Profile
from engine.program.loader import load_program
from engine.program.program import Program
from engine.progress import PlayerProgress
from engine.store import store_from_url
from engine.unlocks import Unlock
from schema.service import Page, TooSlow

logger = logging.getLogger("questline.service")

#: Seconds each step of shutting down may take before the next one goes on.
SHUTDOWN_WAIT = 10.0
#: Seconds between two purges of journal rows past the retention.
PURGE_EVERY = 3600.0


class Service:
    def __init__(self, settings: Settings, metrics: Metrics, clock: Clock = utc_now) -> None:
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self._parts: _Parts | None = None
        self._purger: asyncio.Task[None] | None = None

    @property
    def _started(self) -> _Parts:
        assert self._parts is not None, "the service is not started"
        return self._parts

    @property
    def program(self) -> Program:
        return self._started.engine.program

    @property
    def economy(self) -> Economy:
        return self._started.economy

    @property
    def analytics(self) -> Analytics:
        return self._started.analytics

    @property
    def designer(self) -> Designer:
        return self._started.designer

    @property
    def webhooks(self) -> Webhooks:
        return self._started.webhooks

    @property
    def subscribers(self) -> int:
        """Live unlock subscriptions of this worker."""
        return self._started.feed.subscribers

    async def start(self) -> None:
        settings = self.settings
        program = await to_thread.run_sync(load_program, settings.seed_path)
        if settings.migrate_on_start:
            await to_thread.run_sync(upgrade_database, settings.database_url)
        database = make_database(settings.database_url, settings.database_timeout.total_seconds())
        count_work(database, self.metrics.sql_statements.inc, self.metrics.sql_commits.inc)
        await to_thread.run_sync(program_metrics.serving, database, program)
        store = store_from_url(settings.store_url, timeout=settings.store_timeout.total_seconds())
        engine = Engine(program, store, settings.engine_settings(), self.clock)
        history = History(engine, database)
        economy = Economy(engine, database, self.clock, history.save)
        analytics = Analytics(engine, database, self.clock, economy.timezone)
        parts = _Parts(
            engine=engine,
            database=database,
            history=history,
            economy=economy,
            analytics=analytics,
            designer=Designer(engine, database, settings, self._recover),
            recorder=Recorder(engine, economy, analytics, database, self.metrics),
            feed=Feed(store, settings.subscriber_backlog),
            reloads=Reloads(engine, database, settings.seed_path),
            webhooks=Webhooks(database, settings, self.clock, self.metrics),
        )
        self._parts = parts
        recovered = await self.recover_history()
        logger.info("history recovery: %d unlocks found only in the outbox, now copied", recovered)
        healed = await economy.heal()
        logger.info("referrals and tier changes a crash left half done, now done: %d", healed)
        await parts.feed.start()
        await parts.reloads.start()
        self._purger = asyncio.create_task(self._purge_journal(), name="questline-journal-purge")
        parts.webhooks.start()
        logger.info("program %r version %s loaded", program.info.name, program.version)

    async def stop(self) -> None:
        parts = self._parts
        if parts is None:
            return
        await _within("the last recordings' commit", parts.recorder.wait_idle())
        await _within("the webhook sender", parts.webhooks.stop())
        await parts.reloads.stop()
        if self._purger is not None:
            self._purger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._purger
        await _within("the unlock feed", parts.feed.stop())
        await _within("closing the store", parts.engine.store.close())
        parts.database.dispose()

    async def ready(self) -> None:
        """Raise StoreError unless the store and the database answer."""
        await self._started.engine.store.ping()
        await to_thread.run_sync(ping_database, self._started.database)

    async def record(self, events: Sequence[Event]) -> list[Recorded]:
        return await self._started.recorder.record(events)

    async def progress(self, player_id: str) -> PlayerProgress:
        return await self._started.engine.progress(player_id)

    async def profile(self, player_id: str) -> Profile:
        return await self._started.engine.profile(player_id)

    async def history(self, player_id: str, after: str | None, first: int) -> Page[Unlock]:
        return await self._started.history.page(player_id, after, first)

    async def follow(
        self, player_id: str, since: str | None, too_slow: TooSlow | None
    ) -> AsyncIterator[Unlock]:
        engine = self._started.engine
        async for entry in self._started.feed.subscribe(player_id, since, too_slow):
            yield engine.describe(player_id, entry)

    async def follow_all(self, too_slow: TooSlow | None) -> AsyncIterator[Unlock]:
        engine = self._started.engine
        async for player_id, entry in self._started.feed.subscribe_all(too_slow):
            yield engine.describe(player_id, entry)

    async def leaderboard(
        self, board_id: str, period: str, first: int, around: str | None
    ) -> Standings:
        return await self._started.engine.leaderboard(board_id, period, first, around)

    async def set_player(
        self, player_id: str, timezone: str | None, attributes: Mapping[str, Any] | None
    ) -> None:
        """Describe a player, in the store and durably (a rebuild plans with it)."""
        await self._started.engine.set_player(player_id, timezone=timezone, attributes=attributes)
        await to_thread.run_sync(
            journal.save_profile, self._started.database, player_id, timezone, attributes
        )

    async def reload_program(self) -> tuple[str, bool]:
        return await self._started.reloads.reload()

    def reload_in_background(self) -> None:
        self._started.reloads.reload_in_background()

    async def recover_history(self) -> int:
        """Copy into history every outbox entry it lacks, with the points those
        unlocks carry (the same crash leaves them out of the ledger); return
        how many there were."""
        recovered = 0
        async for unlocks in self._started.history.outbox_unlocks():
            recovered += await self._recover(unlocks)
        return recovered

    async def _recover(self, unlocks: Sequence[Unlock]) -> int:
        """Copy unlocks to history and grant their points; the ledger, like history,
        skips what it already has."""
        recovered = await to_thread.run_sync(self._started.history.save, unlocks)
        await self.economy.credit_unlocks(unlocks)
        return recovered

    async def _purge_journal(self) -> None:
        """Delete journal rows past the retention now and then, in small
        transactions that never hold recording up for long."""
        retention = self.settings.journal_retention
        while True:
            try:
                purged = await to_thread.run_sync(
                    journal.purge, self._started.database, self.clock() - retention
                )
                if purged:
                    logger.info("journal: %d events older than the retention purged", purged)
            except QuestlineError as error:
                logger.warning("journal purge failed, trying again later: %s", error)
            await asyncio.sleep(PURGE_EVERY)


@dataclass(frozen=True, slots=True)
class _Parts:
    """What a started service is made of."""

    engine: Engine
    database: Database
    history: History
    economy: Economy
    analytics: Analytics
    designer: Designer
    recorder: Recorder
    feed: Feed
    reloads: Reloads
    webhooks: Webhooks


async def _within(what: str, step: Awaitable[None]) -> None:
    """A step of shutting down, given SHUTDOWN_WAIT seconds: a stop that hangs
    would hold a deploy or a restart up for ever, so it is logged and passed."""
    try:
        async with asyncio.timeout(SHUTDOWN_WAIT):
            await step
    except TimeoutError:
        logger.warning("shutting down: %s did not finish within %gs; going on", what, SHUTDOWN_WAIT)
