"""Period maths in the player's own IANA timezone.

A period is a bucket of local time: a day, a week (starting on the program's
week-start day, Monday unless the program says otherwise) or a month. Its
index counts periods since 1970, so consecutive periods always differ by
exactly 1, which is what streaks rely on. Boundaries are local midnights
converted to UTC: a day is 23 or 25 hours long across a DST switch, and a day
whose midnight does not exist (a DST gap at midnight, as in Santiago or
Havana) starts at the first local instant that does.

Everything here is cached: a program has a handful of timezones and the
same few periods are asked for by every event of the day. `MomentCache`
does the same for what an instant means to a program (its periods and
windows), for the planner and for analytics.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Generic, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from engine.caches import LRU
from engine.errors import ConfigurationError

T = TypeVar("T")

#: Day 0 of the day index; weeks count from the first week start on or after it.
EPOCH = date(1970, 1, 1)
#: Moments are cached per quarter of an hour: UTC offsets in use are multiples
#: of 15 minutes, so local midnights fall between quarters.
QUARTER = 900
#: Cached moments (timezone, quarter of an hour) kept per cache.
MAX_MOMENTS = 16384


class Granularity(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


@dataclass(frozen=True, slots=True)
class Period:
    """One day, week or month of local time, as a UTC interval [starts_at, ends_at).

    index: DAY counts local dates from 1970-01-01 (index 0); WEEK counts weeks
    from the first week start on or after 1970-01-01 (so the week holding that
    Thursday is -1 or 0 depending on week_start); MONTH is year * 12 + month - 1.
    """

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
    """The first instant whose local date is `day` or later, in UTC."""
    midnight = datetime.combine(day, time(), tz)
    start = midnight.astimezone(UTC)
    if start.astimezone(tz).replace(tzinfo=None) == midnight.replace(tzinfo=None):
        return start
    # Midnight falls in a DST gap. Read with the offset after the gap (fold=1)
    # it lands before the transition, read with the offset before (fold=0)
    # after it; the day starts at the transition, found to the second. A gap
    # need not start at midnight (Toronto 1919: 23:30 -> 00:30) and may
    # swallow the whole day (Apia 2011-12-30, which then lasts no time).
    before = midnight.replace(fold=1).astimezone(UTC)
    low, high = 0, int((start - before).total_seconds())
    while high - low > 1:
        middle = (low + high) // 2
        if (before + timedelta(seconds=middle)).astimezone(tz).date() < day:
            low = middle
        else:
            high = middle
    return before + timedelta(seconds=high)


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
    return _period(index, granularity, tz, week_start)


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
    period = _period(index, granularity, tz, week_start)
    if moment >= period.ends_at:
        # The clock went back across midnight (Goose Bay until 2010: 00:01 ->
        # 23:01), so the local date briefly returns to a day that has already
        # ended. The moment belongs to the period whose interval holds it.
        return _period(index + 1, granularity, tz, week_start)
    return period


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


class MomentCache(Generic[T]):
    """What `compute` makes of an instant in a timezone, cached for its whole
    quarter of an hour.

    `compute(when, timezone)` returns its answer and the boundaries of the
    periods and windows it was read from; a quarter that holds one of them
    is not cached (the answer changes inside it). The cost of an instant is
    then a dictionary look-up.
    """

    __slots__ = ("_compute", "_moments")

    def __init__(
        self,
        compute: Callable[[datetime, ZoneInfo], tuple[T, Iterable[datetime]]],
        capacity: int = MAX_MOMENTS,
    ) -> None:
        self._compute = compute
        self._moments: LRU[tuple[ZoneInfo, int], T] = LRU(capacity)

    def __call__(self, when: datetime, timezone: ZoneInfo) -> T:
        quarter = int(when.timestamp() // QUARTER)
        found = self._moments.get((timezone, quarter))
        if found is None:
            found, boundaries = self._compute(when, timezone)
            start, end = quarter * QUARTER, (quarter + 1) * QUARTER
            if not any(start < boundary.timestamp() < end for boundary in boundaries):
                self._moments.put((timezone, quarter), found)
        return found

    def clear(self) -> None:
        self._moments.clear()
