"""The loyalty program through GraphQL: its clock's start, the documents
and the reads the tests of points, tiers, redemptions and referrals share."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, delete
from starlette.testclient import TestClient

from app.points import ACCOUNTS, ENTRIES, USAGE
from app.rewards import REDEMPTIONS, STOCK
from tests.support.graphql_client import gql

#: A Monday; 10:00 in Paris.
START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)

RECORD = """
mutation($event: EventInput!) {
  recordEvent(event: $event) { eventId duplicate unlocks { key kind title points } }
}"""
POINTS = """
query($id: ID!) {
  player(id: $id) {
    points { balance lifetimeEarned expiringSoon }
    ledger(first: 10) { edges { cursor node { delta reason reference note createdAt expiresAt } }
                        pageInfo { hasNextPage endCursor } }
  }
}"""
TIER = """
query($id: ID!) {
  player(id: $id) {
    tier { tier { id name multiplier } nextTier { id qualifyingPoints } qualifyingPoints since
           progress { current target percent completed } }
  }
}"""
REDEEM = """
mutation($reward: ID!, $key: String!, $player: ID) {
  redeem(rewardId: $reward, idempotencyKey: $key, playerId: $player) {
    id rewardId cost idempotencyKey createdAt reward { name stockLeft }
  }
}"""


def purchase(
    client: TestClient, event_id: str, amount: float, player: str = "ada", **extra: Any
) -> dict[str, Any]:
    event = {
        "id": event_id,
        "playerId": player,
        "type": "purchase",
        "properties": {"category": "coffee", "amount": amount, **extra},
    }
    body = gql(client, RECORD, {"event": event})
    assert "errors" not in body, body
    result: dict[str, Any] = body["data"]["recordEvent"]
    return result


def points(client: TestClient, player: str = "ada") -> dict[str, Any]:
    body = gql(client, POINTS, {"id": player})
    assert "errors" not in body, body
    found: dict[str, Any] = body["data"]["player"]
    return found


def tier(client: TestClient, player: str = "ada") -> dict[str, Any]:
    body = gql(client, TIER, {"id": player})
    assert "errors" not in body, body
    found: dict[str, Any] = body["data"]["player"]["tier"]
    return found


def empty_economy(engine: Engine) -> None:
    """Forget every account: some operations (expiry, reviews) touch all players."""
    with engine.begin() as connection:
        for table in (ENTRIES, ACCOUNTS, USAGE, REDEMPTIONS, STOCK):
            connection.execute(delete(table))
