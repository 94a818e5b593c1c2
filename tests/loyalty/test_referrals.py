"""Referrals through the GraphQL endpoint: codes, qualification on the
referee's first qualifying event, rewards once, and every fraud rule."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from app.auth import issue_player_token
from app.settings import Settings
from tests.support.clock import Clock
from tests.support.graphql_client import codes, gql
from tests.support.loyalty import points, purchase, tier

APPLY = """
mutation($code: String!, $player: ID) {
  applyReferralCode(code: $code, playerId: $player) { code status reason appliedAt qualifiedAt }
}"""
INFO = "query($id: ID!) { player(id: $id) { referral { code referredCount qualifiedCount } } }"


def referral(client: TestClient, player: str) -> dict[str, Any]:
    body = gql(client, INFO, {"id": player})
    assert "errors" not in body, body
    found: dict[str, Any] = body["data"]["player"]["referral"]
    return found


def apply(client: TestClient, player: str, code: str) -> dict[str, Any]:
    body: dict[str, Any] = gql(client, APPLY, {"code": code, "player": player})
    return body


def referral_entries(client: TestClient, player: str) -> list[tuple[int, str]]:
    edges = points(client, player)["ledger"]["edges"]
    return [
        (edge["node"]["delta"], edge["node"]["reference"])
        for edge in edges
        if edge["node"]["reason"] == "REFERRAL"
    ]


def test_every_player_has_one_code(client: TestClient) -> None:
    first = referral(client, "ada")
    assert len(first["code"]) == 8 and first["code"].isalnum() and first["code"].isupper()
    assert referral(client, "ada") == {**first, "referredCount": 0, "qualifiedCount": 0}
    assert referral(client, "bob")["code"] != first["code"]


def test_both_are_rewarded_once_at_the_referees_first_qualifying_event(
    client: TestClient, settings: Settings
) -> None:
    code = referral(client, "ada")["code"]
    bob = issue_player_token(settings, "bob", 60)
    applied = gql(client, APPLY, {"code": code.lower()}, token=bob)["data"]["applyReferralCode"]
    assert (applied["code"], applied["status"], applied["qualifiedAt"]) == (code, "PENDING", None)
    assert referral(client, "ada")["referredCount"] == 1

    purchase(client, "small", 4.0, player="bob")  # below the 5.00 the program asks for
    assert referral_entries(client, "ada") == []
    purchase(client, "e1", 6.0, player="bob")
    purchase(client, "e1", 6.0, player="bob")  # a retry
    purchase(client, "e2", 9.0, player="bob")  # not the first qualifying event any more
    assert referral_entries(client, "ada") == [(100, "referee:bob")]
    assert referral_entries(client, "bob") == [(50, "referrer:ada")]
    assert referral(client, "ada") == {"code": code, "referredCount": 1, "qualifiedCount": 1}
    again = apply(client, "bob", code)["data"]["applyReferralCode"]
    assert again["status"] == "QUALIFIED" and again["qualifiedAt"] is not None


def test_a_player_cannot_refer_themselves(client: TestClient) -> None:
    code = referral(client, "ada")["code"]
    assert codes(apply(client, "ada", code)) == ["SELF_REFERRAL"]


def test_a_referee_has_one_referrer(client: TestClient) -> None:
    ada, cyd = referral(client, "ada")["code"], referral(client, "cyd")["code"]
    assert "errors" not in apply(client, "bob", ada)
    assert apply(client, "bob", ada)["data"]["applyReferralCode"]["status"] == "PENDING"
    assert codes(apply(client, "bob", cyd)) == ["ALREADY_REFERRED"]


def test_a_referee_must_be_new(client: TestClient) -> None:
    code = referral(client, "ada")["code"]
    purchase(client, "e1", 7.0, player="bob")
    assert codes(apply(client, "bob", code)) == ["NOT_NEW_PLAYER"]
    assert referral(client, "ada")["referredCount"] == 0


def test_an_unknown_code_is_refused(client: TestClient) -> None:
    assert codes(apply(client, "bob", "NOPE2345")) == ["UNKNOWN_REFERRAL_CODE"]


def test_the_monthly_cap_refuses_with_a_recorded_reason(client: TestClient, clock: Clock) -> None:
    code = referral(client, "ada")["code"]
    for friend in ("b1", "b2", "b3"):
        apply(client, friend, code)
        purchase(client, f"{friend}-e", 5.0, player=friend)
    refused = apply(client, "b3", code)["data"]["applyReferralCode"]
    assert refused["status"] == "REFUSED"
    assert refused["reason"] == "the referrer reached the cap of 2 rewarded referrals this month"
    assert referral_entries(client, "b3") == []
    assert [delta for delta, _ in referral_entries(client, "ada")] == [100, 100]
    assert tier(client, "ada")["tier"]["id"] == "gold"  # referral points qualify

    clock.advance(days=31)  # a new month
    apply(client, "b4", code)
    purchase(client, "b4-e", 5.0, player="b4")
    assert referral(client, "ada") == {"code": code, "referredCount": 4, "qualifiedCount": 3}


def test_who_may_apply_a_code(client: TestClient, settings: Settings) -> None:
    code = referral(client, "ada")["code"]
    assert codes(gql(client, APPLY, {"code": code})) == ["BAD_REQUEST"]  # API key: whom?
    bob = issue_player_token(settings, "bob", 60)
    for_someone_else = gql(client, APPLY, {"code": code, "player": "cyd"}, token=bob)
    assert codes(for_someone_else) == ["FORBIDDEN"]


def test_a_program_without_referrals_says_so(client_cafe: TestClient) -> None:
    assert codes(apply(client_cafe, "bob", "ABCDEFGH")) == ["REFERRALS_DISABLED"]
