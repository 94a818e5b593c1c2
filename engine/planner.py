"""Turn one event into a plan: the primitive store operations it causes.

This is where the rules live. Everything that can be decided without the
player's counters is decided here, in Python: which metrics the event feeds,
which period buckets it lands in (in the player's timezone), which unlocks it
could claim and under which thresholds. The store then executes the plan
atomically and claims exactly the unlocks whose thresholds are crossed.

Counter values are integers: counts and distinct counts as they are, sums and
maxima scaled by `keys.SCALE`, so that Redis and SQLite agree to the unit.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from engine import periods
from engine.events import Event
from engine.periods import Granularity
from engine.profiles import Profile
from engine.program.models import Challenge, Milestone, Streak
from engine.program.models import Window as WindowSpec
from engine.program.program import MetricDef, Program
from engine.store import keys
from engine.store.base import Plan
from engine.unlocks import granted_badge

#: How long a finished window's counters stay readable for progress screens.
WINDOW_RETENTION = timedelta(days=30)

_MISSING = object()


def lookup(properties: Mapping[str, Any], path: str) -> Any:
    """Value at a dotted property path, or `_MISSING`."""
    current: Any = properties
    for part in path.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return _MISSING
        current = current[part]
    return current


def scale_of(metric: MetricDef) -> int:
    return keys.SCALE if metric.aggregate in ("sum", "max") else 1


def threshold(metric: MetricDef, target: float) -> int:
    """A designer's target as the integer the store compares with."""
    if scale_of(metric) == 1:
        return math.ceil(target)
    return round(target * keys.SCALE)


def window_bucket(challenge_id: str) -> str:
    return f"window:{challenge_id}"


