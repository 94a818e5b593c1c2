"""Tiers: the level a player's qualifying points reach, the next one, and
the review calendar.

A player moves up the moment their qualifying points (those granted by earn
rules, unlocks and referrals within the ladder's window) reach a higher
level, and moves down only at a review, so a quiet month never costs a
status mid-period. Reviews start on the first day of each month or quarter
in the program's timezone. The service keeps each player's level in SQL and
announces every change as an unlock (`tier:<id>:<date>`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from engine.program.program import TierDef, TierLadder
from engine.progress import Progress


@dataclass(frozen=True, slots=True)
class TierStatus:
    level: TierDef
    next: TierDef | None
    qualifying_points: int
    #: When the player last changed level; None while they hold the level they started at.
    since: datetime | None
    #: Qualifying points towards the next level (complete at the top).
    progress: Progress


def level_for(ladder: TierLadder, qualifying_points: int) -> TierDef:
    """The highest level these qualifying points reach."""
    reached = ladder.levels[0]
    for level in ladder.levels:
        if qualifying_points >= level.qualifying_points:
            reached = level
    return reached


def next_level(ladder: TierLadder, level: TierDef) -> TierDef | None:
    following = level.rank + 1
    return ladder.levels[following] if following < len(ladder.levels) else None


def status(
    ladder: TierLadder, tier_id: str | None, qualifying_points: int, since: datetime | None
) -> TierStatus:
    """A player's tier as stored (a removed level reads as the first one)."""
    level = ladder.get(tier_id)
    following = next_level(ladder, level)
    if following is None:
        progress = Progress.of(qualifying_points, max(level.qualifying_points, 1), True)
    else:
        progress = Progress.of(qualifying_points, following.qualifying_points, False)
    return TierStatus(
        level=level,
        next=following,
        qualifying_points=qualifying_points,
        since=since,
        progress=progress,
    )


def review_start(moment: datetime, ladder: TierLadder, timezone: ZoneInfo) -> date:
    """First day of the review period holding `moment`, in `timezone`."""
    day = moment.astimezone(timezone).date()
    month = day.month if ladder.review == "monthly" else (day.month - 1) // 3 * 3 + 1
    return date(day.year, month, 1)
