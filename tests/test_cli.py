"""The `questline` command as a designer runs it: validate and seed-schema."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import cli
from engine.program.loader import load_program
from tests.support.programs import REPO, SEED, SeedCopy

SUMMARY = re.compile(
    r"seed: valid, (\d+) metrics, (\d+) milestones, (\d+) challenges, (\d+) streaks, "
    r"(\d+) badges, (\d+) earn rules, (\d+) tiers, (\d+) rewards, (\d+) leaderboards "
    r"\(version ([0-9a-f]{12})\)"
)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def seed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SeedCopy:
    monkeypatch.chdir(tmp_path)
    return SeedCopy(tmp_path)


def test_validate_prints_a_one_line_summary_of_a_valid_program(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    result = runner.invoke(cli, ["validate", "seed"])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    [line] = result.stdout.splitlines()
    found = SUMMARY.fullmatch(line)
    assert found, line
    program = load_program(SEED)
    sizes = [len(program.metrics), len(program.milestones), len(program.challenges)]
    sizes += [len(program.streaks), len(program.badges), len(program.earn_rules)]
    sizes += [len(program.tiers.levels) if program.tiers else 0, len(program.rewards)]
    sizes += [len(program.leaderboards)]
    assert [int(n) for n in found.groups()[:9]] == sizes
    assert found.group(10) == program.version


def test_validate_reads_the_seed_folder_by_default(runner: CliRunner, seed: SeedCopy) -> None:
    result = runner.invoke(cli, ["validate"])
    assert result.exit_code == 0, result.output
    assert SUMMARY.fullmatch(result.stdout.strip())


def test_a_broken_copy_of_the_seed_fails_with_every_error_located(
    runner: CliRunner, seed: SeedCopy
) -> None:
    seed.replace(
        "challenges.yaml",
        "    target: 2\n    reward: {points: 10}",
        "    target: many\n    reward: {points: 10}",
    )
    seed.replace("milestones.yaml", "    metric: spend", "    metric: spent")
    seed.replace(
        "challenges.yaml",
        "    target: 3\n    reward: {points: 50}",
        "    target: 3\n    reward: {points: 50}\n    requires: [{challenge: barista-pick}]",
    )
    result = runner.invoke(cli, ["validate", "seed"])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"{seed.at('challenges.yaml', 'target: many')} challenges.daily-double.target: "
        "must be a valid number, unable to parse string as a number",
        f"{seed.at('challenges.yaml', '- challenge: three-this-week')} "
        "challenges.barista-pick.requires[0].challenge: "
        "prerequisite cycle: three-this-week -> barista-pick -> three-this-week",
        f"{seed.at('milestones.yaml', 'metric: spent')} milestones.big-spender.metric: "
        "unknown metric 'spent'; did you mean 'spend'?",
        "seed: invalid, 3 errors",
    ]


def test_a_missing_folder_fails_with_one_error(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(cli, ["validate", str(tmp_path / "nowhere")])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{tmp_path / 'nowhere'}: no such file or folder",
        f"{tmp_path / 'nowhere'}: invalid, 1 error",
    ]


def test_the_committed_seed_schema_is_current(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["seed-schema"])
    assert result.exit_code == 0, result.output
    committed = (SEED / "program.schema.json").read_text(encoding="utf-8")
    assert result.stdout == committed, (
        "run `questline seed-schema > seed/program.schema.json` and commit the result"
    )


def test_the_seed_schema_describes_every_section(runner: CliRunner) -> None:
    schema = json.loads(runner.invoke(cli, ["seed-schema"]).stdout)
    assert set(schema["properties"]) == {
        "program",
        "badges",
        "metrics",
        "milestones",
        "challenges",
        "streaks",
        "points",
        "tiers",
        "rewards",
        "referrals",
        "leaderboards",
    }
    assert schema["additionalProperties"] is False


def test_every_seed_file_points_editors_at_the_schema() -> None:
    for path in sorted(SEED.glob("*.yaml")):
        first = path.read_text(encoding="utf-8").splitlines()[0]
        assert first == "# yaml-language-server: $schema=./program.schema.json", path.name


def test_the_installed_console_script_validates_the_seed() -> None:
    script = Path(sys.executable).parent / "questline"
    result = subprocess.run(
        [str(script), "validate", "seed"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert SUMMARY.fullmatch(result.stdout.strip())


def test_serve_without_a_seed_folder_says_where_it_looked_and_how_to_point_it(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("QUESTLINE_SEED_PATH", raising=False)
    result = runner.invoke(cli, ["serve"])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "seed: no such file or folder",
        f"no seed program at seed ({tmp_path / 'seed'}); the working directory is {tmp_path}. "
        "Point QUESTLINE_SEED_PATH at your seed folder, or run from the folder that holds ./seed",
    ]