class Planner:
    """The rules of one program, indexed for the hot path."""

    def __init__(self, program: Program, late_tolerance: timedelta) -> None:
        self.program = program
        self._late_tolerance = late_tolerance
        self._granularities: dict[str, set[Granularity]] = defaultdict(set)
        self._windows: dict[str, list[tuple[str, WindowSpec]]] = defaultdict(list)
        self._milestones: dict[str, list[tuple[str, Milestone]]] = defaultdict(list)
        self._challenges: dict[str, list[tuple[str, Challenge]]] = defaultdict(list)
        self._streaks: dict[str, list[tuple[str, Streak]]] = defaultdict(list)
        for milestone_id, milestone in program.milestones.items():
            self._milestones[milestone.metric].append((milestone_id, milestone))
        self._skeletons: dict[tuple[Any, ...], _Skeleton] = {}
        self._order = {challenge_id: n for n, challenge_id in enumerate(program.challenges)}
        for challenge_id, challenge in program.challenges.items():
            goal_metrics = {goal.metric for goal in challenge.all_goals()}
            for metric_id in goal_metrics:
                self._challenges[metric_id].append((challenge_id, challenge))
                if challenge.every is not None:
                    self._granularities[metric_id].add(Granularity(challenge.every))
                elif challenge.window is not None:
                    self._windows[metric_id].append((challenge_id, challenge.window))
        for streak_id, streak in program.streaks.items():
            self._streaks[streak.metric].append((streak_id, streak))
            self._granularities[streak.metric].add(Granularity(streak.per))

    def plan(self, event: Event, profile: Profile, now: datetime, dedupe_ttl: int) -> Plan:
        """The plan of one checked event (occurred_at filled in) at engine time `now`."""
        player = event.player_id
        tag = keys.player_tag(player)
        plan = Plan(
            player_id=player,
            keys=[keys.event(player, event.id), tag + PROFILE, tag + UNLOCKS, tag + OUTBOX],
            profile_version=profile.version,
            dedupe_ttl=dedupe_ttl,
        )
        fed = self._fed(event)
        if not fed:
            return plan
        draft = _Draft(plan, event, profile, now)
        signature = self._signature(draft, fed)
        skeleton = self._skeletons.get(signature)
        if skeleton is None:
            skeleton = self._skeleton(draft, fed)
            if len(self._skeletons) >= MAX_SKELETONS:
                self._skeletons.clear()
            self._skeletons[signature] = skeleton
        skeleton.fill(plan, tag, [amount for _, _, amount in fed], draft.unlock)
        return plan

    def _fed(self, event: Event) -> list[tuple[MetricDef, str, int | str]]:
        """The metrics this event feeds, with their operation and operand."""
        fed = []
        for metric in self.program.metrics_by_event.get(event.type, ()):
            if metric.where is not None and not metric.where(event.properties):
                continue
            operation = self._operation(metric, event)
            if operation is not None:
                fed.append((metric, *operation))
        return fed

    def _signature(
        self, draft: _Draft, fed: list[tuple[MetricDef, str, int | str]]
    ) -> tuple[Any, ...]:
        """Everything the shape of a plan depends on besides the player and the amounts:
        events with the same signature get the same operations."""
        parts: list[Any] = [draft.event.type, draft.expiry_hours]
        week_start = self.program.week_start
        for metric, name, _ in fed:
            parts.append(metric.id)
            parts.append(name)
            for granularity in self._granularities.get(metric.id, ()):
                parts.append(draft.period(granularity, week_start).key)
            for _, spec in self._windows.get(metric.id, ()):
                window = periods.window_of(spec.start, spec.end, draft.profile.timezone)
                parts.append(window.contains(draft.when))
        for challenge_id, _ in self._claimable_challenges([metric.id for metric, _, _ in fed]):
            audience = self.program.audiences.get(challenge_id)
            if audience is not None:
                parts.append(audience(draft.profile.attributes))
        return tuple(parts)

    def _skeleton(self, draft: _Draft, fed: list[tuple[MetricDef, str, int | str]]) -> _Skeleton:
        """Plan the event with placeholders, the slow way, once per signature."""
        template = Plan(player_id=TEMPLATE_PLAYER, keys=[""] * 4)
        sketch = _Draft(template, draft.event, draft.profile, draft.now, TEMPLATE_PLAYER, _UNLOCK)
        self._feed_metrics(sketch, [(m, name, _Amount(n)) for n, (m, name, _) in enumerate(fed)])
        touched = list(sketch.registers)
        self._claim_milestones(sketch, touched)
        self._claim_challenges(sketch, touched)
        self._extend_streaks(sketch, touched)
        prefix = len(keys.player_tag(TEMPLATE_PLAYER))
        return _Skeleton([key[prefix:] for key in template.keys[4:]], template.ops)

    def _feed_metrics(self, draft: _Draft, fed: list[tuple[MetricDef, str, Any]]) -> None:
        """Update the lifetime value and every needed bucket of each metric the event feeds."""
        plan, player = draft.plan, draft.player
        for metric, name, amount in fed:
            lifetime = plan.op(name, plan.key_index(keys.metric(player, metric.id)), amount, 0)
            touched: dict[str | None, int] = {None: lifetime}
            for granularity in self._granularities.get(metric.id, ()):
                period = draft.period(granularity, self.program.week_start)
                expire = draft.expiry(period.ends_at + self._late_tolerance + timedelta(days=1))
                key = keys.metric(player, metric.id, period.key)
                touched[period.key] = plan.op(name, plan.key_index(key), amount, expire)
            for challenge_id, spec in self._windows.get(metric.id, ()):
                window = periods.window_of(spec.start, spec.end, draft.profile.timezone)
                if window.contains(draft.when):
                    bucket = window_bucket(challenge_id)
                    expire = draft.expiry(window.ends_at + WINDOW_RETENTION)
                    key = keys.metric(player, metric.id, bucket)
                    touched[bucket] = plan.op(name, plan.key_index(key), amount, expire)
            draft.registers[metric.id] = touched

    def _claim_milestones(self, draft: _Draft, touched: list[str]) -> None:
        for metric_id in touched:
            metric = self.program.metrics[metric_id]
            lifetime = draft.registers[metric_id][None]
            for milestone_id, milestone in self._milestones.get(metric_id, ()):
                for number, tier in enumerate(milestone.tiers, start=1):
                    draft.claim(
                        keys.milestone_unlock(milestone_id, number),
                        [[lifetime, threshold(metric, tier.at)]],
                        granted_badge(tier.badge, tier.reward),
                    )

    def _claim_challenges(self, draft: _Draft, touched: list[str]) -> None:
        for challenge_id, challenge in self._claimable_challenges(touched):
            audience = self.program.audiences.get(challenge_id)
            if audience is not None and not audience(draft.profile.attributes):
                continue
            goals = challenge.all_goals()
            if challenge.every is not None:
                period = draft.period(Granularity(challenge.every), self.program.week_start)
                bucket = period.key
                field = keys.challenge_unlock(challenge_id, period.key)
            else:
                bucket = window_bucket(challenge_id)
                if not any(bucket in draft.registers.get(goal.metric, {}) for goal in goals):
                    continue  # the event fell outside the window
                field = keys.challenge_unlock(challenge_id, None)
            conditions = [
                [
                    self._register(draft, goal.metric, bucket),
                    threshold(self.program.metrics[goal.metric], goal.target),
                ]
                for goal in goals
            ]
            draft.claim(
                field,
                conditions,
                granted_badge(None, challenge.reward),
                requires=self._requirements(challenge),
                marker=keys.challenge_done(challenge_id),
            )

    def _extend_streaks(self, draft: _Draft, touched: list[str]) -> None:
        plan, player = draft.plan, draft.player
        for metric_id in touched:
            metric = self.program.metrics[metric_id]
            for streak_id, streak in self._streaks.get(metric_id, ()):
                period = draft.period(Granularity(streak.per), self.program.week_start)
                freezes = streak.freezes
                length = plan.op(
                    "streak",
                    plan.key_index(keys.streak(player, streak_id)),
                    period.index,
                    draft.registers[metric_id][period.key],
                    threshold(metric, streak.min),
                    freezes.max if freezes else 0,
                    freezes.earn_every if freezes else 0,
                )
                for step in streak.milestones:
                    draft.claim(
                        keys.streak_unlock(streak_id, step.at),
                        [[length, step.at]],
                        granted_badge(step.badge, step.reward),
                    )

    def _register(self, draft: _Draft, metric_id: str, bucket: str | None) -> int:
        """Register of a metric bucket, reading it when the event did not touch it."""
        by_bucket = draft.registers.setdefault(metric_id, {})
        if bucket not in by_bucket:
            kind = "card" if self.program.metrics[metric_id].aggregate == "distinct" else "get"
            key = keys.metric(draft.player, metric_id, bucket)
            by_bucket[bucket] = draft.plan.op(kind, draft.plan.key_index(key))
        return by_bucket[bucket]

    def _operation(self, metric: MetricDef, event: Event) -> tuple[str, int | str] | None:
        """The store operation and operand for one metric, or None when the
        event lacks the property the metric aggregates."""
        if metric.aggregate == "count":
            return "add", 1
        assert metric.property is not None
        value = (
            event.value if metric.property == "value" else lookup(event.properties, metric.property)
        )
        if metric.aggregate == "distinct":
            if value is _MISSING or value is None or isinstance(value, dict | list):
                return None
            return "distinct", str(value)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            return None
        return ("add" if metric.aggregate == "sum" else "max"), round(value * keys.SCALE)

    def _claimable_challenges(self, touched: list[str]) -> list[tuple[str, Challenge]]:
        """Challenges fed by the touched metrics, in program order (prerequisites first)."""
        wanted = {
            challenge_id: challenge
            for metric_id in touched
            for challenge_id, challenge in self._challenges.get(metric_id, ())
        }
        return sorted(wanted.items(), key=lambda item: self._order[item[0]])

    def _requirements(self, challenge: Challenge) -> list[str]:
        return [
            keys.challenge_done(requirement.challenge)
            if requirement.challenge is not None
            else keys.milestone_unlock(str(requirement.milestone), int(requirement.tier or 1))
            for requirement in challenge.requires
        ]


