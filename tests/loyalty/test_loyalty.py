"""The loyalty economy through the GraphQL endpoint: earning, the ledger,
expiry, adjustments, tiers up at once and down at review, the catalog and
redemptions with their typed errors. Time is an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from starlette.testclient import TestClient

from app.auth import issue_player_token
from app.main import create_app
from app.settings import Settings
from engine.events import Event
from tests.support.clock import Clock
from tests.support.engines import record_in_store_only
from tests.support.graphql_client import codes, gql, subscription
from tests.support.loyalty import REDEEM, points, purchase, tier

ADJUST = """
mutation($id: ID!, $delta: Int!, $reason: String!, $key: String) {
  adjustPoints(playerId: $id, delta: $delta, reason: $reason, idempotencyKey: $key) {
    delta reason reference note
  }
}"""


def give(client: TestClient, amount: int, player: str = "ada", key: str | None = None) -> None:
    body = gql(client, ADJUST, {"id": player, "delta": amount, "reason": "test", "key": key})
    assert "errors" not in body, body


def test_a_purchase_earns_its_rate_and_its_unlock_carries_points(client: TestClient) -> None:
    result = purchase(client, "e1", 4.35)
    assert [(u["key"], u["points"]) for u in result["unlocks"]] == [
        ("milestone:coffee-lover:1", 5),
        ("badge:first-sip", None),
    ]
    found = points(client)
    # Points expire after 30 days, so all of them lapse within the 30 days `soon` covers.
    assert found["points"] == {"balance": 48, "lifetimeEarned": 48, "expiringSoon": 48}
    ledger = [edge["node"] for edge in found["ledger"]["edges"]]
    assert [(e["delta"], e["reason"], e["reference"]) for e in ledger] == [
        (5, "REWARD", "milestone:coffee-lover:1"),
        (43, "EARN", "e1"),
    ]
    assert ledger[1]["createdAt"] == "2026-11-02T09:00:00+00:00"
    assert ledger[1]["expiresAt"] == "2026-12-02T09:00:00+00:00"  # 30 days later


def test_a_retried_event_earns_once(client: TestClient) -> None:
    purchase(client, "e1", 4.35)
    again = purchase(client, "e1", 4.35)
    assert again["duplicate"] is True
    assert points(client)["points"]["balance"] == 48


def test_points_expire_oldest_first_and_show_in_the_ledger(
    client: TestClient, clock: Clock
) -> None:
    purchase(client, "e1", 10)  # 100 + 5
    clock.advance(days=10)
    purchase(client, "e2", 5)  # 50
    assert points(client)["points"]["expiringSoon"] == 155
    clock.advance(days=21)  # the first grant is 31 days old
    found = points(client)
    assert found["points"] == {"balance": 50, "lifetimeEarned": 155, "expiringSoon": 50}
    expiry = found["ledger"]["edges"][0]["node"]
    assert (expiry["delta"], expiry["reason"]) == (-105, "EXPIRE")


def test_the_admin_expiry_job_expires_everyone(client: TestClient, clock: Clock) -> None:
    purchase(client, "e1", 10, player="ada")
    purchase(client, "e2", 3, player="bob")
    clock.advance(days=31)
    body = gql(client, "mutation { expirePoints { players points } }")
    assert body["data"]["expirePoints"] == {"players": 2, "points": 140}
    ada = issue_player_token(client.app.state.service.settings, "ada", 60)  # type: ignore[attr-defined]
    assert codes(gql(client, "mutation { expirePoints { players } }", token=ada)) == ["FORBIDDEN"]


def test_the_ledger_pages_with_a_cursor(client: TestClient) -> None:
    for n in range(3):
        give(client, n + 1, key=f"k{n}")
    query = """query($after: String) { player(id: "ada") {
      ledger(first: 2, after: $after) { edges { cursor node { reference } }
                                        pageInfo { hasNextPage endCursor } } } }"""
    first = gql(client, query)["data"]["player"]["ledger"]
    rest = gql(client, query, {"after": first["pageInfo"]["endCursor"]})["data"]["player"]
    assert [e["node"]["reference"] for e in first["edges"]] == ["k2", "k1"]
    assert first["pageInfo"]["hasNextPage"] is True
    assert [e["node"]["reference"] for e in rest["ledger"]["edges"]] == ["k0"]
    assert codes(gql(client, query, {"after": "nope"})) == ["BAD_REQUEST"]


def test_an_adjustment_needs_an_api_key_and_never_overdraws(
    client: TestClient, settings: Settings
) -> None:
    body = gql(client, ADJUST, {"id": "ada", "delta": 30, "reason": "goodwill", "key": "g1"})
    assert body["data"]["adjustPoints"] == {
        "delta": 30,
        "reason": "ADJUST",
        "reference": "g1",
        "note": "goodwill",
    }
    gql(client, ADJUST, {"id": "ada", "delta": 30, "reason": "goodwill", "key": "g1"})
    assert points(client)["points"]["balance"] == 30  # the retry changed nothing
    overdraw = gql(client, ADJUST, {"id": "ada", "delta": -31, "reason": "oops"})
    assert codes(overdraw) == ["INSUFFICIENT_POINTS"]
    ada = issue_player_token(settings, "ada", 60)
    selfish = gql(client, ADJUST, {"id": "ada", "delta": 1000, "reason": "me"}, token=ada)
    assert codes(selfish) == ["FORBIDDEN"]
    assert points(client)["points"]["balance"] == 30


def test_reaching_a_tier_is_an_unlock_pushed_at_once(
    client: TestClient, settings: Settings
) -> None:
    assert tier(client)["tier"]["id"] == "green"
    ada = issue_player_token(settings, "ada", 60)
    query = "subscription { unlocks { key kind title } }"
    with subscription(client, query, {}, ada) as ws:
        result = purchase(client, "e1", 20)  # 200 qualifying points (and 5 for the milestone)
        keys = [ws.receive_json()["payload"]["data"]["unlocks"]["key"] for _ in range(3)]
    assert keys == ["milestone:coffee-lover:1", "badge:first-sip", "tier:gold:2026-11-02"]
    assert result["unlocks"][-1] == {
        "key": "tier:gold:2026-11-02",
        "kind": "TIER",
        "title": "Gold",
        "points": None,
    }
    status = tier(client)
    assert status["tier"] == {"id": "gold", "name": "Gold", "multiplier": 1.5}
    assert status["nextTier"] == {"id": "platinum", "qualifyingPoints": 1000}
    assert status["qualifyingPoints"] == 205 and status["since"] == "2026-11-02T09:00:00+00:00"
    assert status["progress"] == {
        "current": 205.0,
        "target": 1000.0,
        "percent": 20.5,
        "completed": False,
    }
    purchase(client, "e2", 10)
    assert points(client)["ledger"]["edges"][0]["node"]["delta"] == 150  # Gold earns x1.5


def test_a_tier_is_lost_only_at_the_review(client: TestClient, clock: Clock) -> None:
    purchase(client, "e1", 20)
    clock.set(datetime(2027, 2, 10, 9, 0, tzinfo=UTC))  # the points left the 90-day window
    assert tier(client)["tier"]["id"] == "gold"  # no downgrade between reviews
    review = gql(client, "mutation { runTierReview { period reviewed upgraded downgraded } }")[
        "data"
    ]["runTierReview"]
    assert review == {"period": "2027-02-01", "reviewed": 1, "upgraded": 0, "downgraded": 1}
    assert tier(client)["tier"]["id"] == "green"
    history = gql(client, '{ player(id: "ada") { unlocks { edges { node { key kind } } } } }')
    nodes = [edge["node"] for edge in history["data"]["player"]["unlocks"]["edges"]]
    assert nodes[-2:] == [
        {"key": "tier:gold:2026-11-02", "kind": "TIER"},
        {"key": "tier:green:2027-02-01", "kind": "TIER"},
    ]
    again = gql(client, "mutation { runTierReview { reviewed } }")["data"]["runTierReview"]
    assert again == {"reviewed": 0}


def test_the_catalog_lists_costs_stock_and_tiers(client: TestClient) -> None:
    rewards = gql(
        client, "{ rewards { id name cost stock stockLeft perPlayerLimit minTier { id } } }"
    )["data"]["rewards"]
    assert {r["id"]: r for r in rewards}["mug"] == {
        "id": "mug",
        "name": "Mug",
        "cost": 100,
        "stock": 2,
        "stockLeft": 2,
        "perPlayerLimit": None,
        "minTier": None,
    }
    assert {r["id"]: r["minTier"] for r in rewards}["tasting"] == {"id": "gold"}


def test_a_player_redeems_for_itself_and_a_retry_charges_once(
    client: TestClient, settings: Settings
) -> None:
    give(client, 120)
    ada = issue_player_token(settings, "ada", 60)
    first = gql(client, REDEEM, {"reward": "mug", "key": "r1"}, token=ada)["data"]["redeem"]
    again = gql(client, REDEEM, {"reward": "mug", "key": "r1"}, token=ada)["data"]["redeem"]
    assert again == first
    assert (first["rewardId"], first["cost"], first["reward"]) == (
        "mug",
        100,
        {"name": "Mug", "stockLeft": 1},
    )
    found = points(client)
    assert found["points"]["balance"] == 20
    debit = found["ledger"]["edges"][0]["node"]
    assert (debit["delta"], debit["reason"], debit["reference"]) == (-100, "REDEEM", first["id"])
    listed = gql(client, "{ me { redemptions { id rewardId } } }", token=ada)["data"]["me"]
    assert listed["redemptions"] == [{"id": first["id"], "rewardId": "mug"}]


def test_an_api_key_redeems_for_a_named_player_only(client: TestClient, settings: Settings) -> None:
    give(client, 100, player="bob")
    assert codes(gql(client, REDEEM, {"reward": "espresso", "key": "r1"})) == ["BAD_REQUEST"]
    body = gql(client, REDEEM, {"reward": "espresso", "key": "r1", "player": "bob"})
    assert body["data"]["redeem"]["cost"] == 50
    ada = issue_player_token(settings, "ada", 60)
    theft = gql(client, REDEEM, {"reward": "espresso", "key": "r2", "player": "bob"}, token=ada)
    assert codes(theft) == ["FORBIDDEN"]
    assert points(client, "bob")["points"]["balance"] == 50


@pytest.mark.parametrize(
    ("balance", "reward", "before", "code"),
    [
        (49, "espresso", [], "INSUFFICIENT_POINTS"),
        (1000, "latte", ["latte", "latte"], "LIMIT_REACHED"),
        (1000, "tasting", [], "TIER_REQUIRED"),
        (1000, "croissant", [], "UNKNOWN_REWARD"),
    ],
)
def test_a_redemption_refused_says_why_and_charges_nothing(
    client: TestClient, balance: int, reward: str, before: list[str], code: str
) -> None:
    give(client, balance)
    for n, earlier in enumerate(before):
        assert "errors" not in gql(
            client, REDEEM, {"reward": earlier, "key": f"b{n}", "player": "ada"}
        )
    left = points(client)["points"]["balance"]
    refused = gql(client, REDEEM, {"reward": reward, "key": "x", "player": "ada"})
    assert codes(refused) == [code]
    assert points(client)["points"]["balance"] == left


def test_stock_runs_out_for_everyone(client: TestClient) -> None:
    for player in ("ada", "bob", "cyd"):
        give(client, 100, player=player)
    for player in ("ada", "bob"):
        assert "errors" not in gql(client, REDEEM, {"reward": "mug", "key": "k", "player": player})
    refused = gql(client, REDEEM, {"reward": "mug", "key": "k", "player": "cyd"})
    assert codes(refused) == ["OUT_OF_STOCK"]
    assert gql(client, "{ rewards { id stockLeft } }")["data"]["rewards"][1] == {
        "id": "mug",
        "stockLeft": 0,
    }


def test_an_idempotency_key_names_one_redemption(client: TestClient) -> None:
    give(client, 1000)
    gql(client, REDEEM, {"reward": "espresso", "key": "k", "player": "ada"})
    reused = gql(client, REDEEM, {"reward": "latte", "key": "k", "player": "ada"})
    assert codes(reused) == ["IDEMPOTENCY_KEY_REUSED"]


def test_a_tier_unlocks_a_reward_that_needs_it(client: TestClient) -> None:
    purchase(client, "e1", 20)  # Gold
    body = gql(client, REDEEM, {"reward": "tasting", "key": "t", "player": "ada"})
    assert body["data"]["redeem"]["cost"] == 10


def test_unlock_points_a_crash_left_out_of_the_ledger_are_granted_at_start_up(
    settings: Settings, clock: Clock
) -> None:
    with TestClient(create_app(settings, clock)) as client:
        # The store claims the unlock, then the process dies before the ledger hears of it.
        event = Event("e1", "ada", "purchase", properties={"category": "coffee"})
        client.portal.call(record_in_store_only, settings, clock, event)
        assert points(client)["points"]["balance"] == 0
    with TestClient(create_app(settings, clock)) as client:
        ledger = [edge["node"] for edge in points(client)["ledger"]["edges"]]
        assert [(e["delta"], e["reason"], e["reference"]) for e in ledger] == [
            (5, "REWARD", "milestone:coffee-lover:1")
        ]


def test_a_program_without_an_economy_has_empty_points_and_no_tier(client_cafe: TestClient) -> None:
    body = gql(
        client_cafe,
        """{ player(id: "ada") { points { balance } tier { tier { id } nextTier { id }
             progress { completed } } redemptions { id } } rewards { id } }""",
    )
    assert body["data"] == {
        "player": {
            "points": {"balance": 0},
            "tier": {"tier": None, "nextTier": None, "progress": {"completed": False}},
            "redemptions": [],
        },
        "rewards": [],
    }
    refused = gql(client_cafe, "mutation { runTierReview { reviewed } }")
    assert codes(refused) == ["BAD_REQUEST"]
