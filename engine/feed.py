"""Live unlocks for subscribers, with replay of what a client missed.

One store listener per process (a Redis pub/sub connection, or the SQLite
store's in-process fan-out) feeds every local subscriber; a WebSocket never
gets a store connection of its own.

A subscriber follows one player, or everyone (`subscribe_all`, for an
operator's live feed: live only, since outboxes are per player and nothing
orders them across players).

A subscription with a `since` cursor must see every unlock after it exactly
once, even while new ones arrive. So the subscriber's live buffer is opened
*before* the outbox is replayed, and live entries at or before the last
replayed cursor are dropped: no gap, no duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator

from engine.errors import CursorError
from engine.store.base import OutboxEntry, Store, cursor_order

#: Outbox entries read per replay round trip.
REPLAY_PAGE = 500


class Feed:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._queues: dict[str, set[asyncio.Queue[list[OutboxEntry]]]] = defaultdict(set)
        self._everyone: set[asyncio.Queue[tuple[str, list[OutboxEntry]]]] = set()
        self._task: asyncio.Task[None] | None = None

    @property
    def subscribers(self) -> int:
        return sum(len(queues) for queues in self._queues.values()) + len(self._everyone)

    async def start(self) -> None:
        ready = asyncio.Event()
        self._task = asyncio.create_task(self._listen(ready), name="questline-feed")
        await ready.wait()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _listen(self, ready: asyncio.Event) -> None:
        async for player_id, entries in self._store.listen(ready.set):
            for queue in self._queues.get(player_id, ()):
                queue.put_nowait(entries)
            for everyone in self._everyone:
                everyone.put_nowait((player_id, entries))

    async def subscribe(
        self, player_id: str, since: str | None = None
    ) -> AsyncIterator[OutboxEntry]:
        """Entries after `since` (replayed from the outbox), then live ones."""
        queue: asyncio.Queue[list[OutboxEntry]] = asyncio.Queue()
        self._queues[player_id].add(queue)
        try:
            last: tuple[int, int] | None = None
            if since is not None:
                last = parse_cursor(since)
                cursor = since
                while True:
                    page = await self._store.outbox(player_id, cursor, REPLAY_PAGE)
                    for entry in page:
                        yield entry
                    if page:
                        cursor = page[-1].id
                        last = cursor_order(cursor)
                    if len(page) < REPLAY_PAGE:
                        break
            while True:
                for entry in await queue.get():
                    order = cursor_order(entry.id)
                    if last is not None and order <= last:
                        continue
                    last = order
                    yield entry
        finally:
            queues = self._queues.get(player_id)
            if queues is not None:
                queues.discard(queue)
                if not queues:
                    del self._queues[player_id]

    async def subscribe_all(self) -> AsyncIterator[tuple[str, OutboxEntry]]:
        """(player id, entry) of every new unlock of every player, from now on."""
        queue: asyncio.Queue[tuple[str, list[OutboxEntry]]] = asyncio.Queue()
        self._everyone.add(queue)
        try:
            while True:
                player_id, entries = await queue.get()
                for entry in entries:
                    yield player_id, entry
        finally:
            self._everyone.discard(queue)


def parse_cursor(cursor: str) -> tuple[int, int]:
    try:
        return cursor_order(cursor)
    except ValueError:
        raise CursorError(
            f"{cursor!r} is not an unlock id; pass the `id` of the last unlock you received"
        ) from None