class _Amount:
    """Placeholder for the operand of the n-th fed metric in a skeleton."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index


_UNLOCK = "\0unlock"
TEMPLATE_PLAYER = "\0"
PROFILE, UNLOCKS, OUTBOX = (
    keys.profile("")[len(keys.player_tag("")) :],
    keys.unlocks("")[len(keys.player_tag("")) :],
    keys.outbox("")[len(keys.player_tag("")) :],
)
#: Distinct plan shapes kept; a program has few, but periods roll over.
MAX_SKELETONS = 4096


class _Skeleton:
    """The operations of one plan shape, filled in per event.

    Operations without placeholders are shared between plans (stores only
    read them); the others are copied with the event's operand or unlock time.
    """

    def __init__(self, suffixes: list[str], ops: list[list[Any]]) -> None:
        self.suffixes = suffixes
        self.steps: list[tuple[int, list[Any], int]] = []
        for op in ops:
            if op[0] == "claim":
                self.steps.append((2, op, 0))
            elif len(op) > 2 and isinstance(op[2], _Amount):
                self.steps.append((1, op, op[2].index))
            else:
                self.steps.append((0, op, 0))

    def fill(self, plan: Plan, tag: str, amounts: list[int | str], unlock: str) -> None:
        plan.keys.extend([tag + suffix for suffix in self.suffixes])
        ops = plan.ops
        for kind, op, index in self.steps:
            if kind == 0:
                ops.append(op)
            elif kind == 1:
                copy = op.copy()
                copy[2] = amounts[index]
                ops.append(copy)
            else:
                copy = op.copy()
                copy[4] = unlock
                copy[5] = [[field, None if value is None else unlock] for field, value in op[5]]
                ops.append(copy)


class _Draft:
    """One event's plan in the making: its registers and the periods it falls in."""

    def __init__(
        self,
        plan: Plan,
        event: Event,
        profile: Profile,
        now: datetime,
        player: str | None = None,
        unlock: str | None = None,
    ) -> None:
        assert event.occurred_at is not None
        self.plan = plan
        self.event = event
        self.player = event.player_id if player is None else player
        self.profile = profile
        self.now = now
        self.when = event.occurred_at
        #: metric id -> bucket (None: lifetime) -> register holding its value
        self.registers: dict[str, dict[str | None, int]] = {}
        self._periods: dict[Granularity, periods.Period] = {}
        self.unlock = str(int(now.timestamp() * 1000)) if unlock is None else unlock
        # Stores expire keys by their own clock, and the engine's clock may be
        # injected (tests, replays): expiries are lifetimes counted from `now`.
        self._wall_offset = time.time() - now.timestamp()
        self.expiry_hours = round(self._wall_offset / 3600)

    def period(self, granularity: Granularity, week_start: int) -> periods.Period:
        found = self._periods.get(granularity)
        if found is None:
            found = periods.period_of(self.when, granularity, self.profile.timezone, week_start)
            self._periods[granularity] = found
        return found

    def expiry(self, moment: datetime) -> int:
        return int(moment.timestamp() + self._wall_offset)

    def claim(
        self,
        field: str,
        conditions: list[list[int]],
        badge: str | None,
        requires: list[str] | None = None,
        marker: str | None = None,
    ) -> None:
        extras: list[list[str | None]] = []
        if badge is not None:
            extras.append([keys.badge_unlock(badge), self.unlock])
        if marker is not None:
            extras.append([marker, None])
        self.plan.op("claim", field, conditions, requires or [], self.unlock, extras)
