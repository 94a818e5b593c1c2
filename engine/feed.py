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

Each subscriber's buffer is bounded (`backlog` deliveries): a client that
stops reading (a phone in a tunnel) must not make the server's memory grow
with every unlock its player gets. One that falls that far behind is dropped:
its buffer is emptied, `on_too_slow` is called (the app closes the socket),
and the subscription ends with TooSlowError. Nothing is lost: the outbox
keeps every unlock, and subscribing again with `since` replays them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable

from engine.errors import CursorError, TooSlowError
from engine.store.base import OutboxEntry, Store, cursor_order

#: Outbox entries read per replay round trip.
REPLAY_PAGE = 500
#: Deliveries (one per event that unlocked something) a subscriber may have unread.
BACKLOG = 1000


class _Subscriber:
    """One subscription's bounded buffer; None in it means "dropped: too slow"."""

    def __init__(self, backlog: int, on_too_slow: Callable[[], Awaitable[None]] | None) -> None:
        self.queue: asyncio.Queue[tuple[str, list[OutboxEntry]] | None] = asyncio.Queue(backlog)
        self.on_too_slow = on_too_slow
        self.dropped = False


class Feed:
    def __init__(self, store: Store, backlog: int = BACKLOG) -> None:
        self._store = store
        self._backlog = backlog
        self._subscribers: dict[str, set[_Subscriber]] = defaultdict(set)
        self._everyone: set[_Subscriber] = set()
        self._task: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()

    @property
    def subscribers(self) -> int:
        return sum(len(subscribers) for subscribers in self._subscribers.values()) + len(
            self._everyone
        )

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
            for subscriber in (*self._subscribers.get(player_id, ()), *self._everyone):
                if not subscriber.dropped:
                    self._deliver(subscriber, player_id, entries)

    def _deliver(self, subscriber: _Subscriber, player_id: str, entries: list[OutboxEntry]) -> None:
        try:
            subscriber.queue.put_nowait((player_id, entries))
            return
        except asyncio.QueueFull:
            pass
        subscriber.dropped = True
        while not subscriber.queue.empty():  # free what it never read
            subscriber.queue.get_nowait()
        subscriber.queue.put_nowait(None)
        if subscriber.on_too_slow is not None:
            # It may be stuck writing to a socket nobody reads: close it from here.
            task = asyncio.ensure_future(subscriber.on_too_slow())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def subscribe(
        self,
        player_id: str,
        since: str | None = None,
        on_too_slow: Callable[[], Awaitable[None]] | None = None,
    ) -> AsyncIterator[OutboxEntry]:
        """Entries after `since` (replayed from the outbox), then live ones.

        `on_too_slow` is awaited (in a task of its own) when the subscriber falls
        `backlog` deliveries behind; the iteration then ends with TooSlowError.
        """
        subscriber = _Subscriber(self._backlog, on_too_slow)
        self._subscribers[player_id].add(subscriber)
        queue = subscriber.queue
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
                _, entries = self._received(await queue.get())
                for entry in entries:
                    order = cursor_order(entry.id)
                    if last is not None and order <= last:
                        continue
                    last = order
                    yield entry
        finally:
            subscribers = self._subscribers.get(player_id)
            if subscribers is not None:
                subscribers.discard(subscriber)
                if not subscribers:
                    del self._subscribers[player_id]

    async def subscribe_all(
        self, on_too_slow: Callable[[], Awaitable[None]] | None = None
    ) -> AsyncIterator[tuple[str, OutboxEntry]]:
        """(player id, entry) of every new unlock of every player, from now on;
        bounded like `subscribe`."""
        subscriber = _Subscriber(self._backlog, on_too_slow)
        self._everyone.add(subscriber)
        try:
            while True:
                player_id, entries = self._received(await subscriber.queue.get())
                for entry in entries:
                    yield player_id, entry
        finally:
            self._everyone.discard(subscriber)

    def _received(
        self, delivered: tuple[str, list[OutboxEntry]] | None
    ) -> tuple[str, list[OutboxEntry]]:
        if delivered is None:
            raise TooSlowError(
                f"more than {self._backlog} deliveries of unlocks waited unread; subscribe "
                "again (a player's unlocks: with `since` = the id of the last one received)"
            )
        return delivered


def parse_cursor(cursor: str) -> tuple[int, int]:
    try:
        return cursor_order(cursor)
    except ValueError:
        raise CursorError(
            f"{cursor!r} is not an unlock id; pass the `id` of the last unlock you received"
        ) from None
