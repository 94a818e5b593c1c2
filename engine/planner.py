"""Turn one event into a plan: the primitive store operations it causes.

This is where the rules live. Everything that can be decided without the
player's counters is decided here, in Python: which metrics the event feeds,
which period buckets it lands in (in the player's timezone), which unlocks it
could claim and under which thresholds. The store then executes the plan
atomically and claims exactly the unlocks whose thresholds are crossed.

Counter values are integers: counts and distinct counts as they are, sums and
maxima scaled by `keys.SCALE`, so that Redis and SQLite agree to the unit.

The hot path plans an event in a few microseconds: the operations depend only
on a short signature (the metrics fed, the moment's periods and windows, the
audiences the player is in), so they are built once per signature and every
event only supplies its keys and `Plan.args`: the unlock time, the operand of
each metric fed, then what depends on the moment (period indices, expiries,
the unlock keys of recurring challenges). Leaving those out of the ops lets
one `Shape` serve every day, week and month, so a store translates it once.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from engine import periods
from engine.conditions import MISSING, Predicate, lookup
from engine.events import Event
from engine.periods import Granularity, MomentCache, Period, Window
from engine.profiles import Profile
from engine.program.models import Challenge, Milestone, Streak
from engine.program.models import Window as WindowSpec
from engine.program.program import ALL_TIME, MetricDef, Program
from engine.store import keys, ops
from engine.store.base import Plan, Shape
from engine.unlocks import granted_badge, unlock_value

#: How long a finished window's counters stay readable for progress screens.
WINDOW_RETENTION = timedelta(days=30)
#: Distinct plan shapes kept; a program has few, but periods roll over.
MAX_SKELETONS = 4096

#: Plan.args[0] is the unlock time; the operand of the n-th metric fed is args[n + 1].
UNLOCK = ops.Arg(0)
#: The kind of slot of an expiry.
EXPIRE = "expire"

Reader = Callable[[Event], ops.Scalar | None]
#: The op that feeds a metric, built from (key, operand, expire_at).
Feed = Callable[[int, ops.Number, ops.Number], ops.Op]


def scale_of(metric: MetricDef) -> int:
    return keys.SCALE if metric.aggregate in ("sum", "max") else 1


def threshold(metric: MetricDef, target: float) -> int:
    """A designer's target as the integer the store compares with."""
    if scale_of(metric) == 1:
        return math.ceil(target)
    return round(target * keys.SCALE)


def window_bucket(challenge_id: str) -> str:
    return f"window:{challenge_id}"


def operation_of(metric: MetricDef) -> Feed:
    """The store operation that feeds a metric."""
    if metric.aggregate in ("count", "sum"):
        return ops.Add
    return ops.Max if metric.aggregate == "max" else ops.Distinct


