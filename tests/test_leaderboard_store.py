"""The leaderboard part of the store contract: the `rank` op and `Store.ranking`
give the same answers on every store."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from engine.store import keys, store_from_url
from engine.store.base import Plan, Ranking, Store
from engine.store.ops import Max, Rank

BOARD = keys.leaderboard("coffees", None)
WEEK = keys.leaderboard("coffees", "week:1")


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    opened = store_from_url(store_url)
    yield opened
    await opened.close()


class Scorer:
    """Puts players on boards through plans, as the planner does: a metric op
    leaves the value in a register and `rank` writes that register."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.events = 0

    async def __call__(
        self, player: str, value: int, board: str = BOARD, expire_at: int = 0
    ) -> str:
        self.events += 1
        event = f"e{self.events}"
        plan = Plan(
            player,
            [
                keys.event(player, event),
                keys.profile(player),
                keys.unlocks(player),
                keys.outbox(player),
            ],
        )
        # A fresh key per event, so `max` leaves exactly `value` in the register.
        register = plan.op(Max(plan.key_index(keys.metric(player, "score", event)), value, 0))
        plan.op(Rank(plan.key_index(board), register, expire_at))
        applied = await self.store.apply(plan)
        return applied.status


@pytest.fixture
def score(store: Store) -> Scorer:
    return Scorer(store)


def players(members: list[tuple[str, int]]) -> list[str]:
    return [member for member, _ in members]


async def test_a_board_ranks_the_highest_score_first(store: Store, score: Scorer) -> None:
    for player, value in [("ada", 3), ("bob", 7), ("cy", 5)]:
        await score(player, value)
    ranking = await store.ranking(BOARD, 10, None, 2)
    assert ranking == Ranking(
        size=3, top=[("bob", 7), ("cy", 5), ("ada", 3)], around_rank=0, around=[]
    )


async def test_a_new_score_replaces_the_players_old_one(store: Store, score: Scorer) -> None:
    await score("ada", 3)
    await score("bob", 5)
    await score("ada", 9)
    await score("bob", 1)
    ranking = await store.ranking(BOARD, 10, None, 2)
    assert (ranking.size, ranking.top) == (2, [("ada", 9), ("bob", 1)])


async def test_equal_scores_are_ordered_by_player_id_in_byte_order(
    store: Store, score: Scorer
) -> None:
    for player in ["p9", "bob", "ada", "Zoe", "p10", "élise"]:
        await score(player, 4)
    await score("last", 2)
    ranking = await store.ranking(BOARD, 10, None, 2)
    assert players(ranking.top) == ["Zoe", "ada", "bob", "p10", "p9", "élise", "last"]


async def test_zero_and_negative_scores_rank_below_positive_ones(
    store: Store, score: Scorer
) -> None:
    for player, value in [("a", -3), ("b", 0), ("c", 2), ("d", -1), ("e", 0)]:
        await score(player, value)
    ranking = await store.ranking(BOARD, 10, None, 2)
    assert ranking.top == [("c", 2), ("b", 0), ("e", 0), ("d", -1), ("a", -3)]


async def test_scores_beyond_32_bits_keep_every_unit(store: Store, score: Scorer) -> None:
    big = 123_456_789_012_345  # 123,456,789.012345 of a sum, as the planner scales it
    await score("ada", big)
    await score("bob", big - 1)
    ranking = await store.ranking(BOARD, 10, None, 2)
    assert ranking.top == [("ada", big), ("bob", big - 1)]


async def test_first_bounds_the_top_but_not_the_size(store: Store, score: Scorer) -> None:
    for n in range(5):
        await score(f"p{n}", n)
    assert (await store.ranking(BOARD, 2, None, 2)).top == [("p4", 4), ("p3", 3)]
    nothing = await store.ranking(BOARD, 0, None, 2)
    assert (nothing.size, nothing.top) == (5, [])


async def test_around_a_player_gives_their_neighbours_on_both_sides(
    store: Store, score: Scorer
) -> None:
    for n in range(10):
        await score(f"p{n}", n)  # p9 ranks 1st, p0 10th
    middle = await store.ranking(BOARD, 0, "p5", 2)
    assert middle.around_rank == 3
    assert players(middle.around) == ["p7", "p6", "p5", "p4", "p3"]


@pytest.mark.parametrize(
    ("player", "first_rank", "expected"),
    [
        pytest.param("p9", 1, ["p9", "p8", "p7"], id="the leader has no one above"),
        pytest.param("p8", 1, ["p9", "p8", "p7", "p6"], id="second has one above"),
        pytest.param("p0", 8, ["p2", "p1", "p0"], id="the last has no one below"),
        pytest.param("p1", 7, ["p3", "p2", "p1", "p0"], id="next to last has one below"),
    ],
)
async def test_around_a_player_at_an_edge_of_the_board_stops_there(
    store: Store, score: Scorer, player: str, first_rank: int, expected: list[str]
) -> None:
    for n in range(10):
        await score(f"p{n}", n)
    ranking = await store.ranking(BOARD, 3, player, 2)
    assert (ranking.around_rank, players(ranking.around)) == (first_rank, expected)
    assert players(ranking.top) == ["p9", "p8", "p7"]


async def test_around_a_player_who_is_not_on_the_board_is_empty(
    store: Store, score: Scorer
) -> None:
    await score("ada", 1)
    ranking = await store.ranking(BOARD, 10, "bob", 2)
    assert (ranking.around_rank, ranking.around, ranking.size) == (0, [], 1)


async def test_a_board_nobody_is_on_reads_empty(store: Store) -> None:
    assert await store.ranking(BOARD, 10, "ada", 2) == Ranking(0, [], 0, [])


async def test_a_period_board_is_kept_until_its_expiry(
    store: Store, score: Scorer, store_now: int
) -> None:
    later = store_now + 3600
    await score("ada", 2, WEEK, later)
    await score("bob", 3, WEEK, later)
    ranking = await store.ranking(WEEK, 10, None, 2)
    assert ranking.top == [("bob", 3), ("ada", 2)]
    assert (await store.ranking(BOARD, 10, None, 2)).size == 0


async def test_a_period_board_past_its_expiry_reads_empty_and_starts_over(
    store: Store, score: Scorer, store_now: int
) -> None:
    past = store_now - 60
    await score("ada", 2, WEEK, past)
    await score("bob", 3, WEEK, past)
    assert await store.ranking(WEEK, 10, "ada", 2) == Ranking(0, [], 0, [])
    await score("cy", 1, WEEK, store_now + 3600)
    assert (await store.ranking(WEEK, 10, None, 2)).top == [("cy", 1)]


async def test_a_repeated_event_does_not_move_the_board(store: Store, score: Scorer) -> None:
    await score("ada", 5)
    plan = Plan(
        "ada",
        [keys.event("ada", "e1"), keys.profile("ada"), keys.unlocks("ada"), keys.outbox("ada")],
    )
    register = plan.op(Max(plan.key_index(keys.metric("ada", "other")), 99, 0))
    plan.op(Rank(plan.key_index(BOARD), register, 0))
    assert (await store.apply(plan)).status == "duplicate"
    assert (await store.ranking(BOARD, 10, None, 2)).top == [("ada", 5)]
