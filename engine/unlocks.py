"""Unlocks: what a player earned, described from its key.

The hot path stores only an unlock's key and time (in the unlocks hash and
the outbox), which keeps the atomic step small. Everything a client shows
(kind, title, badge, points) is derived from the key and the program here,
and the service copies the described unlock to SQL right away, so history
keeps the title and points that were current when it was earned.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache

from engine.caches import LRU
from engine.program.models import Reward
from engine.program.program import Program
from engine.store.base import OutboxEntry


class UnlockKind(StrEnum):
    MILESTONE = "MILESTONE"
    CHALLENGE = "CHALLENGE"
    STREAK = "STREAK"
    BADGE = "BADGE"
    TIER = "TIER"


@dataclass(frozen=True, slots=True)
class Unlock:
    id: str
    key: str
    kind: UnlockKind
    player_id: str
    title: str
    badge: str | None
    points: int | None
    unlocked_at: datetime
    #: Claimed by `questline backfill` (the player met it in the past), not by
    #: an event: clients may choose not to celebrate it loudly.
    backfilled: bool = False


@dataclass(frozen=True, slots=True)
class Description:
    kind: UnlockKind
    title: str
    badge: str | None = None
    points: int | None = None


def granted_badge(badge: str | None, reward: Reward | None) -> str | None:
    """The badge a tier or challenge grants, whichever way the designer wrote it."""
    if badge is not None:
        return badge
    return reward.badge if reward is not None else None


def _rewarding(
    kind: UnlockKind, title: str, badge: str | None, reward: Reward | None
) -> Description:
    """A rule's unlock, with the badge and points its reward grants."""
    return Description(kind, title, granted_badge(badge, reward), _points(reward))


def _points(reward: Reward | None) -> int | None:
    return reward.points if reward is not None and reward.points else None


def describe(program: Program, key: str) -> Description:
    """Kind, title, badge and points of an unlock key under `program`.

    A key whose definition was removed by a reload still describes itself,
    by its key, rather than failing a replay.
    """
    kind, _, rest = key.partition(":")
    if kind == "milestone":
        milestone_id, _, tier_text = rest.rpartition(":")
        milestone = program.milestones.get(milestone_id)
        if (
            milestone is not None
            and tier_text.isdigit()
            and 0 < int(tier_text) <= len(milestone.tiers)
        ):
            tier = milestone.tiers[int(tier_text) - 1]
            name = milestone.name or milestone_id
            title = tier.name or f"{name}: tier {tier_text}"
            return _rewarding(UnlockKind.MILESTONE, title, tier.badge, tier.reward)
        return Description(UnlockKind.MILESTONE, key)
    if kind == "challenge":
        challenge_id = rest.split(":", 1)[0]
        challenge = program.challenges.get(challenge_id)
        if challenge is not None:
            return _rewarding(
                UnlockKind.CHALLENGE, challenge.name or challenge_id, None, challenge.reward
            )
        return Description(UnlockKind.CHALLENGE, key)
    if kind == "streak":
        streak_id, _, length = rest.rpartition(":")
        streak = program.streaks.get(streak_id)
        if streak is not None:
            for step in streak.milestones:
                if str(step.at) == length:
                    title = step.name or f"{streak.name or streak_id}: {length} {streak.per}s"
                    return _rewarding(UnlockKind.STREAK, title, step.badge, step.reward)
        return Description(UnlockKind.STREAK, key)
    if kind == "badge":
        badge = program.badges.get(rest)
        return Description(UnlockKind.BADGE, badge.name if badge else rest, rest)
    if kind == "tier":
        tier_id = rest.split(":", 1)[0]
        levels = program.tiers.levels if program.tiers is not None else ()
        level = next((level for level in levels if level.id == tier_id), None)
        return Description(UnlockKind.TIER, level.name if level is not None else key)
    return Description(UnlockKind.BADGE, key)


#: Ends the stored value of an unlock claimed by a backfill.
BACKFILLED = "+backfill"


def unlock_value(at: datetime, backfilled: bool = False) -> str:
    """What the store keeps of an unlock (in the unlocks hash and the outbox):
    milliseconds since the epoch, and whether a backfill claimed it. The
    stores keep it as given, so the flag travels to subscribers with the entry."""
    return f"{int(at.timestamp() * 1000)}{BACKFILLED if backfilled else ''}"


@lru_cache(maxsize=1024)
def unlock_time(unlock: str) -> datetime:
    """When an unlock was claimed (see `unlock_value`).

    Cached: every unlock of one engine call carries the same time.
    """
    return datetime.fromtimestamp(int(unlock.removesuffix(BACKFILLED)) / 1000, UTC)


class Descriptions:
    """The unlocks of one program, each key described once: recording events
    describes the same few keys over and over."""

    #: Keys remembered; recurring challenges add a few every period.
    capacity = 4096

    def __init__(self, program: Program) -> None:
        self.program = program
        self._described: LRU[str, Description] = LRU(self.capacity)

    def unlock(self, player_id: str, entry: OutboxEntry) -> Unlock:
        """An outbox entry as an unlock, described by `describe`."""
        described = self._described.get(entry.key)
        if described is None:
            described = describe(self.program, entry.key)
            self._described.put(entry.key, described)
        return Unlock(
            entry.id,
            entry.key,
            described.kind,
            player_id,
            described.title,
            described.badge,
            described.points,
            unlock_time(entry.unlock),
            entry.unlock.endswith(BACKFILLED),
        )
