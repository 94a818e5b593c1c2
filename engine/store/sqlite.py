"""The embedded SQLite counter store: the single-process default.

It executes the same plans as the Redis script, op for op, over tables that
mirror the Redis keyspace under the very same key names:

    keyspace(key, value, expires_at)      integer counters, set sizes, event results
    members(key, member)                  set members (their size lives in keyspace)
    fields(key, field, value)             hashes: profile, unlocks, streaks
    outbox(id, key, field, unlock)        every unlock, id issued as "0-<id>"
    ranks(key, member, score)             sorted sets (leaderboards), the score negated as
                                          on Redis (their size lives in keyspace)

A key past its `expires_at` (Unix seconds, 0: never) counts as missing, as in
Redis; expired rows are deleted when touched and purged now and then.

sqlite3 blocks, so every call runs on one worker thread that owns the
connection. Plans are group-committed (engine.group_commit): every call
waiting at that moment is applied in one `BEGIN IMMEDIATE` transaction, with
a savepoint per plan, so a failing plan leaves no trace while the others
commit, and a burst of concurrent requests costs one commit (one fsync)
instead of one each. With `synchronous=FULL` a plan is on disk when `apply`
returns. Unlocks and broadcasts are fanned out in-process, to the `listen()`
and `listen_broadcasts()` generators of this store object.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from engine.errors import StoreError
from engine.group_commit import GroupCommit
from engine.store import cursor_position, keys, ops
from engine.store.base import (
    OUTBOX_KEY,
    UNLOCKS_KEY,
    Applied,
    OutboxEntry,
    Plan,
    Ranking,
    Read,
    Store,
)

T = TypeVar("T")
Published = tuple[str, list[OutboxEntry]]

SCHEMA = """
CREATE TABLE IF NOT EXISTS keyspace (
    key TEXT PRIMARY KEY,
    value NOT NULL,
    expires_at REAL NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS keyspace_expiry ON keyspace (expires_at) WHERE expires_at > 0;
CREATE TABLE IF NOT EXISTS members (
    key TEXT NOT NULL,
    member TEXT NOT NULL,
    PRIMARY KEY (key, member)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS fields (
    key TEXT NOT NULL,
    field TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (key, field)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    field TEXT NOT NULL,
    unlock TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_by_key ON outbox (key, id);
CREATE TABLE IF NOT EXISTS ranks (
    key TEXT NOT NULL,
    member TEXT NOT NULL,
    score INTEGER NOT NULL,
    PRIMARY KEY (key, member)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ranks_in_order ON ranks (key, score, member);
"""

#: Plans committed between two purges of expired keys.
PURGE_EVERY = 1000

_PUT = (
    "INSERT INTO keyspace (key, value, expires_at) VALUES (?, ?, ?) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at"
)
_SET_FIELD = (
    "INSERT INTO fields (key, field, value) VALUES (?, ?, ?) "
    "ON CONFLICT (key, field) DO UPDATE SET value = excluded.value"
)
_STREAK_FIELDS = ("last", "current", "longest", "freezes")


class PlanError(Exception):
    """A plan the store cannot execute (unknown op, malformed arguments)."""


class SqliteStore(Store):
    """Counters, unlocks and outboxes in one SQLite file (or in memory)."""

    def __init__(
        self,
        path: str,
        *,
        clock: Callable[[], float] = time.time,
        synchronous: str = "FULL",
    ) -> None:
        self._path = path
        self._clock = clock
        self._synchronous = synchronous
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="questline-sqlite")
        self._db: sqlite3.Connection | None = None
        self._listeners: set[asyncio.Queue[Published | None]] = set()
        self._broadcast_listeners: set[asyncio.Queue[tuple[str, str] | None]] = set()
        self._since_purge = 0
        self._closed = False
        self._commits: GroupCommit[Sequence[Plan], list[Applied]] = GroupCommit(
            self._commit, isolate=False
        )

    # --- the Store interface (event loop side) -----------------------------------

    async def apply(self, plan: Plan) -> Applied:
        return (await self.apply_many((plan,)))[0]

    async def apply_many(self, plans: Iterable[Plan]) -> list[Applied]:
        batch = list(plans)
        if not batch:
            return []
        return await self._commits.submit(batch)

    async def _commit(self, calls: Sequence[Sequence[Plan]]) -> list[list[Applied] | Exception]:
        return await self._run(self._apply_all, calls, asyncio.get_running_loop())

    async def read(self, reads: Sequence[Read]) -> list[Any]:
        return await self._run(self._read, reads)

    async def ranking(self, key: str, first: int, around: str | None, neighbours: int) -> Ranking:
        return await self._run(self._ranking, key, first, around, neighbours)

    async def outbox(self, player_id: str, after: str | None, limit: int) -> list[OutboxEntry]:
        ms, seq = (0, 0) if after is None else cursor_position(after)
        if limit <= 0 or ms > 0:  # our ids all are "0-<n>": none comes after a later one
            return []
        return await self._run(self._outbox, keys.outbox(player_id), seq, limit)

    async def set_profile(self, player_id: str, fields: dict[str, str]) -> int:
        if "version" in fields:
            raise ValueError("the profile field 'version' is the store's own; pick another name")
        return await self._run(self._set_profile, keys.profile(player_id), fields)

    def listen(
        self, on_ready: Callable[[], None] | None = None
    ) -> AsyncIterator[tuple[str, list[OutboxEntry]]]:
        return _follow(self._listeners, on_ready)

    def listen_broadcasts(
        self, on_ready: Callable[[], None] | None = None
    ) -> AsyncIterator[tuple[str, str]]:
        return _follow(self._broadcast_listeners, on_ready)

    async def broadcast(self, channel: str, message: str) -> None:
        if self._closed:
            raise StoreError(f"the SQLite store at {self._path!r} is closed")
        for queue in self._broadcast_listeners:
            queue.put_nowait((channel, message))

    async def outbox_players(self) -> AsyncIterator[str]:
        for key in await self._run(self._outbox_keys):
            yield keys.outbox_player(key)

    async def ping(self) -> None:
        await self._run(self._ping)

    async def close(self) -> None:
        if self._closed:
            return
        await self._commits.wait_idle()
        for listeners in (self._listeners, self._broadcast_listeners):
            for queue in listeners:
                queue.put_nowait(None)
        try:
            await self._run(self._close)
        finally:
            self._closed = True
            self._worker.shutdown(wait=False)

    async def _run(self, work: Callable[..., T], *args: Any) -> T:
        """Run `work` on the worker thread, which owns the connection."""
        if self._closed:
            raise StoreError(f"the SQLite store at {self._path!r} is closed")
        return await asyncio.get_running_loop().run_in_executor(self._worker, work, *args)

    def _deliver(self, published: list[Published]) -> None:
        for queue in self._listeners:
            for item in published:
                queue.put_nowait(item)

    # --- the worker thread ----------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            try:
                db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            except sqlite3.Error as error:
                raise StoreError(
                    f"cannot open the SQLite database at {self._path!r}: {error}; "
                    "does its directory exist and may this process write there?"
                ) from error
            try:
                db.execute("PRAGMA journal_mode = WAL")
                db.execute(f"PRAGMA synchronous = {self._synchronous}")
                db.execute("PRAGMA busy_timeout = 5000")
                db.executescript(SCHEMA)
            except sqlite3.Error as error:
                db.close()
                raise self._error(error) from error
            self._db = db
        return self._db

    def _error(self, error: sqlite3.Error, context: str = "") -> StoreError:
        where = f"the SQLite database at {self._path!r}"
        if isinstance(error, sqlite3.OperationalError) and "locked" in str(error):
            message = (
                f"{where} is locked by another process; the embedded store serves one process, "
                "use Redis to share counters between processes"
            )
        elif isinstance(error, sqlite3.DatabaseError) and "not a database" in str(error):
            message = f"{where} is not a SQLite database ({error}); check the store URL"
        else:
            message = f"{where} failed: {error}"
        return StoreError(f"{context}: {message}" if context else message)

    def _transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        db = self._connection()
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                result = work(db)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except sqlite3.Error as error:
            raise self._error(error) from error
        return result

    def _apply_all(
        self, calls: Sequence[Sequence[Plan]], loop: asyncio.AbstractEventLoop
    ) -> list[list[Applied] | Exception]:
        """Apply the plans of several calls in one transaction; a call with a
        failing plan gets a StoreError (its other plans, like every other
        call's, commit)."""
        now = self._clock()
        plans = [plan for call in calls for plan in call]
        results: list[Applied | PlanError] = []

        def work(db: sqlite3.Connection) -> None:
            if self._since_purge >= PURGE_EVERY:
                self._purge(db, now)
            for plan in plans:
                db.execute("SAVEPOINT plan")
                try:
                    results.append(self._apply_plan(db, plan, now))
                except PlanError as error:
                    db.execute("ROLLBACK TO plan")
                    results.append(error)
                db.execute("RELEASE plan")

        self._transaction(work)
        self._since_purge += len(plans)
        published = [
            (plan.player_id, applied.entries)
            for plan, applied in zip(plans, results, strict=True)
            if isinstance(applied, Applied) and applied.status == "ok" and applied.entries
        ]
        if published and not loop.is_closed():
            loop.call_soon_threadsafe(self._deliver, published)
        outcomes: list[list[Applied] | Exception] = []
        start = 0
        for call in calls:
            mine = results[start : start + len(call)]
            start += len(call)
            outcomes.append(self._outcome(call, mine))
        return outcomes

    def _outcome(
        self, plans: Sequence[Plan], results: Sequence[Applied | PlanError]
    ) -> list[Applied] | Exception:
        for index, result in enumerate(results):
            if isinstance(result, PlanError):
                context = f"plan {index} of the batch (player {plans[index].player_id!r})"
                where = f"the SQLite store at {self._path!r} refused it: {result}"
                return StoreError(f"{context}: {where}" if len(plans) > 1 else where)
        return [result for result in results if isinstance(result, Applied)]

    def _apply_plan(self, db: sqlite3.Connection, plan: Plan, now: float) -> Applied:
        """One plan, op for op as lua/apply.lua does it."""
        plan_keys = plan.keys
        event = self._live(db, plan_keys[0], now)
        if event is not None:
            return Applied("duplicate", _entries(event[0]))
        row = db.execute(
            "SELECT value FROM fields WHERE key = ? AND field = 'version'", (plan_keys[1],)
        ).fetchone()
        if (int(row[0]) if row else 0) != plan.profile_version:
            return Applied("stale", [])
        registers: list[int] = []
        entries: list[OutboxEntry] = []
        try:
            for op in plan.ops:
                registers.append(self._op(db, plan, op, registers, entries, now))
        except (IndexError, KeyError, TypeError, ValueError) as error:
            raise PlanError(f"malformed plan operation: {error!r}") from error
        payload = json.dumps([[e.id, e.key, e.unlock] for e in entries], separators=(",", ":"))
        expires_at = now + plan.dedupe_ttl if plan.dedupe_ttl > 0 else 0
        db.execute(_PUT, (plan_keys[0], payload, expires_at))
        return Applied("ok", entries)

    def _op(
        self,
        db: sqlite3.Connection,
        plan: Plan,
        op: ops.Op,
        registers: list[int],
        entries: list[OutboxEntry],
        now: float,
    ) -> int:
        if isinstance(op, ops.Add):
            key, amount = plan.keys[op.key], _number(plan, op.amount)
            row = self._live(db, key, now)
            result = (row[0] if row else 0) + amount
            expire_at = _number(plan, op.expire_at) if result == amount else 0
            self._put(db, key, result, expire_at, row)
        elif isinstance(op, ops.Max):
            key, result = plan.keys[op.key], _number(plan, op.value)
            row = self._live(db, key, now)
            if row is not None and row[0] >= result:
                result = row[0]
            self._put(db, key, result, _number(plan, op.expire_at) if row is None else 0, row)
        elif isinstance(op, ops.Distinct):
            key = plan.keys[op.key]
            row = self._live(db, key, now)
            added = db.execute(
                "INSERT OR IGNORE INTO members (key, member) VALUES (?, ?)",
                (key, _member(plan.value(op.member))),
            ).rowcount
            result = (row[0] if row else 0) + added
            expire_at = _number(plan, op.expire_at) if added and result == 1 else 0
            self._put(db, key, result, expire_at, row)
        elif isinstance(op, ops.Get | ops.Card):
            row = self._live(db, plan.keys[op.key], now)
            result = row[0] if row else 0
        elif isinstance(op, ops.Streak):
            result = self._streak(
                db,
                plan.keys[op.key],
                _number(plan, op.period),
                registers[op.register] >= _number(plan, op.minimum),
                _number(plan, op.freeze_max),
                _number(plan, op.earn_every),
            )
        elif isinstance(op, ops.Claim):
            if any(registers[c.register] < _number(plan, c.threshold) for c in op.conditions):
                result = 0
            else:
                result = self._claim(db, plan, op.field, op.requires, op.unlock, op.extras, entries)
        elif isinstance(op, ops.Steps):
            result = 0
            for step in op.steps:
                if registers[op.register] < _number(plan, step.threshold):
                    break
                result += self._claim(db, plan, step.field, (), step.unlock, step.extras, entries)
        elif isinstance(op, ops.Rank):
            key, score = plan.keys[op.key], -registers[op.register]
            expire_at = _number(plan, op.expire_at)
            result = self._rank(db, key, plan.player_id, score, expire_at, now)
        else:
            raise PlanError(f"unknown plan operation: {ops.name_of(op)}")
        return int(result)

    def _live(self, db: sqlite3.Connection, key: str, now: float) -> tuple[Any, float] | None:
        """(value, expires_at) of a key, None when missing; expired keys go, as in Redis."""
        row: tuple[Any, float] | None = db.execute(
            "SELECT value, expires_at FROM keyspace WHERE key = ?", (key,)
        ).fetchone()
        if row is not None and 0 < row[1] < now:
            db.execute("DELETE FROM keyspace WHERE key = ?", (key,))
            db.execute("DELETE FROM members WHERE key = ?", (key,))
            db.execute("DELETE FROM ranks WHERE key = ?", (key,))
            return None
        return row

    def _put(
        self,
        db: sqlite3.Connection,
        key: str,
        value: int,
        expire_at: int,
        row: tuple[Any, float] | None,
    ) -> None:
        """Write a counter, setting its expiry when `expire_at` is not zero (as
        EXPIREAT does) and keeping the current one otherwise."""
        expires_at = expire_at if expire_at > 0 else (row[1] if row else 0)
        db.execute(_PUT, (key, value, expires_at))

    def _streak(
        self,
        db: sqlite3.Connection,
        key: str,
        period: int,
        reached: bool,
        freeze_max: int,
        earn_every: int,
    ) -> int:
        state = dict(db.execute("SELECT field, value FROM fields WHERE key = ?", (key,)))
        current = int(state.get("current", 0))
        last = int(state["last"]) if "last" in state else None
        if not reached or (last is not None and period <= last):
            return current
        freezes = int(state.get("freezes", 0))
        gap = None if last is None else period - last - 1
        if gap is not None and gap <= freezes:
            freezes -= gap
            current += 1
        else:
            current = 1
        longest = max(int(state.get("longest", 0)), current)
        if earn_every > 0 and current % earn_every == 0 and freezes < freeze_max:
            freezes += 1
        values = (period, current, longest, freezes)
        db.executemany(
            _SET_FIELD,
            [(key, field, str(v)) for field, v in zip(_STREAK_FIELDS, values, strict=True)],
        )
        return current

    def _claim(
        self,
        db: sqlite3.Connection,
        plan: Plan,
        field: ops.Text,
        requires: tuple[ops.Text, ...],
        unlock: ops.Text | None,
        extras: tuple[ops.Extra, ...],
        entries: list[OutboxEntry],
    ) -> int:
        """A claim whose conditions are met: 1 when `field` is newly granted."""
        unlocks, outbox = plan.keys[UNLOCKS_KEY], plan.keys[OUTBOX_KEY]
        for required in requires:
            if not db.execute(
                "SELECT 1 FROM fields WHERE key = ? AND field = ?", (unlocks, _text(plan, required))
            ).fetchone():
                return 0
        if not self._grant(db, unlocks, outbox, _text(plan, field), _unlock(plan, unlock), entries):
            return 0
        for extra in extras:
            granted = _text(plan, extra.field), _unlock(plan, extra.unlock)
            self._grant(db, unlocks, outbox, *granted, entries)
        return 1

    def _grant(
        self,
        db: sqlite3.Connection,
        unlocks: str,
        outbox: str,
        field: str,
        unlock: str | None,
        entries: list[OutboxEntry],
    ) -> bool:
        """Set an unlocks field if absent ("" for a marker); an unlock goes to the outbox."""
        if not db.execute(
            "INSERT OR IGNORE INTO fields (key, field, value) VALUES (?, ?, ?)",
            (unlocks, field, "" if unlock is None else unlock),
        ).rowcount:
            return False
        if unlock is not None:
            rowid = db.execute(
                "INSERT INTO outbox (key, field, unlock) VALUES (?, ?, ?)", (outbox, field, unlock)
            ).lastrowid
            entries.append(OutboxEntry(f"0-{rowid}", field, unlock))
        return True

    def _rank(
        self,
        db: sqlite3.Connection,
        key: str,
        member: str,
        score: int,
        expire_at: int,
        now: float,
    ) -> int:
        """ZADD: `member` on board `key` with `score`; 1 when it joined the
        board, which then takes `expire_at` (0: keeps its expiry)."""
        row = self._live(db, key, now)
        added = db.execute(
            "INSERT OR IGNORE INTO ranks (key, member, score) VALUES (?, ?, ?)",
            (key, member, score),
        ).rowcount
        if added:
            self._put(db, key, (row[0] if row else 0) + 1, expire_at, row)
        else:
            db.execute(
                "UPDATE ranks SET score = ? WHERE key = ? AND member = ?", (score, key, member)
            )
        return int(added)

    def _purge(self, db: sqlite3.Connection, now: float) -> None:
        expired = "SELECT key FROM keyspace WHERE expires_at > 0 AND expires_at < ?"
        db.execute(f"DELETE FROM members WHERE key IN ({expired})", (now,))
        db.execute(f"DELETE FROM ranks WHERE key IN ({expired})", (now,))
        db.execute("DELETE FROM keyspace WHERE expires_at > 0 AND expires_at < ?", (now,))
        self._since_purge = 0

    def _read(self, reads: Sequence[Read]) -> list[Any]:
        now = self._clock()

        def work(db: sqlite3.Connection) -> list[Any]:
            values: list[Any] = []
            for item in reads:
                if item.kind == "hash":
                    rows = db.execute("SELECT field, value FROM fields WHERE key = ?", (item.key,))
                    values.append(dict(rows))
                else:
                    row = db.execute(
                        "SELECT value FROM keyspace WHERE key = ? "
                        "AND (expires_at = 0 OR expires_at >= ?)",
                        (item.key, now),
                    ).fetchone()
                    values.append(row[0] if row else 0)
            return values

        return self._snapshot(work)

    def _ranking(self, key: str, first: int, around: str | None, neighbours: int) -> Ranking:
        now = self._clock()
        in_order = (
            "SELECT member, -score FROM ranks WHERE key = ? ORDER BY score, member LIMIT ? OFFSET ?"
        )

        def work(db: sqlite3.Connection) -> Ranking:
            size = db.execute(
                "SELECT value FROM keyspace WHERE key = ? AND (expires_at = 0 OR expires_at >= ?)",
                (key, now),
            ).fetchone()
            if size is None:
                return Ranking(0, [], 0, [])
            top = db.execute(in_order, (key, first, 0)).fetchall()
            start, near = 0, []
            found = None
            if around is not None:
                found = db.execute(
                    "SELECT score FROM ranks WHERE key = ? AND member = ?", (key, around)
                ).fetchone()
            if found is not None:
                # Players ranked above: a count over the index, as SQLite has no ZRANK.
                (above,) = db.execute(
                    "SELECT COUNT(*) FROM ranks WHERE key = ? AND (score, member) < (?, ?)",
                    (key, found[0], around),
                ).fetchone()
                offset = max(0, above - neighbours)
                near = db.execute(
                    in_order, (key, above - offset + 1 + neighbours, offset)
                ).fetchall()
                start = offset + 1
            return Ranking(int(size[0]), [(m, s) for m, s in top], start, [(m, s) for m, s in near])

        return self._snapshot(work)

    def _outbox(self, key: str, after: int, limit: int) -> list[OutboxEntry]:
        def work(db: sqlite3.Connection) -> list[OutboxEntry]:
            rows = db.execute(
                "SELECT id, field, unlock FROM outbox WHERE key = ? AND id > ? ORDER BY id LIMIT ?",
                (key, after, limit),
            )
            return [OutboxEntry(f"0-{rowid}", field, unlock) for rowid, field, unlock in rows]

        return self._snapshot(work)

    def _outbox_keys(self) -> list[str]:
        return self._snapshot(
            lambda db: [key for (key,) in db.execute("SELECT DISTINCT key FROM outbox")]
        )

    def _snapshot(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Read-only work, in one read transaction so it sees one state."""
        db = self._connection()
        try:
            db.execute("BEGIN")
            try:
                return work(db)
            finally:
                db.execute("COMMIT")
        except sqlite3.Error as error:
            raise self._error(error) from error

    def _set_profile(self, key: str, fields: dict[str, str]) -> int:
        def work(db: sqlite3.Connection) -> int:
            row = db.execute(
                "SELECT value FROM fields WHERE key = ? AND field = 'version'", (key,)
            ).fetchone()
            version = (int(row[0]) if row else 0) + 1
            db.executemany(_SET_FIELD, [(key, name, value) for name, value in fields.items()])
            db.execute(_SET_FIELD, (key, "version", str(version)))
            return version

        return self._transaction(work)

    def _ping(self) -> None:
        self._snapshot(lambda db: db.execute("SELECT 1").fetchone())

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


async def _follow(
    listeners: set[asyncio.Queue[T | None]], on_ready: Callable[[], None] | None
) -> AsyncIterator[T]:
    """What is put in a queue of `listeners` from now on, until None (the store closed)."""
    queue: asyncio.Queue[T | None] = asyncio.Queue()
    listeners.add(queue)
    try:
        if on_ready is not None:
            on_ready()
        while (item := await queue.get()) is not None:
            yield item
    finally:
        listeners.discard(queue)


def _entries(payload: str) -> list[OutboxEntry]:
    return [OutboxEntry(*entry) for entry in json.loads(payload)]


def _number(plan: Plan, written: ops.Number) -> int:
    """An integer value of an op."""
    return _integer(plan.value(written))


def _text(plan: Plan, written: ops.Text) -> str:
    """A string value of an op (an unlock field), as SQLite's TEXT column keeps it."""
    found = plan.value(written)
    if found is None:
        raise ValueError("a field is missing")
    return found if isinstance(found, str) else str(found)


def _unlock(plan: Plan, written: ops.Text | None) -> str | None:
    """The unlock value of an op; None for a marker."""
    return None if written is None else _text(plan, written)


def _integer(number: ops.Scalar | None) -> int:
    """An op's amount as INCRBY takes it: an integer, or a float with an integer value."""
    if isinstance(number, int) or (isinstance(number, float) and number.is_integer()):
        return int(number)
    raise ValueError(f"{number!r} is not an integer")


def _member(member: ops.Scalar | None) -> str:
    """A set member as Redis stores it: numbers are written with 17 significant digits."""
    if member is None:
        raise ValueError("a member is missing")
    return member if isinstance(member, str) else format(float(member), ".17g")
