"""Leaderboards: players ranked by a metric, all-time or per week or month.

The planner keeps every board current on the hot path: each event that
moves a metric writes the player's new value (lifetime, or in the event's
week or month) into the board in the same atomic store step as the counters,
so a board never disagrees with progress. This module is the read side: which
board a query means, and the store's ranking as ranked entries in the
metric's own unit.

Ranks run 1, 2, 3, … with no shared rank: equal scores are ordered by player
id (byte order), which every store does the same way, so a board reads the
same from one query to the next.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from engine.errors import LeaderboardError, UnknownLeaderboardError
from engine.periods import Granularity, Period, period_of
from engine.planner import scale_of
from engine.program.program import LeaderboardDef, Program
from engine.store import keys
from engine.store.base import Store

ALL_TIME = "all"
#: Most entries one query returns from the top of a board.
MAX_FIRST = 100
#: Players shown either side of the one a query is "around".
NEIGHBOURS = 2


@dataclass(frozen=True, slots=True)
class Ranked:
    rank: int
    player_id: str
    #: In the metric's unit: a count, or a sum or maximum with its decimals.
    score: float


@dataclass(frozen=True, slots=True)
class Standings:
    """What one query reads of one board."""

    board: LeaderboardDef
    #: "all", "week" or "month".
    period: str
    #: The week or month ranked; None for the all-time board.
    span: Period | None
    #: Players on the board.
    size: int
    #: The top of the board, rank 1 first.
    entries: list[Ranked]
    #: The player asked about and up to NEIGHBOURS either side; empty when
    #: no player was asked about or they are not on the board.
    around: list[Ranked]
    #: The entry of the player asked about, when they are on the board.
    position: Ranked | None


def board_key(
    board: LeaderboardDef, period: str, now: datetime, timezone: ZoneInfo, week_start: int
) -> tuple[str, Period | None]:
    """The store key of a board's current period (as seen in `timezone`), and that period."""
    if period not in board.periods:
        kept = ", ".join(board.periods)
        raise LeaderboardError(
            f"leaderboard {board.id!r} has no {period!r} board; ask for one of: {kept}"
        )
    if period == ALL_TIME:
        return keys.leaderboard(board.id, None), None
    span = period_of(now, Granularity(period), timezone, week_start)
    return keys.leaderboard(board.id, span.key), span


async def standings(
    program: Program,
    store: Store,
    board_id: str,
    period: str,
    first: int,
    around: str | None,
    now: datetime,
    timezone: ZoneInfo,
) -> Standings:
    """The top `first` of a board's current period and, when asked, where
    `around` stands: one store round trip, one consistent state."""
    board = program.leaderboards.get(board_id)
    if board is None:
        known = ", ".join(program.leaderboards) or "none"
        raise UnknownLeaderboardError(
            f"no leaderboard {board_id!r} in the program; its leaderboards: {known}"
        )
    if not 0 <= first <= MAX_FIRST:
        raise LeaderboardError(f"first must be between 0 and {MAX_FIRST}, got {first}")
    key, span = board_key(board, period, now, timezone, program.week_start)
    ranking = await store.ranking(key, first, around, NEIGHBOURS)
    scale = scale_of(program.metrics[board.metric])

    def ranked(start: int, members: list[tuple[str, int]]) -> list[Ranked]:
        return [
            Ranked(rank, player_id, value / scale)
            for rank, (player_id, value) in enumerate(members, start=start)
        ]

    near = ranked(ranking.around_rank, ranking.around)
    return Standings(
        board=board,
        period=period,
        span=span,
        size=ranking.size,
        entries=ranked(1, ranking.top),
        around=near,
        position=next((entry for entry in near if entry.player_id == around), None),
    )
