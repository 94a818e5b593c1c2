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
UTC_ZONE = resolve_timezone("UTC")


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


def test_the_autumn_switch_day_lasts_25_hours_and_keeps_its_boundaries() -> None:
    day = period_of(datetime(2026, 10, 25, 12, 0, tzinfo=UTC), Granularity.DAY, PARIS)
    assert day.ends_at - day.starts_at == timedelta(hours=25)
    late = datetime(2026, 10, 25, 22, 30, tzinfo=UTC)  # 23:30 CET
    early = datetime(2026, 10, 24, 22, 30, tzinfo=UTC)  # 00:30 CEST
    assert period_of(late, Granularity.DAY, PARIS).key == "day:2026-10-25"
    assert period_of(early, Granularity.DAY, PARIS).key == "day:2026-10-25"


@pytest.mark.parametrize(
    ("zone", "day", "first_local_time"),
    [
        ("America/Santiago", date(2026, 9, 6), datetime(2026, 9, 6, 1, 0)),  # 00:00 -> 01:00
        ("America/Sao_Paulo", date(2018, 11, 4), datetime(2018, 11, 4, 1, 0)),  # 00:00 -> 01:00
        ("America/Toronto", date(1919, 3, 31), datetime(1919, 3, 31, 0, 30)),  # 23:30 -> 00:30
    ],
)
def test_a_day_whose_midnight_does_not_exist_starts_at_the_first_real_instant(
    zone: str, day: date, first_local_time: datetime
) -> None:
    tz = resolve_timezone(zone)
    start = local_day_start(day, tz)
    assert start.astimezone(tz).replace(tzinfo=None) == first_local_time
    assert (start - timedelta(seconds=1)).astimezone(tz).date() == day - timedelta(days=1)
    period = period_of(start, Granularity.DAY, tz)
    assert period.key == f"day:{day.isoformat()}" and period.starts_at == start
    assert period.ends_at - period.starts_at == timedelta(hours=24) - (
        first_local_time - datetime.combine(day, datetime.min.time())
    )


def test_a_day_the_timezone_skipped_lasts_no_time_and_its_neighbours_meet() -> None:
    # Samoa jumped from 2011-12-29 24:00 (UTC-10) straight to 2011-12-31 (UTC+14).
    apia = resolve_timezone("Pacific/Apia")
    before = period_of(datetime(2011, 12, 29, 20, tzinfo=UTC), Granularity.DAY, apia)
    skipped = period_at(before.index + 1, Granularity.DAY, apia)
    after = period_of(before.ends_at, Granularity.DAY, apia)
    assert skipped.key == "day:2011-12-30" and skipped.starts_at == skipped.ends_at
    assert after.key == "day:2011-12-31" and after.starts_at == before.ends_at


def test_every_moment_lies_in_its_period_when_the_clock_goes_back_across_midnight() -> None:
    # Goose Bay set its clocks back from 00:01 to 23:01 on 2006-10-29.
    goose_bay = resolve_timezone("America/Goose_Bay")
    moment = datetime(2006, 10, 29, 1, 0, tzinfo=UTC)
    while moment < datetime(2006, 10, 29, 5, 0, tzinfo=UTC):
        day = period_of(moment, Granularity.DAY, goose_bay)
        assert day.starts_at <= moment < day.ends_at
        moment += timedelta(minutes=1)


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


def test_indices_count_from_1970() -> None:
    new_year = datetime(1970, 1, 1, 12, tzinfo=UTC)
    assert period_of(new_year, Granularity.DAY, UTC_ZONE).index == 0
    assert period_of(new_year, Granularity.MONTH, UTC_ZONE).index == 1970 * 12
    # 1970-01-01 was a Thursday: the first Monday-week starts on the 5th.
    assert period_of(new_year, Granularity.WEEK, UTC_ZONE).index == -1
    assert period_of(new_year, Granularity.WEEK, UTC_ZONE, week_start=3).index == 0
    assert period_at(0, Granularity.WEEK, UTC_ZONE).key == "week:1970-01-05"


@pytest.mark.parametrize("week_start", [0, 6])
@pytest.mark.parametrize("zone", ["Europe/Paris", "America/Santiago"])
@pytest.mark.parametrize("granularity", list(Granularity))
def test_consecutive_periods_have_consecutive_indices(
    granularity: Granularity, zone: str, week_start: int
) -> None:
    tz = resolve_timezone(zone)
    period = period_of(datetime(2026, 1, 1, tzinfo=UTC), granularity, tz, week_start)
    for _ in range(400 if granularity is Granularity.DAY else 60):
        following = period_of(period.ends_at, granularity, tz, week_start)
        assert following.index == period.index + 1
        assert following.starts_at == period.ends_at
        assert period_at(following.index, granularity, tz, week_start) == following
        last_instant = following.ends_at - timedelta(microseconds=1)
        assert period_of(last_instant, granularity, tz, week_start) == following
        period = following


def test_windows_of_dates_are_local_midnights() -> None:
    window = window_of(date(2026, 12, 1), date(2026, 12, 25), PARIS)
    assert window.starts_at == datetime(2026, 11, 30, 23, 0, tzinfo=UTC)
    assert window.contains(datetime(2026, 11, 30, 23, 0, tzinfo=UTC))
    assert not window.contains(datetime(2026, 12, 24, 23, 0, tzinfo=UTC))
    naive = window_of(datetime(2026, 12, 1, 8), datetime(2026, 12, 1, 9), PARIS)
    assert naive.starts_at == datetime(2026, 12, 1, 7, 0, tzinfo=UTC)


def test_windows_of_aware_datetimes_keep_their_instants() -> None:
    new_york = resolve_timezone("America/New_York")
    start = datetime(2026, 12, 1, 8, tzinfo=new_york)
    window = window_of(start, datetime(2026, 12, 2, tzinfo=UTC), PARIS)
    assert window.starts_at == datetime(2026, 12, 1, 13, 0, tzinfo=UTC)
    assert window.contains(start) and not window.contains(window.ends_at)


def test_an_unknown_timezone_says_what_to_use() -> None:
    with pytest.raises(ConfigurationError, match="IANA name"):
        resolve_timezone("Mars/Base")
