"""The example program in seed/ shows a designer every feature of the format,
on the events the shops (and bench/engine.py) actually send."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
import yaml

from engine.conditions import OPERATORS
from engine.program.loader import load_program
from engine.program.program import Program
from tests.support.programs import SEED

#: Event types and properties the benchmark generates (see metrics.yaml's header).
EVENTS = {
    "purchase": {"category", "drink", "amount", "store_id"},
    "review": {"rating"},
    "visit": {"store_id", "store"},
}


@pytest.fixture(scope="module")
def program() -> Program:
    return load_program(SEED)


def raw(section: str) -> dict[str, Any]:
    """One section as written, for what compiling hides (the operators of a where)."""
    for path in sorted(SEED.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if section in data:
            found: dict[str, Any] = data[section]
            return found
    raise AssertionError(f"no file of seed/ has a {section} section")


def condition_keys(condition: Any) -> Iterator[str]:
    """Every key of a condition, at any depth: combinators, properties, operators."""
    if isinstance(condition, dict):
        for key, value in condition.items():
            yield str(key)
            yield from condition_keys(value)
    elif isinstance(condition, list):
        for item in condition:
            yield from condition_keys(item)


def test_program_settings_name_a_timezone_and_week_start(program: Program) -> None:
    assert program.info.name == "Bean Counter Club"
    assert program.info.timezone == "Europe/Paris"
    assert program.info.week_start == "monday"


def test_metrics_use_every_aggregate(program: Program) -> None:
    aggregates = {metric.aggregate for metric in program.metrics.values()}
    assert aggregates == {"count", "sum", "max", "distinct"}


def test_where_conditions_use_operators_and_combinators() -> None:
    used = {
        key for metric in raw("metrics").values() for key in condition_keys(metric.get("where"))
    }
    assert {"in", "gte", "exists", "all", "any", "not"} <= used
    audiences = [challenge.get("audience") for challenge in raw("challenges").values()]
    assert "in" in {key for audience in audiences for key in condition_keys(audience)}


def test_metrics_only_read_events_and_properties_the_shops_send(program: Program) -> None:
    for metric_id, metric in raw("metrics").items():
        assert metric["event"] in EVENTS, metric_id
        properties = EVENTS[metric["event"]]
        for aggregate in ("sum", "max", "distinct"):
            if aggregate in metric:
                assert metric[aggregate] in properties, metric_id
        for key in condition_keys(metric.get("where")):
            if key not in (*OPERATORS, "all", "any", "not"):
                assert key.split(".")[0] in properties, f"{metric_id}: {key}"
    assert set(program.metrics_by_event) == set(EVENTS)


def test_where_conditions_select_the_right_events(program: Program) -> None:
    milk, treats = program.metrics["milk-drinks"].where, program.metrics["treats"].where
    assert milk is not None and treats is not None
    assert milk({"category": "coffee", "drink": "latte"})
    assert not milk({"category": "coffee", "drink": "espresso"})
    assert not milk({"category": "food"})
    assert treats({"category": "food"}) and treats({"category": "coffee", "drink": "mocha"})
    assert not treats({"category": "coffee", "drink": "flat-white"})


def test_milestones_have_several_tiers_with_badges_and_points(program: Program) -> None:
    tiers = [tier for milestone in program.milestones.values() for tier in milestone.tiers]
    assert any(len(milestone.tiers) >= 3 for milestone in program.milestones.values())
    assert any(tier.badge for tier in tiers)
    assert any(tier.reward and tier.reward.badge for tier in tiers)
    assert any(tier.reward and tier.reward.points for tier in tiers)


def test_challenges_recur_every_day_week_and_month(program: Program) -> None:
    periods = {challenge.every for challenge in program.challenges.values()}
    assert {"day", "week", "month"} <= periods


def test_the_advent_challenge_runs_in_a_fixed_window(program: Program) -> None:
    advent = program.challenges["advent"]
    assert advent.every is None and advent.window is not None
    assert (advent.window.start, advent.window.end) == (date(2026, 12, 1), date(2026, 12, 25))
    assert advent.reward is not None and advent.reward.badge in program.badges


def test_one_challenge_needs_several_goals(program: Program) -> None:
    assert any(len(challenge.all_goals()) > 1 for challenge in program.challenges.values())


def test_prerequisites_name_a_challenge_and_a_milestone_tier(program: Program) -> None:
    requirements = [r for challenge in program.challenges.values() for r in challenge.requires]
    assert any(r.challenge in program.challenges for r in requirements)
    assert any(r.milestone in program.milestones and r.tier for r in requirements)


def test_audiences_select_players_by_attributes(program: Program) -> None:
    beta = program.audiences["beta-tasting"]
    assert beta({"beta": True}) and not beta({"beta": False}) and not beta({})
    tour = program.audiences["neighbourhood-tour"]
    assert tour({"country": "BE"}) and not tour({"country": "DE"}) and not tour({})


def test_badges_have_https_icons_and_one_is_hidden(program: Program) -> None:
    assert all(
        badge.icon and badge.icon.startswith("https://") for badge in program.badges.values()
    )
    assert any(badge.hidden for badge in program.badges.values())


def test_every_badge_can_be_earned(program: Program) -> None:
    granted = {
        badge
        for step in [
            *(tier for milestone in program.milestones.values() for tier in milestone.tiers),
            *(step for streak in program.streaks.values() for step in streak.milestones),
        ]
        for badge in (step.badge, step.reward.badge if step.reward else None)
        if badge
    }
    granted |= {
        challenge.reward.badge
        for challenge in program.challenges.values()
        if challenge.reward and challenge.reward.badge
    }
    assert granted == set(program.badges)


def test_streaks_run_daily_with_freezes_and_weekly_with_milestones(program: Program) -> None:
    daily = [streak for streak in program.streaks.values() if streak.per == "day"]
    weekly = [streak for streak in program.streaks.values() if streak.per == "week"]
    assert any(streak.freezes is not None for streak in daily)
    assert any(len(streak.milestones) >= 2 for streak in daily)
    assert weekly and all(streak.milestones for streak in weekly)
