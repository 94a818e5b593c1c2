"""The compiled program: what the rules engine runs.

The loader builds it once from validated seed files; after that nothing on
the hot path parses or checks anything: conditions are predicates, and the
metrics fed by each event type are indexed.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from functools import cached_property
from typing import Any, Literal

from engine.conditions import Predicate
from engine.program.models import (
    Badge,
    CatalogReward,
    Challenge,
    EarnCap,
    Milestone,
    ProgramInfo,
    Streak,
)

Aggregate = Literal["count", "sum", "max", "distinct"]


@dataclass(frozen=True, slots=True)
class MetricDef:
    id: str
    event: str
    aggregate: Aggregate
    #: Dotted property path; "value" means the event's own value; None for count.
    property: str | None
    where: Predicate | None
    description: str
    #: The `where` as the designer wrote it, to show (explain); None: every event.
    condition: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class EarnRuleDef:
    id: str
    event: str
    where: Predicate | None
    #: Dotted property path of the amount ("value": the event's own value); None: fixed.
    per: str | None
    #: Points per 1.00 of the amount, exact (a float such as 0.1 would round wrongly).
    rate: Decimal | None
    #: Fixed points per event.
    points: int | None
    cap: EarnCap | None
    description: str


@dataclass(frozen=True, slots=True)
class TierDef:
    id: str
    rank: int  # 0 for the first level, where every player starts
    name: str
    description: str
    qualifying_points: int
    multiplier: Decimal
    benefits: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TierLadder:
    #: Lowest first; levels[0] needs 0 qualifying points.
    levels: tuple[TierDef, ...]
    window: timedelta
    review: Literal["monthly", "quarterly"]

    def get(self, tier_id: str | None) -> TierDef:
        """The level with this id; the first level for None or a removed id."""
        return next((level for level in self.levels if level.id == tier_id), self.levels[0])


@dataclass(frozen=True, slots=True)
class ReferralsDef:
    event: str
    where: Predicate | None
    referrer_points: int
    referee_points: int
    monthly_cap: int | None


#: The period of a leaderboard that ranks lifetime values.
ALL_TIME = "all"


@dataclass(frozen=True, slots=True)
class LeaderboardDef:
    id: str
    name: str
    description: str
    metric: str
    #: Of "all", "week", "month", in the order the seed gives them.
    periods: tuple[str, ...]


@dataclass(frozen=True)
class Program:
    info: ProgramInfo
    week_start: int  # 0 = Monday … 6 = Sunday
    badges: Mapping[str, Badge]
    metrics: Mapping[str, MetricDef]
    milestones: Mapping[str, Milestone]
    #: Ordered so that prerequisites come before the challenges needing them.
    challenges: Mapping[str, Challenge]
    streaks: Mapping[str, Streak]
    audiences: Mapping[str, Predicate]
    metrics_by_event: Mapping[str, tuple[MetricDef, ...]]
    #: Short hash of the seed files, to tell programs apart after a reload.
    version: str
    earn_rules: Mapping[str, EarnRuleDef]
    earn_rules_by_event: Mapping[str, tuple[EarnRuleDef, ...]]
    #: How long granted points stay spendable; None: forever.
    points_expire_after: timedelta | None
    #: None when the program has no tiers.
    tiers: TierLadder | None
    #: The rewards catalog.
    rewards: Mapping[str, CatalogReward]
    #: None when the program has no referrals.
    referrals: ReferralsDef | None
    leaderboards: Mapping[str, LeaderboardDef]

    @cached_property
    def event_types(self) -> frozenset[str]:
        """Every event type some rule listens to: metrics, earn rules, referrals."""
        types = set(self.metrics_by_event) | set(self.earn_rules_by_event)
        if self.referrals is not None:
            types.add(self.referrals.event)
        return frozenset(types)

    def unheard(self, event_type: str) -> str | None:
        """A warning when no rule listens to `event_type` (likely a typo), or None.

        Such an event is still recorded (its id is taken, so a retry is a
        duplicate), but it counts toward nothing.
        """
        if event_type in self.event_types:
            return None
        close = difflib.get_close_matches(event_type, sorted(self.event_types), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"no rule listens to event type {event_type!r}{hint}"
