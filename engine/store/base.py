"""The one interface every counter store implements.

The engine never tells a store *why* it touches a key. It hands over a `Plan`:
the keys of one player and a list of primitive operations, which the store
executes atomically (a Lua script on Redis, one transaction on SQLite). The
rules therefore live once, in Python, and every backend only has to agree on
what these few operations mean.

Operations (JSON lists; `k` indexes `Plan.keys`; op *i* leaves its result in
register R[i] for later ops):

    ["add", k, amount, expire_at]      INCRBY; result: new value
    ["max", k, value, expire_at]       keep the larger integer; result: new value
    ["distinct", k, member, expire_at] add to a set; result: set size
    ["get", k]                         integer value, 0 when missing
    ["card", k]                        set size, 0 when missing
    ["streak", k, period, reg, min, freeze_max, earn_every]
                                       extend streak hash k for period index `period`
                                       when R[reg] >= min; result: current length
    ["claim", field, conds, requires, unlock, extras]
                                       when R[reg] >= threshold for every [reg, threshold]
                                       in conds and every field in `requires` is present,
                                       set `field` in the unlocks hash if absent; on a
                                       new claim also set each [field, unlock|null] in
                                       extras if absent. Every newly set field with an
                                       unlock JSON is appended to the outbox and published.
                                       result: 1 when newly claimed, else 0

`expire_at` is a Unix time in seconds (0: never). Streak state is a hash with
`last` (period index), `current`, `longest`, `freezes`: the same period again
changes nothing, an older period changes nothing, the next period extends,
a gap of g periods is bridged when g <= freezes (consuming g), else the streak
restarts at 1; a freeze is earned whenever current is a multiple of
`earn_every`, up to `freeze_max`.

Before any operation the store checks the event key (`Plan.keys[0]`): an
event seen before returns its original result and changes nothing. It also
checks the profile version in `Plan.keys[1]`; when it differs from
`Plan.profile_version` the plan was built from a stale profile and nothing
is done (status "stale"), so the engine can re-plan.
"""

from __future__ import annotations

import abc
import json
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

#: Fixed positions in Plan.keys.
EVENT_KEY, PROFILE_KEY, UNLOCKS_KEY, OUTBOX_KEY = 0, 1, 2, 3


@dataclass(slots=True)
class Plan:
    """What one event does to one player's keys."""

    player_id: str
    keys: list[str]
    ops: list[list[Any]] = field(default_factory=list)
    profile_version: int = 0
    dedupe_ttl: int = 8 * 24 * 3600

    def key_index(self, key: str) -> int:
        """Position of `key` in `keys`, appending it the first time."""
        try:
            return self.keys.index(key)
        except ValueError:
            self.keys.append(key)
            return len(self.keys) - 1

    def op(self, *operation: Any) -> int:
        """Append an operation; return its register number."""
        self.ops.append(list(operation))
        return len(self.ops) - 1

    def to_json(self) -> str:
        return json.dumps(
            {"p": self.player_id, "v": self.profile_version, "t": self.dedupe_ttl, "o": self.ops},
            separators=(",", ":"),
        )


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One unlock as it sits in a player's outbox.

    `id` is an opaque, increasing cursor (`<ms>-<seq>`) used by subscriptions
    to replay what a client missed; `unlock` is the unlock JSON built by the
    engine.
    """

    id: str
    key: str
    unlock: str


@dataclass(frozen=True, slots=True)
class Applied:
    status: Literal["ok", "duplicate", "stale"]
    entries: list[OutboxEntry]


@dataclass(frozen=True, slots=True)
class Read:
    kind: Literal["int", "card", "hash"]
    key: str


def cursor_order(cursor: str) -> tuple[int, int]:
    """Sort key of an outbox id, so replayed and live entries can be merged."""
    ms, _, seq = cursor.partition("-")
    return int(ms), int(seq or 0)


class Store(abc.ABC):
    """A counter store: Redis in production, SQLite embedded."""

    #: Whether several processes can share this store.
    shared: bool = False

    @abc.abstractmethod
    async def apply(self, plan: Plan) -> Applied:
        """Execute one plan atomically, in one round trip."""

    @abc.abstractmethod
    async def apply_many(self, plans: Sequence[Plan]) -> list[Applied]:
        """Execute many plans, each atomically, in as few round trips as possible."""

    @abc.abstractmethod
    async def read(self, reads: Sequence[Read]) -> list[Any]:
        """Read many keys at once: ints, set sizes or hashes (dict[str, str])."""

    @abc.abstractmethod
    async def outbox(self, player_id: str, after: str | None, limit: int) -> list[OutboxEntry]:
        """Entries of a player's outbox strictly after cursor `after`, oldest first."""

    @abc.abstractmethod
    async def set_profile(self, player_id: str, fields: dict[str, str]) -> int:
        """Set profile fields and bump the profile version; return the new version."""

    @abc.abstractmethod
    def listen(
        self, on_ready: Callable[[], None] | None = None
    ) -> AsyncIterator[tuple[str, list[OutboxEntry]]]:
        """Every unlock committed from now on, by any process sharing this store.

        Yields (player id, entries). `on_ready` is called once the listener
        is really subscribed, so nothing committed after that is missed. One
        listener per process is enough; the engine's feed fans it out. On Redis
        every listener of one store object shares one pub/sub connection.
        """

    @abc.abstractmethod
    def outbox_players(self) -> AsyncIterator[str]:
        """Every player who has an outbox, in no particular order.

        For start-up recovery, which copies every outbox into durable history.
        A player may be named more than once (Redis SCAN may repeat a key), and
        one whose first unlock is committed during the walk may be missed.
        """

    @abc.abstractmethod
    async def broadcast(self, channel: str, message: str) -> None:
        """Send `message` to every `listen_broadcasts()` of every process
        sharing this store, this one's included.

        For rare control messages (a reloaded program), not data: like Redis
        pub/sub, a process that is not listening at that moment never sees it.
        """

    @abc.abstractmethod
    def listen_broadcasts(
        self, on_ready: Callable[[], None] | None = None
    ) -> AsyncIterator[tuple[str, str]]:
        """Every broadcast sent from now on, as (channel, message).

        `on_ready` as in `listen`. Shares the process's one listener
        connection with `listen`, however many iterators are open.
        """

    @abc.abstractmethod
    async def ping(self) -> None:
        """Raise StoreError when the store cannot be reached."""

    @abc.abstractmethod
    async def close(self) -> None: ...
