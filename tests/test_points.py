"""Earn rules, tiers and redemption rules as the engine decides them."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from engine.errors import (
    InsufficientPointsError,
    LimitReachedError,
    OutOfStockError,
    TierRequiredError,
    UnknownRewardError,
)
from engine.events import Event
from engine.points import Earning, earnings
from engine.program.loader import load_program
from engine.program.program import Program, TierLadder
from engine.rewards import Standing, check_redemption
from engine.tiers import level_for, next_level, review_start, status
from tests.support.programs import LOYALTY

PARIS = ZoneInfo("Europe/Paris")
NOON = datetime(2026, 11, 25, 11, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def program() -> Program:
    return load_program(LOYALTY)


@pytest.fixture(scope="module")
def ladder(program: Program) -> TierLadder:
    assert program.tiers is not None
    return program.tiers


def earned(
    program: Program,
    type: str = "purchase",
    multiplier: str = "1",
    at: datetime = NOON,
    value: float = 1.0,
    **properties: Any,
) -> list[Earning]:
    event = Event("e1", "ada", type, value=value, occurred_at=at, properties=properties)
    return earnings(program, event, PARIS, Decimal(multiplier))


def test_a_rate_earns_per_unit_of_the_amount_rounded_down_exactly(program: Program) -> None:
    assert earned(program, amount=4.35) == [Earning(43)]  # a float product would give 42
    assert earned(program, amount=0.09) == []  # 0.9 rounds down to nothing
    assert earned(program, amount=1.15) == [Earning(11)]


def test_the_tier_multiplier_applies_before_rounding_down(program: Program) -> None:
    assert earned(program, multiplier="1.5", amount=4.5) == [Earning(67)]  # 67.5
    assert earned(program, multiplier="2", amount=0.05) == [Earning(1)]


@pytest.mark.parametrize("amount", [None, "4.50", True, -3, float("nan")])
def test_an_event_without_a_positive_number_earns_nothing(program: Program, amount: Any) -> None:
    properties = {} if amount is None else {"amount": amount}
    assert earned(program, **properties) == []


def test_events_of_other_types_earn_nothing(program: Program) -> None:
    assert earned(program, type="visit", amount=10) == []


def test_a_capped_rule_names_its_period_in_the_players_timezone(program: Program) -> None:
    late_evening = datetime(2026, 11, 25, 23, 30, tzinfo=UTC)  # already Nov 26 in Paris
    assert earned(program, type="review", at=late_evening) == [
        Earning(5, "review:day:2026-11-26", 12)
    ]
    assert earned(program, type="review", multiplier="1.5") == [
        Earning(7, "review:day:2026-11-25", 12)
    ]


def test_the_level_is_the_highest_threshold_reached(ladder: TierLadder) -> None:
    assert [level_for(ladder, points).id for points in (0, 199, 200, 999, 1000, 10**9)] == [
        "green",
        "green",
        "gold",
        "gold",
        "platinum",
        "platinum",
    ]
    gold = ladder.get("gold")
    assert next_level(ladder, gold) == ladder.get("platinum")
    assert next_level(ladder, ladder.get("platinum")) is None


def test_tier_progress_counts_towards_the_next_level(ladder: TierLadder) -> None:
    green = status(ladder, None, 50, None)
    assert (green.level.id, green.next and green.next.id) == ("green", "gold")
    assert (green.progress.current, green.progress.target, green.progress.percent) == (50, 200, 25)
    top = status(ladder, "platinum", 1200, NOON)
    assert top.next is None and top.progress.completed and top.since == NOON


def test_a_removed_level_reads_as_the_first(ladder: TierLadder) -> None:
    assert status(ladder, "bronze", 0, None).level.id == "green"


def test_reviews_start_on_the_first_of_the_month_or_quarter_in_local_time(
    ladder: TierLadder,
) -> None:
    new_years_eve_utc = datetime(2026, 12, 31, 23, 30, tzinfo=UTC)  # Jan 1 in Paris
    assert review_start(new_years_eve_utc, ladder, PARIS) == date(2027, 1, 1)
    assert review_start(NOON, ladder, PARIS) == date(2026, 11, 1)
    quarterly = TierLadder(ladder.levels, ladder.window, "quarterly")
    assert review_start(NOON, quarterly, PARIS) == date(2026, 10, 1)
    assert review_start(datetime(2026, 3, 31, 12, tzinfo=UTC), quarterly, PARIS) == date(2026, 1, 1)


def standing(**changes: Any) -> Standing:
    values: dict[str, Any] = {
        "balance": 1000,
        "tier_id": None,
        "redeemed_by_player": 0,
        "redeemed_in_all": 0,
    }
    return Standing(**{**values, **changes})


def test_a_reward_within_every_rule_is_redeemable(program: Program) -> None:
    assert check_redemption(program, "espresso", standing()).cost == 50


@pytest.mark.parametrize(
    ("reward", "changes", "error", "message"),
    [
        (
            "espresso",
            {"balance": 49},
            InsufficientPointsError,
            "costs 50 points; the balance is 49",
        ),
        ("mug", {"redeemed_in_all": 2}, OutOfStockError, "out of stock"),
        ("latte", {"redeemed_by_player": 2}, LimitReachedError, "2 times per player"),
        ("tasting", {}, TierRequiredError, "needs the Gold tier or above; the player is Green"),
        ("croissant", {}, UnknownRewardError, "no reward 'croissant'"),
    ],
)
def test_each_rule_refuses_with_its_own_error(
    program: Program, reward: str, changes: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        check_redemption(program, reward, standing(**changes))


def test_a_higher_tier_than_needed_may_redeem(program: Program) -> None:
    assert check_redemption(program, "tasting", standing(tier_id="platinum")).name == "Tasting"
