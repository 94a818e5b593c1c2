"""Program analytics through the GraphQL endpoint: challenge starts and
completions, live streaks, points issued and redeemed, customer retention.
Time is an injected clock; the challenge and streak cases also run on
PostgreSQL with the Redis store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import delete, insert, select
from starlette.testclient import TestClient

from app.analytics import ACTIVITY, ATTEMPTS
from app.auth import issue_player_token
from app.main import create_app
from app.migrations import alembic_config, upgrade_database
from app.records import UnlockRecord
from app.settings import Settings
from app.sql import make_database
from tests.support.clock import Clock
from tests.support.graphql_client import codes, gql, settings_for
from tests.support.loyalty import empty_economy

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # a Monday; 10:00 in Paris

PROGRAM = """
program: {name: Analytics, timezone: Europe/Paris}
metrics:
  coffees: {event: purchase, where: {category: coffee}}
  reviews: {event: review}
milestones:
  coffee-lover: {metric: coffees, tiers: [{at: 1, reward: {points: 5}}]}
challenges:
  three-this-week: {metric: coffees, target: 3, every: week}
  advent: {metric: coffees, target: 1, window: {start: 2026-12-01, end: 2026-12-25}}
  vip-only: {metric: coffees, target: 1, every: day, audience: {vip: true}}
  reviewer: {metric: reviews, target: 1, every: month}
streaks:
  daily-coffee: {metric: coffees, per: day, freezes: {max: 1, earn_every: 2}}
points:
  expire_after: 30d
  earn:
    spend: {event: purchase, per: amount, rate: 10}
rewards:
  espresso: {name: Espresso, cost: 50}
