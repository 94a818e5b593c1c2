"""The read side of analytics: the reports (definitions in app/analytics/__init__.py).

Active streaks are read from the counter store for the players active
recently enough to still have one (since the start of the oldest period a
streak could last have been extended in, given its freezes), in batches of
one store round trip (`Engine.streak_states`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from anyio import to_thread
from sqlalchemy import (
    ColumnElement,
    Join,
    ScalarSelect,
    and_,
    case,
    exists,
    func,
    select,
)

from app.analytics.observer import ACTIVITY, ATTEMPTS
from app.points import ACCOUNTS, ENTRIES
from app.records import UNLOCKS
from app.sql import Database, translated_errors
from engine import periods
from engine.engine import Clock, Engine
from engine.periods import Granularity, Period
from engine.points import LedgerReason
from schema.service import Participation, PointsStats, RetentionStats, StreakStats

#: Players whose streaks one store round trip reads.
STREAK_PLAYERS_PER_READ = 500
#: Time zones lie within 26 hours of each other: the slack when a player's
#: period is looked for among dates of the program's timezone.
TIMEZONE_SLACK = timedelta(days=2)


def period_key_of(unlock_key: str) -> str | None:
    """`week:2026-11-02` of `challenge:<id>:week:2026-11-02`; None for a window's key."""
    parts = unlock_key.split(":", 2)
    return parts[2] if len(parts) == 3 else None


class Reports:
    """The figures of the console and the `analytics` query, read from what
    the observer wrote, unlock history, the ledger and the counter store."""

    def __init__(
        self,
        engine: Engine,
        database: Database,
        clock: Clock,
        timezone: Callable[[], ZoneInfo],
    ) -> None:
        self.engine = engine
        self.database = database
        self.clock = clock
        #: The program's timezone, in which activity is dated and periods are cut.
        self.timezone = timezone

    async def challenges(self) -> dict[str, Participation]:
        return await to_thread.run_sync(challenge_participation, self.database)

    async def challenge_instances(
        self, challenge_id: str, last: int
    ) -> list[tuple[str | None, Participation]]:
        found = await to_thread.run_sync(instance_participation, self.database, challenge_id, last)
        return [(period_key_of(key), participation) for key, participation in found]

    async def streaks(self) -> dict[str, StreakStats]:
        program, now, timezone = self.engine.program, self.clock(), self.timezone()
        if not program.streaks:
            return {}
        since = min(
            _alive_since(
                Granularity(streak.per),
                streak.freezes.max if streak.freezes else 0,
                now,
                timezone,
                program.week_start,
            )
            for streak in program.streaks.values()
        )
        players = await to_thread.run_sync(active_since, self.database, since)
        counts = {streak_id: [0, 0] for streak_id in program.streaks}
        for start in range(0, len(players), STREAK_PLAYERS_PER_READ):
            chunk = players[start : start + STREAK_PLAYERS_PER_READ]
            for states in (await self.engine.streak_states(chunk)).values():
                for streak_id, state in states.items():
                    # The progress screen's own rule, so both always agree.
                    if state.current > 0:
                        count = counts.setdefault(streak_id, [0, 0])  # a reload may add one
                        count[0] += 1
                        count[1] += state.at_risk
        return {
            streak_id: StreakStats(active=active, at_risk=at_risk)
            for streak_id, (active, at_risk) in counts.items()
        }

    async def points(self) -> PointsStats:
        return await to_thread.run_sync(points_summary, self.database, self.clock())

    async def retention(self, granularity: Granularity, count: int) -> list[RetentionStats]:
        program, now, timezone = self.engine.program, self.clock(), self.timezone()
        current = periods.period_of(now, granularity, timezone, program.week_start).index
        spans = [
            periods.period_at(index, granularity, timezone, program.week_start)
            for index in range(current - count, current + 1)
        ]
        found = await to_thread.run_sync(
            customers, self.database, [_days(period, timezone) for period in spans]
        )
        return [
            RetentionStats(
                period=period,
                complete=period.ends_at <= now,
                customers_at_start=previous[0],
                customers_at_end=this[0],
                new_customers=this[1],
                retained=this[2],
            )
            for period, previous, this in zip(spans[1:], found, found[1:], strict=False)
        ]


def _alive_since(
    granularity: Granularity, freezes: int, now: datetime, timezone: ZoneInfo, week_start: int
) -> date:
    """The earliest local date (program timezone) of an event that can still
    keep a streak alive: one in the previous period, or in one of the
    `freezes` periods before it that freezes can bridge. A period of the
    player's own timezone may start a day away from the program's: one more
    period and two days of slack cover it."""
    today = periods.period_of(now, granularity, timezone, week_start).index
    oldest = periods.period_at(today - 2 - freezes, granularity, timezone, week_start)
    return (oldest.starts_at - TIMEZONE_SLACK).astimezone(timezone).date()


def _days(period: Period, timezone: ZoneInfo) -> tuple[date, date]:
    """A period as local dates [first, following) in the program's timezone."""
    return period.starts_at.astimezone(timezone).date(), period.ends_at.astimezone(timezone).date()


def _attempts_with_unlocks() -> Join:
    """Each challenge attempt beside its unlock in history, when it was completed."""
    return ATTEMPTS.outerjoin(
        UNLOCKS,
        and_(UNLOCKS.c.player_id == ATTEMPTS.c.player_id, UNLOCKS.c.key == ATTEMPTS.c.unlock_key),
    )


