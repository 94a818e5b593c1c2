"""Period maths in the player's own IANA timezone.

A period is a bucket of local time: a day, a week (starting on the program's
week-start day, Monday unless the program says otherwise) or a month. Its
index counts periods since 1970, so consecutive periods always differ by
exactly 1, which is what streaks rely on. Boundaries are local midnights
converted to UTC: a day is 23 or 25 hours long across a DST switch, and a day
whose midnight does not exist (a DST gap at midnight, as in Santiago or
Havana) starts at the first local instant that does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from engine.errors import ConfigurationError

#: Day 0 of the day index; weeks count from the first week start on or after it.
EPOCH = date(1970, 1, 1)


class Granularity(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


@dataclass(frozen=True, slots=True)
class Period:
    granularity: Granularity
    index: int
    key: str
    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True, slots=True)
class Window:
    """A fixed window of time: start inclusive, end exclusive."""

    starts_at: datetime
    ends_at: datetime

    def contains(self, moment: datetime) -> bool:
        return self.starts_at <= moment < self.ends_at


@lru_cache(maxsize=1024)
def resolve_timezone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigurationError(
            f"unknown timezone {name!r}: use an IANA name such as Europe/Paris"
        ) from None


@lru_cache(maxsize=65536)
def local_day_start(day: date, tz: ZoneInfo) -> datetime:
    """The first instant of a local day, in UTC."""
    midnight = datetime.combine(day, time(), tz)
    start = midnight.astimezone(UTC)
    if start.astimezone(tz).date() != day:
        # Midnight is skipped by a DST gap; zoneinfo maps it past the gap onto
        # the previous day's offset, landing before the day. Step forward to
        # the transition: the first instant that is really on `day`.
        step = timedelta(minutes=15)
        while start.astimezone(tz).date() != day:
            start += step
        while (start - timedelta(minutes=1)).astimezone(tz).date() == day:
            start -= timedelta(minutes=1)
    return start


def _week_origin(week_start: int) -> date:
    return EPOCH + timedelta(days=(week_start - EPOCH.weekday()) % 7)


@lru_cache(maxsize=65536)
def _period(index: int, granularity: Granularity, tz: ZoneInfo, week_start: int) -> Period:
    if granularity is Granularity.DAY:
        first = EPOCH + timedelta(days=index)
        following = first + timedelta(days=1)
        key = f"day:{first.isoformat()}"
    elif granularity is Granularity.WEEK:
        first = _week_origin(week_start) + timedelta(weeks=index)
        following = first + timedelta(weeks=1)
        key = f"week:{first.isoformat()}"
    else:
        year, month = divmod(index, 12)
        first = date(year, month + 1, 1)
        following = date(year + (month + 1) // 12, (month + 1) % 12 + 1, 1)
        key = f"month:{year:04d}-{month + 1:02d}"
    return Period(
        granularity, index, key, local_day_start(first, tz), local_day_start(following, tz)
    )


def period_at(index: int, granularity: Granularity, tz: ZoneInfo, week_start: int = 0) -> Period:
    """The period with this index (the inverse of `period_of(...).index`)."""
    return _period(index, Granularity(granularity), tz, week_start)


def period_of(
    moment: datetime, granularity: Granularity, tz: ZoneInfo, week_start: int = 0
) -> Period:
    """The period containing `moment` (any aware datetime) in timezone `tz`.

    week_start: 0 = Monday … 6 = Sunday.
    """
    day = moment.astimezone(tz).date()
    if granularity is Granularity.DAY:
        index = (day - EPOCH).days
    elif granularity is Granularity.WEEK:
        index = (day - _week_origin(week_start)).days // 7
    else:
        index = day.year * 12 + day.month - 1
    return _period(index, Granularity(granularity), tz, week_start)


@lru_cache(maxsize=4096)
def window_of(start: date | datetime, end: date | datetime, tz: ZoneInfo) -> Window:
    """A designer's window: dates are local midnights, naive date-times local
    times, aware date-times taken as given."""
    return Window(_instant(start, tz), _instant(end, tz))


def _instant(value: date | datetime, tz: ZoneInfo) -> datetime:
    if not isinstance(value, datetime):
        return local_day_start(value, tz)
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    return value.astimezone(UTC)
