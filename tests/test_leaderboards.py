"""Leaderboards end to end: events move the boards on the hot path, the engine
reads them, and GraphQL serves them, on every store backend."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from app.auth import issue_player_token
from app.settings import Settings
from engine.engine import Engine
from engine.errors import ConfigurationError, LeaderboardError, UnknownLeaderboardError
from engine.leaderboards import MAX_FIRST, Ranked
from engine.program.loader import load_program
from engine.store.redis import RedisStore
from schema.build import sdl
from tests.support.clock import MONDAY, Clock, paris
from tests.support.engines import Sender, engine_on
from tests.support.graphql_client import client_for, codes, gql, settings_for
from tests.support.programs import CAFE, PROGRAMS

PROGRAM = PROGRAMS / "leaderboards.yaml"


@pytest.fixture
async def engine(store_url: str, clock: Clock) -> AsyncIterator[Engine]:
    async with engine_on(PROGRAM, store_url, clock) as engine:
        yield engine


#: Records `times` coffees of a player in one batch, at `at` if given.
Buyer = Callable[..., Awaitable[None]]


@pytest.fixture
def buy(engine: Engine) -> Buyer:
    return Sender(engine, category="coffee").many


def table(entries: list[Ranked]) -> list[tuple[int, str, float]]:
    return [(entry.rank, entry.player_id, entry.score) for entry in entries]


async def test_every_event_moves_its_metrics_boards_in_the_same_step(
    engine: Engine, buy: Buyer
) -> None:
    await buy("ada", 2)
    await buy("bob", 3)
    await buy("cy", 1)
    for period in ("all", "week", "month"):
        found = await engine.leaderboard("coffees", period)
        assert table(found.entries) == [(1, "bob", 3.0), (2, "ada", 2.0), (3, "cy", 1.0)], period
        assert found.size == 3
    await buy("cy", 4)
    found = await engine.leaderboard("coffees")
    assert table(found.entries) == [(1, "cy", 5.0), (2, "bob", 3.0), (3, "ada", 2.0)]


async def test_scores_are_in_the_metrics_unit_for_every_aggregate(
    engine: Engine, buy: Buyer
) -> None:
    await buy("ada", amount=4.5, store="rue-a")
    await buy("ada", amount=6.25, store="rue-b")
    await buy("bob", amount=12.75, store="rue-a")
    await buy("bob", amount=0.5, store="rue-a")
    spend = await engine.leaderboard("spend", "month")
    assert table(spend.entries) == [(1, "bob", 13.25), (2, "ada", 10.75)]
    biggest = await engine.leaderboard("biggest")
    assert table(biggest.entries) == [(1, "bob", 12.75), (2, "ada", 6.25)]
    stores = await engine.leaderboard("stores", "week")
    assert table(stores.entries) == [(1, "ada", 2.0), (2, "bob", 1.0)]


async def test_equal_scores_rank_by_player_id(engine: Engine, buy: Buyer) -> None:
    for player in ["p9", "p10", "Zoe", "ada"]:
        await buy(player, 2)
    await buy("top", 3)
    found = await engine.leaderboard("coffees")
    assert [e.player_id for e in found.entries] == ["top", "Zoe", "ada", "p10", "p9"]
    assert [e.rank for e in found.entries] == [1, 2, 3, 4, 5]


async def test_a_week_board_holds_the_current_week_of_the_programs_timezone(
    engine: Engine, buy: Buyer, clock: Clock
) -> None:
    last_friday = paris(MONDAY - timedelta(days=3), 10)  # a late event, within tolerance
    await buy("ada", 3, at=last_friday)
    await buy("bob", 1)
    week = await engine.leaderboard("coffees", "week")
    assert table(week.entries) == [(1, "bob", 1.0)]
    assert week.span is not None and week.span.key == f"week:{MONDAY}"
    assert week.span.starts_at == paris(MONDAY)  # midnight in Paris
    assert table((await engine.leaderboard("coffees")).entries) == [
        (1, "ada", 3.0),
        (2, "bob", 1.0),
    ]
    clock.set(paris(MONDAY + timedelta(days=6), 23, 59))  # Sunday 23:59 in Paris
    assert (await engine.leaderboard("coffees", "week")).size == 1
    clock.set(paris(MONDAY + timedelta(days=7)))  # Monday 00:00 in Paris
    assert (await engine.leaderboard("coffees", "week")).size == 0
    assert (await engine.leaderboard("coffees")).size == 2


async def test_around_a_player_gives_their_position_and_neighbours(
    engine: Engine, buy: Buyer
) -> None:
    for n in range(1, 8):
        await buy(f"p{n}", n)  # p7 ranks 1st, p1 7th
    found = await engine.leaderboard("coffees", first=2, around="p4")
    assert table(found.entries) == [(1, "p7", 7.0), (2, "p6", 6.0)]
    assert found.position == Ranked(4, "p4", 4.0)
    assert [(e.rank, e.player_id) for e in found.around] == [
        (2, "p6"),
        (3, "p5"),
        (4, "p4"),
        (5, "p3"),
        (6, "p2"),
    ]
    leader = await engine.leaderboard("coffees", first=0, around="p7")
    assert leader.entries == [] and [e.rank for e in leader.around] == [1, 2, 3]
    absent = await engine.leaderboard("coffees", around="nobody")
    assert absent.position is None and absent.around == []


async def test_a_repeated_event_does_not_count_twice_on_a_board(engine: Engine) -> None:
    for _ in range(2):  # a new sender numbers the same event ids again
        await Sender(engine, category="coffee").many("ada", 2)
    assert table((await engine.leaderboard("coffees")).entries) == [(1, "ada", 2.0)]


async def test_bad_questions_get_typed_errors(engine: Engine) -> None:
    with pytest.raises(UnknownLeaderboardError, match="its leaderboards: coffees, spend"):
        await engine.leaderboard("cofees")
    with pytest.raises(LeaderboardError, match="ask for one of: week"):
        await engine.leaderboard("stores", "all")
    with pytest.raises(LeaderboardError, match=f"between 0 and {MAX_FIRST}"):
        await engine.leaderboard("coffees", first=MAX_FIRST + 1)


async def test_redis_cluster_refuses_a_program_with_leaderboards() -> None:
    """Boards are not under the player's hash tag: on a cluster they live in
    another slot than the counters, out of reach of the player's script."""
    store = RedisStore("redis+cluster://127.0.0.1:1")  # never reached: refused before
    with pytest.raises(ConfigurationError, match="coffees, spend, biggest, stores"):
        Engine(load_program(PROGRAM), store)
    engine = Engine(load_program(CAFE), store)
    with pytest.raises(ConfigurationError, match="Redis Cluster"):
        engine.use_program(load_program(PROGRAM))
    assert engine.program.leaderboards == {}


