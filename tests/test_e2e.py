"""The service over real sockets: two uvicorn processes sharing one Redis store.

Server A holds the WebSocket subscriptions, server B takes the events, as two
workers behind a load balancer would; the durable history is on PostgreSQL.
Both servers live for the whole module and every test uses players of its
own; after each test no subscription may remain on either server, which is
also what makes "the subscription is registered" observable (the gauge goes
from 0 to 1) before an event is sent without a `since` cursor.

"Exactly once" is checked with a sentinel: after the unlocks under test, one
more event unlocks something else, and the stream must be exactly the
recorded unlocks in order. A duplicate would arrive before the sentinel's.

The servers run on real time (no clock can be injected into another process),
so every event is dated explicitly: see `OCCURRED_AT`.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx2 as httpx
import pytest
import redis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from app.auth import issue_player_token
from app.launch import Server, running_servers
from app.settings import Settings
from tests.support.graphql_client import API_KEY, JWT_SECRET, expired_token
from tests.support.polling import eventually_async
from tests.support.programs import CAFE

UNLOCKS = """subscription($player: ID, $since: String) {
    unlocks(playerId: $player, since: $since) { id key } }"""
RECORD = """mutation($event: EventInput!) {
    recordEvent(event: $event) { eventId duplicate unlocks { id key } } }"""
ALL_UNLOCKS = "subscription { allUnlocks { id key } }"
HISTORY = """query($id: ID!) {
    player(id: $id) { unlocks(first: 100) { edges { node { id key } } } } }"""
#: Seconds to wait for a pushed message or for the gauge to settle.
PATIENCE = 10.0
#: Our own database on the private Redis, so that the servers start on an empty one.
REDIS_DATABASE = 1
TOKENS = Settings(jwt_secret=JWT_SECRET)
PROTOCOL = Subprotocol("graphql-transport-ws")
#: When every event of this module occurred: the moment the module was loaded,
#: so that a day, week or month ending while the tests run changes nothing.
OCCURRED_AT = datetime.now(UTC).isoformat()

Unlocks = list[dict[str, str]]


@pytest.fixture(scope="module")
def store_url(redis_url: str) -> str:
    url = f"{redis_url.rsplit('/', 1)[0]}/{REDIS_DATABASE}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    return url


@pytest.fixture(scope="module")
def servers(
    store_url: str, postgres_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, Server]]:
    env = {
        "QUESTLINE_STORE_URL": store_url,
        "QUESTLINE_DATABASE_URL": postgres_url,
        "QUESTLINE_SEED_PATH": str(CAFE.resolve()),
        "QUESTLINE_API_KEYS": API_KEY,
        "QUESTLINE_JWT_SECRET": JWT_SECRET,
        "QUESTLINE_DEFAULT_TIMEZONE": "Europe/Paris",
    }
    with running_servers([env, env], tmp_path_factory.mktemp("servers")) as (a, b):
        yield a, b


@pytest.fixture
def server_a(servers: tuple[Server, Server]) -> Server:
    return servers[0]


@pytest.fixture
def server_b(servers: tuple[Server, Server]) -> Server:
    return servers[1]


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False, timeout=PATIENCE) as client:
        yield client


@pytest.fixture(autouse=True)
async def no_subscription_outlives_a_test(
    servers: tuple[Server, Server], http: httpx.AsyncClient
) -> AsyncIterator[None]:
    """After each test both gauges return to 0. The servers' log lines written
    during the test are printed, so pytest shows them when the test fails."""
    offsets = [server.log_path.stat().st_size for server in servers]
    yield
    try:
        for server in servers:
            await settle(http, server, 0)
    finally:
        for server, offset in zip(servers, offsets, strict=True):
            with server.log_path.open("rb") as log:
                log.seek(offset)
                print(f"--- server on port {server.port} during this test ---")
                print(log.read().decode(errors="replace"))


@pytest.fixture
def player() -> str:
    return f"p-{uuid.uuid4().hex[:10]}"


def coffee(event_id: str, player: str, store: str) -> dict[str, Any]:
    return {
        "id": event_id,
        "playerId": player,
        "type": "purchase",
        "occurredAt": OCCURRED_AT,
        "properties": {"category": "coffee", "store": store},
    }


def big_tea(event_id: str, player: str) -> dict[str, Any]:
    """Unlocks the big-spender milestone, whatever the player did before."""
    return {
        "id": event_id,
        "playerId": player,
        "type": "purchase",
        "occurredAt": OCCURRED_AT,
        "properties": {"category": "tea", "amount": 20},
    }


def review(event_id: str, player: str) -> dict[str, Any]:
    """Unlocks this month's explorer once the player bought in two stores."""
    return {"id": event_id, "playerId": player, "type": "review", "occurredAt": OCCURRED_AT}


