"""The `leaderboards` section of the seed format: boards load into the
program, and every mistake is located as file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.program.loader import load_program
from tests.support.programs import SEED, issues

METRICS = "metrics:\n  coffees: {event: purchase}\n"


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty program folder `prog/`, so issues name `prog/<file>`."""
    monkeypatch.chdir(tmp_path)
    Path("prog").mkdir()
    return Path("prog")


def test_the_example_ranks_coffees_per_week_month_and_ever() -> None:
    boards = load_program(SEED).leaderboards
    coffee = boards["coffee-champions"]
    assert (coffee.name, coffee.metric) == ("Coffee champions", "coffees")
    assert coffee.periods == ("week", "month", "all")
    assert boards["big-spenders"].periods == ("month",)


def test_a_board_is_all_time_and_named_by_its_id_unless_told(folder: Path) -> None:
    (folder / "a.yaml").write_text(METRICS + "leaderboards:\n  top: {metric: coffees}\n")
    board = load_program(folder).leaderboards["top"]
    assert (board.id, board.name, board.periods, board.description) == ("top", "top", ("all",), "")


def test_a_program_without_leaderboards_has_none(folder: Path) -> None:
    (folder / "a.yaml").write_text(METRICS)
    assert load_program(folder).leaderboards == {}


def test_a_board_names_a_metric_that_exists(folder: Path) -> None:
    (folder / "a.yaml").write_text(METRICS)
    (folder / "b.yaml").write_text("leaderboards:\n  top:\n    metric: cofees\n")
    assert issues(folder) == [
        "prog/b.yaml:3 leaderboards.top.metric: unknown metric 'cofees'; did you mean 'coffees'?"
    ]


@pytest.mark.parametrize(
    ("board", "expected"),
    [
        pytest.param(
            "{metric: coffees, periods: [week, week]}",
            "prog/a.yaml:4 leaderboards.top.periods: name each period once",
            id="a period given twice",
        ),
        pytest.param(
            "{metric: coffees, periods: [day]}",
            "prog/a.yaml:4 leaderboards.top.periods[0]: must be 'all', 'week' or 'month'",
            id="a period boards do not keep",
        ),
        pytest.param(
            "{metric: coffees, periods: []}",
            "prog/a.yaml:4 leaderboards.top.periods: needs at least 1 item",
            id="no period",
        ),
        pytest.param(
            "{periods: [all]}",
            "prog/a.yaml:4 leaderboards.top.metric: missing required key",
            id="no metric",
        ),
    ],
)
def test_each_board_is_checked(folder: Path, board: str, expected: str) -> None:
    (folder / "a.yaml").write_text(METRICS + f"leaderboards:\n  top: {board}\n")
    assert issues(folder) == [expected]


def test_board_ids_are_unique_across_files(folder: Path) -> None:
    (folder / "a.yaml").write_text(METRICS + "leaderboards:\n  top: {metric: coffees}\n")
    (folder / "b.yaml").write_text("leaderboards:\n  top: {metric: coffees}\n")
    assert issues(folder) == [
        "prog/b.yaml:2 leaderboards.top: duplicate id, also defined in prog/a.yaml:4"
    ]
