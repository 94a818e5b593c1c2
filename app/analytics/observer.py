"""The write side of analytics: what recording events leaves for the reports.

Two small tables, written while events are recorded, idempotently (INSERT
... ON CONFLICT DO NOTHING), so a retried event heals a write a crash
interrupted: the days each player was active (`player_activity`, local
dates in the program's timezone) and the challenge instances each player
started (`challenge_attempt`). Each process remembers the rows it wrote, so
a busy player costs SQL once a day. Both start with the release that added
them: activity before it is unknown (everyone's first period then counts as
new), and the migration copies every completed instance from unlock history
as started.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Date, Index
from sqlmodel import Field, SQLModel

from app.sql import per_database, table
from engine import periods
from engine.caches import LRU
from engine.conditions import Predicate
from engine.engine import Engine, Recorded
from engine.events import Event
from engine.periods import Granularity, MomentCache
from engine.program.program import Program
from engine.store import keys

#: Rows a process remembers having written, the most recently seen.
REMEMBERED = 200_000


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
    """Rows this process wrote, bounded: a forgotten row is merely written
    again, which changes nothing."""

    def __init__(self, capacity: int = REMEMBERED) -> None:
        self._rows: LRU[tuple[object, ...], bool] = LRU(capacity)

    def new(self, rows: Iterable[tuple[object, ...]]) -> list[tuple[object, ...]]:
        """The rows not written yet, sorted (concurrent writers then lock in one order)."""
        return sorted(row for row in set(rows) if self._rows.get(row) is None)

    def add(self, rows: Sequence[tuple[object, ...]]) -> None:
        for row in rows:
            self._rows.put(row, True)


@dataclass(frozen=True, slots=True)
class _Instances:
    """Where an instant falls in one timezone: its local date, and the unlock
    key of each challenge's instance holding it (None outside a window)."""

    day: date
    instances: dict[str, str | None]


class _Challenges:
    """One program's challenges as analytics meet them for every event: which
    challenges' goals count an event, and which instance an instant falls in
    (cached per timezone and quarter of an hour, `MomentCache`): the cost per
    event is then the goals' `where` and a dictionary look-up.
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
        self.moment = MomentCache(self._instances)

    def fed(self, event: Event) -> list[str]:
        """The challenges whose goals count this event (type and `where`), each once."""
        fed: dict[str, None] = {}
        for where, challenge_ids in self._goals.get(event.type, ()):
            if where is None or where(event.properties):
                fed.update(dict.fromkeys(challenge_ids))
        return list(fed)

    def _instances(self, when: datetime, timezone: ZoneInfo) -> tuple[_Instances, list[datetime]]:
        """The instances of `when`, and the boundaries of every period and window
        they were read from."""
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
        return _Instances(local_day, instances), boundaries


class ActivityObserver:
    """Turns recorded events into the rows analytics reads, remembering what
    this process already wrote."""

    def __init__(self, engine: Engine, timezone: Callable[[], ZoneInfo]) -> None:
        self.engine = engine
        #: The program's timezone, in which activity is dated.
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