"""

RECORD = """
mutation($event: EventInput!) { recordEvent(event: $event) { eventId duplicate } }"""
CHALLENGES = """
{ analytics { challenges {
    challenge { id } started completed completionRate
    instances(last: 3) { period started completed completionRate } } } }"""
STREAKS = "{ analytics { streaks { streak { id } active atRisk } } }"
POINTS = """
{ analytics { points {
    issued issuedByReason { reason points } redeemed expired deducted outstanding } } }"""
RETENTION = """
query($period: AnalyticsPeriod!, $periods: Int!) { analytics {
  retention(period: $period, periods: $periods) {
    period startsAt endsAt complete customersAtStart customersAtEnd newCustomers retained
    retentionRate } } }"""


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """The analytics program on private SQLite files, or on PostgreSQL with the
    Redis store (emptied first: analytics add up every player)."""
    seed = tmp_path / "analytics.yaml"
    seed.write_text(PROGRAM)
    if request.param == "sqlite":
        return settings_for(tmp_path).model_copy(update={"seed_path": seed})
    database_url: str = request.getfixturevalue("postgres_url")
    upgrade_database(database_url)
    db = make_database(database_url)
    empty_economy(db)
    with db.begin() as connection:
        connection.execute(delete(ACTIVITY))
        connection.execute(delete(ATTEMPTS))
    db.dispose()
    store_url: str = request.getfixturevalue("clean_redis_url")
    return settings_for(tmp_path, store_url).model_copy(
        update={"seed_path": seed, "database_url": database_url}
    )


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    seed = tmp_path / "analytics.yaml"
    seed.write_text(PROGRAM)
    return settings_for(tmp_path).model_copy(update={"seed_path": seed})


def started(settings: Settings, clock: Clock) -> Iterator[TestClient]:
    with TestClient(create_app(settings, clock)) as client:
        yield client


@pytest.fixture
def client(settings: Settings, clock: Clock) -> Iterator[TestClient]:
    yield from started(settings, clock)


@pytest.fixture
def sqlite_client(sqlite_settings: Settings, clock: Clock) -> Iterator[TestClient]:
    yield from started(sqlite_settings, clock)


def record(
    client: TestClient,
    event_id: str,
    player: str,
    type: str = "purchase",
    occurred_at: datetime | None = None,
    **properties: Any,
) -> dict[str, Any]:
    event: dict[str, Any] = {"id": event_id, "playerId": player, "type": type}
    event["properties"] = properties
    if occurred_at is not None:
        event["occurredAt"] = occurred_at.isoformat()
    body = gql(client, RECORD, {"event": event})
    assert "errors" not in body, body
    result: dict[str, Any] = body["data"]["recordEvent"]
    return result


def coffee(client: TestClient, event_id: str, player: str, amount: float = 1) -> None:
    record(client, event_id, player, category="coffee", amount=amount)


def analytics(client: TestClient, query: str, variables: dict[str, Any] | None = None) -> Any:
    body = gql(client, query, variables)
    assert "errors" not in body, body
    return body["data"]["analytics"]


def by_id(items: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {item[kind]["id"]: item for item in items}


def test_analytics_need_an_api_key(sqlite_client: TestClient, sqlite_settings: Settings) -> None:
    ada = issue_player_token(sqlite_settings, "ada", 60)
    assert codes(gql(sqlite_client, STREAKS, token=ada)) == ["FORBIDDEN"]
    assert codes(gql(sqlite_client, STREAKS, token=None)) == ["UNAUTHENTICATED"]


def test_a_challenge_counts_who_started_it_and_who_completed_it(
    client: TestClient, clock: Clock
) -> None:
    for n in range(3):
        coffee(client, f"ada-{n}", "ada")
    assert record(client, "ada-2", "ada", category="coffee", amount=1)["duplicate"] is True
    coffee(client, "bob-0", "bob")
    record(client, "carl-0", "carl", category="tea")  # no goal counts tea
    record(client, "dana-0", "dana", type="review")
    clock.advance(days=7)
    coffee(client, "ada-3", "ada")

    found = by_id(analytics(client, CHALLENGES)["challenges"], "challenge")

    weekly = found["three-this-week"]
    assert (weekly["started"], weekly["completed"], weekly["completionRate"]) == (2, 1, 0.5)
    assert weekly["instances"] == [
        {"period": "week:2026-11-09", "started": 1, "completed": 0, "completionRate": 0.0},
        {"period": "week:2026-11-02", "started": 2, "completed": 1, "completionRate": 0.5},
    ]
    assert found["reviewer"]["instances"] == [
        {"period": "month:2026-11", "started": 1, "completed": 1, "completionRate": 1.0}
    ]
    for untouched in ("advent", "vip-only"):  # before the window; nobody in the audience
        assert found[untouched] == {
            "challenge": {"id": untouched},
            "started": 0,
            "completed": 0,
            "completionRate": None,
            "instances": [],
        }


def test_an_audience_and_a_window_limit_who_starts_a_challenge(
    client: TestClient, clock: Clock
) -> None:
    update = 'mutation { updatePlayer(id: "vera", attributes: {vip: true}) { id } }'
    assert "errors" not in gql(client, update)
    coffee(client, "vera-0", "vera")
    coffee(client, "bob-0", "bob")  # not a vip
    clock.set(datetime(2026, 11, 30, 22, 30, tzinfo=UTC))  # 23:30 in Paris: not December yet
    coffee(client, "bob-1", "bob")
    clock.advance(hours=1)
    coffee(client, "bob-2", "bob")

    found = by_id(analytics(client, CHALLENGES)["challenges"], "challenge")

    vip = found["vip-only"]
    assert (vip["started"], vip["completed"]) == (1, 1)
    assert vip["instances"][0]["period"] == "day:2026-11-02"
    assert found["advent"]["instances"] == [
        {"period": None, "started": 1, "completed": 1, "completionRate": 1.0}
    ]


def test_a_streak_is_active_until_a_gap_its_freezes_cannot_cover(
    client: TestClient, clock: Clock
) -> None:
    coffee(client, "ada-0", "ada")
    coffee(client, "bob-0", "bob")
    clock.advance(days=1)
    coffee(client, "ada-1", "ada")  # two days in a row: ada earns a freeze
    clock.advance(days=1)
    coffee(client, "carl-0", "carl")

    def daily() -> dict[str, Any]:
        streaks = by_id(analytics(client, STREAKS)["streaks"], "streak")
        result: dict[str, Any] = streaks["daily-coffee"]
        return result

    # ada not yet today (at risk), bob missed yesterday with no freeze, carl today.
    assert (daily()["active"], daily()["atRisk"]) == (2, 1)
    clock.advance(days=1)  # ada's freeze covers yesterday; carl not yet today
    assert (daily()["active"], daily()["atRisk"]) == (2, 2)
    clock.advance(days=1)
    assert (daily()["active"], daily()["atRisk"]) == (0, 0)


def test_a_streak_lives_in_its_players_timezone(tmp_path: Path, clock: Clock) -> None:
    seed = tmp_path / "reviews.yaml"
    seed.write_text(
        "program: {name: Reviews, timezone: Europe/Paris}\n"
        "metrics: {reviews: {event: review}}\n"
        "streaks: {daily-review: {metric: reviews, per: day}}\n"
    )
    settings = settings_for(tmp_path).model_copy(update={"seed_path": seed})
    with TestClient(create_app(settings, clock)) as client:
        update = 'mutation { updatePlayer(id: "kiri", timezone: "Pacific/Kiritimati") { id } }'
        assert "errors" not in gql(client, update)
        clock.set(datetime(2026, 11, 2, 10, 30, tzinfo=UTC))  # Nov 3 in Kiritimati, 2 in Paris
        record(client, "kiri-0", "kiri", type="review")
        clock.set(datetime(2026, 11, 4, 9, tzinfo=UTC))  # Nov 4, 23:00 in Kiritimati

        [streak] = analytics(client, STREAKS)["streaks"]

    # Extended yesterday in the player's own days, though two days ago in Paris.
    assert (streak["active"], streak["atRisk"]) == (1, 1)


def test_points_issued_redeemed_expired_and_outstanding_add_up(
    sqlite_client: TestClient, clock: Clock
) -> None:
    client = sqlite_client
    coffee(client, "ada-0", "ada", amount=10)  # 100 earned, 5 for the milestone
    coffee(client, "bob-0", "bob", amount=3)  # 30 earned, 5 for the milestone
    adjust = """mutation($id: ID!, $delta: Int!) {
      adjustPoints(playerId: $id, delta: $delta, reason: "test") { delta } }"""
    assert "errors" not in gql(client, adjust, {"id": "ada", "delta": 20})
    assert "errors" not in gql(client, adjust, {"id": "bob", "delta": -5})
    redeem = (
        'mutation { redeem(rewardId: "espresso", idempotencyKey: "r1", playerId: "ada") { id } }'
    )
    assert "errors" not in gql(client, redeem)
    clock.advance(days=31)  # everything granted so far has lapsed: ada 75, bob 30
    lapsed = analytics(client, POINTS)["points"]
    coffee(client, "ada-1", "ada", amount=2)  # 20 more, not lapsed
    assert "errors" not in gql(client, "mutation { expirePoints { points } }")

    found = analytics(client, POINTS)["points"]

    assert found == {
        "issued": 180,
        "issuedByReason": [
            {"reason": "EARN", "points": 150},
            {"reason": "REWARD", "points": 10},
            {"reason": "ADJUST", "points": 20},
        ],
        "redeemed": 50,
        "expired": 105,
        "deducted": 5,
        "outstanding": 20,
    }
    # Lapsed points count as expired before their expiry is written, too.
    assert (lapsed["issued"], lapsed["expired"], lapsed["outstanding"]) == (160, 105, 0)


def test_retention_is_returning_customers_over_the_customers_at_start(
    sqlite_client: TestClient, clock: Clock
) -> None:
    client = sqlite_client
    clock.set(datetime(2026, 9, 10, 12, tzinfo=UTC))
    coffee(client, "ada-9", "ada")
    coffee(client, "bob-9", "bob")
    clock.set(datetime(2026, 10, 3, 12, tzinfo=UTC))
    # Sent late: dated when it occurred, in September (Paris time).
    late = datetime(2026, 9, 30, 21, 30, tzinfo=UTC)
    record(client, "erin-9", "erin", occurred_at=late, category="tea")
    clock.set(datetime(2026, 10, 10, 12, tzinfo=UTC))
    coffee(client, "ada-10", "ada")
    coffee(client, "carl-10", "carl")
    clock.set(datetime(2026, 11, 10, 12, tzinfo=UTC))
    for player in ("ada", "bob", "dana"):
        coffee(client, f"{player}-11", player)

    found = analytics(client, RETENTION, {"period": "MONTH", "periods": 3})["retention"]

    columns = ("customersAtStart", "customersAtEnd", "newCustomers", "retained")
    assert [(p["period"], *(p[c] for c in columns)) for p in found] == [
        ("month:2026-09", 0, 3, 3, 0),
        ("month:2026-10", 3, 2, 1, 1),  # ada stayed, carl is new
        ("month:2026-11", 2, 3, 1, 1),  # ada stayed, bob came back, dana is new
    ]
    assert [p["retentionRate"] for p in found] == [None, pytest.approx(1 / 3), 1.0]
    assert [p["complete"] for p in found] == [True, True, False]
    assert (found[0]["startsAt"], found[0]["endsAt"]) == (
        "2026-08-31T22:00:00+00:00",  # midnight in Paris
        "2026-09-30T22:00:00+00:00",
    )


def test_retention_by_day_and_week(sqlite_client: TestClient, clock: Clock) -> None:
    client = sqlite_client
    for player in ("ada", "bob", "carl"):
        coffee(client, f"{player}-0", player)
    clock.advance(days=1)
    coffee(client, "ada-1", "ada")

    days = analytics(client, RETENTION, {"period": "DAY", "periods": 2})["retention"]
    weeks = analytics(client, RETENTION, {"period": "WEEK", "periods": 1})["retention"]

    assert [(d["period"], d["customersAtEnd"], d["retentionRate"]) for d in days] == [
        ("day:2026-11-02", 3, None),
        ("day:2026-11-03", 1, pytest.approx(1 / 3)),
    ]
    assert [(w["period"], w["customersAtEnd"], w["newCustomers"]) for w in weeks] == [
        ("week:2026-11-02", 3, 3)
    ]


def test_a_period_count_out_of_range_is_a_bad_request(sqlite_client: TestClient) -> None:
    for periods in (0, 367):
        body = gql(sqlite_client, RETENTION, {"period": "MONTH", "periods": periods})
        assert codes(body) == ["BAD_REQUEST"]
    query = "{ analytics { challenges { instances(last: 0) { period } } } }"
    assert codes(gql(sqlite_client, query)) == ["BAD_REQUEST"]


def test_upgrading_counts_completed_challenge_instances_as_started(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'history.db'}"
    db = make_database(url)
    with db.begin() as connection:
        command.upgrade(alembic_config(connection), "0003")
    unlocks = UnlockRecord.metadata.tables[UnlockRecord.__tablename__]
    row = {"title": "t", "unlocked_at": START, "outbox_id": "0-1", "payload": "{}"}
    with db.begin() as connection:
        connection.execute(
            insert(unlocks),
            [
                {
                    **row,
                    "key": "challenge:weekly:week:2026-11-02",
                    "player_id": "ada",
                    "kind": "CHALLENGE",
                },
                {**row, "key": "challenge:advent", "player_id": "bob", "kind": "CHALLENGE"},
                {**row, "key": "badge:first-sip", "player_id": "ada", "kind": "BADGE"},
            ],
        )

    upgrade_database(url)

    with db.connect() as connection:
        attempts = {tuple(row) for row in connection.execute(select(ATTEMPTS))}
    db.dispose()
    assert attempts == {
        ("weekly", "challenge:weekly:week:2026-11-02", "ada"),
        ("advent", "challenge:advent", "bob"),
    }
