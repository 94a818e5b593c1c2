"""The seed loader: the example program loads, and every mistake a designer
can make is reported at once, each as `file:line path: message`."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.conditions import OPERATORS
from engine.program.loader import load_program, program_json_schema
from tests.support.programs import SEED, SeedCopy, issues


@pytest.fixture
def seed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SeedCopy:
    """A copy of the example in `./seed`, so issues name `seed/<file>` as in the docs."""
    monkeypatch.chdir(tmp_path)
    return SeedCopy(tmp_path)


def test_the_example_program_loads() -> None:
    program = load_program(SEED)
    assert program.info.name
    assert program.info.timezone == "Europe/Paris"
    assert program.week_start == 0
    assert program.metrics and program.milestones and program.challenges and program.streaks
    assert len(program.version) == 12


@pytest.mark.parametrize(
    ("file", "old", "new", "needle", "expected"),
    [
        pytest.param(
            "challenges.yaml",
            "    target: 3\n    reward: {points: 50}",
            "    target: 0\n    reward: {points: 50}",
            "target: 0",
            "challenges.three-this-week.target: must be greater than 0",
            id="a target that is not positive",
        ),
        pytest.param(
            "challenges.yaml",
            "    target: 2\n    reward: {points: 10}",
            "    target: two\n    reward: {points: 10}",
            "target: two",
            "challenges.daily-double.target: must be a valid number, "
            "unable to parse string as a number",
            id="a target that is not a number",
        ),
        pytest.param(
            "challenges.yaml",
            "    every: day\n",
            "    every: fortnight\n",
            "every: fortnight",
            "challenges.daily-double.every: must be 'day', 'week' or 'month'",
            id="a period that does not exist",
        ),
        pytest.param(
            "challenges.yaml",
            "    every: day\n    metric: coffees",
            "    every: day\n    metric: cofees",
            "metric: cofees",
            "challenges.daily-double.metric: unknown metric 'cofees'; did you mean 'coffees'?",
            id="an unknown metric, with the closest one suggested",
        ),
        pytest.param(
            "challenges.yaml",
            "    audience: {beta: true}",
            "    audience: {beta: true}\n    tragte: 2",
            "tragte: 2",
            "challenges.beta-tasting.tragte: unknown key; did you mean 'target'?",
            id="an unknown key, with the closest one suggested",
        ),
        pytest.param(
            "challenges.yaml",
            "{milestone: coffee-lover, tier: 2}",
            "{milestone: coffee-lover, tier: 7}",
            "tier: 7",
            "challenges.barista-pick.requires[1].tier: milestone 'coffee-lover' has 3 tiers",
            id="a prerequisite tier the milestone does not have",
        ),
        pytest.param(
            "milestones.yaml",
            "badge: regular,",
            "badge: regualr,",
            "badge: regualr",
            "milestones.coffee-lover.tiers[1].badge: unknown badge 'regualr'; "
            "did you mean 'regular'?",
            id="an unknown badge",
        ),
        pytest.param(
            "metrics.yaml",
            "{drink: {in: [espresso,",
            "{drink: {inn: [espresso,",
            "inn:",
            "metrics.drinks-tried.where.drink.inn: unknown operator 'inn'; did you mean 'in'?",
            id="an unknown condition operator, located inside the where",
        ),
        pytest.param(
            "metrics.yaml",
            "        - not: {drink: espresso}",
            "        - not: {drink: {gt: [espresso]}}",
            "gt: [espresso]",
            "metrics.milk-drinks.where.all[1].not.drink.gt: "
            "`gt` compares with a number or a string, got a list",
            id="a condition operand of the wrong type, deep inside all and not",
        ),
        pytest.param(
            "streaks.yaml",
            "    per: week",
            "    per: month",
            "per: month",
            "streaks.weekly-visits.per: must be 'day' or 'week'",
            id="a streak period that streaks do not have",
        ),
        pytest.param(
            "program.yaml",
            "timezone: Europe/Paris",
            "timezone: Europe/Pariss",
            "Europe/Pariss",
            "program.timezone: unknown timezone 'Europe/Pariss': use an IANA name such as "
            "Europe/Paris; did you mean 'Europe/Paris'?",
            id="a timezone that does not exist",
        ),
        pytest.param(
            "streaks.yaml",
            "streaks:",
            "streak:",
            "streak:",
            "streak: unknown section; did you mean 'streaks'?",
            id="an unknown section",
        ),
    ],
)
def test_each_mistake_is_reported_with_file_line_and_path(
    seed: SeedCopy, file: str, old: str, new: str, needle: str, expected: str
) -> None:
    seed.replace(file, old, new)
    assert issues() == [f"{seed.at(file, needle)} {expected}"]


def test_a_prerequisite_cycle_is_reported_once_where_it_closes(seed: SeedCopy) -> None:
    seed.replace(
        "challenges.yaml",
        "    target: 3\n    reward: {points: 50}",
        "    target: 3\n    reward: {points: 50}\n    requires: [{challenge: barista-pick}]",
    )
    assert issues() == [
        f"{seed.at('challenges.yaml', '- challenge: three-this-week')} "
        "challenges.barista-pick.requires[0].challenge: "
        "prerequisite cycle: three-this-week -> barista-pick -> three-this-week"
    ]


def test_a_duplicate_id_across_files_names_both_files(seed: SeedCopy) -> None:
    seed.write("extra.yaml", "metrics:\n  coffees: {event: purchase}\n")
    assert issues() == [
        f"{seed.at('metrics.yaml', '  coffees:')} metrics.coffees: "
        "duplicate id, also defined in seed/extra.yaml:2"
    ]


def test_a_yaml_syntax_error_gives_its_line(seed: SeedCopy) -> None:
    seed.write("extra.yaml", "badges:\n  gold: {name: Gold}\n  silver: {name: [Silver}\n")
    assert issues() == [
        "seed/extra.yaml:3: invalid YAML: expected ',' or ']', but got '}' (column 25)"
    ]


def test_a_key_given_twice_is_reported_not_silently_overwritten(seed: SeedCopy) -> None:
    seed.write("extra.yaml", "metrics:\n  lattes: {event: purchase}\n  lattes: {event: visit}\n")
    assert issues() == ["seed/extra.yaml:3 metrics.lattes: duplicate key, already given on line 2"]


def test_an_empty_folder_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    [problem] = issues(tmp_path / "empty")
    assert problem.startswith(str(tmp_path / "empty"))
    assert "no seed files" in problem


def test_a_missing_folder_is_an_error(tmp_path: Path) -> None:
    assert issues(tmp_path / "nowhere") == [f"{tmp_path / 'nowhere'}: no such file or folder"]


def test_exact_lines_in_a_small_program(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("cafe.yaml").write_text(
        """\