def challenge_participation(database: Database) -> dict[str, Participation]:
    """Distinct players who started and who completed each challenge, over all instances."""
    completer = case((UNLOCKS.c.id.is_not(None), ATTEMPTS.c.player_id))
    statement = (
        select(
            ATTEMPTS.c.challenge_id,
            func.count(ATTEMPTS.c.player_id.distinct()),
            func.count(completer.distinct()),
        )
        .select_from(_attempts_with_unlocks())
        .group_by(ATTEMPTS.c.challenge_id)
    )
    with translated_errors(database), database.connect() as connection:
        return {
            challenge_id: Participation(started=started, completed=completed)
            for challenge_id, started, completed in connection.execute(statement)
        }


def instance_participation(
    database: Database, challenge_id: str, last: int
) -> list[tuple[str, Participation]]:
    """The latest `last` instances of a challenge by unlock key, newest first.

    Unlock keys of one challenge differ only by period key, whose ISO dates
    sort as time does.
    """
    statement = (
        select(ATTEMPTS.c.unlock_key, func.count(), func.count(UNLOCKS.c.id))
        .select_from(_attempts_with_unlocks())
        .where(ATTEMPTS.c.challenge_id == challenge_id)
        .group_by(ATTEMPTS.c.unlock_key)
        .order_by(ATTEMPTS.c.unlock_key.desc())
        .limit(last)
    )
    with translated_errors(database), database.connect() as connection:
        return [
            (key, Participation(started=started, completed=completed))
            for key, started, completed in connection.execute(statement)
        ]


def active_since(database: Database, since: date) -> list[str]:
    """Players with an accepted event on `since` or later."""
    statement = (
        select(ACTIVITY.c.player_id)
        .where(ACTIVITY.c.day >= since)
        .group_by(ACTIVITY.c.player_id)
        .order_by(ACTIVITY.c.player_id)
    )
    with translated_errors(database), database.connect() as connection:
        return list(connection.execute(statement).scalars())


def points_summary(database: Database, now: datetime) -> PointsStats:
    """Points over the whole ledger, in one statement (so one snapshot: the
    figures add up even while points move)."""
    reason, delta = ENTRIES.c.reason, ENTRIES.c.delta

    def total(*conditions: ColumnElement[bool], amount: ColumnElement[int]) -> ColumnElement[int]:
        return func.coalesce(func.sum(case((and_(*conditions), amount), else_=0)), 0)

    credits = [total(reason == r.value, delta > 0, amount=delta) for r in LedgerReason]
    redeemed = total(reason == LedgerReason.REDEEM.value, delta < 0, amount=-delta)
    expired = total(reason == LedgerReason.EXPIRE.value, delta < 0, amount=-delta)
    deducted = total(
        reason.not_in([LedgerReason.REDEEM.value, LedgerReason.EXPIRE.value]),
        delta < 0,
        amount=-delta,
    )
    balances = select(func.coalesce(func.sum(ACCOUNTS.c.balance), 0)).scalar_subquery()
    statement = select(*credits, redeemed, expired, deducted, balances, _lapsed(now))
    with translated_errors(database), database.connect() as connection:
        *issued, redeemed_points, expired_points, deducted_points, balance, lapsed = (
            connection.execute(statement).one()
        )
    by_reason = {r: int(points) for r, points in zip(LedgerReason, issued, strict=True) if points}
    return PointsStats(
        issued=sum(by_reason.values()),
        issued_by_reason=by_reason,
        redeemed=int(redeemed_points),
        expired=int(expired_points) + int(lapsed),
        deducted=int(deducted_points),
        outstanding=int(balance) - int(lapsed),
    )


def _lapsed(now: datetime) -> ScalarSelect[int]:
    """Points lapsed by `now` whose expiry is not written yet, over every player:
    max(0, credits expired by now - debited) each (see app.points)."""
    expired_credits = (
        select(ENTRIES.c.player_id, func.sum(ENTRIES.c.delta).label("total"))
        .where(ENTRIES.c.delta > 0, ENTRIES.c.expires_at <= now)
        .group_by(ENTRIES.c.player_id)
        .correlate(None)
        .subquery()
    )
    gap = expired_credits.c.total - ACCOUNTS.c.debited
    return (
        select(func.coalesce(func.sum(case((gap > 0, gap), else_=0)), 0))
        .select_from(
            expired_credits.join(ACCOUNTS, ACCOUNTS.c.player_id == expired_credits.c.player_id)
        )
        .correlate(None)
        .scalar_subquery()
    )


def customers(database: Database, spans: Sequence[tuple[date, date]]) -> list[tuple[int, int, int]]:
    """For each span of local dates [first, following): its customers, the new
    ones among them (never active before it) and the retained ones (also
    active in the span before; none for the first span)."""
    this, other = ACTIVITY.alias("this"), ACTIVITY.alias("other")
    found = []
    with translated_errors(database), database.connect() as connection:
        for n, (first, following) in enumerate(spans):
            before = spans[n - 1][0] if n else first
            seen_before = exists().where(other.c.player_id == this.c.player_id, other.c.day < first)
            seen_in_span_before = exists().where(
                other.c.player_id == this.c.player_id,
                other.c.day >= before,
                other.c.day < first,
            )
            statement = select(
                func.count(this.c.player_id.distinct()),
                func.count(case((~seen_before, this.c.player_id)).distinct()),
                func.count(case((seen_in_span_before, this.c.player_id)).distinct()),
            ).where(this.c.day >= first, this.c.day < following)
            end, new, retained = connection.execute(statement).one()
            found.append((int(end), int(new), int(retained)))
    return found