# --- through GraphQL -----------------------------------------------------------

BOARD = """
query($id: ID!, $period: String, $first: Int, $around: ID) {
  leaderboard(id: $id, period: $period, first: $first, around: $around) {
    id name metric period periods startsAt endsAt playerCount
    entries { rank playerId score }
    around { rank playerId score }
    position { rank playerId score }
  }
}"""
RECORD = "mutation($events: [EventInput!]!) { recordEvents(events: $events) { eventId } }"


@pytest.fixture
def served(tmp_path: Path, store_url: str, clock: Clock) -> Iterator[tuple[TestClient, Settings]]:
    settings = settings_for(tmp_path, store_url).model_copy(update={"seed_path": PROGRAM})
    with client_for(settings, clock) as client:
        yield client, settings


def purchases(player: str, count: int, amount: float = 1.0) -> list[dict[str, Any]]:
    return [
        {
            "id": f"{player}-{n}",
            "playerId": player,
            "type": "purchase",
            "properties": {"category": "coffee", "amount": amount},
        }
        for n in range(count)
    ]


def test_a_player_sees_the_top_and_where_they_stand(
    served: tuple[TestClient, Settings],
) -> None:
    client, settings = served
    events = [e for n in range(1, 7) for e in purchases(f"p{n}", n)]
    assert "errors" not in gql(client, RECORD, {"events": events})
    token = issue_player_token(settings, "p2", 3600)
    board = gql(client, BOARD, {"id": "coffees", "first": 3}, token)["data"]["leaderboard"]
    assert board["entries"] == [
        {"rank": 1, "playerId": "p6", "score": 6.0},
        {"rank": 2, "playerId": "p5", "score": 5.0},
        {"rank": 3, "playerId": "p4", "score": 4.0},
    ]
    assert board["position"] == {"rank": 5, "playerId": "p2", "score": 2.0}
    assert [e["playerId"] for e in board["around"]] == ["p4", "p3", "p2", "p1"]
    assert (board["period"], board["periods"]) == ("all", ["all", "week", "month"])
    assert (board["name"], board["metric"], board["playerCount"]) == (
        "Coffee champions",
        "coffees",
        6,
    )
    assert board["startsAt"] is None and board["endsAt"] is None


