"""Program analytics for the loyalty manager: challenge completion, live
streaks, points issued and redeemed, and customer retention.

Definitions (the README's "Analytics" section and the GraphQL field
descriptions say the same):

- A player *started* a challenge instance (one week of a weekly challenge,
  the whole of a fixed window) when an event counted by one of its goal
  metrics (its type and `where` match) fell inside that instance while the
  player was in the challenge's audience. Prerequisites are not asked:
  progress made before they are met still counts.
- A player *completed* an instance when its unlock (`challenge:<id>:<period
  key>`, or `challenge:<id>` for a window) is in their unlock history.
  Per challenge, started and completed count distinct players over every
  instance; per instance, the players of that instance. The completion rate
  is completed / started.
- A streak is *active* when it is alive now as the player's progress shows
  it: current > 0 once the periods missed since its last extension are
  counted (a gap its freezes cannot cover breaks it). *At risk*: active, but
  this period is not extended yet or a freeze covers a gap.
- Points: *issued* sums every credit of the ledger (earn rules, unlock
  rewards, referrals, positive adjustments); *redeemed* the redemptions;
  *expired* the expiries, including points already lapsed whose expiry is
  not written yet; *deducted* the negative adjustments; *outstanding* the
  balances minus those lapsed points. issued == redeemed + expired +
  deducted + outstanding.
- Retention per period (day, week or month in the program's timezone):
  a *customer* of a period is a player with at least one accepted event in
  it; customers at start = customers of the previous period, at end =
  customers of this period, new = customers of this period never active
  before it. Retention = (at end - new) / at start. At end - new counts
  every returning customer, including those back after a quiet period, so
  the rate can exceed 1; *retained* (active in both periods) tells them
  apart.

What is recorded: two small tables written while events are recorded,
idempotently (INSERT ... ON CONFLICT DO NOTHING), so a retried event heals
a write a crash interrupted: the days each player was active
(`player_activity`, local dates in the program's timezone) and the
challenge instances each player started (`challenge_attempt`). Each process
remembers the rows it wrote, so a busy player costs SQL once a day. Both
start with the release that added them: activity before it is unknown
(everyone's first period then counts as new), and the migration copies
every completed instance from unlock history as started.

Active streaks are read from the counter store for the players active
recently enough to still have one (since the start of the oldest period a
streak could last have been extended in, given its freezes), in batches of
one store round trip.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from anyio import to_thread
from sqlalchemy import (
    ColumnElement,
    Connection,
    Date,
    Engine,
    Index,
    Join,
    ScalarSelect,
    and_,
    case,
    exists,
    func,
    select,
)
from sqlmodel import Field, SQLModel

from app.points import ACCOUNTS, ENTRIES
from app.records import UNLOCKS
from app.sql import per_database, table, translated_errors
from engine import periods
from engine.conditions import Predicate
from engine.engine import Clock, Recorded
from engine.engine import Engine as RulesEngine
from engine.events import Event
from engine.periods import Granularity, Period
from engine.points import LedgerReason
from engine.profiles import Profile
from engine.program.program import Program
from engine.progress import streak_progress
from engine.store import keys
from engine.store.base import Read
from schema.service import Participation, PointsStats, RetentionStats, StreakStats

#: Rows a process remembers having written before it forgets them all.
REMEMBERED = 200_000
#: Players whose streaks one store round trip reads.
STREAK_PLAYERS_PER_READ = 500
#: Instants are cached per quarter of an hour (every UTC offset in use is a
#: multiple of 15 minutes, so local midnights fall between quarters) ...
QUARTER = 900
#: ... for this many (timezone, quarter) pairs.
MAX_MOMENTS = 16384
#: Time zones lie within 26 hours of each other: the slack when a player's
#: period is looked for among dates of the program's timezone.
TIMEZONE_SLACK = timedelta(days=2)


class ActivityDay(SQLModel, table=True):
    """A local date (program timezone) on which a player had an accepted event."""

    __tablename__ = "player_activity"
    __table_args__ = (Index("ix_player_activity_day_player_id", "day", "player_id"),)

    player_id: str = Field(primary_key=True)
    day: date = Field(primary_key=True, sa_type=Date)


class ChallengeAttempt(SQLModel, table=True):
    """A challenge instance a player started, named by the unlock key it would grant."""

    __tablename__ = "challenge_attempt"

    challenge_id: str = Field(primary_key=True)
    unlock_key: str = Field(primary_key=True)
    player_id: str = Field(primary_key=True)


ACTIVITY = table(ActivityDay)
ATTEMPTS = table(ChallengeAttempt)
_ACTIVE = per_database(lambda insert: insert(ACTIVITY).on_conflict_do_nothing())
_ATTEMPTED = per_database(lambda insert: insert(ATTEMPTS).on_conflict_do_nothing())


@dataclass(frozen=True, slots=True)
class Activity:
    """Rows of analytics to write: (player, day) and (challenge, unlock key, player)."""

    days: list[tuple[object, ...]]
    attempts: list[tuple[object, ...]]

    def __bool__(self) -> bool:
        return bool(self.days or self.attempts)


class Remembered:
    """Rows this process wrote. Bounded, and forgotten all at once when full:
    a forgotten row is merely written again, which changes nothing."""

    def __init__(self, capacity: int = REMEMBERED) -> None:
        self._capacity = capacity
        self._rows: set[tuple[object, ...]] = set()

    def new(self, rows: Iterable[tuple[object, ...]]) -> list[tuple[object, ...]]:
        """The rows not written yet, sorted (concurrent writers then lock in one order)."""
        return sorted(row for row in set(rows) if row not in self._rows)

    def add(self, rows: Sequence[tuple[object, ...]]) -> None:
        if len(self._rows) + len(rows) > self._capacity:
            self._rows.clear()
        self._rows.update(rows)


@dataclass(frozen=True, slots=True)
class _Moment:
    """Where an instant falls in one timezone: its local date, and the unlock
    key of each challenge's instance holding it (None outside a window)."""

    day: date
    instances: dict[str, str | None]


