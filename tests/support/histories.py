"""A realistic journal for the designer tools' tests: a coffee shop's last days.

Times are relative to when the test runs (never fixed dates), all in the
past and within the late-event tolerance, so a server accepts every event.
Knowing exactly what was sent lets a test count figures independently of
the engine (plain `zoneinfo` and `isocalendar`, not engine.periods).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx2 as httpx

from tests.support.graphql_client import API_KEY

RECORD_MANY = """mutation($events: [EventInput!]!) {
  recordEvents(events: $events) { eventId unlocks { key } } }"""
UPDATE = """mutation($id: ID!, $tz: String, $attributes: JSON) {
  updatePlayer(id: $id, timezone: $tz, attributes: $attributes) { id } }"""
#: The example program's timezone, where players without one of their own live.
PROGRAM_TIMEZONE = "Europe/Paris"
#: Players living elsewhere, by player number.
ELSEWHERE = {n: "America/New_York" for n in range(0, 40, 4)}
DRINKS = ["espresso", "latte", "cappuccino", "flat-white", "mocha"]


def history(
    now: datetime, players: int = 40, events: int = 900, seed: int = 5
) -> list[dict[str, Any]]:
    """Purchases (mostly coffee), reviews and visits over the last six days,
    heavy and light customers alike, in no particular order."""
    rng = random.Random(seed)
    appetite = [rng.choice([1, 1, 2, 4, 8]) for _ in range(players)]
    made = []
    for n in range(events):
        player = rng.choices(range(players), weights=appetite)[0]
        at = now - timedelta(seconds=rng.randrange(120, 6 * 24 * 3600))
        roll = rng.random()
        if roll < 0.75:
            kind = "purchase"
            properties: dict[str, Any] = {
                "category": rng.choice(["coffee", "coffee", "coffee", "food"]),
                "drink": rng.choice(DRINKS),
                "amount": round(rng.uniform(2.5, 30), 2),
                "store_id": f"store-{rng.randrange(6)}",
            }
        elif roll < 0.9:
            kind, properties = "review", {"rating": rng.randint(1, 5)}
        else:
            kind = "visit"
            properties = {"store_id": f"store-{rng.randrange(6)}", "store": {"city": "Paris"}}
        made.append(
            {
                "id": f"h-{n}",
                "playerId": player_id(player),
                "type": kind,
                "occurredAt": at.isoformat(),
                "properties": properties,
            }
        )
    return made


def player_id(n: int) -> str:
    return f"guest-{n}"


def timezone_of(player: str) -> ZoneInfo:
    number = int(player.rsplit("-", 1)[1])
    return ZoneInfo(ELSEWHERE.get(number, PROGRAM_TIMEZONE))


def post(url: str, query: str, variables: dict[str, Any], token: str = API_KEY) -> dict[str, Any]:
    response = httpx.post(
        f"{url}/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
        trust_env=False,
    )
    body: dict[str, Any] = response.json()
    return body


#: Sends a GraphQL document and its variables; the answer's body.
Poster = Callable[[str, dict[str, Any]], dict[str, Any]]


def send(post: Poster, events: list[dict[str, Any]], players: int) -> None:
    """Describe the players living elsewhere, then record the events in batches
    (through a server with `partial(post, url)`, or an app's TestClient)."""
    for n in range(players):
        if n in ELSEWHERE:
            body = post(UPDATE, {"id": player_id(n), "tz": ELSEWHERE[n]})
            assert "errors" not in body, body
    for start in range(0, len(events), 100):
        body = post(RECORD_MANY, {"events": events[start : start + 100]})
        assert "errors" not in body, body


def coffees_per_week(
    events: Iterable[dict[str, Any]], since: datetime | None = None
) -> Counter[tuple[str, tuple[int, int]]]:
    """Coffees of each player in each local ISO week (Monday first)."""
    found: Counter[tuple[str, tuple[int, int]]] = Counter()
    for event in events:
        at = datetime.fromisoformat(event["occurredAt"])
        if event["type"] != "purchase" or event["properties"]["category"] != "coffee":
            continue
        if since is not None and at < since:
            continue
        year, week, _ = at.astimezone(timezone_of(event["playerId"])).isocalendar()
        found[(event["playerId"], (year, week))] += 1
    return found


def reaching(counts: Counter[tuple[str, tuple[int, int]]], target: int) -> tuple[int, int]:
    """(instances, players) whose weekly count reaches `target`."""
    instances = [key for key, count in counts.items() if count >= target]
    return len(instances), len({player for player, _ in instances})


def utc_now() -> datetime:
    return datetime.now(UTC)
