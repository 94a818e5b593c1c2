"""The GraphQL service through its endpoint: ingestion, progress, catalog, errors."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from app.auth import issue_player_token
from app.settings import Settings
from tests.support.clock import WEDNESDAY, Clock
from tests.support.graphql_client import client_for, codes, expired_token, gql, settings_for

RECORD = """
mutation($event: EventInput!) {
  recordEvent(event: $event) {
    eventId duplicate unlocks { id key kind title points badge { id name } }
  }
}"""
PROGRESS = """
query($id: ID!) {
  player(id: $id) {
    id
    challenges { challenge { id name } goals { metric progress { current target } }
                 progress { current target percent completed } }
    milestones { milestone { id } value nextTier { number at } progress { percent completed } }
    streaks { streak { id } current longest atRisk freezes progress { current target } }
    badges { badge { id name } unlockedAt }
  }
}"""


def coffee(event_id: str, player: str = "ada") -> dict[str, object]:
    return {
        "event": {
            "id": event_id,
            "playerId": player,
            "type": "purchase",
            "properties": {"category": "coffee", "amount": 4.5},
        }
    }


def test_record_event_returns_the_unlocks_it_caused(client: TestClient) -> None:
    body = gql(client, RECORD, coffee("e1"))
    result = body["data"]["recordEvent"]
    assert result["eventId"] == "e1" and result["duplicate"] is False
    assert [u["key"] for u in result["unlocks"]] == ["milestone:coffee-lover:1", "badge:first-sip"]
    assert result["unlocks"][0]["badge"] == {"id": "first-sip", "name": "First Sip"}
    assert result["unlocks"][0]["kind"] == "MILESTONE"


def test_a_retried_event_is_a_duplicate_with_its_original_unlocks(client: TestClient) -> None:
    first = gql(client, RECORD, coffee("e1"))["data"]["recordEvent"]
    again = gql(client, RECORD, coffee("e1"))["data"]["recordEvent"]
    assert again["duplicate"] is True
    assert again["unlocks"] == first["unlocks"]


def test_player_progress_has_every_challenge_milestone_streak_and_badge(
    client: TestClient,
) -> None:
    for n in range(2):
        gql(client, RECORD, coffee(f"e{n}"))
    player = gql(client, PROGRESS, {"id": "ada"})["data"]["player"]
    challenges = {c["challenge"]["id"]: c for c in player["challenges"]}
    assert challenges["three-this-week"]["progress"] == {
        "current": 2.0,
        "target": 3.0,
        "percent": 66.67,
        "completed": False,
    }
    assert challenges["daily-double"]["progress"]["completed"] is True
    assert "vip-only" not in challenges
    lover = next(m for m in player["milestones"] if m["milestone"]["id"] == "coffee-lover")
    assert lover["value"] == 2 and lover["nextTier"] == {"number": 2, "at": 3.0}
    assert player["streaks"][0]["current"] == 1 and player["streaks"][0]["atRisk"] is False
    # `advent` is a fixed window of the test program: earned too when this runs inside it.
    assert [b["badge"]["id"] for b in player["badges"] if b["badge"]["id"] != "advent"] == [
        "first-sip"
    ]


def test_record_events_takes_a_batch_and_refuses_oversized_ones(client: TestClient) -> None:
    query = (
        "mutation($events: [EventInput!]!) { recordEvents(events: $events) { eventId duplicate } }"
    )
    events = [coffee(f"b{n}", f"p{n}")["event"] for n in range(5)]
    body = gql(client, query, {"events": events})
    assert [r["eventId"] for r in body["data"]["recordEvents"]] == [f"b{n}" for n in range(5)]
    too_many = [{"id": f"x{n}", "playerId": "p", "type": "visit"} for n in range(1001)]
    assert codes(gql(client, query, {"events": too_many})) == ["BATCH_TOO_LARGE"]


@pytest.mark.parametrize(
    ("event", "code"),
    [
        (
            {
                "id": "x",
                "playerId": "ada",
                "type": "purchase",
                "occurredAt": (WEDNESDAY - timedelta(days=8)).isoformat(),
            },
            "EVENT_TOO_OLD",
        ),
        (
            {
                "id": "x",
                "playerId": "ada",
                "type": "purchase",
                "occurredAt": (WEDNESDAY + timedelta(hours=1)).isoformat(),
            },
            "EVENT_IN_FUTURE",
        ),
        ({"id": "", "playerId": "ada", "type": "purchase"}, "BAD_REQUEST"),
        ({"id": "x", "playerId": "ada", "type": "purchase", "properties": [1, 2]}, "BAD_REQUEST"),
    ],
)
def test_bad_events_get_typed_errors(
    client: TestClient, event: dict[str, object], code: str
) -> None:
    body = gql(client, RECORD, {"event": event})
    assert codes(body) == [code]
    assert body["errors"][0]["message"]


def test_unlock_history_pages_with_cursors(client: TestClient) -> None:
    for n in range(3):
        gql(client, RECORD, coffee(f"e{n}"))
    query = """query($after: String) { player(id: "ada") {
        unlocks(first: 2, after: $after) {
            edges { cursor node { key } } pageInfo { hasNextPage endCursor } } } }"""
    first = gql(client, query, {})["data"]["player"]["unlocks"]
    assert first["pageInfo"]["hasNextPage"] is True
    rest = gql(client, query, {"after": first["pageInfo"]["endCursor"]})["data"]["player"][
        "unlocks"
    ]
    keys = [e["node"]["key"] for e in first["edges"] + rest["edges"]]
    assert keys[:2] == ["milestone:coffee-lover:1", "badge:first-sip"]
    assert "challenge:daily-double:day:" in " ".join(keys)
    assert len(keys) == len(set(keys))


def test_the_program_catalog_hides_hidden_badges(client: TestClient) -> None:
    body = gql(client, "{ program { name version challenges { id every } badges { id } } }")
    program = body["data"]["program"]
    assert program["name"] == "Test cafe"
    assert "streaker" not in [b["id"] for b in program["badges"]]
    assert {"id": "advent", "every": None} in program["challenges"]


def test_update_player_sets_audience_attributes(client: TestClient) -> None:
    mutation = 'mutation { updatePlayer(id: "vip", attributes: {vip: true}) { id } }'
    assert gql(client, mutation)["data"]["updatePlayer"] == {"id": "vip"}
    keys = [
        u["key"] for u in gql(client, RECORD, coffee("v1", "vip"))["data"]["recordEvent"]["unlocks"]
    ]
    assert any(key.startswith("challenge:vip-only:") for key in keys)


def test_auth_matrix_over_http(client: TestClient, settings: Settings) -> None:
    ada = issue_player_token(settings, "ada", 60)
    bob = issue_player_token(settings, "bob", 60)
    expired = expired_token(settings, "ada")
    me = "{ me { id } }"
    assert codes(gql(client, PROGRESS, {"id": "ada"}, token=None)) == ["UNAUTHENTICATED"]
    assert codes(gql(client, PROGRESS, {"id": "ada"}, token="wrong-key-0123456789")) == [
        "UNAUTHENTICATED"
    ]
    assert gql(client, me, token=ada)["data"]["me"] == {"id": "ada"}
    assert gql(client, PROGRESS, {"id": "ada"}, token=ada)["data"]["player"]["id"] == "ada"
    assert codes(gql(client, PROGRESS, {"id": "ada"}, token=bob)) == ["FORBIDDEN"]
    assert codes(gql(client, RECORD, coffee("e1"), token=ada)) == ["FORBIDDEN"]
    assert codes(gql(client, "mutation { reloadProgram { version } }", token=ada)) == ["FORBIDDEN"]
    assert codes(gql(client, me, token=expired)) == ["UNAUTHENTICATED"]
    assert "expired" in gql(client, me, token=expired)["errors"][0]["message"]


def test_query_depth_and_body_size_are_limited(tmp_path: Path, clock: Clock) -> None:
    settings = settings_for(tmp_path, max_query_depth=3, max_body_bytes=2000)
    with client_for(settings, clock) as client:
        deep = '{ player(id: "ada") { challenges { challenge { reward { badge { id } } } } } }'
        body = gql(client, deep)
        assert codes(body) == ["INVALID_QUERY"]
        assert "6 fields deep; at most 3" in body["errors"][0]["message"]
        response = client.post(
            "/graphql", content=b"x" * 3000, headers={"content-type": "application/json"}
        )
        assert response.status_code == 413


def test_health_readiness_and_metrics(client: TestClient) -> None:
    gql(client, RECORD, coffee("e1"))
    gql(client, RECORD, coffee("e1"))
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["status"] == "ready"
    metrics = client.get("/metrics").text
    assert "questline_events_ingested_total 2.0" in metrics
    assert "questline_events_duplicate_total 1.0" in metrics
    assert 'questline_unlocks_total{kind="MILESTONE"} 1.0' in metrics


def test_an_event_type_no_rule_listens_to_is_recorded_with_a_warning_and_counted(
    client: TestClient,
) -> None:
    query = """mutation($event: EventInput!) {
        recordEvent(event: $event) { duplicate unlocks { key } warnings } }"""
    typo = {"event": {"id": "t1", "playerId": "ada", "type": "purchse"}}
    result = gql(client, query, typo)["data"]["recordEvent"]
    assert result == {
        "duplicate": False,
        "unlocks": [],
        "warnings": ["no rule listens to event type 'purchse'; did you mean 'purchase'?"],
    }
    assert gql(client, query, typo)["data"]["recordEvent"]["duplicate"] is True
    unknown = {"event": {"id": "t2", "playerId": "ada", "type": "zzz"}}
    assert gql(client, query, unknown)["data"]["recordEvent"]["warnings"] == [
        "no rule listens to event type 'zzz'"
    ]
    assert gql(client, query, coffee("c1"))["data"]["recordEvent"]["warnings"] == []
    assert "questline_events_unheard_total 3.0" in client.get("/metrics").text


def test_an_occurred_at_without_an_offset_is_refused_not_read_as_utc(client: TestClient) -> None:
    naive = (WEDNESDAY - timedelta(hours=1)).replace(tzinfo=None).isoformat()
    event = {"id": "n1", "playerId": "ada", "type": "purchase", "occurredAt": naive}
    body = gql(client, RECORD, {"event": event})
    assert codes(body) == ["BAD_REQUEST"]
    assert f"occurredAt {naive} has no UTC offset" in body["errors"][0]["message"]
    event["occurredAt"] = naive + "+00:00"
    assert gql(client, RECORD, {"event": event})["data"]["recordEvent"]["duplicate"] is False


def test_an_event_id_is_unique_per_player_not_globally(client: TestClient) -> None:
    ada = gql(client, RECORD, coffee("same-id", "ada"))["data"]["recordEvent"]
    bob = gql(client, RECORD, coffee("same-id", "bob"))["data"]["recordEvent"]
    assert ada["duplicate"] is False and bob["duplicate"] is False
    assert gql(client, RECORD, coffee("same-id", "bob"))["data"]["recordEvent"]["duplicate"]
