"""The economy sections of the seed format: points, tiers and the rewards
catalog load into the program, and every mistake is located as file:line."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from engine.program.loader import load_program
from tests.support.programs import SEED, issues

TIERS = """\
tiers:
  levels:
    green: {name: Green, qualifying_points: 0}
    gold: {name: Gold, qualifying_points: 500, multiplier: 1.25}
"""


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty program folder `prog/`, so issues name `prog/<file>`."""
    monkeypatch.chdir(tmp_path)
    Path("prog").mkdir()
    return Path("prog")


def test_the_example_defines_earn_rules_tiers_and_a_catalog() -> None:
    program = load_program(SEED)
    assert program.points_expire_after == timedelta(days=365)
    spend = program.earn_rules["spend"]
    assert (spend.event, spend.per, spend.points) == ("purchase", "amount", None)
    assert spend.rate == Decimal(10)
    assert [rule.id for rule in program.earn_rules_by_event["review"]] == ["review"]
    assert program.earn_rules["review"].cap is not None
    lyon = program.earn_rules["lyon-visit"].where
    assert lyon is not None and lyon({"store": {"city": "Lyon"}}) and not lyon({})
    assert program.tiers is not None
    assert [(t.id, t.rank, t.qualifying_points) for t in program.tiers.levels] == [
        ("green", 0, 0),
        ("gold", 1, 1500),
        ("reserve", 2, 5000),
    ]
    assert program.tiers.levels[1].multiplier == Decimal("1.25")
    assert program.tiers.window == timedelta(days=365) and program.tiers.review == "quarterly"
    rewards = program.rewards
    assert rewards["reserve-tasting"].min_tier == "reserve"
    assert any(r.stock is not None for r in rewards.values())
    assert any(r.per_player_limit is not None for r in rewards.values())
    assert any(r.stock is None and r.min_tier is None for r in rewards.values())
    referrals = program.referrals
    assert referrals is not None and referrals.event == "purchase"
    assert referrals.where is not None and referrals.where({"amount": 5})
    assert not referrals.where({"amount": 4.99})
    assert (referrals.referrer_points, referrals.referee_points, referrals.monthly_cap) == (
        500,
        250,
        5,
    )


def test_a_program_without_economy_sections_has_none(folder: Path) -> None:
    (folder / "a.yaml").write_text("badges: {a: {name: A}}\n")
    program = load_program(folder)
    assert program.earn_rules == {} and program.rewards == {}
    assert program.tiers is None and program.points_expire_after is None
    assert program.referrals is None


def test_weeks_are_a_duration_and_rates_are_exact(folder: Path) -> None:
    (folder / "a.yaml").write_text(
        "points:\n  expire_after: 2w\n  earn:\n    tip: {event: tip, per: value, rate: 0.1}\n"
    )
    program = load_program(folder)
    assert program.points_expire_after == timedelta(weeks=2)
    assert program.earn_rules["tip"].rate == Decimal("0.1")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "points:\n  earn:\n    a: {event: buy, per: amount, rate: 2, points: 5}\n",
            "prog/a.yaml:3 points.earn.a: give either `per` and `rate`, or `points`",
            id="a rule with a rate and fixed points",
        ),
        pytest.param(
            "points:\n  earn:\n    a: {event: buy, rate: 2}\n",
            "prog/a.yaml:3 points.earn.a: `per` and `rate` go together",
            id="a rate without its property",
        ),
        pytest.param(
            "points:\n  earn:\n    a: {event: buy}\n",
            "prog/a.yaml:3 points.earn.a: give either `per` and `rate`, or `points`",
            id="a rule that grants nothing",
        ),
        pytest.param(
            "points:\n  earn:\n    a:\n      event: buy\n      points: 5\n"
            "      cap: {per: year, points: 9}\n",
            "prog/a.yaml:6 points.earn.a.cap.per: must be 'day', 'week' or 'month'",
            id="a cap on an unknown period",
        ),
        pytest.param(
            "points:\n  expire_after: 1y\n",
            "prog/a.yaml:2 points.expire_after: "
            "must be a positive whole number and a unit (ms, s, m, h, d or w), "
            "such as 500ms, 30m, 7d or 52w",
            id="a duration in years",
        ),
        pytest.param(
            "tiers:\n  levels:\n    green: {name: Green, qualifying_points: 10}\n",
            "prog/a.yaml:2 tiers.levels: "
            "the first level is where every player starts: give it 0 points",
            id="a first tier above zero",
        ),
        pytest.param(
            "tiers:\n  levels:\n    a: {name: A, qualifying_points: 0}\n"
            "    c: {name: C, qualifying_points: 9}\n    b: {name: B, qualifying_points: 5}\n",
            "prog/a.yaml:2 tiers.levels: levels must have strictly increasing `qualifying_points`",
            id="tiers out of order",
        ),
        pytest.param(
            "tiers:\n  levels: {}\n",
            "prog/a.yaml:2 tiers.levels: needs at least 1 item",
            id="no tier levels",
        ),
        pytest.param(
            "referrals:\n  qualify: {event: purchase}\n",
            "prog/a.yaml:1 referrals: give `referrer_points`, `referee_points` or both",
            id="a referral that rewards nobody",
        ),
        pytest.param(
            "referrals:\n  qualify: {event: purchase, where: {amount: {gte: [5]}}}\n"
            "  referee_points: 5\n",
            "prog/a.yaml:2 referrals.qualify.where.amount.gte: "
            "`gte` compares with a number or a string, got a list",
            id="a referral condition that does not compile",
        ),
        pytest.param(
            "rewards:\n  mug: {name: Mug, cost: 0}\n",
            "prog/a.yaml:2 rewards.mug.cost: must be greater than 0",
            id="a free reward",
        ),
        pytest.param(
            "rewards:\n  mug: {name: Mug, cost: 10, stock: -1}\n",
            "prog/a.yaml:2 rewards.mug.stock: must be greater than or equal to 0",
            id="a negative stock",
        ),
    ],
)
def test_each_item_is_checked(folder: Path, text: str, expected: str) -> None:
    (folder / "a.yaml").write_text(text)
    assert issues(folder) == [expected]