metrics:
  coffees: {event: purchase, where: {category: coffee}}
  spend:
    event: purchase
    sum: amount
    max: amount
challenges:
  three-this-week:
    every: week
    metric: coffees
    target: -1
  weekend:
    every: week
    metric: coffees
    target: 2
    reward:
      points: 5
      badge: weekender
"""
    )
    assert issues("cafe.yaml") == [
        "cafe.yaml:3 metrics.spend: choose one aggregate, not sum and max",
        "cafe.yaml:11 challenges.three-this-week.target: must be greater than 0",
        "cafe.yaml:18 challenges.weekend.reward.badge: unknown badge 'weekender'",
    ]


def test_a_broken_item_is_reported_once_not_by_every_item_naming_it(seed: SeedCopy) -> None:
    """`coffees` is used by milestones, challenges and streaks; its own fault is the only issue."""
    seed.replace("metrics.yaml", "    where: {category: coffee}", "    wher: {category: coffee}")
    assert issues() == [
        f"{seed.at('metrics.yaml', 'wher:')} metrics.coffees.wher: unknown key; "
        "did you mean 'where'?"
    ]


def test_every_error_of_every_file_is_reported_at_once(seed: SeedCopy) -> None:
    seed.replace("program.yaml", "timezone: Europe/Paris", "timezone: Mars/Olympus")
    seed.replace("metrics.yaml", "    sum: amount", "    sum: 12")
    seed.replace("milestones.yaml", "badge: regular,", "badge: regualr,")
    seed.replace("challenges.yaml", "    every: day\n", "    every: daily\n")
    seed.replace("streaks.yaml", "    per: week", "    per: month")
    found = issues()
    assert [issue.split(" ", 1)[0] for issue in found] == [
        seed.at("challenges.yaml", "every: daily"),
        seed.at("metrics.yaml", "sum: 12"),
        seed.at("milestones.yaml", "badge: regualr"),
        seed.at("program.yaml", "Mars/Olympus"),
        seed.at("streaks.yaml", "per: month"),
    ]


def test_prerequisites_come_first_in_challenge_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("chain.yaml").write_text(
        """\
