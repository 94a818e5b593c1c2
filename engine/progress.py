"""A player's whole progress, read in one store round trip.

Progress is computed at read time from the same counters the hot path
updates: the current period's buckets (in the player's timezone), lifetime
values, streak state and the unlocks hash. Nothing here writes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

from engine import periods
from engine.periods import Granularity
from engine.planner import scale_of, threshold, window_bucket
from engine.profiles import Profile
from engine.program.models import Badge, Challenge, Milestone, MilestoneTier, Streak
from engine.program.program import Program
from engine.store import keys
from engine.store.base import Read, Store
from engine.unlocks import unlock_time


@dataclass(frozen=True, slots=True)
class Progress:
    current: float
    target: float
    percent: float
    completed: bool

    @classmethod
    def of(cls, current: float, target: float, completed: bool) -> Progress:
        percent = 100.0 if completed else min(100.0, max(0.0, current / target * 100.0))
        return cls(current=current, target=target, percent=round(percent, 2), completed=completed)


@dataclass(frozen=True, slots=True)
class GoalProgress:
    metric: str
    progress: Progress


@dataclass(frozen=True, slots=True)
class ChallengeProgress:
    id: str
    challenge: Challenge
    unlock_key: str
    starts_at: datetime
    ends_at: datetime
    goals: list[GoalProgress]
    progress: Progress


@dataclass(frozen=True, slots=True)
class MilestoneProgress:
    id: str
    milestone: Milestone
    value: float
    tiers_reached: int
    next_tier: MilestoneTier | None
    progress: Progress


@dataclass(frozen=True, slots=True)
class StreakState:
    """Where a streak stands now, as its stored state and the clock say."""

    #: 0 once a gap its freezes cannot bridge has broken it.
    current: int
    longest: int
    #: Freezes left once the gap so far is bridged.
    freezes: int
    #: Alive, but this period is not extended yet or a freeze covers a gap.
    at_risk: bool


@dataclass(frozen=True, slots=True)
class StreakProgress:
    id: str
    streak: Streak
    current: int
    longest: int
    at_risk: bool
    freezes: int
    progress: Progress


@dataclass(frozen=True, slots=True)
class EarnedBadge:
    id: str
    badge: Badge
    unlocked_at: datetime


@dataclass(frozen=True, slots=True)
class PlayerProgress:
    player_id: str
    challenges: list[ChallengeProgress]
    milestones: list[MilestoneProgress]
    streaks: list[StreakProgress]
    badges: list[EarnedBadge]


class _Reads:
    """Collects the keys to read, each once, and hands back their values."""

    def __init__(self) -> None:
        self.items: list[Read] = []
        self._index: dict[str, int] = {}
        self.values: list[Any] = []

    def want(self, read: Read) -> int:
        if read.key not in self._index:
            self._index[read.key] = len(self.items)
            self.items.append(read)
        return self._index[read.key]


def _metric_read(program: Program, player_id: str, metric_id: str, bucket: str | None) -> Read:
    if program.metrics[metric_id].aggregate == "distinct":
        return Read("card", keys.metric(player_id, metric_id, bucket))
    return Read("int", keys.metric(player_id, metric_id, bucket))


async def player_progress(
    program: Program, store: Store, player_id: str, profile: Profile, now: datetime
) -> PlayerProgress:
    tz = profile.timezone
    reads = _Reads()
    unlocks_at = reads.want(Read("hash", keys.unlocks(player_id)))
    challenge_plans = []
    for challenge_id, challenge in program.challenges.items():
        audience = program.audiences.get(challenge_id)
        if audience is not None and not audience(profile.attributes):
            continue
        if challenge.every is not None:
            period = periods.period_of(now, Granularity(challenge.every), tz, program.week_start)
            bucket, starts_at, ends_at = period.key, period.starts_at, period.ends_at
            unlock_key = keys.challenge_unlock(challenge_id, period.key)
        else:
            assert challenge.window is not None
            window = periods.window_of(challenge.window.start, challenge.window.end, tz)
            bucket, starts_at, ends_at = (
                window_bucket(challenge_id),
                window.starts_at,
                window.ends_at,
            )
            unlock_key = keys.challenge_unlock(challenge_id, None)
        goal_reads = [
            reads.want(_metric_read(program, player_id, goal.metric, bucket))
            for goal in challenge.all_goals()
        ]
        challenge_plans.append(
            (challenge_id, challenge, unlock_key, starts_at, ends_at, goal_reads)
        )
    milestone_reads = [
        (
            milestone_id,
            milestone,
            reads.want(_metric_read(program, player_id, milestone.metric, None)),
        )
        for milestone_id, milestone in program.milestones.items()
    ]
    streak_reads = [
        (streak_id, streak, reads.want(Read("hash", keys.streak(player_id, streak_id))))
        for streak_id, streak in program.streaks.items()
    ]
    values = await store.read(reads.items)
    unlocked: dict[str, str] = values[unlocks_at]

    challenges = []
    for challenge_id, challenge, unlock_key, starts_at, ends_at, goal_reads in challenge_plans:
        completed = unlock_key in unlocked
        goals = []
        for goal, index in zip(challenge.all_goals(), goal_reads, strict=True):
            metric = program.metrics[goal.metric]
            current = values[index] / scale_of(metric)
            reached = values[index] >= threshold(metric, goal.target)
            goals.append(GoalProgress(goal.metric, Progress.of(current, goal.target, reached)))
        if len(goals) == 1:
            overall = Progress.of(goals[0].progress.current, goals[0].progress.target, completed)
        else:
            met = sum(goal.progress.completed for goal in goals)
            overall = Progress(
                current=float(met),
                target=float(len(goals)),
                percent=100.0
                if completed
                else round(sum(goal.progress.percent for goal in goals) / len(goals), 2),
                completed=completed,
            )
        challenges.append(
            ChallengeProgress(
                challenge_id, challenge, unlock_key, starts_at, ends_at, goals, overall
            )
        )

    milestones = []
    for milestone_id, milestone, index in milestone_reads:
        metric = program.metrics[milestone.metric]
        value = values[index] / scale_of(metric)
        reached = [tier for tier in milestone.tiers if values[index] >= threshold(metric, tier.at)]
        next_tier = milestone.tiers[len(reached)] if len(reached) < len(milestone.tiers) else None
        target = (next_tier or milestone.tiers[-1]).at
        milestones.append(
            MilestoneProgress(
                milestone_id,
                milestone,
                value,
                len(reached),
                next_tier,
                Progress.of(value, target, next_tier is None),
            )
        )

    streaks = [
        streak_progress(streak_id, streak, values[index], program, tz, now, unlocked)
        for streak_id, streak, index in streak_reads
    ]
    badges = [
        EarnedBadge(
            badge_id, program.badges[badge_id], unlock_time(unlocked[keys.badge_unlock(badge_id)])
        )
        for badge_id in program.badges
        if keys.badge_unlock(badge_id) in unlocked
    ]
    return PlayerProgress(player_id, challenges, milestones, streaks, badges)


def streak_state(
    streak: Streak, state: Mapping[str, str], program: Program, tz: ZoneInfo, now: datetime
) -> StreakState:
    """A streak as it stands now, from its stored state: alive, at risk (a gap
    freezes can still bridge, or this period not yet extended) or broken."""
    current, longest, freezes = (
        int(state.get(name, 0)) for name in ("current", "longest", "freezes")
    )
    at_risk = False
    if state:
        today = periods.period_of(now, Granularity(streak.per), tz, program.week_start).index
        missed = today - int(state["last"]) - 1
        if missed >= 0:
            if missed <= freezes:
                at_risk = True
                freezes -= missed
            else:
                current = 0
    return StreakState(current, longest, freezes, at_risk)


def streak_progress(
    streak_id: str,
    streak: Streak,
    state: Mapping[str, str],
    program: Program,
    tz: ZoneInfo,
    now: datetime,
    unlocked: Mapping[str, str] = MappingProxyType({}),
) -> StreakProgress:
    """A streak as it stands now (`streak_state`), with progress toward the
    next streak milestone the player has not unlocked yet (from `unlocked`,
    the player's unlocks hash): after a break, a milestone already earned is
    no goal any more, the next one is.
    """
    alive = streak_state(streak, state, program, tz, now)
    current = alive.current
    lengths = [milestone.at for milestone in streak.milestones]
    upcoming = [
        length
        for length in lengths
        if length > current and keys.streak_unlock(streak_id, length) not in unlocked
    ]
    target = upcoming[0] if upcoming else max(current, 1)
    completed = bool(lengths) and not upcoming
    return StreakProgress(
        streak_id,
        streak,
        current,
        alive.longest,
        alive.at_risk,
        alive.freezes,
        Progress.of(current, target, completed),
    )


async def streak_states(
    program: Program,
    store: Store,
    player_ids: Sequence[str],
    default_timezone: ZoneInfo,
    now: datetime,
) -> dict[str, dict[str, StreakState]]:
    """Every streak of each player as it stands now (`streak_state`), in each
    player's timezone: their profiles and streaks read in one store round trip."""
    streaks = list(program.streaks.items())
    reads = [Read("hash", keys.profile(player_id)) for player_id in player_ids]
    reads += [
        Read("hash", keys.streak(player_id, streak_id))
        for player_id in player_ids
        for streak_id, _ in streaks
    ]
    values = await store.read(reads)
    stored = iter(values[len(player_ids) :])
    found: dict[str, dict[str, StreakState]] = {}
    for player_id, fields in zip(player_ids, values[: len(player_ids)], strict=True):
        timezone = Profile.from_fields(fields, default_timezone).timezone
        found[player_id] = {
            streak_id: streak_state(streak, next(stored), program, timezone, now)
            for streak_id, streak in streaks
        }
    return found
