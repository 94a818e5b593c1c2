"""The GraphQL service over real sockets: one uvicorn worker on loopback.

    .venv/bin/python -m bench.api [--store redis|sqlite] [--duration 10] [--subscribers 2000]

Starts one uvicorn worker of `bench.plain_app` (the production app, in
production mode, plus a plain JSON route) with the durable history in SQLite
in a temporary folder, and its counter store on a throwaway redis-server
(`--store redis`, the default) or in a SQLite file beside the history
(`--store sqlite`: the embedded default `questline serve` starts with), then
measures, in this order:

1. batch_events_per_s: recordEvents of 500 events of the seed's event mix for
   `--players` players. This also gives those players the history that the
   later phases build on.
2. record_event_rps and plain_record_event_rps: single-event recordEvent
   mutations, and the same kind of event posted to `/plain/record` (the same
   service without GraphQL), with `--concurrency` connections kept busy. The
   two alternate in `--rounds` rounds so both see the same store and the same
   load from the rest of the machine.
3. progress_p50_ms / progress_p99_ms: the full `me` query (challenges,
   milestones, streaks and badges, each with its progress) with a player token,
   sent at a fixed `--progress-rate`. Requests are sent when due whatever came
   back before (open loop), and latency counts from when a request was due, so
   a slow answer cannot hide the requests queued behind it. Errors (an
   overloaded server may answer some) are counted apart, as progress_errors.
4. subscribers and push_p50_ms / push_p99_ms: `--subscribers` WebSockets
   (graphql-transport-ws, a player token each) subscribed on the one worker,
   then `--pushes` first coffees for some of those players at `--push-rate`;
   push latency runs from recordEvent's answer to each of its unlocks arriving
   on the player's socket (an unlock pushed before the answer counts as 0;
   the time from sending the mutation is printed too).
5. redeem_rps: `redeem` mutations (API key on behalf of a player, a new
   idempotency key each) of the cheapest reward with no stock, no per-player
   limit and no minimum tier, for `--redeemers` players who were granted
   enough points by `adjustPoints` first, with `--concurrency` connections
   kept busy. Only redemptions count; typed errors (INSUFFICIENT_POINTS and
   the like, which a correct run does not produce) are counted apart, as
   redeem_errors.

The client is this single Python process, and it shares the machine's cores
with the server and with Redis. It is kept cheap so that it measures the
server rather than itself: load requests are written by hand as HTTP/1.1 on
keep-alive connections (httpx spent more CPU per request than the server did),
bodies are encoded before the clock starts where the phase allows it, and the
event loop is uvloop. Every phase prints the cores the server, the client and
Redis used: a server near 1.0 was saturated. The last line printed is one JSON
object with the results.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import re
import resource
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Any

import httpx2 as httpx
import redis
import uvloop
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from app import launch
from app.auth import issue_player_token
from app.launch import HOST, Server, redis_server
from app.settings import Settings
from bench.engine import BATCH, SEED, event_mix
from bench.plain_app import PLAIN_PATH
from engine.events import Event

RECORD = """mutation($event: EventInput!) {
  recordEvent(event: $event) { eventId duplicate unlocks { id key kind title } } }"""
RECORD_MANY = """mutation($events: [EventInput!]!) {
  recordEvents(events: $events) { eventId duplicate unlocks { id key kind title } } }"""
PROGRESS = """query { me { id
  challenges { challenge { id name description } unlockKey startsAt endsAt
               goals { metric progress { ...progress } } progress { ...progress } }
  milestones { milestone { id name } value tiersReached nextTier { number at name }
               progress { ...progress } }
  streaks { streak { id name } current longest atRisk freezes progress { ...progress } }
  badges { badge { id name icon } unlockedAt } } }