@dataclass(frozen=True, slots=True)
class _Moment:
    """Where an instant falls for a player: its periods and the windows open then.

    `number` tells apart moments that plan differently (another period,
    window or timezone) and is equal for moments that plan the same.
    """

    number: int
    periods: Mapping[Granularity, Period]
    windows: Mapping[str, Window | None]


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
        #: metric id -> (board id, period) of each board it scores
        self._boards: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for board_id, board in program.leaderboards.items():
            for period in board.periods:
                self._boards[board.metric].append((board_id, period))
                if period != ALL_TIME:
                    self._granularities[board.metric].add(Granularity(period))
        self._all_granularities = sorted(set().union(*self._granularities.values()))
        self._all_windows = {
            challenge_id: challenge.window
            for challenge_id, challenge in program.challenges.items()
            if challenge.window is not None
        }
        #: Per event type, each metric it may feed: (its bit in a signature,
        #: its condition, how to read its operand; None for a count).
        self._feeds: dict[str, list[tuple[int, Predicate | None, Reader | None]]] = {}
        self._audiences: dict[str, list[tuple[int, Predicate]]] = {}
        for event_type, metrics in program.metrics_by_event.items():
            self._feeds[event_type] = [
                (1 << n, metric.where, _reader(metric)) for n, metric in enumerate(metrics)
            ]
            audiences = {
                challenge_id: program.audiences[challenge_id]
                for metric in metrics
                for challenge_id, _ in self._challenges.get(metric.id, ())
                if challenge_id in program.audiences
            }
            self._audiences[event_type] = [
                (1 << n, predicate) for n, predicate in enumerate(audiences.values())
            ]
        self._skeletons: dict[tuple[str, int, int, int], _Skeleton] = {}
        self._shapes: dict[tuple[ops.Op, ...], Shape] = {}
        self._moment = MomentCache(self._new_moment)
        self._moment_numbers: dict[tuple[object, ...], int] = {}
        self._now: datetime | None = None
        self._unlock = ""
        #: Seconds from engine time to the store's clock, added to expiries.
        self._wall_offset = 0

    def plan(self, event: Event, profile: Profile, now: datetime, dedupe_ttl: int) -> Plan:
        """The plan of one checked event (occurred_at filled in) at engine time `now`."""
        player = event.player_id
        tag = keys.player_tag(player)
        plan_keys = [tag + EVENT + event.id]
        if now is not self._now:
            self._use_now(now)
        if len(self._skeletons) >= MAX_SKELETONS:
            self._forget()
        args: list[ops.Scalar] = [self._unlock]
        fed = self._fed(event, args)
        if not fed:
            plan_keys += [tag + suffix for suffix in HEAD]
            return Plan(player, plan_keys, [], profile.version, dedupe_ttl)
        assert event.occurred_at is not None
        moment = self._moment(event.occurred_at, profile.timezone)
        signature = (
            event.type,
            fed,
            moment.number,
            self._audience_mask(event.type, profile.attributes),
        )
        skeleton = self._skeletons.get(signature)
        if skeleton is None:
            skeleton = self._skeletons[signature] = self._skeleton(event, fed, moment, profile)
        plan_keys += [tag + suffix for suffix in skeleton.suffixes]
        plan_keys += skeleton.boards
        args += skeleton.values_at(self._wall_offset)
        shape = skeleton.shape
        return Plan(player, plan_keys, shape.ops, profile.version, dedupe_ttl, args, shape)

    def settle(
        self, player_id: str, profile: Profile, now: datetime, event_key: str, dedupe_ttl: int
    ) -> Plan:
        """A plan that claims, at `now`, every milestone tier and every current
        challenge instance the player's counters already meet and they lack.

        No event feeds it: it reads the counters. `questline backfill` runs it
        after a reload added milestones or challenges on metrics that players
        had already counted, which no new event may ever claim. `event_key`
        (its duplicate check) names the run. Not cached: it is rare.
        """
        self._use_now(now)
        template = Plan(player_id=TEMPLATE_PLAYER, keys=[""] * 4)
        draft = _Draft(template, self._moment(now, profile.timezone), profile, 1)
        rules = {metric_id for metric_id in self._milestones}
        rules.update(self._challenges)
        touched = sorted(rules)
        for metric_id in touched:
            self._register(draft, metric_id, None)
            for challenge_id, _ in self._windows.get(metric_id, ()):
                if draft.moment.windows[challenge_id] is not None:
                    self._register(draft, metric_id, window_bucket(challenge_id))
        self._claim_milestones(draft, touched)
        self._claim_challenges(draft, touched)
        tag = keys.player_tag(player_id)
        prefix = len(keys.player_tag(TEMPLATE_PLAYER))
        plan_keys = [event_key, *(tag + suffix for suffix in HEAD)]
        plan_keys += [tag + key[prefix:] for key in template.keys[4:]]
        args = [self._unlock, *(value for _, value in draft.slots.values())]
        return Plan(player_id, plan_keys, template.ops, profile.version, dedupe_ttl, args)

    def _forget(self) -> None:
        """Start the caches over; moment numbers go too, as signatures hold them."""
        self._skeletons.clear()
        self._shapes.clear()
        self._moment.clear()
        self._moment_numbers.clear()

    def _use_now(self, now: datetime) -> None:
        """Per engine time: the unlock time and how to turn moments into expiries.

        Stores expire keys by their own clock, and the engine's clock may be
        injected (tests, replays): expiries are lifetimes counted from `now`.
        """
        self._now = now
        self._unlock = unlock_value(now)
        self._wall_offset = round(time.time() - now.timestamp())

    def _fed(self, event: Event, args: list[ops.Scalar]) -> int:
        """The metrics this event feeds, as bits; their operands are appended to `args`."""
        fed = 0
        properties = event.properties
        for bit, where, read in self._feeds.get(event.type, ()):
            if where is None or where(properties):
                operand = 1 if read is None else read(event)
                if operand is not None:
                    fed |= bit
                    args.append(operand)
        return fed

    def _audience_mask(self, event_type: str, attributes: Mapping[str, Any]) -> int:
        mask = 0
        for bit, audience in self._audiences[event_type]:
            if audience(attributes):
                mask |= bit
        return mask

    def _new_moment(self, when: datetime, timezone: ZoneInfo) -> tuple[_Moment, list[datetime]]:
        """Periods and windows of `when`, and their boundaries (`MomentCache`)."""
        week_start = self.program.week_start
        found = {
            granularity: periods.period_of(when, granularity, timezone, week_start)
            for granularity in self._all_granularities
        }
        windows: dict[str, Window | None] = {}
        boundaries = [p.starts_at for p in found.values()] + [p.ends_at for p in found.values()]
        for challenge_id, spec in self._all_windows.items():
            window = periods.window_of(spec.start, spec.end, timezone)
            windows[challenge_id] = window if window.contains(when) else None
            boundaries += [window.starts_at, window.ends_at]
        description = (
            timezone.key,
            *(period.index for period in found.values()),
            *(window is not None for window in windows.values()),
        )
        number = self._moment_numbers.setdefault(description, len(self._moment_numbers))
        return _Moment(number, found, windows), boundaries

    def _skeleton(self, event: Event, fed: int, moment: _Moment, profile: Profile) -> _Skeleton:
        """Plan an event of this signature with placeholders, the slow way, once."""
        metrics = self.program.metrics_by_event[event.type]
        fed_metrics = [metric for n, metric in enumerate(metrics) if fed >> n & 1]
        template = Plan(player_id=TEMPLATE_PLAYER, keys=[""] * 4)
        draft = _Draft(template, moment, profile, 1 + len(fed_metrics))
        self._feed_metrics(draft, fed_metrics)
        touched = list(draft.registers)
        self._claim_milestones(draft, touched)
        self._claim_challenges(draft, touched)
        self._extend_streaks(draft, touched)
        # Boards come last: their keys, shared by every player, follow the player's.
        boards = self._rank(draft, touched)
        own = template.keys[4 : len(template.keys) - len(boards)]
        assert template.keys[len(own) + 4 :] == boards
        prefix = len(keys.player_tag(TEMPLATE_PLAYER))
        suffixes = [*HEAD, *(key[prefix:] for key in own)]
        frozen = tuple(template.ops)
        shape = self._shapes.get(frozen)
        if shape is None:
            shape = self._shapes[frozen] = Shape(template.ops)
        values = [value for _, value in draft.slots.values()]
        expiries = [n for n, name in enumerate(draft.slots) if name[0] == EXPIRE]
        return _Skeleton(suffixes, shape, values, boards, expiries)

    def _feed_metrics(self, draft: _Draft, metrics: list[MetricDef]) -> None:
        """Update the lifetime value and every needed bucket of each metric the event feeds."""
        plan = draft.plan
        for n, metric in enumerate(metrics):
            feed, amount = operation_of(metric), ops.Arg(n + 1)
            lifetime = plan.op(
                feed(plan.key_index(keys.metric(TEMPLATE_PLAYER, metric.id)), amount, 0)
            )
            touched: dict[str | None, int] = {None: lifetime}
            for granularity in self._granularities.get(metric.id, ()):
                period = draft.moment.periods[granularity]
                key = keys.metric(TEMPLATE_PLAYER, metric.id, period.key)
                touched[period.key] = plan.op(
                    feed(plan.key_index(key), amount, self._period_expiry(draft, period))
                )
            for challenge_id, _ in self._windows.get(metric.id, ()):
                window = draft.moment.windows[challenge_id]
                if window is not None:
                    bucket = window_bucket(challenge_id)
                    expire = draft.slot(
                        (EXPIRE, bucket), draft.expiry(window.ends_at + WINDOW_RETENTION)
                    )
                    key = keys.metric(TEMPLATE_PLAYER, metric.id, bucket)
                    touched[bucket] = plan.op(feed(plan.key_index(key), amount, expire))
            draft.registers[metric.id] = touched

    def _period_expiry(self, draft: _Draft, period: Period) -> ops.Arg:
        """When a period's counters (and boards) go: once late events cannot reach them."""
        return draft.slot(
            (EXPIRE, period.granularity),
            draft.expiry(period.ends_at + self._late_tolerance + timedelta(days=1)),
        )

    def _claim_milestones(self, draft: _Draft, touched: list[str]) -> None:
        for metric_id in touched:
            metric = self.program.metrics[metric_id]
            lifetime = draft.registers[metric_id][None]
            for milestone_id, milestone in self._milestones.get(metric_id, ()):
                draft.steps(
                    lifetime,
                    [
                        (
                            threshold(metric, tier.at),
                            keys.milestone_unlock(milestone_id, number),
                            granted_badge(tier.badge, tier.reward),
                        )
                        for number, tier in enumerate(milestone.tiers, start=1)
                    ],
                )

    def _claim_challenges(self, draft: _Draft, touched: list[str]) -> None:
        for challenge_id, challenge in self._claimable_challenges(touched):
            audience = self.program.audiences.get(challenge_id)
            if audience is not None and not audience(draft.profile.attributes):
                continue
            goals = challenge.all_goals()
            if challenge.every is not None:
                period = draft.moment.periods[Granularity(challenge.every)]
                bucket = period.key
                field: ops.Text = draft.slot(
                    ("challenge", challenge_id), keys.challenge_unlock(challenge_id, period.key)
                )
            else:
                bucket = window_bucket(challenge_id)
                if not any(bucket in draft.registers.get(goal.metric, {}) for goal in goals):
                    continue  # the event fell outside the window
                field = keys.challenge_unlock(challenge_id, None)
            conditions = [
                ops.Condition(
                    self._register(draft, goal.metric, bucket),
                    threshold(self.program.metrics[goal.metric], goal.target),
                )
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
        plan = draft.plan
        for metric_id in touched:
            metric = self.program.metrics[metric_id]
            for streak_id, streak in self._streaks.get(metric_id, ()):
                period = draft.moment.periods[Granularity(streak.per)]
                freezes = streak.freezes
                length = plan.op(
                    ops.Streak(
                        plan.key_index(keys.streak(TEMPLATE_PLAYER, streak_id)),
                        draft.slot(("period", period.granularity), period.index),
                        draft.registers[metric_id][period.key],
                        threshold(metric, streak.min),
                        freezes.max if freezes else 0,
                        freezes.earn_every if freezes else 0,
                    )
                )
                draft.steps(
                    length,
                    [
                        (
                            step.at,
                            keys.streak_unlock(streak_id, step.at),
                            granted_badge(step.badge, step.reward),
                        )
                        for step in streak.milestones
                    ],
                )

    def _rank(self, draft: _Draft, touched: list[str]) -> list[str]:
        """Put the player's new value of each touched metric on its boards, all-time
        or of the event's period; return the boards' keys, in the order first used."""
        plan, boards = draft.plan, []
        for metric_id in touched:
            registers = draft.registers[metric_id]
            for board_id, period in self._boards.get(metric_id, ()):
                if period == ALL_TIME:
                    key = keys.leaderboard(board_id, None)
                    plan.op(ops.Rank(plan.key_index(key), registers[None], 0))
                else:
                    span = draft.moment.periods[Granularity(period)]
                    key = keys.leaderboard(board_id, span.key)
                    expiry = self._period_expiry(draft, span)
                    plan.op(ops.Rank(plan.key_index(key), registers[span.key], expiry))
                boards.append(key)
        return boards

    def _register(self, draft: _Draft, metric_id: str, bucket: str | None) -> int:
        """Register of a metric bucket, reading it when the event did not touch it."""
        by_bucket = draft.registers.setdefault(metric_id, {})
        if bucket not in by_bucket:
            read = ops.Card if self.program.metrics[metric_id].aggregate == "distinct" else ops.Get
            key = keys.metric(TEMPLATE_PLAYER, metric_id, bucket)
            by_bucket[bucket] = draft.plan.op(read(draft.plan.key_index(key)))
        return by_bucket[bucket]

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


def _reader(metric: MetricDef) -> Reader | None:
    """How to read a metric's operand from an event, None when the event lacks
    it; no reader at all for a count, whose operand is always 1."""
    if metric.aggregate == "count":
        return None
    path = metric.property
    assert path is not None
    convert = _member if metric.aggregate == "distinct" else _scaled
    if path == "value":
        return lambda event: convert(event.value)
    if "." in path:
        return lambda event: convert(lookup(event.properties, path))
    return lambda event: convert(event.properties.get(path, MISSING))


def _member(value: Any) -> str | None:
    if type(value) is str:
        return value
    if value is MISSING or value is None or isinstance(value, dict | list):
        return None
    return str(value)


def _scaled(value: Any) -> int | None:
    if type(value) is int:
        return value * keys.SCALE
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return round(value * keys.SCALE)


TEMPLATE_PLAYER = "\0"
#: What follows the player tag in the event key (then the event id), and in the
#: profile, unlocks and outbox keys.
EVENT = keys.event("", "")[len(keys.player_tag("")) :]
HEAD = [
    keys.profile("")[len(keys.player_tag("")) :],
    keys.unlocks("")[len(keys.player_tag("")) :],
    keys.outbox("")[len(keys.player_tag("")) :],
]


class _Skeleton:
    """One signature's shape, the player-free tails of its keys but the
    event's, and the values its moment gives to the shape's moment args.

    Expiries among the values are in engine time: `values_at` moves them to
    the store's clock. Keeping the clock out of the signature lets a replay,
    whose engine time runs days behind the wall, reuse skeletons across hours.
    """

    __slots__ = ("_offset", "_shifted", "boards", "expiries", "shape", "suffixes", "values")

    def __init__(
        self,
        suffixes: list[str],
        shape: Shape,
        values: list[ops.Scalar],
        boards: list[str],
        expiries: list[int],
    ) -> None:
        self.suffixes = suffixes
        self.shape = shape
        self.values = values
        #: Keys of the leaderboards it writes, the same for every player.
        self.boards = boards
        #: Positions of the expiries in `values`.
        self.expiries = expiries
        self._offset = 0
        self._shifted = values

    def values_at(self, offset: int) -> list[ops.Scalar]:
        """The values with expiries `offset` seconds later (the store's clock);
        the last offset's are kept, as a live engine's offset does not change."""
        if offset != self._offset:
            shifted = list(self.values)
            for n in self.expiries:
                shifted[n] = int(shifted[n]) + offset
            self._offset, self._shifted = offset, shifted
        return self._shifted


class _Draft:
    """A shape in the making: its registers, the moment it plans for, and its
    slots: values that depend on the moment, each named for what it is and
    stood for by an `Arg`, so that one shape serves every moment."""

    def __init__(self, plan: Plan, moment: _Moment, profile: Profile, first_arg: int) -> None:
        self.plan = plan
        self.moment = moment
        self.profile = profile
        #: metric id -> bucket (None: lifetime) -> register holding its value
        self.registers: dict[str, dict[str | None, int]] = {}
        #: name -> (its Arg, its value at this moment), Args numbered from `first_arg`
        self.slots: dict[tuple[str, str], tuple[ops.Arg, ops.Scalar]] = {}
        self._first_arg = first_arg

    def slot(self, name: tuple[str, str], value: ops.Scalar) -> ops.Arg:
        """The Arg standing for the moment's value named `name`."""
        found = self.slots.get(name)
        if found is None:
            found = self.slots[name] = (ops.Arg(self._first_arg + len(self.slots)), value)
        return found[0]

    @staticmethod
    def expiry(moment: datetime) -> int:
        """An expiry in engine time; the planner moves it to the store's clock
        per plan (`_Skeleton.values_at`), so one skeleton serves any clock."""
        return int(moment.timestamp())

    def steps(self, register: int, steps: list[tuple[int, str, str | None]]) -> None:
        """Claim each of rising thresholds on a register: (threshold, field, badge)."""
        self.plan.op(
            ops.Steps(
                register,
                tuple(
                    ops.Step(at, field, UNLOCK, self._extras(badge, None))
                    for at, field, badge in steps
                ),
            )
        )

    def claim(
        self,
        field: ops.Text,
        conditions: list[ops.Condition],
        badge: str | None,
        requires: list[str] | None = None,
        marker: str | None = None,
    ) -> None:
        self.plan.op(
            ops.Claim(
                field, tuple(conditions), tuple(requires or ()), UNLOCK, self._extras(badge, marker)
            )
        )

    @staticmethod
    def _extras(badge: str | None, marker: str | None) -> tuple[ops.Extra, ...]:
        extras: list[ops.Extra] = []
        if badge is not None:
            extras.append(ops.Extra(keys.badge_unlock(badge), UNLOCK))
        if marker is not None:
            extras.append(ops.Extra(marker, None))
        return tuple(extras)
