"""The programs the tests run: the example in `seed/`, the test programs in
`tests/programs/`, and a copy of the example a test may break."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from engine.errors import ProgramError
from engine.program.loader import load_program

REPO = Path(__file__).resolve().parents[2]
#: The example program, as the README runs it.
SEED = REPO / "seed"
PROGRAMS = REPO / "tests" / "programs"
#: The engine tests' coffee shop: challenges, milestones, streaks and badges, no economy.
CAFE = PROGRAMS / "cafe.yaml"
#: A program with points, tiers, rewards and referrals.
LOYALTY = PROGRAMS / "loyalty.yaml"


class SeedCopy:
    """A copy of the example program in `seed/` under a temporary folder,
    broken the way a designer would break it."""

    def __init__(self, root: Path) -> None:
        self.folder = root / "seed"
        shutil.copytree(SEED, self.folder)

    def replace(self, file: str, old: str, new: str) -> None:
        """Replace a snippet that occurs exactly once in `file`."""
        path = self.folder / file
        text = path.read_text(encoding="utf-8")
        assert text.count(old) == 1, f"{old!r} is not unique in {file}"
        path.write_text(text.replace(old, new), encoding="utf-8")

    def write(self, file: str, text: str) -> None:
        (self.folder / file).write_text(text, encoding="utf-8")

    def line_of(self, file: str, needle: str) -> int:
        """1-based line of the only line of `file` that holds `needle`."""
        lines = (self.folder / file).read_text(encoding="utf-8").splitlines()
        found = [n for n, line in enumerate(lines, start=1) if needle in line]
        assert len(found) == 1, f"{needle!r} is on lines {found} of {file}"
        return found[0]

    def at(self, file: str, needle: str) -> str:
        """`seed/<file>:<line>` for the line holding `needle`, as issues spell it."""
        return f"seed/{file}:{self.line_of(file, needle)}"


def issues(path: str | Path = "seed") -> list[str]:
    """Every issue the loader finds in the program at `path` (which must not load)."""
    with pytest.raises(ProgramError) as caught:
        load_program(path)
    return [str(issue) for issue in caught.value.issues]
