"""The one interface every counter store implements.

The engine never tells a store *why* it touches a key. It hands over a `Plan`:
the keys of one player and a list of primitive operations, which the store
executes atomically (a Lua script on Redis, one transaction on SQLite). The
rules therefore live once, in Python, and every backend only has to agree on
what these few operations mean.

The operations, and what each one means, are defined in engine/store/ops.py.
Plans of one shape share one `Shape` (their ops, never changed once built)
and differ only in keys and `Plan.args`, which lets a store translate the ops
once for many plans.

Before any operation the store checks the event key (`Plan.keys[0]`): an
event seen before returns its original result and changes nothing. It also
checks the profile version in `Plan.keys[1]`; when it differs from
`Plan.profile_version` the plan was built from a stale profile and nothing
is done (status "stale"), so the engine can re-plan.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from engine.store.ops import Arg, Op, Scalar

#: Fixed positions in Plan.keys.
EVENT_KEY, PROFILE_KEY, UNLOCKS_KEY, OUTBOX_KEY = 0, 1, 2, 3


class Shape:
    """Operations shared by many plans, each with its own keys and `Plan.args`.

    Never changed once built: a store may translate `ops` once into its own
    form and keep it in `compiled`, under the store's name.
    """

    __slots__ = ("compiled", "ops")

    def __init__(self, ops: list[Op]) -> None:
        self.ops = ops
        self.compiled: dict[str, object] = {}


@dataclass(slots=True)
class Plan:
    """What one event does to one player's keys.

    A plan of a `shape` has `ops is shape.ops` and must not add any.
    """

    player_id: str
    keys: list[str]
    ops: list[Op] = field(default_factory=list)
    profile_version: int = 0
    dedupe_ttl: int = 8 * 24 * 3600
    args: list[Scalar] = field(default_factory=list)
    shape: Shape | None = None

    def key_index(self, key: str) -> int:
        """Position of `key` in `keys`, appending it the first time."""
        try:
            return self.keys.index(key)
        except ValueError:
            self.keys.append(key)
            return len(self.keys) - 1

    def op(self, operation: Op) -> int:
        """Append an operation; return its register number."""
        if self.shape is not None:
            raise ValueError("a plan of a shape shares its ops; build the shape instead")
        self.ops.append(operation)
        return len(self.ops) - 1

    def value(self, written: Scalar | Arg | None) -> Scalar | None:
        """A value as written in an op, with an `Arg` looked up."""
        return self.args[written.index] if isinstance(written, Arg) else written


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One unlock as it sits in a player's outbox.

    `id` is an opaque, increasing cursor (`<ms>-<seq>`) used by subscriptions
    to replay what a client missed; `unlock` is the unlock value the engine
    stored (engine.unlocks.unlock_value: epoch milliseconds, maybe flagged as
    backfilled).
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


@dataclass(frozen=True, slots=True)
class Ranking:
    """What `Store.ranking` reads of a board, in one consistent state."""

    #: Players on the board.
    size: int
    #: (player id, score) of the first players, rank 1 first.
    top: list[tuple[str, int]]
    #: Rank (from 1) of the first of `around`; 0 when the player is not on the board.
    around_rank: int
    #: (player id, score) of the player asked about and their neighbours, in rank order.
    around: list[tuple[str, int]]


def cursor_order(cursor: str) -> tuple[int, int]:
    """Sort key of an outbox id, so replayed and live entries can be merged."""
    ms, _, seq = cursor.partition("-")
    return int(ms), int(seq or 0)


class Store(abc.ABC):
    """A counter store: Redis in production, SQLite embedded."""

    #: Why this store cannot keep leaderboards in the atomic step of an event,
    #: and what to do about it; None when it can.
    leaderboards_unsupported: str | None = None

    @abc.abstractmethod
    async def apply(self, plan: Plan) -> Applied:
        """Execute one plan atomically, in one round trip."""

    @abc.abstractmethod
    async def apply_many(self, plans: Iterable[Plan]) -> list[Applied]:
        """Execute many plans, each atomically and in order, in as few round trips
        as possible. `plans` may be a generator: a store may consume it while
        earlier plans are running, so planning overlaps with the store's work."""

    @abc.abstractmethod
    async def read(self, reads: Sequence[Read]) -> list[Any]:
        """Read many keys at once: ints, set sizes or hashes (dict[str, str])."""

    @abc.abstractmethod
    async def ranking(self, key: str, first: int, around: str | None, neighbours: int) -> Ranking:
        """The `first` players of board `key` and, when player `around` is on it,
        that player with up to `neighbours` either side: one round trip."""

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
