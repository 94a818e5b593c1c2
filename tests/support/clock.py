"""An injected clock, and the moment the tests' time starts from.

Tests move the clock instead of sleeping. Where it starts is computed from
the moment the run starts, never written as a calendar date: the real date
(and the suite's runs under libfaketime, see the README) would one day cross a
written date, and a test that passed before it would fail after.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

#: The test programs' timezone.
PARIS = ZoneInfo("Europe/Paris")


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start if start.tzinfo else start.replace(tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def set(self, moment: datetime) -> None:
        self.now = moment if moment.tzinfo else moment.replace(tzinfo=UTC)

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def paris(day: date, hour: int = 0, minute: int = 0) -> datetime:
    """`hour:minute` on `day` by the clocks of Paris, as a UTC moment: the
    hours stay right on either side of a daylight saving switch."""
    return datetime.combine(day, time(hour, minute), PARIS).astimezone(UTC)


def _wednesday_after(moment: datetime, days: int) -> date:
    """The first Wednesday, in Paris, at least `days` days after `moment`."""
    day = moment.astimezone(PARIS).date() + timedelta(days=days)
    return day + timedelta(days=(2 - day.weekday()) % 7)


#: The date of the tests' "now", and the Monday its week (and its challenges'
#: and leaderboards' week keys) starts on: the first Wednesday at least a week
#: after the run started, so that the tests' week lies wholly after the start.
TODAY = _wednesday_after(datetime.now(UTC), days=7)
MONDAY = TODAY - timedelta(days=2)
#: The tests' "now": 11:00 in Paris on that Wednesday.
WEDNESDAY = paris(TODAY, 11)