class _Challenges:
    """One program's challenges as analytics meet them for every event: which
    challenges' goals count an event, and which instance an instant falls in.

    Instants are cached per timezone and quarter of an hour, as the planner
    does, unless a period or window boundary falls inside the quarter: the
    cost per event is then the goals' `where` and a dictionary look-up.
    """

    def __init__(self, program: Program) -> None:
        self.program = program
        goals: dict[str, list[str]] = {}
        for challenge_id, challenge in program.challenges.items():
            for goal in challenge.all_goals():
                goals.setdefault(goal.metric, []).append(challenge_id)
        self._goals: dict[str, list[tuple[Predicate | None, tuple[str, ...]]]] = {
            event_type: [
                (metric.where, tuple(goals[metric.id])) for metric in metrics if metric.id in goals
            ]
            for event_type, metrics in program.metrics_by_event.items()
        }
        self._moments: dict[tuple[ZoneInfo, int], _Moment] = {}

    def fed(self, event: Event) -> list[str]:
        """The challenges whose goals count this event (type and `where`), each once."""
        fed: dict[str, None] = {}
        for where, challenge_ids in self._goals.get(event.type, ()):
            if where is None or where(event.properties):
                fed.update(dict.fromkeys(challenge_ids))
        return list(fed)

    def moment(self, when: datetime, timezone: ZoneInfo) -> _Moment:
        quarter = int(when.timestamp() // QUARTER)
        found = self._moments.get((timezone, quarter))
        if found is None:
            found, boundaries = self._moment(when, timezone)
            start, end = quarter * QUARTER, (quarter + 1) * QUARTER
            if not any(start < boundary.timestamp() < end for boundary in boundaries):
                if len(self._moments) >= MAX_MOMENTS:
                    self._moments.clear()
                self._moments[(timezone, quarter)] = found
        return found

    def _moment(self, when: datetime, timezone: ZoneInfo) -> tuple[_Moment, list[datetime]]:
        """The moment, and the boundaries of every period and window it was read from."""
        week_start = self.program.week_start
        day = periods.period_of(when, Granularity.DAY, timezone, week_start)
        boundaries = [day.starts_at, day.ends_at]
        instances: dict[str, str | None] = {}
        for challenge_id, challenge in self.program.challenges.items():
            if challenge.every is not None:
                period = periods.period_of(when, Granularity(challenge.every), timezone, week_start)
                boundaries += [period.starts_at, period.ends_at]
                instances[challenge_id] = keys.challenge_unlock(challenge_id, period.key)
            else:
                assert challenge.window is not None
                window = periods.window_of(challenge.window.start, challenge.window.end, timezone)
                boundaries += [window.starts_at, window.ends_at]
                inside = window.contains(when)
                instances[challenge_id] = (
                    keys.challenge_unlock(challenge_id, None) if inside else None
                )
        local_day = day.starts_at.astimezone(timezone).date()
        return _Moment(local_day, instances), boundaries


def period_key_of(unlock_key: str) -> str | None:
    """`week:2026-11-02` of `challenge:<id>:week:2026-11-02`; None for a window's key."""
    parts = unlock_key.split(":", 2)
    return parts[2] if len(parts) == 3 else None


class Analytics:
    def __init__(
        self,
        engine: RulesEngine,
        database: Engine,
        clock: Clock,
        timezone: Callable[[], ZoneInfo],
    ) -> None:
        self.engine = engine
        self.database = database
        self.clock = clock
        #: The program's timezone, in which activity is dated and periods are cut.
        self.timezone = timezone
        self._challenges = _Challenges(engine.program)
        self._days = Remembered()
        self._attempts = Remembered()

    async def activity(self, recorded: Sequence[Recorded]) -> Activity:
        """The activity days and challenge starts of recorded events (duplicates
        too: they heal what a failed write of the original left out) that this
        process has not written yet; the group commit writes them
        (`save_activity`) and then calls `written`."""
        program = self.engine.program
        if self._challenges.program is not program:
            self._challenges = _Challenges(program)
        challenges, timezone = self._challenges, self.timezone()
        days, attempts = [], []
        for result in recorded:
            event = result.event
            when, player_id = event.occurred_at or result.recorded_at, event.player_id
            days.append((player_id, challenges.moment(when, timezone).day))
            fed = challenges.fed(event)
            if not fed:
                continue
            profile = await self.engine.profile(player_id)
            instances = challenges.moment(when, profile.timezone).instances
            for challenge_id in fed:
                key = instances[challenge_id]
                audience = program.audiences.get(challenge_id)
                if key is None or (audience is not None and not audience(profile.attributes)):
                    continue
                attempts.append((challenge_id, key, player_id))
        return Activity(self._days.new(days), self._attempts.new(attempts))

    def written(self, activity: Activity) -> None:
        """Remember rows committed, so that they are not written again."""
        self._days.add(activity.days)
        self._attempts.add(activity.attempts)

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
        streaks = list(program.streaks.items())
        for start in range(0, len(players), STREAK_PLAYERS_PER_READ):
            chunk = players[start : start + STREAK_PLAYERS_PER_READ]
            reads = [Read("hash", keys.profile(player_id)) for player_id in chunk]
            reads += [
                Read("hash", keys.streak(player_id, streak_id))
                for player_id in chunk
                for streak_id, _ in streaks
            ]
            values = await self.engine.store.read(reads)
            states = iter(values[len(chunk) :])
            for fields in values[: len(chunk)]:
                player_timezone = Profile.from_fields(fields, timezone).timezone
                for streak_id, streak in streaks:
                    # The progress screen's own rule, so both always agree.
                    alive = streak_progress(
                        streak_id, streak, next(states), program, player_timezone, now
                    )
                    if alive.current > 0:
                        counts[streak_id][0] += 1
                        counts[streak_id][1] += alive.at_risk
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


def save_activity(connection: Connection, activity: Activity) -> None:
    """Write activity days and challenge starts; rows already there are skipped."""
    if activity.days:
        connection.execute(
            _ACTIVE(connection),
            [{"player_id": player_id, "day": day} for player_id, day in activity.days],
        )
    if activity.attempts:
        connection.execute(
            _ATTEMPTED(connection),
            [
                {"challenge_id": challenge_id, "unlock_key": key, "player_id": player_id}
                for challenge_id, key, player_id in activity.attempts
            ],
        )


def _attempts_with_unlocks() -> Join:
    """Each challenge attempt beside its unlock in history, when it was completed."""
    return ATTEMPTS.outerjoin(
        UNLOCKS,
        and_(UNLOCKS.c.player_id == ATTEMPTS.c.player_id, UNLOCKS.c.key == ATTEMPTS.c.unlock_key),
    )


def challenge_participation(db: Engine) -> dict[str, Participation]:
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
    with translated_errors(db), db.connect() as connection:
        return {
            challenge_id: Participation(started=started, completed=completed)
            for challenge_id, started, completed in connection.execute(statement)
        }


def instance_participation(
    db: Engine, challenge_id: str, last: int
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
    with translated_errors(db), db.connect() as connection:
        return [
            (key, Participation(started=started, completed=completed))
            for key, started, completed in connection.execute(statement)
        ]


def active_since(db: Engine, since: date) -> list[str]:
    """Players with an accepted event on `since` or later."""
    statement = (
        select(ACTIVITY.c.player_id)
        .where(ACTIVITY.c.day >= since)
        .group_by(ACTIVITY.c.player_id)
        .order_by(ACTIVITY.c.player_id)
    )
    with translated_errors(db), db.connect() as connection:
        return list(connection.execute(statement).scalars())


def points_summary(db: Engine, now: datetime) -> PointsStats:
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
    with translated_errors(db), db.connect() as connection:
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


def customers(db: Engine, spans: Sequence[tuple[date, date]]) -> list[tuple[int, int, int]]:
    """For each span of local dates [first, following): its customers, the new
    ones among them (never active before it) and the retained ones (also
    active in the span before; none for the first span)."""
    this, other = ACTIVITY.alias("this"), ACTIVITY.alias("other")
    found = []
    with translated_errors(db), db.connect() as connection:
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