fragment progress on Progress { current target percent completed }"""
UNLOCKS = "subscription { unlocks { id key kind title unlockedAt } }"
REWARDS = "query { rewards { id cost stock perPlayerLimit minTier { id } } }"
ADJUST = """mutation($player: ID!, $delta: Int!, $key: String!) {
  adjustPoints(playerId: $player, delta: $delta, reason: "bench", idempotencyKey: $key) {
    delta } }"""
REDEEM = """mutation($reward: ID!, $key: String!, $player: ID!) {
  redeem(rewardId: $reward, idempotencyKey: $key, playerId: $player) { id cost } }"""
PROTOCOL = Subprotocol("graphql-transport-ws")

#: Targets: results that must reach at least, or stay at most, these values
#: (record_event_rps: 800 on Redis, 500 with `--store sqlite`; see `targets`).
AT_LEAST = {
    "record_event_rps": 800,
    "record_vs_plain": 0.7,
    "batch_events_per_s": 5_000,
    "subscribers": 2000,
    "redeem_rps": 500,
}
AT_MOST = {
    "progress_p99_ms": 15,
    "push_p99_ms": 100,
    "sql_statements_per_event": 1.5,
    "sql_commits_per_event": 0.2,
}
#: The embedded default's target for single events.
SQLITE_RECORD_EVENT_RPS = 500
#: Distinct events the single-event phase cycles through (ids stay unique).
SINGLE_POOL = 20_000
#: Requests of each kind sent before the single-event phase measures anything.
WARM_UP = 300
#: WebSockets opened at the same time while subscribers connect.
OPENING = 50
#: Redemptions each redeemer is granted points for: more than a run can spend.
REDEMPTIONS_PER_PLAYER = 2000
#: Seconds to wait for pushed unlocks and for the subscription gauge.
PATIENCE = 15.0
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


class BenchFailed(RuntimeError):
    """The server answered something a correct run never produces."""


@dataclass(frozen=True, slots=True)
class Request:
    """One POST, encoded whole before it is sent."""

    path: str
    data: bytes


def request(port: int, path: str, payload: object, token: str) -> Request:
    body = json.dumps(payload).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nhost: {HOST}:{port}\r\ncontent-type: application/json\r\n"
        f"authorization: Bearer {token}\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return Request(path, head.encode() + body)


class Connection:
    """One keep-alive HTTP/1.1 connection that the client writes by hand.

    The server (uvicorn) always sends content-length for these routes, which
    is all the parsing a response needs.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(HOST, port)
        return cls(reader, writer)

    async def post(self, request: Request) -> Any:
        self._writer.write(request.data)
        head = await self._reader.readuntil(b"\r\n\r\n")
        length = _CONTENT_LENGTH.search(head)
        if length is None:
            raise BenchFailed(f"{request.path} answered without content-length: {head!r}")
        body = await self._reader.readexactly(int(length[1]))
        if head[9:12] != b"200":
            raise BenchFailed(f"{request.path} answered {head[9:12].decode()}: {body[:500]!r}")
        return json.loads(body)

    def close(self) -> None:
        self._writer.close()


def results_of(path: str, payload: Any) -> list[Any]:
    """The recorded-event results of an answer, refusing GraphQL errors."""
    if path == PLAIN_PATH:
        return [payload]
    if payload.get("errors") or not payload.get("data"):
        raise BenchFailed(f"{path} answered errors: {json.dumps(payload)[:500]}")
    [result] = payload["data"].values()
    return result if isinstance(result, list) else [result]


@dataclass
class Tally:
    requests: int = 0
    events: int = 0
    unlocks: int = 0
    seconds: float = 0.0

    def add(self, other: Tally) -> None:
        self.requests += other.requests
        self.events += other.events
        self.unlocks += other.unlocks
        self.seconds += other.seconds


def count_events(tally: Tally, request: Request, payload: Any) -> None:
    """Count the recorded events and unlocks of an answer, refusing GraphQL errors."""
    results = results_of(request.path, payload)
    tally.requests += 1
    tally.events += len(results)
    tally.unlocks += sum(len(result["unlocks"]) for result in results)