async def record(http: httpx.AsyncClient, server: Server, event: dict[str, Any]) -> Unlocks:
    """Record through the API key; the unlocks it caused, which must not be none
    (an event that unlocks nothing would prove nothing about delivery)."""
    body = await graphql(http, server, RECORD, {"event": event}, API_KEY)
    result = body["data"]["recordEvent"]
    assert result["duplicate"] is False, result
    unlocks: Unlocks = result["unlocks"]
    assert unlocks, f"event {event} unlocked nothing; the test program changed"
    return unlocks


async def graphql(
    http: httpx.AsyncClient, server: Server, query: str, variables: dict[str, Any], token: str
) -> dict[str, Any]:
    response = await http.post(
        f"{server.url}/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {token}"},
    )
    body: dict[str, Any] = response.json()
    assert response.status_code == 200 and "errors" not in body, body
    return body


async def active_subscriptions(http: httpx.AsyncClient, server: Server) -> int:
    metrics = (await http.get(f"{server.url}/metrics")).text
    for line in metrics.splitlines():
        if line.startswith("questline_active_subscriptions "):
            return int(float(line.split()[1]))
    raise AssertionError(f"/metrics has no questline_active_subscriptions:\n{metrics}")


async def settle(http: httpx.AsyncClient, server: Server, expected: int) -> None:
    """Wait until the server's subscription gauge reads `expected`."""
    await eventually_async(
        lambda: active_subscriptions(http, server),
        lambda count: count == expected,
        f"{expected} active subscriptions on the server on port {server.port}",
        PATIENCE,
    )


@asynccontextmanager
async def websocket(server: Server, init: dict[str, Any]) -> AsyncIterator[ClientConnection]:
    """A graphql-transport-ws connection that sent `init` as its connection_init."""
    async with connect(server.graphql_ws_url, subprotocols=[PROTOCOL], proxy=None) as ws:
        await ws.send(json.dumps(init))
        yield ws


