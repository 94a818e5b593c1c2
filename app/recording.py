"""Recording events: the store's atomic call, then the durable SQL work,
group-committed, before the caller gets an answer.

Each `Recorder.record` call turns what the engine recorded into one
`Recording`: the unlock copies for history, the points to grant (earnings
and unlock rewards), the analytics rows and the journal rows. The webhook
deliveries of the unlocks new to history are written in the same
transaction (app.webhooks.outbox). The process's
one `GroupCommit` writes every recording queued at that moment in one
transaction, with set-based statements (a multi-row upsert per table, one
locking upsert and one update for the accounts), and wakes each caller once
it is committed: an acknowledged event is durable, and a burst of requests
costs one commit.

Which tier changes and referral qualifications a transaction found are
handed back to the recording holding that player's events (the last one in
the burst), so each is announced by exactly one caller.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from anyio import to_thread

from app import grants, journal, records
from app.analytics import Activity, Analytics, save_activity
from app.economy import Economy
from app.grants import Grant, Granted
from app.history import unlock_data
from app.metrics import Metrics
from app.sql import Database, writing
from app.webhooks import outbox
from engine.engine import Engine, Recorded
from engine.errors import EventIdReusedError
from engine.events import Event
from engine.group_commit import GroupCommit
from engine.program.program import Program
from engine.unlocks import Unlock


@dataclass(frozen=True, slots=True)
class Recording:
    """What one record call must make durable before it answers."""

    unlocks: list[records.UnlockData]
    grants: list[Grant]
    activity: Activity
    journal: list[dict[str, object]]
    #: The players whose events these are: each gets the tier changes and
    #: referral qualifications of the last recording in a burst that holds them.
    players: set[str]


class Recorder:
    """Records events durably: one atomic store call, then this call's share of
    the burst's one transaction (see `GroupCommit`)."""

    def __init__(
        self,
        engine: Engine,
        economy: Economy,
        analytics: Analytics,
        database: Database,
        metrics: Metrics,
    ) -> None:
        self.engine = engine
        self.economy = economy
        self.analytics = analytics
        self.database = database
        self.metrics = metrics
        self._commit = GroupCommit(self._write)

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
        granted = await self._commit.submit(recording)
        self.analytics.written(recording.activity)
        tier_changes = await self.economy.settle(granted)
        if tier_changes:
            results = _with_tier_changes(results, tier_changes)
        self.metrics.recorded(results)
        await self._refuse_reused_ids(events, results)
        return results

    async def wait_idle(self) -> None:
        """Until the recordings queued so far are committed (shutting down)."""
        await self._commit.wait_idle()

    async def _write(self, batch: Sequence[Recording]) -> list[Granted]:
        program, timezone = self.engine.program, self.economy.timezone()
        return await to_thread.run_sync(write, self.database, batch, program, timezone)

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


def write(
    database: Database, batch: Sequence[Recording], program: Program, timezone: ZoneInfo
) -> list[Granted]:
    """Write a burst of recordings in one transaction; each gets the tier changes
    and referral qualifications of the players it is the last to hold."""
    # Rows go in player order, so that concurrent transactions of several
    # workers take their locks in one order; the sort is stable, so a player's
    # history and journal keep the order in which their events were recorded.
    unlocks = sorted(
        (unlock for item in batch for unlock in item.unlocks), key=lambda unlock: unlock.player_id
    )
    activity = Activity(
        sorted({row for item in batch for row in item.activity.days}),
        sorted({row for item in batch for row in item.activity.attempts}),
    )
    events = sorted(
        (row for item in batch for row in item.journal),
        key=lambda row: str(row["player_id"]),
    )
    with writing(database) as connection:
        outbox.unlocked(connection, records.save_unlocks(connection, unlocks))
        granted = grants.grant(
            connection, [grant for item in batch for grant in item.grants], program, timezone
        )
        save_activity(connection, activity)
        journal.append(connection, events)
    last = {player_id: n for n, item in enumerate(batch) for player_id in item.players}
    shares = [Granted([], []) for _ in batch]
    for announcement in granted.announcements:
        shares[last[announcement.player_id]].announcements.append(announcement)
    for player_id in granted.qualified:
        shares[last[player_id]].qualified.append(player_id)
    return shares


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