def count_answers(tally: Tally, request: Request, payload: Any) -> None:
    """Count an answer, refusing GraphQL errors."""
    results_of(request.path, payload)
    tally.requests += 1


async def closed_loop(
    port: int,
    connections: int,
    requests: Iterator[Request],
    seconds: float | None = None,
    count: Callable[[Tally, Request, Any], None] = count_events,
) -> Tally:
    """Keep `connections` connections busy until `requests` runs out or time is up;
    `count` adds each answer to the tally."""
    tally = Tally()
    opened = [await Connection.open(port) for _ in range(connections)]
    started = time.perf_counter()
    deadline = None if seconds is None else started + seconds

    async def work(connection: Connection) -> None:
        for request in requests:
            count(tally, request, await connection.post(request))
            if deadline is not None and time.perf_counter() >= deadline:
                return

    try:
        await asyncio.gather(*(work(connection) for connection in opened))
    finally:
        for connection in opened:
            connection.close()
    tally.seconds = time.perf_counter() - started
    return tally


@dataclass(frozen=True, slots=True)
class Answer:
    due: float
    sent: float
    answered: float
    payload: Any


async def open_loop(
    port: int, rate: float, requests: Sequence[Request], connections: int
) -> list[Answer]:
    """Send `requests` at `rate` per second on a pool of connections, whatever
    the earlier ones are doing; a request waiting for a free connection is late,
    and its latency says so."""
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await Connection.open(port))
    answers: list[Answer | None] = [None] * len(requests)

    async def send(number: int, request: Request, due: float) -> None:
        connection = await pool.get()
        sent = time.perf_counter()
        try:
            payload = await connection.post(request)
        finally:
            pool.put_nowait(connection)
        answers[number] = Answer(due, sent, time.perf_counter(), payload)

    start = time.perf_counter()
    sending = []
    for number, request in enumerate(requests):
        due = start + number / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        sending.append(asyncio.create_task(send(number, request, due)))
    try:
        await asyncio.gather(*sending)
    finally:
        while not pool.empty():
            pool.get_nowait().close()
    return [answer for answer in answers if answer is not None]


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(fraction * len(ordered)) - 1))]


def answered_progress(payload: Any) -> bool:
    """Whether a `me` answer has the player's progress and no error."""
    return not payload.get("errors") and bool((payload.get("data") or {}).get("me"))


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Meter:
    """Cores used by the server, the client and Redis between two readings."""

    pids: Mapping[str, int]
    _start: dict[str, float] = field(default_factory=dict)

    def start(self) -> None:
        self._start = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self._start["wall"] = time.perf_counter()

    def cores(self) -> str:
        wall = time.perf_counter() - self._start["wall"]
        used = {
            name: (cpu_seconds(pid) - self._start[name]) / wall for name, pid in self.pids.items()
        }
        return ", ".join(f"{name} {value:.2f}" for name, value in used.items()) + " cores"


def event_json(event: Event, event_id: str) -> dict[str, Any]:
    assert event.occurred_at is not None
    return {
        "id": event_id,
        "playerId": event.player_id,
        "type": event.type,
        "occurredAt": event.occurred_at.isoformat(),
        "properties": dict(event.properties),
    }


def first_coffee(event_id: str, player_id: str) -> dict[str, Any]:
    """A player's first coffee: unlocks at least the first coffee-lover tier."""
    return {
        "id": event_id,
        "playerId": player_id,
        "type": "purchase",
        "properties": {"category": "coffee", "drink": "latte", "amount": 3.2, "store_id": "s-1"},
    }


