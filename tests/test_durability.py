"""Nothing acknowledged is lost: a server killed with SIGKILL in the middle of
a load, then restarted, has every acknowledged event, unlock and grant.

A real uvicorn process records events from concurrent clients on a durable
Redis (append-only file, fsync on every write) with its history on
PostgreSQL. It is killed while requests are in flight. The clients then do
what real clients do with requests that got no answer: they send them again
to the restarted server. Afterwards, for every player, the journal, the
counters, the unlock history and the ledger must agree exactly.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from sqlalchemy import func, select

from app.journal import JOURNAL
from app.launch import Server, redis_server, start_server
from app.points import ACCOUNTS, ENTRIES
from app.records import UNLOCKS
from app.sql import make_database
from engine.points import LedgerReason
from tests.support.graphql_client import API_KEY, JWT_SECRET
from tests.support.programs import SEED
from tests.support.services import postgres_database

RECORD = """mutation($event: EventInput!) {
  recordEvent(event: $event) { eventId duplicate unlocks { key } } }"""
COFFEES = """query($id: ID!) { player(id: $id) {
  milestones { milestone { id } value } } }"""
PLAYERS = 12
CLIENTS = 12
#: The server is killed once this many events were acknowledged (under load,
#: mid-stream), so the check has something to check however slow the machine.
KILL_AFTER = 100


@pytest.fixture
def durable_redis() -> Iterator[str]:
    with redis_server(durable=True) as url:
        yield url


@pytest.fixture
def own_postgres(postgres_url: str) -> Iterator[str]:
    """A database of this test alone (the session's is shared by other tests)."""
    with postgres_database() as url:
        yield url


def coffee(n: int, rng: random.Random) -> dict[str, Any]:
    return {
        "id": f"ev-{n}",
        "playerId": f"p-{rng.randrange(PLAYERS)}",
        "type": "purchase",
        "properties": {"category": "coffee", "drink": "latte", "amount": 4.5, "store_id": "s-1"},
    }


async def send(client: httpx.AsyncClient, server: Server, event: dict[str, Any]) -> Any:
    response = await client.post(
        f"{server.url}/graphql",
        json={"query": RECORD, "variables": {"event": event}},
        headers={"Authorization": f"Bearer {API_KEY}"},
    )
    body = response.json()
    assert "errors" not in body, body
    return body["data"]["recordEvent"]


async def load(server: Server, acknowledged: dict[str, Any], sent: list[dict[str, Any]]) -> None:
    """Clients sending coffees until the server dies under them."""
    rng = random.Random(3)
    numbers = iter(range(1_000_000))

    async def client_loop() -> None:
        async with httpx.AsyncClient(trust_env=False, timeout=10) as client:
            for n in numbers:
                event = coffee(n, rng)
                sent.append(event)
                try:
                    acknowledged[event["id"]] = await send(client, server, event)
                except httpx.TransportError:
                    return  # the server is gone

    async def killer() -> None:
        while len(acknowledged) < KILL_AFTER and server.process.poll() is None:
            await asyncio.sleep(0.01)
        server.process.kill()

    await asyncio.gather(killer(), *(client_loop() for _ in range(CLIENTS)))


def server_env(store_url: str, database_url: str) -> dict[str, str]:
    return {
        "QUESTLINE_STORE_URL": store_url,
        "QUESTLINE_DATABASE_URL": database_url,
        "QUESTLINE_SEED_PATH": str(SEED),
        "QUESTLINE_API_KEYS": API_KEY,
        "QUESTLINE_JWT_SECRET": JWT_SECRET,
        "QUESTLINE_ENV": "production",
        "QUESTLINE_MIGRATE_ON_START": "true",
    }


async def test_a_killed_server_loses_nothing_it_acknowledged(
    durable_redis: str, own_postgres: str, tmp_path: Path
) -> None:
    env = server_env(durable_redis, own_postgres)
    first = start_server(env, tmp_path / "first.log")
    try:
        first.wait_until_healthy()
        acknowledged: dict[str, Any] = {}
        sent: list[dict[str, Any]] = []
        await load(first, acknowledged, sent)
    finally:
        first.stop()
    assert first.process.returncode == -9
    assert len(acknowledged) >= KILL_AFTER
    unanswered = [event for event in sent if event["id"] not in acknowledged]

    second = start_server(env, tmp_path / "second.log")
    try:
        second.wait_until_healthy()
        async with httpx.AsyncClient(trust_env=False, timeout=10) as client:
            for event in unanswered:  # what a client does with a request that got no answer
                acknowledged[event["id"]] = await send(client, second, event)
            coffees = {}
            for n in range(PLAYERS):
                response = await client.post(
                    f"{second.url}/graphql",
                    json={"query": COFFEES, "variables": {"id": f"p-{n}"}},
                    headers={"Authorization": f"Bearer {API_KEY}"},
                )
                milestones = response.json()["data"]["player"]["milestones"]
                lover = next(m for m in milestones if m["milestone"]["id"] == "coffee-lover")
                coffees[f"p-{n}"] = lover["value"]
    finally:
        second.stop()

    database = make_database(own_postgres)
    try:
        with database.connect() as connection:
            journaled = dict(
                connection.execute(
                    select(JOURNAL.c.player_id, func.count()).group_by(JOURNAL.c.player_id)
                ).all()
            )
            event_ids = set(connection.execute(select(JOURNAL.c.event_id)).scalars())
            history = connection.execute(select(UNLOCKS.c.player_id, UNLOCKS.c.key)).all()
            earned = (
                connection.execute(
                    select(ENTRIES.c.reference).where(ENTRIES.c.reason == LedgerReason.EARN.value)
                )
                .scalars()
                .all()
            )
            sums = dict(
                connection.execute(
                    select(ENTRIES.c.player_id, func.sum(ENTRIES.c.delta)).group_by(
                        ENTRIES.c.player_id
                    )
                ).all()
            )
            balances = dict(
                connection.execute(select(ACCOUNTS.c.player_id, ACCOUNTS.c.balance)).all()
            )
    finally:
        database.dispose()

    # Every acknowledged event is in the journal, once, and counted once.
    assert event_ids == set(acknowledged) == {event["id"] for event in sent}
    assert sum(journaled.values()) == len(sent)
    assert coffees == {player: journaled.get(player, 0) for player in coffees}
    # Every acknowledged unlock is in history, exactly once.
    answered = {
        (event["playerId"], unlock["key"])
        for event in sent
        for unlock in acknowledged[event["id"]]["unlocks"]
    }
    assert answered <= set(history)
    assert len(history) == len(set(history))
    # Every purchase earned once; every balance is the sum of its ledger.
    assert sorted(earned) == sorted(event["id"] for event in sent)
    assert balances == sums
