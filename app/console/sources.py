"""The seed files as the designer wrote them, for the console to show.

The console shows each challenge, milestone and streak in its own words (the
YAML of the item, comments inside it included) and the whole program
read-only. The text is read from the seed folder; `current` says whether the
files still are the program being served (they may have been edited since
the last reload).
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from engine.errors import ProgramError
from engine.program.loader import program_version, seed_files

#: Sections whose items the console shows with their definition.
ITEM_SECTIONS = ("challenges", "milestones", "streaks")


@dataclass(frozen=True, slots=True)
class SeedText:
    name: str
    text: str


@dataclass(frozen=True, slots=True)
class Snippet:
    """An item's YAML, where it starts."""

    file: str
    line: int
    text: str


@dataclass(frozen=True, slots=True)
class Sources:
    files: list[SeedText]
    #: Whether these files are the program being served (same version).
    current: bool
    #: By (section, item id).
    items: dict[tuple[str, str], Snippet] = field(default_factory=dict)


def read_sources(seed_path: Path, serving_version: str) -> Sources:
    """The seed folder's files and the text of each item; empty when unreadable."""
    try:
        paths = seed_files(seed_path)
        files = [SeedText(path.name, path.read_text(encoding="utf-8")) for path in paths]
        current = program_version(paths) == serving_version
    except (ProgramError, OSError, UnicodeDecodeError):
        return Sources(files=[], current=False)
    items: dict[tuple[str, str], Snippet] = {}
    for file in files:
        items.update(_snippets(file))
    return Sources(files=files, current=current, items=items)


def _snippets(file: SeedText) -> dict[tuple[str, str], Snippet]:
    try:
        root = yaml.compose(file.text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return {}
    if not isinstance(root, yaml.MappingNode):
        return {}
    lines = file.text.splitlines()
    found = {}
    for section, content in root.value:
        if section.value not in ITEM_SECTIONS or not isinstance(content, yaml.MappingNode):
            continue
        for key, value in content.value:
            start, end = key.start_mark.line, value.end_mark.line
            if value.end_mark.column > 0:
                end += 1  # the value ends inside this line
            text = textwrap.dedent("\n".join(lines[start:end])).rstrip()
            found[(section.value, str(key.value))] = Snippet(file.name, start + 1, text)
    return found
