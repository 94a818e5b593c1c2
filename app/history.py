"""A player's durable unlock history, as the service pages and heals it.

The SQL table is app.records; this module turns unlocks into its rows and
back, pages them for `Player.unlocks`, and finds at start-up the unlocks a
crash left only in the store's outbox.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import fields

from anyio import to_thread

from app import records
from app.paging import page_of, row_cursor
from app.sql import Database, writing
from app.webhooks import outbox
from engine.engine import Engine
from engine.unlocks import Unlock, UnlockKind
from schema.service import Page

#: Recovering history at start-up: outbox entries per read, players per transaction.
RECOVERY_PAGE, RECOVERY_PLAYERS = 500, 100
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


class History:
    def __init__(self, engine: Engine, database: Database) -> None:
        self.engine = engine
        self.database = database

    async def page(self, player_id: str, after: str | None, first: int) -> Page[Unlock]:
        cursor = row_cursor(after, "history")
        found = await to_thread.run_sync(
            records.list_unlocks, self.database, player_id, cursor, first + 1
        )
        rows = [(record.id, unlock_of_record(record)) for record in found if record.id is not None]
        return page_of(rows, first)

    def save(self, unlocks: Sequence[Unlock]) -> int:
        """Copy unlocks into history in a transaction of their own, with the webhook
        deliveries of those new to it (blocking: call it on a worker thread);
        recording copies them in the group commit instead."""
        with writing(self.database) as connection:
            new = records.save_unlocks(connection, [unlock_data(u) for u in unlocks])
            outbox.unlocked(connection, new)
        return len(new)

    async def outbox_unlocks(self) -> AsyncIterator[list[Unlock]]:
        """Every unlock of every outbox, RECOVERY_PLAYERS players at a time.

        Only a crash between the store's claim and the durable copy leaves one
        that history lacks, but start-up cannot tell which, so it reads them
        all; copying skips what history already has. One transaction per
        group of players: one per player made start-up several times slower.
        """
        unlocks: list[Unlock] = []
        players = 0
        async for player_id in self.engine.store.outbox_players():
            after = None
            while True:
                found = await self.engine.unlocks(player_id, after, RECOVERY_PAGE)
                unlocks += found
                if len(found) < RECOVERY_PAGE:
                    break
                after = found[-1].id
            players += 1
            if players % RECOVERY_PLAYERS == 0:
                yield unlocks
                unlocks = []
        yield unlocks
