"""Webhooks of real servers (uvicorn processes): nothing is lost when a server
is killed with SIGKILL, and a dead receiver does not slow recording.

The receiver is a real HTTP server on loopback, run by the test
(tests/support/webhook_receiver.py); the servers run in production mode with the
loopback address allowed (QUESTLINE_WEBHOOK_ALLOW_HOSTS).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx

from app.launch import Server, free_port, start_server
from tests.support.graphql_client import API_KEY, JWT_SECRET
from tests.support.programs import SEED
from tests.support.webhook_receiver import Receiver, receiving

RECORD = """mutation($event: EventInput!) {
  recordEvent(event: $event) { eventId unlocks { key } } }"""
CREATE = """mutation($url: String!) { createWebhook(url: $url, events: [UNLOCK_CHALLENGE,
  UNLOCK_MILESTONE, UNLOCK_STREAK, UNLOCK_BADGE, TIER_CHANGE, REDEMPTION, REFERRAL_REWARD]) {
  endpoint { id } } }"""
DELETE = """mutation($id: ID!) { deleteWebhook(id: $id) }"""
CLIENTS = 6


def server_env(folder: Path, **extra: str) -> dict[str, str]:
    return {
        "QUESTLINE_STORE_URL": f"sqlite:///{folder / 'store.db'}",
        "QUESTLINE_DATABASE_URL": f"sqlite:///{folder / 'history.db'}",
        "QUESTLINE_SEED_PATH": str(SEED),
        "QUESTLINE_API_KEYS": API_KEY,
        "QUESTLINE_JWT_SECRET": JWT_SECRET,
        "QUESTLINE_ENV": "production",
        "QUESTLINE_MIGRATE_ON_START": "true",
        "QUESTLINE_WEBHOOK_ALLOW_HOSTS": "127.0.0.1",
        "QUESTLINE_WEBHOOK_FIRST_BACKOFF": "100ms",
        "QUESTLINE_WEBHOOK_MAX_BACKOFF": "500ms",
        "QUESTLINE_WEBHOOK_POLL_INTERVAL": "50ms",
        "QUESTLINE_WEBHOOK_TIMEOUT": "1s",
        **extra,
    }


def coffee(n: int) -> dict[str, Any]:
    """A new player's first coffee: it unlocks at least one milestone tier."""
    return {
        "id": f"ev-{n}",
        "playerId": f"p-{n}",
        "type": "purchase",
        "properties": {"category": "coffee", "drink": "latte", "amount": 4.5, "store_id": "s-1"},
    }


async def graphql(
    client: httpx.AsyncClient, server: Server, query: str, variables: dict[str, Any]
) -> Any:
    response = await client.post(
        f"{server.url}/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {API_KEY}"},
    )
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


async def load(server: Server, seconds: float, numbers: Any, acknowledged: list[Any]) -> None:
    """Clients recording first coffees for `seconds` or until the server dies."""
    deadline = time.monotonic() + seconds

    async def client_loop() -> None:
        async with httpx.AsyncClient(trust_env=False, timeout=10) as client:
            for n in numbers:
                if time.monotonic() > deadline:
                    return
                try:
                    result = await graphql(client, server, RECORD, {"event": coffee(n)})
                except httpx.TransportError:
                    return  # the server is gone
                acknowledged.append((f"p-{n}", result["recordEvent"]["unlocks"]))

    await asyncio.gather(*(client_loop() for _ in range(CLIENTS)))


def history(folder: Path) -> set[tuple[str, str]]:
    with sqlite3.connect(folder / "history.db") as connection:
        return set(connection.execute("SELECT player_id, key FROM unlock_record"))


def pending(folder: Path) -> int:
    with sqlite3.connect(folder / "history.db") as connection:
        [(count,)] = connection.execute(
            "SELECT count(*) FROM webhook_delivery WHERE status != 'delivered'"
        )
        return int(count)


async def test_a_killed_server_delivers_every_pending_delivery_after_a_restart(
    tmp_path: Path,
) -> None:
    port = free_port()  # the receiver's; nobody listens there until the restart
    env = server_env(tmp_path)
    first = start_server(env, tmp_path / "first.log")
    acknowledged: list[Any] = []
    try:
        first.wait_until_healthy()
        async with httpx.AsyncClient(trust_env=False, timeout=10) as client:
            url = Receiver(port).url
            await graphql(client, first, CREATE, {"url": url})
        numbers = iter(range(1_000_000))
        killer = asyncio.get_running_loop().call_later(1.5, first.process.kill)
        await load(first, 30, numbers, acknowledged)
        killer.cancel()
        first.process.wait()
    finally:
        first.stop()
    acknowledged_unlocks = {
        (player, unlock["key"]) for player, unlocks in acknowledged for unlock in unlocks
    }
    assert len(acknowledged_unlocks) >= 20, "the load was too short to mean anything"
    assert pending(tmp_path) > 0, "nothing was pending at the kill"

    with receiving(port=port) as receiver:
        second = start_server(env, tmp_path / "second.log")
        try:
            second.wait_until_healthy()
            deadline = time.monotonic() + 60
            while pending(tmp_path) and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert pending(tmp_path) == 0, second.log()[-2000:]
        finally:
            second.stop()
        received = list(receiver.received)
    delivered: dict[tuple[str, str], set[str]] = {}
    for request in received:
        payload = request.json["payload"]
        key = (payload["playerId"], payload["unlockKey"])
        delivered.setdefault(key, set()).add(request.delivery_id)
    assert acknowledged_unlocks <= set(delivered)
    assert set(delivered) == history(tmp_path)  # every durable unlock, nothing else
    # Duplicates only ever repeat the same delivery id.
    assert all(len(ids) == 1 for ids in delivered.values())


async def test_a_dead_receiver_does_not_slow_recording(tmp_path: Path) -> None:
    """recordEvent's rate with an endpoint that never answers, as a ratio of the
    rate without any endpoint, measured in alternating rounds. Each side is
    taken at its best round: on a shared machine a round can lose half its rate
    to another process, and the best round is what the server itself allows."""
    rounds, seconds = 4, 1.5
    with receiving() as receiver:
        receiver.hang.set()
        server = start_server(server_env(tmp_path), tmp_path / "server.log")
        try:
            server.wait_until_healthy()
            numbers = iter(range(1_000_000))
            await load(server, 1.0, numbers, [])  # warm up
            rates: dict[bool, list[float]] = {False: [], True: []}
            async with httpx.AsyncClient(trust_env=False, timeout=10) as client:
                for _ in range(rounds):
                    for dead in (False, True):
                        endpoint = None
                        if dead:
                            created = await graphql(client, server, CREATE, {"url": receiver.url})
                            endpoint = created["createWebhook"]["endpoint"]["id"]
                        done: list[Any] = []
                        started = time.perf_counter()
                        await load(server, seconds, numbers, done)
                        rates[dead].append(len(done) / (time.perf_counter() - started))
                        if endpoint is not None:
                            await graphql(client, server, DELETE, {"id": endpoint})
        finally:
            server.stop()
    without, with_dead = max(rates[False]), max(rates[True])
    assert receiver.hung > 0 and not receiver.received  # it was called, and never answered
    print(f"recordEvent with a dead endpoint / without: {with_dead / without:.2f} ({rates})")
    assert with_dead / without >= 0.7, rates