def test_a_reward_names_a_tier_that_exists(folder: Path) -> None:
    (folder / "tiers.yaml").write_text(TIERS)
    (folder / "rewards.yaml").write_text("rewards:\n  mug: {name: Mug, cost: 10, min_tier: gol}\n")
    assert issues(folder) == [
        "prog/rewards.yaml:2 rewards.mug.min_tier: unknown tier 'gol'; did you mean 'gold'?"
    ]


def test_a_reward_cannot_need_a_tier_in_a_program_without_tiers(folder: Path) -> None:
    (folder / "rewards.yaml").write_text(
        "rewards:\n  mug:\n    name: Mug\n    cost: 10\n    min_tier: gold\n"
    )
    assert issues(folder) == [
        "prog/rewards.yaml:5 rewards.mug.min_tier: unknown tier 'gold': "
        "the program has no `tiers` section"
    ]


def test_a_broken_tiers_section_is_reported_once_not_by_every_reward(folder: Path) -> None:
    (folder / "tiers.yaml").write_text("tiers:\n  window_days: 0\n  levels: {gold: {name: G}}\n")
    (folder / "rewards.yaml").write_text("rewards:\n  mug: {name: Mug, cost: 10, min_tier: gold}\n")
    assert issues(folder) == [
        "prog/tiers.yaml:2 tiers.window_days: must be greater than or equal to 1",
        "prog/tiers.yaml:3 tiers.levels.gold.qualifying_points: missing required key",
    ]


def test_points_and_tiers_are_each_held_by_one_file(folder: Path) -> None:
    (folder / "a.yaml").write_text("points: {expire_after: 30d}\n" + TIERS)
    (folder / "b.yaml").write_text("# more\npoints: {expire_after: 60d}\n" + TIERS)
    assert issues(folder) == [
        "prog/b.yaml:2 points: the points section is already in prog/a.yaml:1",
        "prog/b.yaml:3 tiers: the tiers section is already in prog/a.yaml:2",
    ]


def test_reward_ids_are_unique_across_files(folder: Path) -> None:
    (folder / "a.yaml").write_text("rewards:\n  mug: {name: Mug, cost: 10}\n")
    (folder / "b.yaml").write_text("rewards:\n  mug: {name: Big mug, cost: 20}\n")
    assert issues(folder) == [
        "prog/b.yaml:2 rewards.mug: duplicate id, also defined in prog/a.yaml:2"
    ]


def test_an_earn_condition_error_is_located_inside_the_condition(folder: Path) -> None:
    (folder / "a.yaml").write_text(
        "points:\n"
        "  earn:\n"
        "    big:\n"
        "      event: purchase\n"
        "      where:\n"
        "        amount: {gtee: 10}\n"
        "      points: 5\n"
    )
    assert issues(folder) == [
        "prog/a.yaml:6 points.earn.big.where.amount.gtee: unknown operator 'gtee'; "
        "did you mean 'gte'?"
    ]
