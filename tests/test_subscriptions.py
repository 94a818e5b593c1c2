"""Live unlocks over graphql-transport-ws (in process), replay and WebSocket auth."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from app.auth import issue_player_token
from app.settings import Settings
from tests.support.clock import Clock
from tests.support.graphql_client import (
    API_KEY,
    client_for,
    expired_token,
    gql,
    settings_for,
    subscription,
)
from tests.support.polling import eventually

UNLOCKS = """subscription($player: ID, $since: String) {
    unlocks(playerId: $player, since: $since) { id key kind } }"""
ALL_UNLOCKS = "subscription { allUnlocks { id key playerId } }"
RECORD = """mutation($id: String!) {
    recordEvent(event: {id: $id, playerId: "ada", type: "purchase",
                        properties: {category: "coffee"}}) { unlocks { id key } } }"""


def next_unlock(ws: object) -> dict[str, str]:
    """The unlock of the next message, whichever subscription field carries it."""
    message = ws.receive_json()  # type: ignore[attr-defined]
    assert message["type"] == "next", message
    [unlock] = message["payload"]["data"].values()
    assert isinstance(unlock, dict)
    return unlock


def test_a_player_receives_their_unlocks_live(client: TestClient, settings: Settings) -> None:
    token = issue_player_token(settings, "ada", 60)
    with subscription(client, UNLOCKS, {}, token) as ws:
        recorded = gql(client, RECORD, {"id": "e1"})["data"]["recordEvent"]["unlocks"]
        received = [next_unlock(ws), next_unlock(ws)]
        assert [u["key"] for u in received] == ["milestone:coffee-lover:1", "badge:first-sip"]
        assert [u["id"] for u in received] == [u["id"] for u in recorded]


def test_since_replays_what_was_missed_then_goes_live(client: TestClient) -> None:
    first = gql(client, RECORD, {"id": "e1"})["data"]["recordEvent"]["unlocks"]
    gql(client, RECORD, {"id": "e2"})  # daily-double, while nobody listens
    with subscription(client, UNLOCKS, {"player": "ada", "since": first[-1]["id"]}, API_KEY) as ws:
        received = [next_unlock(ws)["key"]]
        assert received[0].startswith("challenge:daily-double:day:")
        gql(client, RECORD, {"id": "e3"})
        while received[-1] != "milestone:coffee-lover:2":
            received.append(next_unlock(ws)["key"])
        # `advent`, a fixed window of the test program, joins in when this runs inside it.
        assert [key for key in received if "advent" not in key] == [
            received[0],
            "milestone:coffee-lover:2",
        ]


def test_a_websocket_without_valid_credentials_is_closed(
    client: TestClient, settings: Settings
) -> None:
    for payload, reason in (
        ({}, "UNAUTHENTICATED: send {authorization: 'Bearer <token>'} in connection_init"),
        ({"authorization": "Bearer not-a-key-0123456789"}, "UNAUTHENTICATED: invalid API key"),
        (
            {"authorization": f"Bearer {expired_token(settings, 'ada')}"},
            "UNAUTHENTICATED: the token has expired; sign in again",
        ),
    ):
        with client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
            ws.send_json({"type": "connection_init", "payload": payload})
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_json()
            # The close frame says why, so a client can tell "sign in again" from a bug.
            assert (closed.value.code, closed.value.reason) == (4403, reason)


def test_a_player_token_cannot_subscribe_to_another_player(
    client: TestClient, settings: Settings
) -> None:
    token = issue_player_token(settings, "bob", 60)
    with subscription(client, UNLOCKS, {"player": "ada"}, token) as ws:
        message = ws.receive_json()
        assert message["payload"]["errors"][0]["extensions"]["code"] == "FORBIDDEN"


def test_subscribers_are_released_when_clients_disconnect(
    client: TestClient, settings: Settings
) -> None:
    token = issue_player_token(settings, "ada", 60)
    service = client.app.state.service  # type: ignore[attr-defined]
    with subscription(client, UNLOCKS, {}, token) as ws:
        gql(client, RECORD, {"id": "e1"})
        next_unlock(ws)
        assert service.subscribers == 1
    eventually(lambda: service.subscribers, lambda count: count == 0, "no subscriber left")


def test_subscriptions_per_connection_are_limited(tmp_path: Path, clock: Clock) -> None:
    settings = settings_for(tmp_path, max_subscriptions_per_connection=1)
    with (
        client_for(settings, clock) as client,
        subscription(client, UNLOCKS, {"player": "ada"}, API_KEY) as ws,
    ):
        ws.send_json(
            {
                "id": "2",
                "type": "subscribe",
                "payload": {"query": UNLOCKS, "variables": {"player": "bob"}},
            }
        )
        refused = ws.receive_json()
        assert (refused["id"], refused["type"]) == ("2", "error")
        assert "limit" in refused["payload"][0]["message"]


def test_an_api_key_follows_the_unlocks_of_every_player(client: TestClient) -> None:
    bob = RECORD.replace('"ada"', '"bob"')
    with subscription(client, ALL_UNLOCKS, {}, API_KEY) as ws:
        recorded = [
            *gql(client, RECORD, {"id": "e1"})["data"]["recordEvent"]["unlocks"],
            *gql(client, bob, {"id": "e2"})["data"]["recordEvent"]["unlocks"],
        ]
        received = [next_unlock(ws) for _ in recorded]
    assert [(u["playerId"], u["key"]) for u in received] == [
        ("ada", "milestone:coffee-lover:1"),
        ("ada", "badge:first-sip"),
        ("bob", "milestone:coffee-lover:1"),
        ("bob", "badge:first-sip"),
    ]
    assert [u["id"] for u in received] == [u["id"] for u in recorded]


def test_a_player_token_cannot_follow_every_player(client: TestClient, settings: Settings) -> None:
    token = issue_player_token(settings, "ada", 60)
    with subscription(client, ALL_UNLOCKS, {}, token) as ws:
        message = ws.receive_json()
        assert message["payload"]["errors"][0]["extensions"]["code"] == "FORBIDDEN"