metrics:
  coffees: {event: purchase}
challenges:
  gold: {every: week, metric: coffees, target: 9, requires: [{challenge: silver}]}
  daily: {every: day, metric: coffees, target: 1}
  silver: {every: week, metric: coffees, target: 6, requires: [{challenge: bronze}]}
  bronze: {every: week, metric: coffees, target: 3}
"""
    )
    assert list(load_program("chain.yaml").challenges) == ["bronze", "silver", "gold", "daily"]


def test_the_example_lists_each_prerequisite_before_the_challenge_needing_it() -> None:
    program = load_program(SEED)
    order = list(program.challenges)
    for position, challenge in enumerate(program.challenges.values()):
        for requirement in challenge.requires:
            if requirement.challenge is not None:
                assert order.index(requirement.challenge) < position


# --- smaller programs, for the checks the example does not reach -----------------

RULES = """\
badges:
  first-sip: {name: First Sip}
  regular: {name: Regular}
metrics:
  coffees: {event: purchase, where: {category: coffee}}
"""


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty program folder `prog/` holding `base.yaml` (badges and a metric)."""
    monkeypatch.chdir(tmp_path)
    Path("prog").mkdir()
    Path("prog/base.yaml").write_text(RULES, encoding="utf-8")
    return Path("prog")


def test_unknown_badges_are_reported_wherever_a_badge_is_named(folder: Path) -> None:
    (folder / "rules.yaml").write_text(
        """\
milestones:
  lover: {metric: coffees, tiers: [{at: 1, badge: first-sap}]}
challenges:
  three: {metric: coffees, target: 3, every: week, reward: {badge: gold}}
streaks:
  daily:
    metric: coffees
    per: day
    milestones: [{at: 7, reward: {badge: regulars}}]
"""
    )
    assert issues(folder) == [
        "prog/rules.yaml:2 milestones.lover.tiers[0].badge: "
        "unknown badge 'first-sap'; did you mean 'first-sip'?",
        "prog/rules.yaml:4 challenges.three.reward.badge: unknown badge 'gold'",
        "prog/rules.yaml:9 streaks.daily.milestones[0].reward.badge: "
        "unknown badge 'regulars'; did you mean 'regular'?",
    ]


def test_an_unknown_milestone_prerequisite_is_reported(folder: Path) -> None:
    (folder / "rules.yaml").write_text(
        "challenges:\n"
        "  loyal:\n"
        "    {metric: coffees, target: 1, every: week, requires: [{milestone: lover, tier: 1}]}\n"
    )
    assert issues(folder) == [
        "prog/rules.yaml:3 challenges.loyal.requires[0].milestone: unknown milestone 'lover'"
    ]


def test_only_one_file_may_hold_the_program_section(folder: Path) -> None:
    (folder / "a.yaml").write_text("program: {name: One}\n")
    (folder / "b.yaml").write_text("# settings\nprogram: {name: Two}\n")
    assert issues(folder) == [
        "prog/b.yaml:2 program: the program section is already in prog/a.yaml:1"
    ]


def test_condition_errors_in_nested_properties_and_audiences_are_located(folder: Path) -> None:
    (folder / "rules.yaml").write_text(
        """\
metrics:
  lyon:
    event: visit
    where:
      store.city:
        in: Lyon
challenges:
  three:
    metric: coffees
    target: 3
    every: week
    audience: {any: [{country: FR}, {beta: {is: true}}]}
"""
    )
    assert issues(folder) == [
        "prog/rules.yaml:6 metrics.lyon.where.store.city.in: `in` needs a list, got a string",
        "prog/rules.yaml:12 challenges.three.audience.any[1].beta.is: unknown operator 'is'; "
        "use one of eq, ne, gt, gte, lt, lte, in, not_in, exists, contains, "
        "or 'beta.is' for a nested property",
    ]


