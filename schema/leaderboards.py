"""GraphQL types of leaderboards, built from the engine's standings."""

from __future__ import annotations

from datetime import datetime

import strawberry

from engine import leaderboards as engine_leaderboards
from engine.leaderboards import NEIGHBOURS
from engine.program.program import LeaderboardDef


@strawberry.type(description="A leaderboard of the program; read it with `Query.leaderboard`.")
class LeaderboardDefinition:
    id: strawberry.ID
    name: str
    description: str
    metric: str = strawberry.field(description="Id of the metric that scores players.")
    periods: list[str] = strawberry.field(
        description="The periods it is kept for: `all`, `week`, `month`."
    )


def definition_of(board: LeaderboardDef) -> LeaderboardDefinition:
    return LeaderboardDefinition(
        id=strawberry.ID(board.id),
        name=board.name,
        description=board.description,
        metric=board.metric,
        periods=list(board.periods),
    )


@strawberry.type(description="A player's place on a leaderboard.")
class LeaderboardEntry:
    rank: int = strawberry.field(
        description="1 for the highest score. Equal scores are ordered by player id (byte "
        "order), so no two players share a rank and the order is stable."
    )
    player_id: strawberry.ID
    score: float = strawberry.field(
        description="The player's value of the board's metric over the period, in the "
        "metric's unit."
    )


@strawberry.type(description="Players ranked by a metric over one period.")
class Leaderboard:
    id: strawberry.ID
    name: str
    description: str
    metric: str = strawberry.field(description="Id of the metric that scores players.")
    period: str = strawberry.field(description="`all`, `week` or `month`.")
    periods: list[str] = strawberry.field(description="The periods this board is kept for.")
    starts_at: datetime | None = strawberry.field(
        description="Start of the week or month ranked, in the program's timezone; null "
        "for all-time."
    )
    ends_at: datetime | None = strawberry.field(description="Its end (exclusive).")
    player_count: int = strawberry.field(description="Players on the board.")
    entries: list[LeaderboardEntry] = strawberry.field(description="The top, rank 1 first.")
    around: list[LeaderboardEntry] = strawberry.field(
        description=f"The `around` player and up to {NEIGHBOURS} players either side; empty "
        "when that player is not on the board."
    )
    position: LeaderboardEntry | None = strawberry.field(
        description="The `around` player's own entry; null when they are not on the board."
    )


def leaderboard_entry_of(entry: engine_leaderboards.Ranked) -> LeaderboardEntry:
    return LeaderboardEntry(
        rank=entry.rank, player_id=strawberry.ID(entry.player_id), score=entry.score
    )


def leaderboard_of(found: engine_leaderboards.Standings) -> Leaderboard:
    board, span = found.board, found.span
    return Leaderboard(
        id=strawberry.ID(board.id),
        name=board.name,
        description=board.description,
        metric=board.metric,
        period=found.period,
        periods=list(board.periods),
        starts_at=span.starts_at if span is not None else None,
        ends_at=span.ends_at if span is not None else None,
        player_count=found.size,
        entries=[leaderboard_entry_of(entry) for entry in found.entries],
        around=[leaderboard_entry_of(entry) for entry in found.around],
        position=leaderboard_entry_of(found.position) if found.position is not None else None,
    )
