"""Period maths in the player's timezone, including across DST switches."""

from datetime import UTC, date, datetime, timedelta

import pytest

from engine.errors import ConfigurationError
from engine.periods import (
    Granularity,
    local_day_start,
    period_at,
    period_of,
    resolve_timezone,
    window_of,
)

PARIS = resolve_timezone("Europe/Paris")
SANTIAGO = resolve_timezone("America/Santiago")


def test_a_day_is_the_players_local_day() -> None:
    day = period_of(datetime(2026, 11, 24, 23, 30, tzinfo=UTC), Granularity.DAY, PARIS)
    assert day.key == "day:2026-11-25"
    assert day.starts_at == datetime(2026, 11, 24, 23, 0, tzinfo=UTC)
    assert day.ends_at == datetime(2026, 11, 25, 23, 0, tzinfo=UTC)


def test_the_spring_switch_day_lasts_23_hours_and_keeps_its_boundaries() -> None:
    day = period_of(datetime(2026, 3, 29, 12, 0, tzinfo=UTC), Granularity.DAY, PARIS)
    assert day.ends_at - day.starts_at == timedelta(hours=23)
    late = datetime(2026, 3, 29, 21, 30, tzinfo=UTC)  # 23:30 CEST
    early = datetime(2026, 3, 28, 23, 30, tzinfo=UTC)  # 00:30 CET
    assert period_of(late, Granularity.DAY, PARIS).key == "day:2026-03-29"
    assert period_of(early, Granularity.DAY, PARIS).key == "day:2026-03-29"


def test_the_autumn_switch_day_lasts_25_hours() -> None:
    day = period_of(datetime(2026, 10, 25, 12, 0, tzinfo=UTC), Granularity.DAY, PARIS)
    assert day.ends_at - day.starts_at == timedelta(hours=25)
    assert period_of(datetime(2026, 10, 25, 22, 30, tzinfo=UTC), Granularity.DAY, PARIS).key == (
        "day:2026-10-25"
    )


def test_a_day_whose_midnight_does_not_exist_starts_at_the_first_real_instant() -> None:
    # Chile skipped from 00:00 to 01:00 on 2026-09-06.
    start = local_day_start(date(2026, 9, 6), SANTIAGO)
    assert start.astimezone(SANTIAGO).replace(tzinfo=None) == datetime(2026, 9, 6, 1, 0)
    assert (start - timedelta(seconds=1)).astimezone(SANTIAGO).date() == date(2026, 9, 5)
    day = period_of(start, Granularity.DAY, SANTIAGO)
    assert day.key == "day:2026-09-06" and day.ends_at - day.starts_at == timedelta(hours=23)


@pytest.mark.parametrize(("week_start", "key"), [(0, "week:2026-11-23"), (6, "week:2026-11-22")])
def test_weeks_start_on_the_programs_week_start_day(week_start: int, key: str) -> None:
    week = period_of(datetime(2026, 11, 25, 12, tzinfo=UTC), Granularity.WEEK, PARIS, week_start)
    assert week.key == key
    assert week.ends_at - week.starts_at == timedelta(days=7)


def test_an_iso_week_spans_the_new_year() -> None:
    week = period_of(datetime(2027, 1, 1, 12, tzinfo=UTC), Granularity.WEEK, PARIS)
    assert week.key == "week:2026-12-28"


def test_months_have_their_own_length() -> None:
    february = period_of(datetime(2028, 2, 15, tzinfo=UTC), Granularity.MONTH, PARIS)
    assert february.key == "month:2028-02"
    assert february.ends_at - february.starts_at == timedelta(days=29)
    december = period_of(datetime(2026, 12, 31, 22, 59, tzinfo=UTC), Granularity.MONTH, PARIS)
    assert december.key == "month:2026-12"
    assert december.ends_at == datetime(2026, 12, 31, 23, 0, tzinfo=UTC)


@pytest.mark.parametrize("granularity", list(Granularity))
def test_consecutive_periods_have_consecutive_indices(granularity: Granularity) -> None:
    period = period_of(datetime(2026, 3, 1, tzinfo=UTC), granularity, PARIS)
    for _ in range(60):
        following = period_of(period.ends_at, granularity, PARIS)
        assert following.index == period.index + 1
        assert following.starts_at == period.ends_at
        assert period_at(following.index, granularity, PARIS) == following
        period = following


def test_windows_of_dates_are_local_midnights() -> None:
    window = window_of(date(2026, 12, 1), date(2026, 12, 25), PARIS)
    assert window.starts_at == datetime(2026, 11, 30, 23, 0, tzinfo=UTC)
    assert window.contains(datetime(2026, 11, 30, 23, 0, tzinfo=UTC))
    assert not window.contains(datetime(2026, 12, 24, 23, 0, tzinfo=UTC))
    naive = window_of(datetime(2026, 12, 1, 8), datetime(2026, 12, 1, 9), PARIS)
    assert naive.starts_at == datetime(2026, 12, 1, 7, 0, tzinfo=UTC)


def test_an_unknown_timezone_says_what_to_use() -> None:
    with pytest.raises(ConfigurationError, match="IANA name"):
        resolve_timezone("Mars/Base")