def test_the_shape_of_each_item_is_checked_key_by_key(folder: Path) -> None:
    (folder / "rules.yaml").write_text(
        """\
challenges:
  window:
    metric: coffees
    target: 3
    window: {start: 2026-12-01T08:00:00, end: 2026-12-02T08:00:00+01:00}
  none: {every: day}
  both: {every: day, metric: coffees, target: 1, reward: {}}
milestones:
  empty: {metric: coffees, tiers: []}
  nameless:
    tiers: [{at: 1}]
  twice: {metric: coffees, tiers: [{at: 1, badge: regular, reward: {badge: first-sip}}]}
streaks:
  daily: {metric: coffees, per: day, freezes: {max: 0, earn_every: 7}}
"""
    )
    assert issues(folder) == [
        "prog/rules.yaml:5 challenges.window.window: give both start and end a UTC offset, "
        "or neither",
        "prog/rules.yaml:6 challenges.none: "
        "a challenge needs a goal: `metric` and `target`, or `goals`",
        "prog/rules.yaml:7 challenges.both.reward: a reward needs `points` or `badge`",
        "prog/rules.yaml:9 milestones.empty.tiers: needs at least 1 item",
        "prog/rules.yaml:10 milestones.nameless.metric: missing required key",
        "prog/rules.yaml:12 milestones.twice.tiers[0]: "
        "give the badge once, as `badge` or as `reward.badge`",
        "prog/rules.yaml:14 streaks.daily.freezes.max: must be greater than or equal to 1",
    ]


def test_ids_and_the_shape_of_a_file_are_checked(folder: Path) -> None:
    (folder / "ids.yaml").write_text("badges:\n  Gold_Star: {name: Gold}\nstreaks:\n")
    (folder / "list.yaml").write_text("- metrics\n")
    assert issues(folder) == [
        "prog/ids.yaml:2 badges.Gold_Star: must be an id: lowercase letters, digits, "
        "'-' and '_', not starting with - or _",
        "prog/list.yaml:1: a seed file must be a mapping of sections (metrics:, ...)",
    ]


def test_while_a_file_is_not_yaml_no_name_is_called_unknown(folder: Path) -> None:
    """The broken file may define the badge; the designer fixes the syntax first."""
    (folder / "badges.yaml").write_text("badges:\n  gold: {name: Gold\n")
    (folder / "rules.yaml").write_text(
        "milestones:\n  lover: {metric: coffees, tiers: [{at: 1, badge: gold}]}\n"
    )
    [problem] = issues(folder)
    assert problem.startswith("prog/badges.yaml:3: invalid YAML: ")


def test_yml_files_are_read_and_hidden_files_are_not(folder: Path) -> None:
    (folder / "more.yml").write_text("metrics:\n  visits: {event: visit}\n")
    (folder / ".draft.yaml").write_text("metrics: [not, a, mapping]\n")
    assert list(load_program(folder).metrics) == ["coffees", "visits"]


def test_the_version_changes_with_the_content_and_only_with_it(folder: Path) -> None:
    first = load_program(folder).version
    assert load_program(folder).version == first
    (folder / "base.yaml").write_text(RULES + "  visits: {event: visit}\n")
    assert load_program(folder).version != first


def test_the_json_schema_completes_the_condition_language() -> None:
    schema = program_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "Questline seed file"
    where = schema["$defs"]["Metric"]["properties"]["where"]["anyOf"]
    audience = schema["$defs"]["Challenge"]["properties"]["audience"]["anyOf"]
    assert {"$ref": "#/$defs/Condition"} in where and {"$ref": "#/$defs/Condition"} in audience
    assert set(schema["$defs"]["Condition"]["properties"]) == {"all", "any", "not"}
    assert set(schema["$defs"]["Operators"]["properties"]) == set(OPERATORS)


def test_a_key_given_twice_is_checked_where_its_last_value_is(folder: Path) -> None:
    """YAML keeps the last value, so that is the one validated and located."""
    (folder / "more.yaml").write_text(
        """\
metrics:
  visits: {event: visit, where: {store: {in: [a]}}}
  visits:
    event: visit
    where: {store: {inn: [a]}}
"""
    )
    assert issues(folder) == [
        "prog/more.yaml:3 metrics.visits: duplicate key, already given on line 2",
        "prog/more.yaml:5 metrics.visits.where.store.inn: unknown operator 'inn'; "
        "did you mean 'in'?",
    ]
