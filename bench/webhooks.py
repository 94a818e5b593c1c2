"""Webhooks over real sockets: how fast deliveries go out, and what they cost recording.

    .venv/bin/python -m bench.webhooks [--store redis|sqlite] [--duration 10] [--rounds 3]

Starts one uvicorn worker of `bench.plain_app` (production mode, history in
SQLite in a temporary folder, as `bench.api` does) and a fast receiver in a
process of its own (an asyncio HTTP/1.1 server that answers 204 and counts),
then measures:

1. deliveries_per_s: with one endpoint subscribed to every kind, batches of
   events (recordEvents) are recorded faster than deliveries go out, and
   once recording stops the backlog is drained: deliveries received after
   that moment divided by the time the drain took.
2. record_event_rps_without / _with and record_with_webhook_vs_without:
   single-event recordEvent with `--concurrency` connections kept busy,
   without any endpoint and with one endpoint subscribed to everything
   (created before its round, deleted after it, so each round starts with
   no backlog), in `--rounds` alternating rounds. Target: the ratio >= 0.9.

The last line printed is one JSON object with the results.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Any

import httpx2 as httpx
import uvloop

from app.launch import HOST, Server, free_port, wait_for_port
from bench.api import (
    RECORD,
    RECORD_MANY,
    WARM_UP,
    BenchFailed,
    Request,
    Tally,
    closed_loop,
    event_json,
    request,
    revision,
    serving,
)
from bench.engine import BATCH, SEED, event_mix

CREATE = """mutation($url: String!) { createWebhook(url: $url, events: [UNLOCK_CHALLENGE,
  UNLOCK_MILESTONE, UNLOCK_STREAK, UNLOCK_BADGE, TIER_CHANGE, REDEMPTION, REFERRAL_REWARD]) {
  endpoint { id } } }"""
DELETE = """mutation($id: ID!) { deleteWebhook(id: $id) }"""
TARGET = 0.9
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)
_NO_CONTENT = b"HTTP/1.1 204 No Content\r\n\r\n"


async def receive(port: int) -> None:
    """The fast receiver: POSTs are counted and answered 204; GET answers the count."""
    count = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal count
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = _CONTENT_LENGTH.search(head)
                if length is not None:
                    await reader.readexactly(int(length[1]))
                if head.startswith(b"GET"):
                    body = str(count).encode()
                    writer.write(
                        b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
                    )
                else:
                    count += 1
                    writer.write(_NO_CONTENT)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, HOST, port, backlog=1024)
    await server.serve_forever()


class Bench:
    def __init__(self, server: Server, receiver_port: int, api_key: str) -> None:
        self.server = server
        self.receiver_url = f"http://{HOST}:{receiver_port}/hooks"
        self.api_key = api_key
        self.results: dict[str, float] = {}
        self.http = httpx.AsyncClient(trust_env=False, timeout=30)

    async def graphql(self, query: str, variables: dict[str, Any]) -> Any:
        response = await self.http.post(
            f"{self.server.url}/graphql",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {self.api_key}"},
        )
        body = response.json()
        if body.get("errors"):
            raise BenchFailed(f"GraphQL errors: {body['errors']}")
        return body["data"]

    async def received(self) -> int:
        return int((await self.http.get(self.receiver_url)).text)

    async def subscribe(self) -> str:
        created = await self.graphql(CREATE, {"url": self.receiver_url})
        return str(created["createWebhook"]["endpoint"]["id"])

    async def deliveries(self, players: int, events: int) -> None:
        endpoint = await self.subscribe()
        start = datetime.now(UTC) - timedelta(days=6)
        mix = [event_json(e, f"batch-{e.id}") for e in event_mix(players, events, start)]
        bodies = [
            request(
                self.server.port,
                "/graphql",
                {"query": RECORD_MANY, "variables": {"events": mix[at : at + BATCH]}},
                self.api_key,
            )
            for at in range(0, len(mix), BATCH)
        ]
        tally = await closed_loop(self.server.port, 2, iter(bodies))
        drain_from, started = await self.received(), time.perf_counter()
        previous, still = drain_from, time.perf_counter()
        while time.perf_counter() - still < 2.0:  # until nothing arrived for two seconds
            await asyncio.sleep(0.2)
            now = await self.received()
            if now != previous:
                previous, still = now, time.perf_counter()
        drained = previous - drain_from
        seconds = still - started
        if drained < 100:
            raise BenchFailed(
                f"only {drained} deliveries were left to drain after recording "
                f"{tally.unlocks} unlocks; record more events (--events)"
            )
        rate = drained / seconds
        self.results["deliveries_per_s"] = round(rate)
        print(
            f"deliveries {tally.events} events recorded, {tally.unlocks} unlocks; "
            f"{previous} deliveries received, the last {drained} drained in {seconds:.1f}s: "
            f"{rate:,.0f}/s"
        )
        await self.graphql(DELETE, {"id": endpoint})

    async def recording(self, players: int, seconds: float, rounds: int, concurrency: int) -> None:
        start = datetime.now(UTC) - timedelta(days=6)
        pool = event_mix(players, 20_000, start, seed=11)
        numbers = iter(range(sys.maxsize))

        def requests() -> Iterator[Request]:
            for number in numbers:
                event = event_json(pool[number % len(pool)], f"single-{number}")
                yield request(
                    self.server.port,
                    "/graphql",
                    {"query": RECORD, "variables": {"event": event}},
                    self.api_key,
                )

        await closed_loop(self.server.port, concurrency, islice(requests(), WARM_UP))
        tallies = {False: Tally(), True: Tally()}
        for number in range(1, rounds + 1):
            for subscribed in (False, True):
                endpoint = await self.subscribe() if subscribed else None
                before = await self.received()
                tally = await closed_loop(
                    self.server.port, concurrency, requests(), seconds / rounds
                )
                tallies[subscribed].add(tally)
                if endpoint is not None:
                    await self.graphql(DELETE, {"id": endpoint})
                print(
                    f"{'with' if subscribed else 'without':<8} round {number}: "
                    f"{tally.requests / tally.seconds:,.0f} recordEvent/s, "
                    f"{tally.unlocks} unlocks, {await self.received() - before} deliveries"
                )
        without, with_endpoint = (
            tallies[kind].requests / tallies[kind].seconds for kind in (False, True)
        )
        self.results["record_event_rps_without"] = round(without)
        self.results["record_event_rps_with"] = round(with_endpoint)
        self.results["record_with_webhook_vs_without"] = round(with_endpoint / without, 3)
        verdict = "met" if with_endpoint / without >= TARGET else "MISSED"
        print(
            f"recording  with an endpoint {with_endpoint:,.0f}/s, without {without:,.0f}/s: "
            f"{with_endpoint / without:.3f} (target >= {TARGET}: {verdict})"
        )


async def run(args: argparse.Namespace, bench: Bench) -> None:
    try:
        await bench.deliveries(args.players, args.events)
        await bench.recording(args.players, args.duration, args.rounds, args.concurrency)
    finally:
        await bench.http.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=["redis", "sqlite"], default="redis")
    parser.add_argument("--seed", type=Path, default=SEED)
    parser.add_argument("--players", type=int, default=2000)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--duration", type=float, default=12.0, help="seconds of recording")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--receive", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receive is not None:
        uvloop.run(receive(args.receive))
        return
    print(f"questline {revision()}, {args.store} store")
    with serving(args.store, args.seed, {"QUESTLINE_WEBHOOK_ALLOW_HOSTS": HOST}) as served:
        receiver_port = free_port()
        receiver = subprocess.Popen(
            [sys.executable, "-m", "bench.webhooks", "--receive", str(receiver_port)]
        )
        try:
            wait_for_port(receiver_port, receiver)
            bench = Bench(served.server, receiver_port, served.api_key)
            uvloop.run(run(args, bench))
        finally:
            receiver.terminate()
            receiver.wait()
    print(json.dumps({"store": args.store, **bench.results}))


if __name__ == "__main__":
    main()
