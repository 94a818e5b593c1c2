"""Checking a candidate program pasted or uploaded in the console.

The designer sends one or more YAML files. By default they are checked
together with the rest of the program in use (a pasted `challenges.yaml`
replaces the served one, the other seed files stay), since one file alone
rarely stands as a program; `alone` checks only what was sent. The files are
written to a temporary folder and loaded by the same loader as `questline
validate`, so the errors are the same, located file:line.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import ProgramError, SeedIssue
from engine.program.loader import load_program, seed_files
from engine.program.program import Program

#: A file name the designer may give: no folder, a YAML suffix.
FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}\.ya?ml")


@dataclass(frozen=True, slots=True)
class Candidate:
    name: str
    text: str


@dataclass(frozen=True, slots=True)
class CheckedFile:
    """A file sent, line by line, with the problems found on each line."""

    name: str
    lines: list[str]
    issues: dict[int, list[SeedIssue]]


@dataclass
class Checked:
    files: list[CheckedFile] = field(default_factory=list)
    #: Every problem, in file and line order (also those in files not sent).
    issues: list[SeedIssue] = field(default_factory=list)
    program: Program | None = None


def check_file_name(name: str) -> str | None:
    """Why this name cannot be used, or None."""
    if FILE_NAME.fullmatch(name):
        return None
    return (
        f"{name!r} is not a seed file name: use letters, digits, '.', '-' or '_', "
        "ending in .yaml or .yml, without a folder"
    )


def check_candidate(candidates: list[Candidate], seed_path: Path | None) -> Checked:
    """Load the candidate files (with the seed folder's others when `seed_path`
    is given); blocking, run it on a worker thread."""
    with tempfile.TemporaryDirectory(prefix="questline-candidate-") as folder:
        root = Path(folder)
        if seed_path is not None:
            for path in seed_files(seed_path):
                shutil.copyfile(path, root / path.name)
        for candidate in candidates:
            (root / candidate.name).write_text(candidate.text, encoding="utf-8")
        checked = Checked()
        try:
            checked.program = load_program(root)
        except ProgramError as error:
            checked.issues = [_relative(issue, root) for issue in error.issues]
    by_file: dict[str, dict[int, list[SeedIssue]]] = defaultdict(lambda: defaultdict(list))
    for issue in checked.issues:
        by_file[issue.file][issue.line or 0].append(issue)
    checked.files = [
        CheckedFile(c.name, c.text.splitlines(), dict(by_file.get(c.name, {}))) for c in candidates
    ]
    return checked


def _relative(issue: SeedIssue, root: Path) -> SeedIssue:
    """The issue naming the file as the designer knows it, not the temporary folder."""
    name = Path(issue.file).name if Path(issue.file).parent == root else issue.file
    return SeedIssue(name, issue.line, issue.path, issue.message)


def summary(path: Path, program: Program) -> str:
    """One line that says a program is valid and how big it is."""
    sizes = ", ".join(
        plural(len(items), noun)
        for items, noun in (
            (program.metrics, "metric"),
            (program.milestones, "milestone"),
            (program.challenges, "challenge"),
            (program.streaks, "streak"),
            (program.badges, "badge"),
            (program.earn_rules, "earn rule"),
            (program.tiers.levels if program.tiers else (), "tier"),
            (program.rewards, "reward"),
            (program.leaderboards, "leaderboard"),
        )
    )
    return f"{path}: valid, {sizes} (version {program.version})"


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
