"""The running service: engine, store, unlock feed and durable history together.

Built and started inside the app's lifespan (never at import). Recording
events is one atomic store call, then the durable SQL work, group-committed
(app.recording): the unlock copies, the points the events earn and their
unlocks carry, the analytics rows and the event journal, all in the one
transaction of the burst of requests that arrived together. The answer is
sent only after that commit, so an acknowledged event, unlock or grant is
never only in Redis. A retried event re-writes all of it idempotently (each
row is unique by its source), which heals a crash between the store and the
commit; start-up copies every outbox entry history lacks (`recover_history`)
for unlocks whose event is never retried.

Webhook deliveries are written in those same transactions and sent by a
background task (app.webhooks), never on the request path.

A program reload (mutation or SIGHUP) is announced through the store, and
every worker sharing it loads its own seed folder in turn (`_converge`): all
of them serve the new version, or keep the old one and log why not.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import fields
from typing import Any

from anyio import to_thread
from sqlalchemy import Engine as Database

from app import journal, program_metrics, records
from app.analytics import Analytics
from app.designer import Designer
from app.economy import Economy
from app.grants import Granted
from app.metrics import Metrics
from app.migrations import upgrade_database
from app.recording import Recorder, Recording
from app.settings import Settings
from app.sql import count_work, make_engine, ping_database, writing
from app.webhooks import outbox
from app.webhooks.service import Webhooks
from engine.engine import Clock, Engine, Recorded, utc_now
from engine.errors import CursorError, EventIdReusedError, ProgramError, QuestlineError, StoreError
from engine.events import Event
from engine.feed import Feed
from engine.group_commit import GroupCommit
from engine.program.loader import load_program
from engine.store import store_from_url
from engine.store.base import Store
from engine.unlocks import Unlock, UnlockKind
from schema.context import HistoryPage

logger = logging.getLogger("questline.service")

#: Broadcast channel on which a worker announces the program version it serves.
PROGRAM_CHANNEL = "program"
#: Recovering history at start-up: outbox entries per read, players per transaction.
RECOVERY_PAGE, RECOVERY_PLAYERS = 500, 100
#: Seconds each step of shutting down may take before the next one goes on.
SHUTDOWN_WAIT = 10.0
#: Seconds between two purges of journal rows past the retention.
PURGE_EVERY = 3600.0
UNLOCK_FIELDS = fields(Unlock)


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
        # Shallow on purpose: dataclasses.asdict deep-copies, which cost more than the rest.
        payload=json.dumps({f.name: getattr(unlock, f.name) for f in UNLOCK_FIELDS}, default=str),
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
        backfilled=json.loads(record.payload).get("backfilled", False),
    )


class Service:
    def __init__(self, settings: Settings, metrics: Metrics, clock: Clock = utc_now) -> None:
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self._store: Store | None = None
        self._engine: Engine | None = None
        self._economy: Economy | None = None
        self._analytics: Analytics | None = None
        self._designer: Designer | None = None
        self._feed: Feed | None = None
        self._database: Database | None = None
        self._recorder: GroupCommit[Recording, Granted] | None = None
        self._webhooks: Webhooks | None = None
        self._purger: asyncio.Task[None] | None = None
        self._reload_lock = asyncio.Lock()
        self._announcements: asyncio.Task[None] | None = None
        self._reloads: set[asyncio.Task[None]] = set()

    @property
    def engine(self) -> Engine:
        assert self._engine is not None, "the service is not started"
        return self._engine

    @property
    def feed(self) -> Feed:
        assert self._feed is not None, "the service is not started"
        return self._feed

    @property
    def economy(self) -> Economy:
        assert self._economy is not None, "the service is not started"
        return self._economy

    @property
    def analytics(self) -> Analytics:
        assert self._analytics is not None, "the service is not started"
        return self._analytics

    @property
    def designer(self) -> Designer:
        assert self._designer is not None, "the service is not started"
        return self._designer

    @property
    def webhooks(self) -> Webhooks:
        assert self._webhooks is not None, "the service is not started"
        return self._webhooks

    @property
    def database(self) -> Database:
        assert self._database is not None, "the service is not started"
        return self._database

    async def start(self) -> None:
        settings = self.settings
        program = await to_thread.run_sync(load_program, settings.seed_path)
        if settings.migrate_on_start:
            await to_thread.run_sync(upgrade_database, settings.database_url)
        self._database = make_engine(
            settings.database_url, settings.database_timeout.total_seconds()
        )
        count_work(self._database, self.metrics.sql_statements.inc, self.metrics.sql_commits.inc)
        await to_thread.run_sync(program_metrics.serving, self._database, program)
        self._store = store_from_url(
            settings.store_url, timeout=settings.store_timeout.total_seconds()
        )
        self._engine = Engine(
            program,
            self._store,
            settings.engine_settings(),
            self.clock,
        )
        self._economy = Economy(self._engine, self._database, self.clock, self._save_unlocks)
        self._analytics = Analytics(
            self._engine, self._database, self.clock, self._economy.timezone
        )
        self._designer = Designer(self._engine, self._database, settings, self._recover)
        engine = self._engine
        self._recorder = GroupCommit(
            Recorder(self._database, lambda: engine.program, self._economy.timezone).write
        )
        recovered = await self.recover_history()
        logger.info("history recovery: %d unlocks found only in the outbox, now copied", recovered)
        healed = await self._economy.heal()
        logger.info("referrals and tier changes a crash left half done, now done: %d", healed)
        self._feed = Feed(self._store, self.settings.subscriber_backlog)
        await self._feed.start()
        listening = asyncio.Event()
        self._announcements = asyncio.create_task(
            self._follow_announcements(listening), name="questline-program-announcements"
        )
        await listening.wait()
        self._purger = asyncio.create_task(self._purge_journal(), name="questline-journal-purge")
        self._webhooks = Webhooks(self._database, settings, self.clock, self.metrics)
        self._webhooks.start()
        logger.info("program %r version %s loaded", program.info.name, program.version)

    async def stop(self) -> None:
        if self._recorder is not None:
            await _within("the last recordings' commit", self._recorder.wait_idle())
        if self._webhooks is not None:
            await _within("the webhook sender", self._webhooks.stop())
        for task in (self._announcements, self._purger, *self._reloads):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._feed is not None:
            await _within("the unlock feed", self._feed.stop())
        if self._store is not None:
            await _within("closing the store", self._store.close())
        if self._database is not None:
            self._database.dispose()

    async def recover_history(self) -> int:
        """Copy into history every outbox entry it lacks; return how many there were.

        Only a crash between the store's claim and the copy in `record` leaves
        one behind, but start-up cannot tell which, so it reads every outbox;
        the copy skips what is already there. The unlocks of a group of
        players are copied in one transaction: one commit per player made
        start-up several times slower. The points those unlocks carry are
        granted the same way, since the same crash leaves them out of the ledger.
        """
        recovered = 0
        unlocks: list[Unlock] = []
        players = 0
        async for player_id in self.engine.store.outbox_players():
            after = None
            while True:
                page = await self.engine.unlocks(player_id, after, RECOVERY_PAGE)
                unlocks += page
                if len(page) < RECOVERY_PAGE:
                    break
                after = page[-1].id
            players += 1
            if players % RECOVERY_PLAYERS == 0:
                recovered += await self._recover(unlocks)
                unlocks = []
        return recovered + await self._recover(unlocks)

    async def _recover(self, unlocks: Sequence[Unlock]) -> int:
        """Copy unlocks to history and grant their points; the ledger, like history,
        skips what it already has."""
        recovered = await to_thread.run_sync(self._save_unlocks, unlocks)
        await self.economy.credit_unlocks(unlocks)
        return recovered

    async def record(self, events: Sequence[Event]) -> list[Recorded]:
        """Record events in the store, then make everything they caused durable
        in the group commit; answer once both are done."""
        results = await self.engine.record_many(events)
        recording = Recording(
            unlocks=[unlock_data(u) for result in results for u in result.unlocks],
            grants=await self.economy.grants(results),
            activity=await self.analytics.activity(results),
            journal=[
                journal.row_of(result, sent) for result, sent in zip(results, events, strict=True)
            ],
            players={event.player_id for event in events},
        )
        assert self._recorder is not None, "the service is not started"
        granted = await self._recorder.submit(recording)
        self.analytics.written(recording.activity)
        tier_changes = await self.economy.settle(granted)
        if tier_changes:
            results = _with_tier_changes(results, tier_changes)
        self.metrics.recorded(results)
        await self._refuse_reused_ids(events, results)
        return results

    async def _refuse_reused_ids(
        self, events: Sequence[Event], results: Sequence[Recorded]
    ) -> None:
        """A duplicate whose payload differs from the original's is a client
        reusing an id for another event, not a retry: refuse it, so the bug
        shows instead of the event being dropped silently. The rest of the
        batch is recorded and durable by now; sending it again is safe."""
        resent = [(e, r) for e, r in zip(events, results, strict=True) if r.duplicate]
        if not resent:
            return
        kept = await to_thread.run_sync(
            journal.digests, self.database, [(e.player_id, e.id) for e, _ in resent]
        )
        for event, _ in resent:
            original = kept.get((event.player_id, event.id))
            if original is not None and original != journal.digest(event):
                raise EventIdReusedError(
                    f"event id {event.id!r} of player {event.player_id!r} was sent before with "
                    "another type, value, occurredAt or properties; a retry must resend the "
                    "same event, a new event needs a new id"
                )

    async def set_player(
        self, player_id: str, timezone: str | None, attributes: Mapping[str, Any] | None
    ) -> None:
        """Describe a player, in the store and durably (a rebuild plans with it)."""
        await self.engine.set_player(player_id, timezone=timezone, attributes=attributes)
        await to_thread.run_sync(
            journal.save_profile, self.database, player_id, timezone, attributes
        )

    def _save_unlocks(self, unlocks: Sequence[Unlock]) -> int:
        """Copy unlocks into history in a transaction of their own, with the webhook
        deliveries of those new to it (blocking: call it on a worker thread);
        recording copies them in the group commit."""
        with writing(self.database) as connection:
            new = records.save_unlocks(connection, [unlock_data(u) for u in unlocks])
            outbox.unlocked(connection, new)
        return len(new)

    async def _purge_journal(self) -> None:
        """Delete journal rows past the retention now and then, in small
        transactions that never hold recording up for long."""
        retention = self.settings.journal_retention
        while True:
            try:
                purged = await to_thread.run_sync(
                    journal.purge, self.database, self.clock() - retention
                )
                if purged:
                    logger.info("journal: %d events older than the retention purged", purged)
            except QuestlineError as error:
                logger.warning("journal purge failed, trying again later: %s", error)
            await asyncio.sleep(PURGE_EVERY)

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
        """Validate the seed folder, swap it in and tell the other workers.

        A broken program raises ProgramError and the current one keeps
        serving. The version is announced even when it did not change here,
        so repeating a reload whose announcement failed still makes every
        worker converge. Returns (version, changed here).
        """
        version, changed = await self._load()
        try:
            await self.engine.store.broadcast(PROGRAM_CHANNEL, version)
        except StoreError as error:
            raise StoreError(
                f"program {version} serves here, but the other workers could not be told: "
                f"{error}; reload again once the store answers"
            ) from error
        return version, changed

    def reload_in_background(self) -> None:
        """Start a reload nobody waits for (SIGHUP); its outcome goes to the log."""
        task = asyncio.create_task(self._reload_logged(), name="questline-reload")
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    async def _reload_logged(self) -> None:
        serving = self.engine.program.version
        try:
            version, changed = await self.reload_program()
        except ProgramError as error:
            logger.error("program reload refused, still serving version %s: %s", serving, error)
        except QuestlineError as error:
            logger.error("program reload failed: %s", error)
        except Exception:
            logger.exception("program reload failed")  # nobody else would hear of it
        else:
            if not changed:
                logger.info("program reload: version %s unchanged", version)

    async def _load(self) -> tuple[str, bool]:
        async with self._reload_lock:
            program = await to_thread.run_sync(load_program, self.settings.seed_path)
            changed = program.version != self.engine.program.version
            if changed:
                await to_thread.run_sync(program_metrics.serving, self.database, program)
                self.engine.use_program(program)
                logger.info("program reloaded: version %s", program.version)
            return program.version, changed

    async def _follow_announcements(self, listening: asyncio.Event) -> None:
        async for channel, version in self.engine.store.listen_broadcasts(listening.set):
            if channel != PROGRAM_CHANNEL or version == self.engine.program.version:
                continue  # our own announcement, or a worker catching up with us
            serving = self.engine.program.version
            try:
                await self._converge(version)
            except ProgramError as error:
                logger.error(
                    "another worker serves program %s, but the seed folder here does not "
                    "load; still serving version %s: %s",
                    version,
                    serving,
                    error,
                )
            except QuestlineError as error:
                logger.error(
                    "following program %s announced by another worker failed: %s", version, error
                )
            except Exception:  # keep following: the next announcement may succeed
                logger.exception("following program %s announced by another worker failed", version)

    async def _converge(self, version: str) -> None:
        """Another worker announced `version`: load the seed folder here too.

        Workers that see different files (say, different hosts) each serve
        their own and say so; one that loads a newer version than announced
        (the files changed again meanwhile) announces it, so all converge.
        """
        loaded, changed = await self._load()
        if loaded != version:
            logger.warning(
                "another worker announced program %s, but the seed folder here is version %s",
                version,
                loaded,
            )
            if changed:
                await self.engine.store.broadcast(PROGRAM_CHANNEL, loaded)

    async def ready(self) -> None:
        """Raise StoreError unless the store and the database answer."""
        await self.engine.store.ping()
        await to_thread.run_sync(ping_database, self.database)


async def _within(what: str, step: Awaitable[None]) -> None:
    """A step of shutting down, given SHUTDOWN_WAIT seconds: a stop that hangs
    would hold a deploy or a restart up for ever, so it is logged and passed."""
    try:
        async with asyncio.timeout(SHUTDOWN_WAIT):
            await step
    except TimeoutError:
        logger.warning("shutting down: %s did not finish within %gs; going on", what, SHUTDOWN_WAIT)


def _with_tier_changes(results: Sequence[Recorded], unlocks: Sequence[Unlock]) -> list[Recorded]:
    """Tier changes added to the results of their players' last events (a
    referrer's tier change has no event here: it is pushed, not answered)."""
    last = {result.event.player_id: n for n, result in enumerate(results)}
    answered = list(results)
    for unlock in unlocks:
        n = last.get(unlock.player_id)
        if n is not None:
            answered[n] = dataclasses.replace(answered[n], unlocks=[*answered[n].unlocks, unlock])
    return answered