@dataclass
class Bench:
    port: int
    api_key: str
    jwt_secret: str
    meter: Meter
    results: dict[str, float] = field(default_factory=dict)

    def graphql(self, query: str, variables: dict[str, Any], token: str | None = None) -> Request:
        payload = {"query": query, "variables": variables}
        return request(self.port, "/graphql", payload, token or self.api_key)

    def start_phase(self) -> None:
        """Start the CPU meter, with the client's heap frozen first: a collection
        over everything the client built before (requests, sockets) would
        otherwise pause it in the middle of a measurement."""
        gc.collect()
        gc.freeze()
        self.meter.start()

    def player_token(self, player_id: str) -> str:
        return issue_player_token(Settings(jwt_secret=self.jwt_secret), player_id, 3600)

    async def batch(self, players: int, count: int) -> None:
        start = datetime.now(UTC) - timedelta(days=6)
        events = [event_json(e, f"batch-{e.id}") for e in event_mix(players, count, start)]
        bodies = [
            self.graphql(RECORD_MANY, {"events": events[offset : offset + BATCH]})
            for offset in range(0, len(events), BATCH)
        ]
        self.start_phase()
        # Two in flight: the server always has the next batch while one is answered.
        tally = await closed_loop(self.port, 2, iter(bodies))
        rate = tally.events / tally.seconds
        self.results["batch_events_per_s"] = round(rate)
        print(
            f"batch      {tally.events} events in {tally.requests} recordEvents of {BATCH}: "
            f"{rate:,.0f} events/s, {tally.unlocks / tally.events:.2f} unlocks/event "
            f"[{self.meter.cores()}]"
        )

    async def single(self, players: int, seconds: float, rounds: int, concurrency: int) -> None:
        start = datetime.now(UTC) - timedelta(days=6)
        pool = event_mix(players, SINGLE_POOL, start, seed=11)
        numbers = iter(range(sys.maxsize))

        def requests(kind: str) -> Iterator[Request]:
            for number in numbers:
                event = event_json(pool[number % SINGLE_POOL], f"single-{number}")
                if kind == "graphql":
                    yield self.graphql(RECORD, {"event": event})
                else:
                    yield request(self.port, PLAIN_PATH, event, self.api_key)

        kinds = ("graphql", "plain")
        for kind in kinds:
            await closed_loop(self.port, concurrency, islice(requests(kind), WARM_UP))
        tallies = {kind: Tally() for kind in kinds}
        statements, commits = await self.sql_work()
        for round_number in range(1, rounds + 1):
            for kind in kinds:
                self.start_phase()
                tally = await closed_loop(self.port, concurrency, requests(kind), seconds / rounds)
                tallies[kind].add(tally)
                print(
                    f"{kind:<10} round {round_number}: {tally.requests / tally.seconds:,.0f} "
                    f"requests/s, {tally.unlocks / tally.events:.2f} unlocks/event "
                    f"[{self.meter.cores()}]"
                )
        statements_after, commits_after = await self.sql_work()
        events = sum(tally.events for tally in tallies.values())
        graphql, plain = (tallies[kind].requests / tallies[kind].seconds for kind in kinds)
        self.results["sql_statements_per_event"] = round(
            (statements_after - statements) / events, 3
        )
        self.results["sql_commits_per_event"] = round((commits_after - commits) / events, 3)
        self.results["record_event_rps"] = round(graphql)
        self.results["plain_record_event_rps"] = round(plain)
        self.results["record_vs_plain"] = round(graphql / plain, 2)
        print(
            f"single     recordEvent {graphql:,.0f}/s, plain {plain:,.0f}/s "
            f"({graphql / plain:.2f} of plain), {concurrency} connections; history database: "
            f"{self.results['sql_statements_per_event']} statements and "
            f"{self.results['sql_commits_per_event']} commits per event"
        )

    async def progress(self, players: int, rate: float, seconds: float) -> None:
        rng = random.Random(5)
        tokens = {
            player: self.player_token(player)
            for player in (f"player-{n}" for n in rng.sample(range(players), min(players, 500)))
        }
        chosen = rng.choices(list(tokens), k=round(rate * seconds))
        requests = [self.graphql(PROGRESS, {}, tokens[player]) for player in chosen]
        self.start_phase()
        answers = await open_loop(self.port, rate, requests, connections=32)
        cores = self.meter.cores()
        # An overloaded server may answer errors (STORE_UNAVAILABLE); they are
        # counted apart, since a fast error would flatter the latencies.
        failed = [answer for answer in answers if not answered_progress(answer.payload)]
        latencies = [
            (answer.answered - answer.due) * 1000
            for answer in answers
            if answered_progress(answer.payload)
        ]
        if not latencies:
            raise BenchFailed(f"every progress query failed: {json.dumps(failed[0].payload)[:500]}")
        p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
        self.results["progress_p50_ms"] = round(p50, 2)
        self.results["progress_p99_ms"] = round(p99, 2)
        self.results["progress_errors"] = len(failed)
        # Under overload the answers come at the server's own pace: its capacity.
        answering = len(answers) / (max(a.answered for a in answers) - answers[0].due)
        self.results["progress_answered_rps"] = round(answering)
        print(
            f"progress   {len(answers)} `me` queries due at {rate:.0f}/s, answered at "
            f"{answering:.0f}/s: p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {max(latencies):.2f} ms,"
            f" mean {statistics.fmean(latencies):.2f} ms [{cores}]"
        )
        if failed:
            print(f"           {len(failed)} failed, e.g. {json.dumps(failed[0].payload)[:300]}")

    async def subscriptions(self, count: int, pushes: int, rate: float) -> None:
        url = f"ws://{HOST}:{self.port}/graphql"
        players = [f"watcher-{n}" for n in range(count)]
        arrivals: dict[str, list[float]] = {player: [] for player in players}
        failures: list[str] = []
        opening = asyncio.Semaphore(OPENING)

        async def open_one(player: str) -> ClientConnection:
            async with opening:
                return await subscribe(url, self.player_token(player))

        self.start_phase()
        started = time.perf_counter()
        sockets = await asyncio.gather(*(open_one(player) for player in players))
        watchers = [
            asyncio.create_task(watch(socket, arrivals[player], failures))
            for player, socket in zip(players, sockets, strict=True)
        ]
        try:
            await self.wait_for_subscriptions(count)
            print(
                f"subscribe  {count} WebSockets subscribed in {time.perf_counter() - started:.1f}"
                f" s [{self.meter.cores()}]"
            )
            pushed = random.Random(3).sample(players, min(pushes, count))
            requests = [
                self.graphql(RECORD, {"event": first_coffee(f"push-{p}", p)}) for p in pushed
            ]
            self.start_phase()
            answers = await open_loop(self.port, rate, requests, connections=8)
            expected: dict[str, tuple[Answer, int]] = {}
            for player, answer in zip(pushed, answers, strict=True):
                [result] = results_of("/graphql", answer.payload)
                if not result["unlocks"]:
                    raise BenchFailed(f"a first coffee unlocked nothing for {player}")
                expected[player] = (answer, len(result["unlocks"]))
            deadline = time.monotonic() + PATIENCE
            while time.monotonic() < deadline and any(
                len(arrivals[player]) < unlocks for player, (_, unlocks) in expected.items()
            ):
                await asyncio.sleep(0.05)
            cores = self.meter.cores()
            held = sum(not watcher.done() for watcher in watchers)
            gauge = await self.gauge()
        finally:
            for watcher in watchers:
                watcher.cancel()
            await asyncio.gather(*(socket.close() for socket in sockets), return_exceptions=True)
        if failures:
            raise BenchFailed(f"{len(failures)} subscriptions failed, e.g. {failures[0]}")
        missing = sum(max(0, unlocks - len(arrivals[p])) for p, (_, unlocks) in expected.items())
        if missing:
            raise BenchFailed(f"{missing} unlocks never reached their subscriber")
        pairs = [
            (answer, arrived) for p, (answer, _) in expected.items() for arrived in arrivals[p]
        ]
        # The store publishes an unlock before the service has copied it to SQL
        # and answered, so most arrive first: they count as 0 after the answer.
        after_answer = [max(0.0, arrived - answer.answered) * 1000 for answer, arrived in pairs]
        after_send = [(arrived - answer.sent) * 1000 for answer, arrived in pairs]
        early = sum(arrived < answer.answered for answer, arrived in pairs)
        p50, p99 = percentile(after_answer, 0.5), percentile(after_answer, 0.99)
        sent_p50, sent_p99 = percentile(after_send, 0.5), percentile(after_send, 0.99)
        self.results["subscribers"] = min(held, gauge)
        self.results["push_p50_ms"] = round(p50, 2)
        self.results["push_p99_ms"] = round(p99, 2)
        self.results["push_after_send_p99_ms"] = round(sent_p99, 2)
        print(
            f"push       {len(pairs)} unlocks of {len(pushed)} recordEvents at {rate:.0f}/s to "
            f"{held} open sockets ({gauge} subscriptions on the server) [{cores}]\n"
            f"           after the answer: p50 {p50:.2f} ms, p99 {p99:.2f} ms, "
            f"max {max(after_answer):.2f} ms ({early} arrived before the answer)\n"
            f"           after the request was sent: p50 {sent_p50:.2f} ms, p99 {sent_p99:.2f} ms"
        )

    async def redeem(self, players: int, seconds: float, concurrency: int) -> None:
        reward, cost = await self.unlimited_reward()
        redeemers = [f"redeemer-{n}" for n in range(players)]
        run = secrets.token_hex(4)
        grants = (
            self.graphql(
                ADJUST,
                {"player": p, "delta": cost * REDEMPTIONS_PER_PLAYER, "key": f"grant-{run}-{p}"},
            )
            for p in redeemers
        )
        await closed_loop(self.port, concurrency, grants, None, count_answers)
        numbers = iter(range(sys.maxsize))
        requests = (
            self.graphql(
                REDEEM,
                {"reward": reward, "key": f"redeem-{run}-{n}", "player": redeemers[n % players]},
            )
            for n in numbers
        )
        errors: Counter[str] = Counter()

        def count_redemption(tally: Tally, request: Request, payload: Any) -> None:
            tally.requests += 1
            if payload.get("errors"):
                for error in payload["errors"]:
                    errors[(error.get("extensions") or {}).get("code", "UNTYPED")] += 1
            elif payload.get("data", {}).get("redeem", {}).get("cost") == cost:
                tally.events += 1
            else:
                raise BenchFailed(f"redeem answered {json.dumps(payload)[:500]}")

        await closed_loop(self.port, concurrency, islice(requests, WARM_UP), None, count_redemption)
        errors.clear()
        self.start_phase()
        tally = await closed_loop(self.port, concurrency, requests, seconds, count_redemption)
        rate = tally.events / tally.seconds
        self.results["redeem_rps"] = round(rate)
        self.results["redeem_errors"] = errors.total()
        print(
            f"redeem     {tally.events} redemptions of {reward!r} ({cost} points) in "
            f"{tally.seconds:.1f} s for {players} players: {rate:,.0f}/s, "
            f"{errors.total()} errors {dict(errors)}, {concurrency} connections "
            f"[{self.meter.cores()}]"
        )

    async def unlimited_reward(self) -> tuple[str, int]:
        """The id and cost of the cheapest reward that only points limit."""
        async with httpx.AsyncClient(trust_env=False) as client:
            answer = await client.post(
                f"http://{HOST}:{self.port}/graphql",
                json={"query": REWARDS},
                headers={"authorization": f"Bearer {self.api_key}"},
            )
        unlimited = [
            reward
            for reward in answer.json()["data"]["rewards"]
            if reward["stock"] is None
            and reward["perPlayerLimit"] is None
            and reward["minTier"] is None
        ]
        if not unlimited:
            raise BenchFailed(
                "the seed has no reward without stock, per-player limit and minimum tier "
                "to redeem over and over: add one (e.g. free-espresso in seed/economy.yaml)"
            )
        cheapest = min(unlimited, key=lambda reward: reward["cost"])
        return cheapest["id"], cheapest["cost"]

    async def gauge(self) -> int:
        return round(await self.metric("questline_active_subscriptions"))

    async def metric(self, name: str) -> float:
        """A value of the server's own /metrics."""
        async with httpx.AsyncClient(trust_env=False) as client:
            text = (await client.get(f"http://{HOST}:{self.port}/metrics")).text
        match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
        if match is None:
            raise BenchFailed(f"/metrics has no {name}")
        return float(match[1])

    async def sql_work(self) -> tuple[float, float]:
        """The server's SQL statements and commits so far."""
        return (
            await self.metric("questline_sql_statements_total"),
            await self.metric("questline_sql_commits_total"),
        )

    async def wait_for_subscriptions(self, count: int) -> None:
        deadline = time.monotonic() + PATIENCE
        while (held := await self.gauge()) != count:
            if time.monotonic() > deadline:
                raise BenchFailed(f"the server holds {held} subscriptions, expected {count}")
            await asyncio.sleep(0.1)


