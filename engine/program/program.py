"""The compiled program: what the rules engine runs.

The loader builds it once from validated seed files; after that nothing on
the hot path parses or checks anything: conditions are predicates, and the
metrics fed by each event type are indexed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from engine.conditions import Predicate
from engine.program.models import Badge, Challenge, Milestone, ProgramInfo, Streak

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