def test_a_period_board_says_which_week_it_ranks(served: tuple[TestClient, Settings]) -> None:
    client, _ = served
    gql(client, RECORD, {"events": purchases("ada", 2, amount=3.5)})
    week = gql(client, BOARD, {"id": "coffees", "period": "week"})["data"]["leaderboard"]
    assert week["entries"] == [{"rank": 1, "playerId": "ada", "score": 2.0}]
    starts, ends = (datetime.fromisoformat(week[k]) for k in ("startsAt", "endsAt"))
    assert (starts, ends) == (paris(MONDAY), paris(MONDAY + timedelta(days=7)))
    spend = gql(client, BOARD, {"id": "spend", "period": "month"})["data"]["leaderboard"]
    assert spend["entries"] == [{"rank": 1, "playerId": "ada", "score": 7.0}]


def test_an_api_key_asks_around_any_player_and_a_token_only_around_itself(
    served: tuple[TestClient, Settings],
) -> None:
    client, settings = served
    gql(client, RECORD, {"events": purchases("ada", 2) + purchases("bob", 1)})
    by_key = gql(client, BOARD, {"id": "coffees", "around": "bob"})["data"]["leaderboard"]
    assert by_key["position"] == {"rank": 2, "playerId": "bob", "score": 1.0}
    token = issue_player_token(settings, "ada", 3600)
    assert codes(gql(client, BOARD, {"id": "coffees", "around": "bob"}, token)) == ["FORBIDDEN"]
    own = gql(client, BOARD, {"id": "coffees", "around": "ada"}, token)["data"]["leaderboard"]
    assert own["position"] == {"rank": 1, "playerId": "ada", "score": 2.0}
    assert codes(gql(client, BOARD, {"id": "coffees"}, token=None)) == ["UNAUTHENTICATED"]


def test_bad_leaderboard_questions_get_typed_errors(served: tuple[TestClient, Settings]) -> None:
    client, _ = served
    assert codes(gql(client, BOARD, {"id": "nope"})) == ["UNKNOWN_LEADERBOARD"]
    assert codes(gql(client, BOARD, {"id": "stores", "period": "all"})) == ["BAD_REQUEST"]
    assert codes(gql(client, BOARD, {"id": "coffees", "first": 1000})) == ["BAD_REQUEST"]
    assert codes(gql(client, BOARD, {"id": "coffees", "around": ""})) == ["BAD_REQUEST"]


def test_the_leaderboard_query_has_its_fixed_signature() -> None:
    assert (
        'leaderboard(id: ID!, period: String = "all", first: Int = 10, around: ID = null): '
        "Leaderboard" in sdl()
    )


def test_the_program_catalog_lists_its_leaderboards(served: tuple[TestClient, Settings]) -> None:
    client, _ = served
    query = "{ program { leaderboards { id name description metric periods } } }"
    boards = gql(client, query)["data"]["program"]["leaderboards"]
    assert boards[0] == {
        "id": "coffees",
        "name": "Coffee champions",
        "description": "",
        "metric": "coffees",
        "periods": ["all", "week", "month"],
    }
    assert [board["id"] for board in boards] == ["coffees", "spend", "biggest", "stores"]
