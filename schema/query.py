"""Queries: a player's progress and the program catalog."""

from __future__ import annotations

from datetime import datetime

import strawberry

from engine.errors import InvalidArgumentError
from engine.events import check_identifier
from schema.analytics import ProgramAnalytics, program_analytics
from schema.context import Info
from schema.designer import Explanation, SeedFileInput, Simulation, explain, simulate_program
from schema.leaderboards import Leaderboard, leaderboard_of
from schema.loyalty import Reward, catalog
from schema.player import Player
from schema.types import Program, program_of
from schema.webhooks import webhook_deliveries, webhooks


def player_id_of(raw: str) -> str:
    """Player ids are checked like event ids (BAD_REQUEST when they do not fit)."""
    return check_identifier("id", raw)


@strawberry.type
class Query:
    @strawberry.field(description="The player of the token sent (a player JWT).")
    def me(self, info: Info) -> Player:
        caller = info.context.caller()
        if caller.player_id is None:
            raise InvalidArgumentError(
                "`me` needs a player token; with an API key use `player(id:)`"
            )
        return Player(id=strawberry.ID(caller.player_id))

    @strawberry.field(description="Any player (API key), or yourself (player token).")
    def player(self, info: Info, id: strawberry.ID) -> Player | None:
        info.context.caller().require_read(player_id_of(id))
        return Player(id=id)

    @strawberry.field(
        description="Challenges, milestones, streaks, visible badges and leaderboards."
    )
    def program(self, info: Info) -> Program:
        info.context.caller()
        return program_of(info.context.service.program)

    @strawberry.field(description="The rewards catalog, with what is left of each stock.")
    async def rewards(self, info: Info) -> list[Reward]:
        info.context.caller()
        return await catalog(info)

    @strawberry.field(
        description="Program analytics for the loyalty manager (API key): challenge "
        "completion, active streaks, points, retention."
    )
    def analytics(self, info: Info) -> ProgramAnalytics:
        return program_analytics(info)

    @strawberry.field(
        description="Why a player has a challenge (its current instance), a milestone tier "
        "(coffee-lover:2; a bare milestone id means its next tier), a streak milestone "
        "(daily-coffee:7) or a badge, or not yet: goals, audience, prerequisites, window, the "
        "events that feed it and the journal's events. API key, or the player's own token."
    )
    async def explain(self, info: Info, player_id: strawberry.ID, target: str) -> Explanation:
        return await explain(info, player_id_of(player_id), target)

    @strawberry.field(
        description="Replay the journal's events that occurred in [since, until) through the "
        "program in use and a candidate (the files given, with the seed folder's others), each "
        "into a throwaway store, and compare them rule by rule (API key). Nothing live "
        "changes. A broken candidate is refused with BAD_PROGRAM and every error as file:line."
    )
    async def simulate_program(
        self,
        info: Info,
        files: list[SeedFileInput],
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Simulation:
        return await simulate_program(info, files, since, until)

    @strawberry.field(
        description="The current period of a leaderboard: its top `first` players and, with "
        "`around`, where that player stands. A player token sees any board, around itself "
        "unless told otherwise (it may not ask around another player)."
    )
    async def leaderboard(
        self,
        info: Info,
        id: strawberry.ID,
        period: str | None = "all",
        first: int | None = 10,
        around: strawberry.ID | None = None,
    ) -> Leaderboard | None:
        caller = info.context.caller()
        player = caller.player_id if around is None else player_id_of(around)
        if player is not None:
            caller.require_read(player)
        found = await info.context.service.leaderboard(
            id, period or "all", 10 if first is None else first, player
        )
        return leaderboard_of(found)

    webhooks = strawberry.field(
        resolver=webhooks, description="Every webhook endpoint, oldest first (API key)."
    )
    webhook_deliveries = strawberry.field(
        resolver=webhook_deliveries,
        description="Webhook deliveries newest first, of one endpoint or all, of one status "
        "or all (API key).",
    )
