"""CI runs what the README tells a newcomer to run."""

from __future__ import annotations

from tests.support.programs import REPO


def test_ci_runs_the_readme_test_command() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme.split("Set up and run the whole test suite", 1)[1]
    command = section.split("```sh\n", 1)[1].split("\n```", 1)[0]

    assert command in (REPO / ".ci" / "run").read_text().splitlines()