@asynccontextmanager
async def subscription(
    server: Server,
    token: str,
    player: str | None = None,
    since: str | None = None,
    query: str = UNLOCKS,
) -> AsyncIterator[ClientConnection]:
    init = {"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}
    async with websocket(server, init) as ws:
        assert (await receive(ws))["type"] == "connection_ack"
        variables = {"player": player, "since": since} if query is UNLOCKS else {}
        payload = {"query": query, "variables": variables}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        yield ws


async def receive(ws: ClientConnection) -> dict[str, Any]:
    """The next protocol message, answering the server's keep-alive pings."""
    async with asyncio.timeout(PATIENCE):
        while True:
            message: dict[str, Any] = json.loads(await ws.recv())
            if message["type"] == "ping":
                await ws.send(json.dumps({"type": "pong"}))
            elif message["type"] != "pong":
                return message


async def pushed(ws: ClientConnection, count: int) -> Unlocks:
    unlocks: Unlocks = []
    for _ in range(count):
        message = await receive(ws)
        assert message["type"] == "next" and "errors" not in message["payload"], message
        [unlock] = message["payload"]["data"].values()  # unlocks or allUnlocks
        unlocks.append(unlock)
    return unlocks


def kill(ws: ClientConnection, reset: bool) -> None:
    """Drop the TCP connection without a close frame: a FIN, or with `reset` a
    RST (SO_LINGER 0), as a phone losing its network or a crashed client."""
    if reset:
        sock = ws.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    ws.transport.abort()


async def test_the_servers_keep_the_tests_time(
    http: httpx.AsyncClient, server_a: Server, server_b: Server
) -> None:
    """Under libfaketime too (see app.launch.start_server): the token and
    event times a test makes are as fresh for the servers as for the test."""
    for server in (server_a, server_b):
        response = await http.get(f"{server.url}/healthz")
        served = parsedate_to_datetime(response.headers["date"])
        assert abs(served - datetime.now(UTC)) < timedelta(seconds=3), served


async def test_a_subscriber_on_one_server_receives_unlocks_recorded_on_another_once(
    http: httpx.AsyncClient, server_a: Server, server_b: Server, player: str
) -> None:
    token = issue_player_token(TOKENS, player, 300)
    async with subscription(server_a, token) as ws:
        await settle(http, server_a, 1)
        recorded = [
            *await record(http, server_b, coffee("e1", player, "north")),
            *await record(http, server_b, coffee("e2", player, "north")),
            *await record(http, server_b, big_tea("e3", player)),
        ]
        assert await pushed(ws, len(recorded)) == recorded


async def test_an_operator_on_one_server_follows_every_players_unlocks_recorded_on_another(
    http: httpx.AsyncClient, server_a: Server, server_b: Server, player: str
) -> None:
    async with subscription(server_a, API_KEY, query=ALL_UNLOCKS) as ws:
        await settle(http, server_a, 1)
        recorded = [
            *await record(http, server_b, coffee("e1", f"{player}-1", "north")),
            *await record(http, server_b, coffee("e1", f"{player}-2", "north")),
            *await record(http, server_b, big_tea("e2", f"{player}-1")),
        ]
        assert await pushed(ws, len(recorded)) == recorded


async def test_a_client_reconnecting_with_since_gets_what_it_missed_once_then_live(
    http: httpx.AsyncClient, server_a: Server, server_b: Server, player: str
) -> None:
    token = issue_player_token(TOKENS, player, 300)
    async with subscription(server_a, token) as ws:
        await settle(http, server_a, 1)
        seen = await record(http, server_b, coffee("e1", player, "north"))
        assert await pushed(ws, len(seen)) == seen
    missed = [
        *await record(http, server_b, coffee("e2", player, "south")),
        *await record(http, server_b, big_tea("e3", player)),
    ]
    # Back through the other server, as a load balancer may well send it.
    async with subscription(server_b, token, since=seen[-1]["id"]) as ws:
        assert await pushed(ws, len(missed)) == missed
        live = await record(http, server_a, review("e4", player))
        sentinel = await record(http, server_a, coffee("e5", player, "north"))
        assert await pushed(ws, len(live) + len(sentinel)) == live + sentinel


async def test_abruptly_dropped_subscriptions_are_released(
    http: httpx.AsyncClient, server_a: Server, player: str
) -> None:
    count = 20
    async with AsyncExitStack() as stack:
        connections = await asyncio.gather(
            *(
                stack.enter_async_context(subscription(server_a, API_KEY, f"{player}-{n}"))
                for n in range(count)
            )
        )
        await settle(http, server_a, count)
        for n, ws in enumerate(connections):
            kill(ws, reset=n % 2 == 1)
        await settle(http, server_a, 0)


@pytest.mark.parametrize(
    "init",
    [
        {"type": "connection_init"},
        {"type": "connection_init", "payload": {}},
        {"type": "connection_init", "payload": {"authorization": "Bearer wrong-key-0123456789"}},
        {
            "type": "connection_init",
            "payload": {"authorization": f"Bearer {expired_token(TOKENS, 'ada')}"},
        },
    ],
    ids=["no payload", "empty payload", "wrong key", "expired token"],
)
async def test_a_websocket_without_valid_credentials_is_closed_with_4403(
    server_a: Server, init: dict[str, Any]
) -> None:
    async with websocket(server_a, init) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await receive(ws)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403, closed.value


@pytest.mark.parametrize(
    ("caller", "target", "code"),
    [("bob", "ada", "FORBIDDEN"), (None, None, "BAD_REQUEST")],
    ids=["player token for another player", "api key without playerId"],
)
async def test_a_subscription_the_caller_may_not_open_fails_with_a_coded_error(
    server_a: Server, caller: str | None, target: str | None, code: str
) -> None:
    """`caller` is the player of the token, or None for the API key."""
    token = API_KEY if caller is None else issue_player_token(TOKENS, caller, 300)
    async with subscription(server_a, token, target) as ws:
        refused = await receive(ws)
        ended = await receive(ws)
    assert refused["type"] == "next" and refused["payload"]["data"] is None, refused
    assert [error["extensions"]["code"] for error in refused["payload"]["errors"]] == [code]
    assert ended == {"id": "1", "type": "complete"}


async def test_the_unlock_history_survives_a_redis_flush(
    http: httpx.AsyncClient, server_a: Server, server_b: Server, store_url: str, player: str
) -> None:
    recorded = [
        *await record(http, server_b, coffee("e1", player, "north")),
        *await record(http, server_b, coffee("e2", player, "north")),
        *await record(http, server_b, big_tea("e3", player)),
    ]
    client = redis.Redis.from_url(store_url)
    client.flushall()
    assert client.dbsize() == 0
    client.close()
    body = await graphql(http, server_a, HISTORY, {"id": player}, API_KEY)
    history = [edge["node"] for edge in body["data"]["player"]["unlocks"]["edges"]]
    assert history == recorded
