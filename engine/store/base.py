"""The one interface every counter store implements.

The engine never tells a store *why* it touches a key. It hands over a `Plan`:
the keys of one player and a list of primitive operations, which the store
executes atomically (a Lua script on Redis, one transaction on SQLite). The
rules therefore live once, in Python, and every backend only has to agree on
what these few operations mean.

Operations (lists; `k` indexes `Plan.keys`; op *i* leaves its result in
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
    ["steps", reg, [[threshold, field, unlock, extras], ...]]
                                       milestone tiers: for each step in turn, stopping at
                                       the first with R[reg] < threshold, what a claim with
                                       conds [[reg, threshold]] and no requires does; list
                                       steps by rising threshold. result: steps newly claimed
    ["rank", k, reg, expire_at]        put the plan's player on board k (a sorted set) with
                                       score R[reg], replacing their score there; result: 1
                                       when they joined the board, else 0

`expire_at` is a Unix time in seconds (0: never) that a key gets when it
starts: `max` and `distinct` set it when they create the key, `add` when the
new value equals the amount (a new key, or one that was at zero), `rank`
when a player joins the board. Otherwise the key keeps its expiry, so a
bucket's lifetime is fixed by its first event.

Boards order players by score, highest first, and equal scores by player id
in byte order (both stores keep the score negated and sort ascending, as
ZRANGE does). Scores are integers below 2**53 (Redis keeps them as doubles).

Streak state is a hash with `last` (period index), `current`, `longest`,
`freezes`: the same period again changes nothing, an older period changes
nothing, the next period extends, a gap of g periods is bridged when
g <= freezes (consuming g), else the streak restarts at 1; a freeze is earned
whenever current is a multiple of `earn_every`, up to `freeze_max`.

Any value of an op but its name, key indexes, registers and lists may be an
`Arg`: the value at that index of `Plan.args`. Plans of one shape share one
`Shape` (their ops, never changed once built) and differ only in keys and
args, which lets a store translate the ops once for many plans. Registers
that no later op reads need not be computed, and reads (`get`, `card`) may be
deferred until a condition needs them: nothing observable depends on it.

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

#: Fixed positions in Plan.keys.
EVENT_KEY, PROFILE_KEY, UNLOCKS_KEY, OUTBOX_KEY = 0, 1, 2, 3


@dataclass(frozen=True, slots=True)
class Arg:
    """Stands for `Plan.args[index]` as a value in an op."""

    index: int


class Shape:
    """Operations shared by many plans, each with its own keys and `Plan.args`.

    Never changed once built: a store may translate `ops` once into its own
    form and keep it in `compiled`, under the store's name.
    """

    __slots__ = ("compiled", "ops")

    def __init__(self, ops: list[list[Any]]) -> None:
        self.ops = ops
        self.compiled: dict[str, Any] = {}


@dataclass(slots=True)
class Plan:
    """What one event does to one player's keys.

    A plan of a `shape` has `ops is shape.ops` and must not add any.
    """

    player_id: str
    keys: list[str]
    ops: list[list[Any]] = field(default_factory=list)
    profile_version: int = 0
    dedupe_ttl: int = 8 * 24 * 3600
    args: list[Any] = field(default_factory=list)
    shape: Shape | None = None

    def key_index(self, key: str) -> int:
        """Position of `key` in `keys`, appending it the first time."""
        try:
            return self.keys.index(key)
        except ValueError:
            self.keys.append(key)
            return len(self.keys) - 1

    def op(self, *operation: Any) -> int:
        """Append an operation; return its register number."""
        if self.shape is not None:
            raise ValueError("a plan of a shape shares its ops; build the shape instead")
        self.ops.append(list(operation))
        return len(self.ops) - 1

    def value(self, written: Any) -> Any:
        """A value as written in an op, with an `Arg` looked up."""
        return self.args[written.index] if isinstance(written, Arg) else written


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

    #: Whether several processes can share this store.
    shared: bool = False
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
