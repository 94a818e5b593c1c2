"""GraphQL types: the fixed contract the mobile teams generate code from.

Each type is built from an engine result by an `*_of` function here; no
type reads a store or computes a rule.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Generic, TypeVar

import strawberry
from strawberry.scalars import JSON

from engine import progress as engine_progress
from engine.program import models
from engine.program.program import Program as EngineProgram
from engine.unlocks import Unlock as EngineUnlock
from engine.unlocks import UnlockKind as EngineUnlockKind
from engine.unlocks import granted_badge
from schema.leaderboards import LeaderboardDefinition, definition_of
from schema.service import Page

Node = TypeVar("Node")
Item = TypeVar("Item")

UnlockKind = strawberry.enum(EngineUnlockKind, name="UnlockKind")


@strawberry.type(description="A collectible with a name and an icon.")
class Badge:
    id: strawberry.ID
    name: str
    description: str
    icon: str | None
    hidden: bool


def badge_of(program: EngineProgram, badge_id: str | None) -> Badge | None:
    if badge_id is None:
        return None
    badge = program.badges.get(badge_id)
    if badge is None:
        return Badge(
            id=strawberry.ID(badge_id), name=badge_id, description="", icon=None, hidden=False
        )
    return Badge(
        id=strawberry.ID(badge_id),
        name=badge.name,
        description=badge.description,
        icon=badge.icon,
        hidden=badge.hidden,
    )


@strawberry.type(description="Something a player earned; each key is granted once, ever.")
class Unlock:
    id: strawberry.ID = strawberry.field(
        description="Outbox cursor: pass it as `since` to replay what came after."
    )
    key: str
    kind: UnlockKind  # type: ignore[valid-type]
    player_id: strawberry.ID
    title: str
    badge: Badge | None
    points: int | None
    unlocked_at: datetime
    backfilled: bool = strawberry.field(
        default=False,
        description="Claimed by a backfill (the player met it in the past, before the rule "
        "existed), not by an event: a client may choose not to celebrate it loudly.",
    )


def unlock_of(program: EngineProgram, unlock: EngineUnlock) -> Unlock:
    return Unlock(
        id=strawberry.ID(unlock.id),
        key=unlock.key,
        kind=unlock.kind,
        player_id=strawberry.ID(unlock.player_id),
        title=unlock.title,
        badge=badge_of(program, unlock.badge),
        points=unlock.points,
        unlocked_at=unlock.unlocked_at,
        backfilled=unlock.backfilled,
    )


@strawberry.type(description="How far along something is; percent is clamped to 0..100.")
class Progress:
    current: float
    target: float
    percent: float
    completed: bool


def progress_of(progress: engine_progress.Progress) -> Progress:
    return Progress(
        current=progress.current,
        target=progress.target,
        percent=progress.percent,
        completed=progress.completed,
    )


@strawberry.type(description="What an unlock grants (not a reward of the catalog).")
class UnlockReward:
    points: int
    badge: Badge | None


def unlock_reward_of(
    program: EngineProgram, badge: str | None, reward: models.Reward | None
) -> UnlockReward:
    return UnlockReward(
        points=reward.points if reward else 0,
        badge=badge_of(program, granted_badge(badge, reward)),
    )


@strawberry.type
class Goal:
    metric: str
    target: float


@strawberry.type(description="A challenge as the designer defined it.")
class Challenge:
    id: strawberry.ID
    name: str
    description: str
    every: str | None = strawberry.field(description="day, week or month; null for a window.")
    window_start: str | None = strawberry.field(
        description="ISO date (local midnight of the player) or date-time; null if recurring."
    )
    window_end: str | None
    goals: list[Goal]
    reward: UnlockReward


def challenge_of(
    program: EngineProgram, challenge_id: str, challenge: models.Challenge
) -> Challenge:
    window = challenge.window
    return Challenge(
        id=strawberry.ID(challenge_id),
        name=challenge.name or challenge_id,
        description=challenge.description,
        every=challenge.every,
        window_start=window.start.isoformat() if window else None,
        window_end=window.end.isoformat() if window else None,
        goals=[Goal(metric=g.metric, target=g.target) for g in challenge.all_goals()],
        reward=unlock_reward_of(program, None, challenge.reward),
    )


@strawberry.type
class GoalProgress:
    metric: str
    progress: Progress


@strawberry.type
class ChallengeProgress:
    challenge: Challenge
    unlock_key: str = strawberry.field(description="Unlock key of the current instance.")
    starts_at: datetime
    ends_at: datetime
    goals: list[GoalProgress]
    progress: Progress


def challenge_progress_of(
    program: EngineProgram, item: engine_progress.ChallengeProgress
) -> ChallengeProgress:
    return ChallengeProgress(
        challenge=challenge_of(program, item.id, item.challenge),
        unlock_key=item.unlock_key,
        starts_at=item.starts_at,
        ends_at=item.ends_at,
        goals=[GoalProgress(metric=g.metric, progress=progress_of(g.progress)) for g in item.goals],
        progress=progress_of(item.progress),
    )


@strawberry.type
class MilestoneTier:
    number: int = strawberry.field(description="1-based tier number.")
    at: float
    name: str | None
    reward: UnlockReward


@strawberry.type
class Milestone:
    id: strawberry.ID
    name: str
    description: str
    metric: str
    tiers: list[MilestoneTier]


def _tiers(program: EngineProgram, milestone: models.Milestone) -> list[MilestoneTier]:
    return [
        MilestoneTier(
            number=n,
            at=tier.at,
            name=tier.name,
            reward=unlock_reward_of(program, tier.badge, tier.reward),
        )
        for n, tier in enumerate(milestone.tiers, start=1)
    ]


def milestone_of(
    program: EngineProgram, milestone_id: str, milestone: models.Milestone
) -> Milestone:
    return Milestone(
        id=strawberry.ID(milestone_id),
        name=milestone.name or milestone_id,
        description=milestone.description,
        metric=milestone.metric,
        tiers=_tiers(program, milestone),
    )


@strawberry.type
class MilestoneProgress:
    milestone: Milestone
    value: float
    tiers_reached: int
    next_tier: MilestoneTier | None
    progress: Progress


def milestone_progress_of(
    program: EngineProgram, item: engine_progress.MilestoneProgress
) -> MilestoneProgress:
    milestone = milestone_of(program, item.id, item.milestone)
    return MilestoneProgress(
        milestone=milestone,
        value=item.value,
        tiers_reached=item.tiers_reached,
        next_tier=milestone.tiers[item.tiers_reached] if item.next_tier is not None else None,
        progress=progress_of(item.progress),
    )


@strawberry.type
class StreakMilestone:
    at: int
    name: str | None
    reward: UnlockReward


@strawberry.type
class Streak:
    id: strawberry.ID
    name: str
    description: str
    per: str
    min: float
    milestones: list[StreakMilestone]


def streak_of(program: EngineProgram, streak_id: str, streak: models.Streak) -> Streak:
    return Streak(
        id=strawberry.ID(streak_id),
        name=streak.name or streak_id,
        description=streak.description,
        per=streak.per,
        min=streak.min,
        milestones=[
            StreakMilestone(
                at=m.at, name=m.name, reward=unlock_reward_of(program, m.badge, m.reward)
            )
            for m in streak.milestones
        ],
    )


@strawberry.type
class StreakProgress:
    streak: Streak
    current: int
    longest: int
    at_risk: bool = strawberry.field(
        description="Alive, but this period is not extended yet (or a freeze is covering a gap)."
    )
    freezes: int
    progress: Progress


def streak_progress_of(
    program: EngineProgram, item: engine_progress.StreakProgress
) -> StreakProgress:
    return StreakProgress(
        streak=streak_of(program, item.id, item.streak),
        current=item.current,
        longest=item.longest,
        at_risk=item.at_risk,
        freezes=item.freezes,
        progress=progress_of(item.progress),
    )


@strawberry.type
class EarnedBadge:
    badge: Badge
    unlocked_at: datetime


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class Edge(Generic[Node]):
    cursor: str
    node: Node


@strawberry.type
class Connection(Generic[Node]):
    """A page of a list, Relay style; `connection_of` builds one from a service Page."""

    edges: list[Edge[Node]]
    page_info: PageInfo


def connection_of(page: Page[Item], node_of: Callable[[Item], Node]) -> Connection[Node]:
    edges = [Edge(cursor=cursor, node=node_of(item)) for cursor, item in page.items]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=page.has_next_page, end_cursor=edges[-1].cursor if edges else None
        ),
    )


@strawberry.type(description="The program's catalog, for catalog screens.")
class Program:
    name: str
    version: str
    challenges: list[Challenge]
    milestones: list[Milestone]
    streaks: list[Streak]
    badges: list[Badge] = strawberry.field(description="Visible badges; hidden ones are omitted.")
    leaderboards: list[LeaderboardDefinition]


def program_of(program: EngineProgram) -> Program:
    return Program(
        name=program.info.name,
        version=program.version,
        challenges=[challenge_of(program, cid, c) for cid, c in program.challenges.items()],
        milestones=[milestone_of(program, mid, m) for mid, m in program.milestones.items()],
        streaks=[streak_of(program, sid, s) for sid, s in program.streaks.items()],
        badges=[
            badge
            for badge_id, definition in program.badges.items()
            if not definition.hidden and (badge := badge_of(program, badge_id)) is not None
        ],
        leaderboards=[definition_of(board) for board in program.leaderboards.values()],
    )


@strawberry.type
class RecordEventResult:
    event_id: str
    duplicate: bool = strawberry.field(description="The event id was seen before: nothing changed.")
    unlocks: list[Unlock] = strawberry.field(
        description="What this event unlocked (for a duplicate: what the original unlocked)."
    )
    warnings: list[str] = strawberry.field(
        description="What the sender should check, such as an event type no rule listens to "
        "(with the closest known type); the event is recorded all the same."
    )


@strawberry.input
class EventInput:
    id: str = strawberry.field(description="Idempotency key: a retried event is counted once.")
    player_id: strawberry.ID
    type: str
    value: float | None = None
    occurred_at: datetime | None = None
    properties: JSON | None = None


@strawberry.type
class ReloadResult:
    version: str
    changed: bool
