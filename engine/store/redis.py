"""The Redis counter store: production, shared by every worker process.

Plans run in a Lua script (lua/apply.lua) through EVALSHA: one event costs
one round trip and is atomic, and a batch runs in chunks of many plans per
call, each chunk atomic as a whole (stronger than each plan alone). Ops travel
as flat arguments rather than JSON, each plan shape once per chunk (see
`Chunk`). Chunks are streamed on one connection, each written before the
replies of the previous one are read, so Redis and Python work at the same
time (engine/store/encoder.py turns plans into the script's arguments). New
unlocks are appended to the player's outbox stream and published on
`keys.UNLOCK_CHANNEL` by the script itself, so a listener in any process sees
every unlock as soon as it is committed.

Redis does not roll a script back when a command inside it fails (say a key
holds the wrong type): commands of that plan already run stay applied, the
other plans of its chunk run. Plans built by the engine never do that; a
failure surfaces as `StoreError`.

`redis+cluster://` URLs use Redis Cluster: all keys of a plan share the
player's hash tag, hence one slot, and batches go through redis-py's cluster
pipeline, one plan per script call, each routed by its slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import math
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Iterator, Sequence
from importlib import resources
from typing import Any, cast

from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import (
    AuthenticationError,
    ConnectionError,
    NoScriptError,
    RedisClusterException,
    RedisError,
    ResponseError,
)
from redis.exceptions import TimeoutError as RedisTimeoutError

from engine.errors import QuestlineError, StoreError
from engine.group_commit import GroupCommit
from engine.store import cursor_position, keys
from engine.store.base import Applied, OutboxEntry, Plan, Ranking, Read, Store
from engine.store.encoder import APPLY_LUA, Chunk
from engine.urls import redacted

log = logging.getLogger(__name__)

#: Chunks of a batch written before the replies of the first are read.
CHUNKS_IN_FLIGHT = 2
#: Plans per chunk: one EVALSHA runs them all, so this also bounds how long a
#: batch holds the server at once.
CHUNK_SIZE = 100
#: Seconds between attempts to resubscribe, doubling up to the maximum.
RECONNECT_DELAY, MAX_RECONNECT_DELAY = 0.1, 2.0

RANKING_LUA = resources.files("engine.store").joinpath("lua/ranking.lua").read_text("utf-8")
CLUSTER_SCHEME = "redis+cluster://"
#: What the one pub/sub connection of a process follows.
CHANNELS = (keys.UNLOCK_CHANNEL, keys.BROADCAST_CHANNEL)

#: Library failures we translate; OSError covers socket errors redis-py lets through.
_FAILURES = (RedisError, RedisClusterException, OSError)


#: Connections per pool (one for reads and profile writes, one for plans), per process.
MAX_CONNECTIONS = 64


class RedisStore(Store):
    """Counters, unlocks and outboxes in Redis (or Redis Cluster)."""

    shared = True

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 2.0,
        chunk_size: int = CHUNK_SIZE,
        announce: bool = True,
    ) -> None:
        """`timeout`: the deadline of connecting, of waiting for a free connection
        and of each command, so a Redis that stops answering without closing
        its sockets (paused, overloaded, partitioned) fails calls with
        StoreError instead of hanging them. Pub/sub reads wait for messages
        without it (redis-py blocks them indefinitely on purpose)."""
        self._where = redacted(url)
        # A rebuild replays history without announcing it again: no channel.
        self._channel = keys.UNLOCK_CHANNEL if announce else ""
        self._chunk_size = chunk_size
        self._timeout = timeout
        deadlines = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
        self._client: Redis | RedisCluster
        if url.startswith(CLUSTER_SCHEME):
            cluster_url = "redis://" + url.removeprefix(CLUSTER_SCHEME)
            self._client = RedisCluster.from_url(cluster_url, decode_responses=True, **deadlines)
        else:
            # Under load, callers wait for a free connection (up to the
            # deadline) instead of opening ever more of them.
            pool = BlockingConnectionPool.from_url(
                url,
                decode_responses=True,
                max_connections=MAX_CONNECTIONS,
                timeout=timeout,
                **deadlines,
            )
            self._client = Redis.from_pool(pool)
        self._sha = self._client.register_script(APPLY_LUA).sha
        self._ranking = self._client.register_script(RANKING_LUA)
        if isinstance(self._client, RedisCluster):
            self._send = self._pipeline
            self.leaderboards_unsupported = (
                "on Redis Cluster a board, shared by every player, lives in another slot than "
                "a player's counters, and one script cannot update both; use a single Redis "
                "server (with replicas for availability)"
            )
        else:
            # Plans go over connections of their own, without redis-py's
            # socket timeout (it wraps every write in a task): `_stream` puts
            # that same deadline on each write and read itself.
            self._deadline = self._client.connection_pool.connection_kwargs.get("socket_timeout")
            self._pool: ConnectionPool = BlockingConnectionPool.from_url(
                url,
                decode_responses=True,
                max_connections=MAX_CONNECTIONS,
                timeout=timeout,
                socket_timeout=None,
                socket_connect_timeout=timeout,
            )
            self._send = self._stream
        # Connections this store keeps between plans: taking one from
        # redis-py's pool costs a lock, a readiness check (a system call) and
        # metrics, several times the work of a one-event script call.
        self._idle: list[Any] = []
        self._closed = False
        self._followers: dict[str, set[asyncio.Queue[str | None]]] = {c: set() for c in CHANNELS}
        self._subscriber: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._singles: GroupCommit[Plan, Applied] = GroupCommit(self._apply_each, isolate=False)

    async def apply(self, plan: Plan) -> Applied:
        """One plan; plans of concurrent callers share one script call."""
        return await self._singles.submit(plan)

    async def apply_many(self, plans: Iterable[Plan]) -> list[Applied]:
        batch: list[Plan] = []
        applied: list[Applied] = []
        for index, outcome in enumerate(await self._outcomes(plans, batch)):
            if isinstance(outcome, Exception):
                raise self._error(outcome, _context(batch, index)) from outcome
            applied.append(outcome)
        return applied

    async def _apply_each(self, plans: Sequence[Plan]) -> list[Applied | Exception]:
        """Concurrent single plans in one call; each gets its own outcome."""
        outcomes = await self._outcomes(plans, [])
        return [self._error(o) if isinstance(o, Exception) else o for o in outcomes]

    async def _outcomes(
        self, plans: Iterable[Plan], batch: list[Plan]
    ) -> list[Applied | Exception]:
        """Each plan's outcome (a refused plan's error); a failure of Redis itself raises."""
        source = iter(plans)
        try:
            try:
                replies = await self._send(source, batch)
            except ConnectionError:
                # A connection the server dropped (restart, idle timeout), and
                # likely the others kept with it: they go back to redis-py's
                # pool, which reconnects. Sending again is safe even for plans
                # that did run: they answer "duplicate" with their original entries.
                await self._release_idle()
                batch += source
                replies = await self._send(iter(batch), [])
            while refused := [
                i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)
            ]:
                # The server lost its scripts (restart, SCRIPT FLUSH); a
                # refused plan did not run, so sending it again is safe.
                self._sha = await self._client.script_load(APPLY_LUA)
                again = await self._send(iter([batch[i] for i in refused]), [])
                for index, reply in zip(refused, again, strict=True):
                    replies[index] = reply
        except _FAILURES as error:
            raise self._error(error) from error
        except (TypeError, ValueError) as error:
            # Only a malformed op gets here, while being packed; its chunk was not
            # sent. A bug, not an outage: retrying would fail the same way.
            raise QuestlineError(f"a plan has an operation Redis cannot take: {error}") from error
        return replies

    async def _stream(self, plans: Iterator[Plan], batch: list[Plan]) -> list[Applied | Exception]:
        """Run the plans in chunks on one connection, one EVALSHA per chunk.

        `plans` is consumed a chunk at a time (each added to `batch`), and a
        chunk is written before the replies of earlier ones are read, so
        Redis runs one chunk while we plan and encode the next and decode the
        last: on a small machine that overlap is most of the batch throughput.
        Returns each plan's outcome, or its error.
        """
        pool = self._pool
        if self._idle:
            connection = self._idle.pop()
        else:
            # Connecting includes a handshake read, without the pool's socket timeout.
            async with asyncio.timeout(self._deadline):
                connection = await pool.get_connection()  # type: ignore[no-untyped-call]
        replies: list[Applied | Exception] = []
        unread: deque[Chunk] = deque()

        async def read(chunk: Chunk) -> None:
            answer: list[str] | Exception | None = None
            if chunk.sent:
                async with asyncio.timeout(self._deadline):
                    try:
                        answer = await connection.read_response(timeout=math.inf)
                    except ResponseError as error:
                        answer = error
            replies.extend(chunk.replies(answer))

        # The first chunk is small, so that Redis starts while the rest is planned.
        size = max(1, self._chunk_size // 4)
        try:
            while chunk_plans := list(itertools.islice(plans, size)):
                size = self._chunk_size
                batch += chunk_plans
                chunk = Chunk(chunk_plans, self._channel)
                if chunk.sent:
                    async with asyncio.timeout(self._deadline):
                        await connection.send_packed_command(chunk.packed(self._sha))
                unread.append(chunk)
                if len(unread) > CHUNKS_IN_FLIGHT:
                    await read(unread.popleft())
            while unread:
                await read(unread.popleft())
        except BaseException:
            # Replies may be left unread on the socket: never reuse it.
            await connection.disconnect()
            await pool.release(connection)
            raise
        self._idle.append(connection)
        return replies

    async def _pipeline(
        self, plans: Iterator[Plan], batch: list[Plan]
    ) -> list[Applied | Exception]:
        """One EVALSHA per plan through a cluster pipeline, which routes by slot."""
        replies: list[Applied | Exception] = []
        while chunk_plans := list(itertools.islice(plans, self._chunk_size)):
            batch += chunk_plans
            chunks = [Chunk([plan], self._channel) for plan in chunk_plans]
            pipe = self._client.pipeline(transaction=False)
            for chunk in chunks:
                if chunk.sent:
                    pipe.execute_command(*chunk.arguments(self._sha))
            answers = iter(await pipe.execute(raise_on_error=False))
            for chunk in chunks:
                replies += chunk.replies(next(answers) if chunk.sent else None)
        return replies

    async def read(self, reads: Sequence[Read]) -> list[Any]:
        pipe = self._client.pipeline(transaction=False)
        for item in reads:
            if item.kind == "int":
                pipe.get(item.key)
            elif item.kind == "card":
                pipe.scard(item.key)
            else:
                pipe.hgetall(item.key)
        try:
            values = await pipe.execute()
        except _FAILURES as error:
            raise self._error(error) from error
        return [
            (int(value) if value is not None else 0) if item.kind == "int" else value
            for item, value in zip(reads, values, strict=True)
        ]

    async def ranking(self, key: str, first: int, around: str | None, neighbours: int) -> Ranking:
        try:
            size, top, start, near = await self._ranking(
                keys=[key], args=[first, around or "", neighbours]
            )
        except _FAILURES as error:
            raise self._error(error) from error
        return Ranking(int(size), _ranked(top), int(start) + 1, _ranked(near))

    async def outbox(self, player_id: str, after: str | None, limit: int) -> list[OutboxEntry]:
        if limit <= 0:
            return []
        start = "-" if after is None else "({}-{}".format(*cursor_position(after))
        try:
            rows = await self._client.xrange(keys.outbox(player_id), min=start, count=limit)
        except _FAILURES as error:
            raise self._error(error) from error
        entries = cast(list[tuple[str, dict[str, str]]], rows)
        return [OutboxEntry(entry_id, fields["k"], fields["u"]) for entry_id, fields in entries]

    async def set_profile(self, player_id: str, fields: dict[str, str]) -> int:
        if "version" in fields:
            raise ValueError("the profile field 'version' is the store's own; pick another name")
        key = keys.profile(player_id)
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                if fields:
                    pipe.hset(key, mapping=cast(Any, fields))
                pipe.hincrby(key, "version", 1)
                answers = await pipe.execute()
        except _FAILURES as error:
            raise self._error(error) from error
        return int(answers[-1])

    async def listen(
        self, on_ready: Callable[[], None] | None = None
    ) -> AsyncIterator[tuple[str, list[OutboxEntry]]]:
        async with contextlib.aclosing(self._follow(keys.UNLOCK_CHANNEL, on_ready)) as messages:
            async for data in messages:
                yield _published(data)

    async def listen_broadcasts(
        self, on_ready: Callable[[], None] | None = None
    ) -> AsyncIterator[tuple[str, str]]:
        async with contextlib.aclosing(self._follow(keys.BROADCAST_CHANNEL, on_ready)) as messages:
            async for data in messages:
                message = json.loads(data)
                yield message["c"], message["m"]

    async def broadcast(self, channel: str, message: str) -> None:
        data = json.dumps({"c": channel, "m": message}, separators=(",", ":"))
        try:
            await self._client.publish(keys.BROADCAST_CHANNEL, data)
        except _FAILURES as error:
            raise self._error(error) from error

    async def outbox_players(self) -> AsyncIterator[str]:
        # Only streams: a stray key matching the pattern must not reach XRANGE.
        found = self._client.scan_iter(match=keys.OUTBOX_PATTERN, count=1000, _type="stream")
        try:
            async for key in found:
                yield keys.outbox_player(key)
        except _FAILURES as error:
            raise self._error(error) from error

    async def _follow(
        self, channel: str, on_ready: Callable[[], None] | None
    ) -> AsyncGenerator[str, None]:
        """Messages of one channel, from the store's one pub/sub connection.

        The first follower opens the connection (`_subscribe`), the last one
        to leave closes it, so listeners and broadcast listeners of a process
        never cost more than one connection between them.
        """
        if self._closed:
            return
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._followers[channel].add(queue)
        if self._subscriber is None:
            self._subscribed = asyncio.Event()
            self._subscriber = asyncio.create_task(
                self._subscribe(self._subscribed), name="questline-redis-pubsub"
            )
        subscribed = self._subscribed
        try:
            if on_ready is not None:
                await subscribed.wait()
                on_ready()
            while (data := await queue.get()) is not None:
                yield data
        finally:
            self._followers[channel].discard(queue)
            if not any(self._followers.values()):
                await self._stop_subscriber()

    async def _subscribe(self, subscribed: asyncio.Event) -> None:
        """Hold the pub/sub connection and hand each message to its channel's followers.

        redis-py reconnects a dropped pub/sub connection and subscribes again
        on its own (even when it then raises), so one PubSub object lives as
        long as the followers and a failure only costs a pause. `subscribed`
        is set on the server's confirmation, not when SUBSCRIBE is sent.
        Messages published while the connection is down are not replayed:
        unlock subscribers catch up from the outbox with their last cursor.
        """
        pubsub = self._client.pubsub()
        delay = RECONNECT_DELAY
        try:
            while True:
                try:
                    if not pubsub.subscribed:
                        if isinstance(self._client, RedisCluster):
                            await self._client.initialize()  # pub/sub needs the slot map
                        await pubsub.subscribe(*CHANNELS)
                    async for message in pubsub.listen():
                        if message["type"] == "message":
                            for queue in self._followers[message["channel"]]:
                                queue.put_nowait(message["data"])
                        elif message["type"] == "subscribe" and message["data"] == len(CHANNELS):
                            if delay > RECONNECT_DELAY:
                                log.info("pub/sub listener back on Redis at %s", self._where)
                            delay = RECONNECT_DELAY
                            subscribed.set()
                except _FAILURES as error:
                    subscribed.clear()
                    log.warning(
                        "pub/sub listener lost Redis at %s (%s); retrying in %.1fs",
                        self._where,
                        error,
                        delay,
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, MAX_RECONNECT_DELAY)
        except Exception:
            self._end_followers()  # a bug: end them rather than leave them waiting
            raise
        finally:
            await _quietly_close(pubsub)

    async def _stop_subscriber(self) -> None:
        subscriber, self._subscriber = self._subscriber, None
        if subscriber is not None:
            subscriber.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await subscriber

    def _end_followers(self) -> None:
        for followers in self._followers.values():
            for queue in followers:
                queue.put_nowait(None)

    async def ping(self) -> None:
        try:
            await self._client.ping()
        except _FAILURES as error:
            raise self._error(error) from error

    async def close(self) -> None:
        await self._singles.wait_idle()
        self._closed = True
        await self._stop_subscriber()
        self._end_followers()
        try:
            await self._release_idle()
            if not isinstance(self._client, RedisCluster):
                await self._pool.aclose()
            await self._client.aclose()
        except _FAILURES as error:
            raise self._error(error) from error

    async def _release_idle(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            await self._pool.release(connection)

    def _error(self, error: BaseException, context: str = "") -> StoreError:
        """Our error for a library failure, saying what to check."""
        where = f"Redis at {self._where}"
        if isinstance(error, AuthenticationError):
            message = f"{where} refused the credentials ({error}); check user and password"
        elif isinstance(error, RedisTimeoutError | TimeoutError):
            message = (
                f"{where} did not answer within {self._timeout:g}s (QUESTLINE_STORE_TIMEOUT); "
                "it is overloaded, paused or unreachable"
            )
        elif isinstance(error, ConnectionError) and "No connection available" in str(error):
            # The pool's wait for a free connection ran out: all of them are
            # waiting for answers, which says more about Redis than about us.
            message = (
                f"all {MAX_CONNECTIONS} connections to {where} waited over {self._timeout:g}s "
                "for answers; Redis is overloaded, paused or unreachable"
            )
        elif isinstance(error, ConnectionError | OSError):
            message = (
                f"cannot reach {where}: {error}; is redis-server running and the store URL right?"
            )
        elif isinstance(error, ResponseError):
            message = f"{where} refused a command: {error}"
        else:
            message = f"{where} failed: {error}"
        return StoreError(f"{context}: {message}" if context else message)


def _ranked(flat: list[str]) -> list[tuple[str, int]]:
    """(player, score) pairs from ZRANGE WITHSCORES, scores un-negated."""
    return [(flat[i], -int(float(flat[i + 1]))) for i in range(0, len(flat), 2)]


def _context(batch: Sequence[Plan], index: int) -> str:
    """Which plan of a batch an error is about (nothing for a batch of one)."""
    if len(batch) < 2:
        return ""
    return f"plan {index} of the batch (player {batch[index].player_id!r})"


def _published(data: str) -> tuple[str, list[OutboxEntry]]:
    message = json.loads(data)
    return message["p"], [OutboxEntry(*entry) for entry in message["e"]]


async def _quietly_close(pubsub: Any) -> None:
    """Close a pub/sub connection that may already be broken."""
    with contextlib.suppress(*_FAILURES):
        await pubsub.aclose()
