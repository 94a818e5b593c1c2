"""Durations as people write them: one grammar for settings and seed files.

A positive whole number and a unit, no space: `500ms`, `45s`, `30m`, `12h`, `7d`,
`52w` (milliseconds, seconds, minutes, hours, days, weeks). Months and years
are not durations (their length varies); the seed format has periods for
those. Settings also take a bare number as seconds, the form they always
accepted (`0` included); the CLI's `--since 30d` means that long before now.
"""

from __future__ import annotations

import re
from datetime import timedelta

#: The grammar as a regular expression (also the JSON Schema pattern of the seed format).
PATTERN = r"^[1-9][0-9]*(ms|s|m|h|d|w)$"
UNITS = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}
#: What to tell someone whose duration does not parse.
EXAMPLES = "a positive whole number and a unit (ms, s, m, h, d or w), such as 500ms, 30m, 7d or 52w"
_GRAMMAR = re.compile(PATTERN)


def is_duration(text: str) -> bool:
    """Whether `text` is written in this grammar, for inputs that may also be
    something else (the CLI's `--since` takes a date too)."""
    return _GRAMMAR.fullmatch(text.strip().lower()) is not None


def parse_duration(text: str) -> timedelta:
    """The duration `text` names; ValueError (saying what fits) when it names none."""
    match = _GRAMMAR.fullmatch(text.strip().lower())
    if match is None:
        raise ValueError(f"a duration is {EXAMPLES}, got {text!r}")
    unit = match[1]
    return int(text.strip()[: -len(unit)]) * UNITS[unit]
