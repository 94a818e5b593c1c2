"""One duration grammar for settings, seed files and the CLI's `--since`."""

from __future__ import annotations

from datetime import timedelta

import pytest

from engine.durations import is_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("500ms", timedelta(milliseconds=500)),
        ("45s", timedelta(seconds=45)),
        ("30m", timedelta(minutes=30)),
        ("12H", timedelta(hours=12)),
        (" 7d ", timedelta(days=7)),
        ("52w", timedelta(weeks=52)),
    ],
)
def test_a_duration_is_a_whole_number_and_a_unit(text: str, expected: timedelta) -> None:
    assert is_duration(text)
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["2026-03-01", "0d", "1 week", "-5m", "1.5h", "3mo", "90"])
def test_anything_else_is_not_a_duration(text: str) -> None:
    assert not is_duration(text)
    with pytest.raises(ValueError, match="a duration is a positive whole number and a unit"):
        parse_duration(text)
