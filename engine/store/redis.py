"""The Redis counter store: production, shared by every worker process.

A plan runs as one Lua script (lua/apply.lua) through EVALSHA, so one event
costs one round trip and is atomic. Its ops travel as flat arguments rather
than JSON (see `_evalsha`). Batches are streamed on one connection in chunks,
each chunk written before the replies of the previous one are read, so Redis
and Python work at the same time. New unlocks are appended to the player's
outbox stream and published on `keys.UNLOCK_CHANNEL` by the script itself, so
a listener in any process sees every unlock as soon as it is committed.

Redis does not roll a script back when a command inside it fails (say a key
holds the wrong type): commands already run stay applied. Plans built by the
engine never do that; a failure surfaces as `StoreError`.

`redis+cluster://` URLs use Redis Cluster: all keys of a plan share the
player's hash tag, hence one slot, and batches go through redis-py's cluster
pipeline, which routes each script by slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from importlib import resources
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

import hiredis
from redis.asyncio import Redis
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

from engine.errors import StoreError
from engine.store import cursor_position, keys
from engine.store.base import Applied, OutboxEntry, Plan, Read, Store

log = logging.getLogger(__name__)

#: Chunks of a batch written before the replies of the first are read.
CHUNKS_IN_FLIGHT = 2
#: Seconds between attempts to resubscribe, doubling up to the maximum.
RECONNECT_DELAY, MAX_RECONNECT_DELAY = 0.1, 2.0

APPLY_LUA = resources.files("engine.store").joinpath("lua/apply.lua").read_text("utf-8")
CLUSTER_SCHEME = "redis+cluster://"
#: What the one pub/sub connection of a process follows.
CHANNELS = (keys.UNLOCK_CHANNEL, keys.BROADCAST_CHANNEL)

#: hiredis packs commands in C; its stub wrongly types the argument as a 1-tuple.
_pack_command = cast(Callable[[tuple[Any, ...]], bytes], hiredis.pack_command)

#: Library failures we translate; OSError covers socket errors redis-py lets through.
_FAILURES = (RedisError, RedisClusterException, OSError)


class RedisStore(Store):
    """Counters, unlocks and outboxes in Redis (or Redis Cluster)."""

    shared = True

    def __init__(self, url: str, *, chunk_size: int = 500) -> None:
        self._where = _without_password(url)
        self._chunk_size = chunk_size
        self._client: Redis | RedisCluster
        if url.startswith(CLUSTER_SCHEME):
            cluster_url = "redis://" + url.removeprefix(CLUSTER_SCHEME)
            self._client = RedisCluster.from_url(cluster_url, decode_responses=True)
        else:
            self._client = Redis.from_url(url, decode_responses=True)
        self._sha = self._client.register_script(APPLY_LUA).sha
        if isinstance(self._client, RedisCluster):
            self._send = self._pipeline
        else:
            self._pool = self._client.connection_pool
            self._send = self._stream
        self._closed = False
        self._followers: dict[str, set[asyncio.Queue[str | None]]] = {c: set() for c in CHANNELS}
        self._subscriber: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    async def apply(self, plan: Plan) -> Applied:
        return (await self.apply_many((plan,)))[0]

    async def apply_many(self, plans: Sequence[Plan]) -> list[Applied]:
        replies: list[Any] = [None] * len(plans)
        pending: Sequence[int] = range(len(plans))
        reconnected = False
        try:
            while pending:
                try:
                    answers = await self._send([plans[index] for index in pending])
                except ConnectionError:
                    # A pooled connection the server dropped (restart, idle
                    # timeout). Sending again is safe even for plans that did
                    # run: they answer "duplicate" with their original entries.
                    if reconnected:
                        raise
                    reconnected = True
                    continue
                refused = []
                for index, answer in zip(pending, answers, strict=True):
                    if isinstance(answer, NoScriptError):
                        refused.append(index)
                    else:
                        replies[index] = answer
                if refused:
                    # The server lost its scripts (restart, SCRIPT FLUSH); a
                    # refused plan did not run, so sending it again is safe.
                    self._sha = await self._client.script_load(APPLY_LUA)
                pending = refused
        except _FAILURES as error:
            raise self._error(error) from error
        except (TypeError, ValueError) as error:
            # Only a malformed op gets here, while being packed; nothing was sent.
            raise StoreError(f"a plan has an operation Redis cannot take: {error}") from error
        for index, reply in enumerate(replies):
            if isinstance(reply, Exception):
                context = ""
                if len(plans) > 1:
                    context = f"plan {index} of the batch (player {plans[index].player_id!r})"
                raise self._error(reply, context) from reply
        return [_applied(reply) for reply in replies]

    async def _stream(self, plans: Sequence[Plan]) -> list[Any]:
        """EVALSHA every plan on one connection, in order; error replies as values.

        Chunks are written ahead of reading the replies of earlier ones, so
        Redis runs one chunk while we encode the next and decode the last:
        on a small machine that overlap is most of the batch throughput.
        Commands are packed by hiredis, which costs a fraction of redis-py's
        pure-Python packer.
        """
        pool = self._pool
        connection = await pool.get_connection()  # type: ignore[no-untyped-call]
        replies: list[Any] = []
        unread: deque[int] = deque()

        async def read(count: int) -> None:
            # One deadline per chunk instead of redis-py's one per reply.
            async with asyncio.timeout(connection.socket_timeout):
                for _ in range(count):
                    try:
                        replies.append(await connection.read_response(timeout=math.inf))
                    except ResponseError as error:
                        replies.append(error)

        sha, size = self._sha, self._chunk_size
        try:
            for start in range(0, len(plans), size):
                chunk = plans[start : start + size]
                packed = b"".join([_pack_command(_evalsha(sha, plan)) for plan in chunk])
                await connection.send_packed_command(packed)
                unread.append(len(chunk))
                if len(unread) > CHUNKS_IN_FLIGHT:
                    await read(unread.popleft())
            while unread:
                await read(unread.popleft())
        except BaseException:
            # Replies may be left unread on the socket: never reuse it.
            await connection.disconnect()
            raise
        finally:
            await pool.release(connection)
        return replies

    async def _pipeline(self, plans: Sequence[Plan]) -> list[Any]:
        """EVALSHA every plan through a cluster pipeline, which routes by slot."""
        replies: list[Any] = []
        size = self._chunk_size
        for start in range(0, len(plans), size):
            pipe = self._client.pipeline(transaction=False)
            for plan in plans[start : start + size]:
                pipe.execute_command(*_evalsha(self._sha, plan))
            replies.extend(await pipe.execute(raise_on_error=False))
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
        self._closed = True
        await self._stop_subscriber()
        self._end_followers()
        try:
            await self._client.aclose()
        except _FAILURES as error:
            raise self._error(error) from error

    def _error(self, error: BaseException, context: str = "") -> StoreError:
        """Our error for a library failure, saying what to check."""
        where = f"Redis at {self._where}"
        if isinstance(error, AuthenticationError):
            message = f"{where} refused the credentials ({error}); check user and password"
        elif isinstance(error, RedisTimeoutError | TimeoutError):
            message = f"{where} did not answer in time ({error or 'timeout'}); is it overloaded?"
        elif isinstance(error, ConnectionError | OSError):
            message = (
                f"cannot reach {where}: {error}; is redis-server running and the store URL right?"
            )
        elif isinstance(error, ResponseError):
            message = f"{where} refused a command: {error}"
        else:
            message = f"{where} failed: {error}"
        return StoreError(f"{context}: {message}" if context else message)


def _evalsha(sha: str, plan: Plan) -> tuple[Any, ...]:
    """The EVALSHA command of a plan: its keys, then the ARGV lua/apply.lua reads.

    Ops are flattened into plain arguments (a claim's lists get counts, a
    null unlock becomes ""), which Redis hands to Lua as strings with no
    decoding: far cheaper for the server than cjson.decode of Plan.to_json().
    """
    args: list[Any] = [
        "EVALSHA",
        sha,
        len(plan.keys),
        *plan.keys,
        keys.UNLOCK_CHANNEL,
        plan.player_id,
        plan.profile_version,
        plan.dedupe_ttl,
    ]
    for op in plan.ops:
        if op[0] != "claim":
            args += op
            continue
        _, field, conds, requires, unlock, extras = op
        args += ("claim", field, len(conds))
        for register, threshold in conds:
            args += (register, threshold)
        args.append(len(requires))
        args += requires
        args += (unlock or "", len(extras))
        for extra, extra_unlock in extras:
            args += (extra, extra_unlock or "")
    return tuple(args)


def _applied(reply: list[Any]) -> Applied:
    status, payload = reply
    entries = [OutboxEntry(*entry) for entry in json.loads(payload)] if len(payload) > 2 else []
    return Applied(status, entries)


def _published(data: str) -> tuple[str, list[OutboxEntry]]:
    message = json.loads(data)
    return message["p"], [OutboxEntry(*entry) for entry in message["e"]]


async def _quietly_close(pubsub: Any) -> None:
    """Close a pub/sub connection that may already be broken."""
    with contextlib.suppress(*_FAILURES):
        await pubsub.aclose()


def _without_password(url: str) -> str:
    """The URL as it may appear in messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
