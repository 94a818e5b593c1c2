"""The durable SQL work of recording events, group-committed.

Each `Service.record` call turns what the engine recorded into one
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

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from anyio import to_thread
from sqlalchemy import Engine

from app import grants, journal, records
from app.analytics import Activity, save_activity
from app.grants import Grant, Granted
from app.sql import writing
from app.webhooks import outbox
from engine.program.program import Program


@dataclass(frozen=True, slots=True)
class Recording:
    """What one record call must make durable before it answers."""

    unlocks: list[records.UnlockData]
    grants: list[Grant]
    activity: Activity
    journal: list[dict[str, object]]
    players: set[str] = field(default_factory=set)


class Recorder:
    """Writes recordings in one transaction per burst (see `GroupCommit`)."""

    def __init__(
        self, db: Engine, program: Callable[[], Program], timezone: Callable[[], ZoneInfo]
    ) -> None:
        self.db = db
        self._program = program
        self._timezone = timezone

    async def write(self, batch: Sequence[Recording]) -> list[Granted]:
        program, timezone = self._program(), self._timezone()
        return await to_thread.run_sync(write, self.db, batch, program, timezone)


def write(
    db: Engine, batch: Sequence[Recording], program: Program, timezone: ZoneInfo
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
    with writing(db) as connection:
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