async def subscribe(url: str, token: str) -> ClientConnection:
    """A graphql-transport-ws connection subscribed to its player's unlocks.

    No compression and no WebSocket pings: the client must stay cheap, and the
    server's idle cost per subscriber is what is measured.
    """
    socket = await connect(
        url,
        subprotocols=[PROTOCOL],
        compression=None,
        ping_interval=None,
        proxy=None,
        open_timeout=60,
    )
    init = {"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}
    await socket.send(json.dumps(init))
    ack = json.loads(await socket.recv())
    if ack.get("type") != "connection_ack":
        raise BenchFailed(f"connection_init answered {ack}")
    await socket.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": UNLOCKS}}))
    return socket


async def watch(socket: ClientConnection, arrivals: list[float], failures: list[str]) -> None:
    """Note when each unlock arrives; answer pings; anything else is a failure."""
    try:
        async for message in socket:
            received = time.perf_counter()
            data = json.loads(message)
            if data["type"] == "next" and not data["payload"].get("errors"):
                arrivals.append(received)
            elif data["type"] == "ping":
                await socket.send('{"type": "pong"}')
            else:
                failures.append(str(message)[:300])
    except ConnectionClosed as closed:
        failures.append(f"socket closed: {closed}")


def start_server(env: Mapping[str, str], log_path: Path) -> Server:
    """`bench.plain_app` under uvicorn on a free loopback port, without access
    logs (they would be measured too)."""
    return launch.start_server(
        env,
        log_path,
        ["--no-access-log", "--log-level", "warning"],
        factory="bench.plain_app:app",
    )


def server_env(
    store_url: str, folder: str, seed: Path, api_key: str, jwt_secret: str
) -> dict[str, str]:
    """The benchmarked server's settings: production mode, history in `folder`."""
    return {
        "QUESTLINE_STORE_URL": store_url,
        "QUESTLINE_DATABASE_URL": f"sqlite:///{folder}/history.db",
        "QUESTLINE_SEED_PATH": str(seed.resolve()),
        "QUESTLINE_ENV": "production",
        "QUESTLINE_MIGRATE_ON_START": "true",
        "QUESTLINE_API_KEYS": api_key,
        "QUESTLINE_JWT_SECRET": jwt_secret,
    }


def allow_sockets(count: int) -> None:
    """Raise the open-file limit for `count` sockets on each side (children inherit it)."""
    needed = 2 * count + 512
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed or soft == resource.RLIM_INFINITY:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise BenchFailed(
            f"{count} subscribers need {needed} open files; the hard limit is {hard}: "
            "raise it (ulimit -Hn) or pass a smaller --subscribers"
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


async def run(args: argparse.Namespace, bench: Bench) -> None:
    await bench.batch(args.players, args.batch_events)
    await bench.single(args.players, args.duration, args.rounds, args.concurrency)
    await bench.progress(args.players, args.progress_rate, args.duration)
    await bench.subscriptions(args.subscribers, args.pushes, args.push_rate)
    await bench.redeem(args.redeemers, args.duration, args.concurrency)


def report(results: Mapping[str, float], at_least: Mapping[str, float]) -> None:
    for name, value in results.items():
        if name in at_least:
            verdict = f"target >= {at_least[name]:,}: " + (
                "met" if value >= at_least[name] else "MISSED"
            )
        elif name in AT_MOST:
            verdict = f"target <= {AT_MOST[name]:,}: " + (
                "met" if value <= AT_MOST[name] else "MISSED"
            )
        else:
            verdict = ""
        print(f"{name:>24} {value:>10,}  {verdict}")


def revision() -> str:
    """The commit measured, marked dirty when the working tree has changes."""
    found = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=SEED.parent, capture_output=True, text=True
    )
    return found.stdout.strip() or "unknown (not a git checkout)"


@contextmanager
def counter_store(kind: str, folder: str) -> Iterator[tuple[str, dict[str, int]]]:
    """The store URL, and the processes to meter besides the server's (Redis)."""
    if kind == "sqlite":
        yield f"sqlite:///{folder}/store.db", {}
        return
    with redis_server() as url, redis.Redis.from_url(url) as client:
        yield url, {"redis": int(client.info("server")["process_id"])}


@dataclass(frozen=True, slots=True)
class Served:
    """A benchmarked server, the credentials it accepts, and the processes to
    meter besides it (Redis)."""

    server: Server
    api_key: str
    jwt_secret: str
    others: dict[str, int]


@contextmanager
def serving(store: str, seed: Path, extra_env: Mapping[str, str] | None = None) -> Iterator[Served]:
    """One production server on a throwaway counter store and history, with
    fresh credentials; its log is printed when the bench fails, and it is
    stopped even on SIGTERM."""
    api_key, jwt_secret = secrets.token_urlsafe(24), secrets.token_urlsafe(32)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with (
        tempfile.TemporaryDirectory(prefix="questline-") as folder,
        counter_store(store, folder) as (store_url, others),
    ):
        env = server_env(store_url, folder, seed, api_key, jwt_secret) | dict(extra_env or {})
        server = start_server(env, Path(folder) / "server.log")
        try:
            server.wait_until_healthy()
            yield Served(server, api_key, jwt_secret, others)
        except BenchFailed:
            print(f"server log:\n{server.log()[-3000:]}", file=sys.stderr)
            raise
        finally:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=["redis", "sqlite"], default="redis")
    parser.add_argument("--seed", type=Path, default=SEED)
    parser.add_argument("--players", type=int, default=2000)
    parser.add_argument("--batch-events", type=int, default=10_000)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--progress-rate", type=float, default=200.0)
    parser.add_argument("--subscribers", type=int, default=2000)
    parser.add_argument("--pushes", type=int, default=300)
    parser.add_argument("--push-rate", type=float, default=20.0)
    parser.add_argument("--redeemers", type=int, default=200)
    args = parser.parse_args()
    allow_sockets(args.subscribers)
    print(
        f"questline {revision()}, {args.store} store; {os.cpu_count()} cores shared by the "
        f"client, the server and the store (load average {os.getloadavg()[0]:.2f} before the run)"
    )
    with serving(args.store, args.seed) as served:
        server = served.server
        meter = Meter({"server": server.process.pid, "client": os.getpid(), **served.others})
        bench = Bench(server.port, served.api_key, served.jwt_secret, meter)
        uvloop.run(run(args, bench))
    print(f"load average {os.getloadavg()[0]:.2f} after the run")
    at_least = dict(AT_LEAST)
    if args.store == "sqlite":
        at_least["record_event_rps"] = SQLITE_RECORD_EVENT_RPS
    report(bench.results, at_least)
    print(json.dumps({"store": args.store, **bench.results}))


if __name__ == "__main__":
    main()
