"""The Player type: a player's whole progress, each field from one read."""

from __future__ import annotations

import strawberry

from schema.context import Info
from schema.errors import BadRequestError
from schema.types import (
    ChallengeProgress,
    EarnedBadge,
    MilestoneProgress,
    PageInfo,
    StreakProgress,
    UnlockConnection,
    UnlockEdge,
    badge_of,
    challenge_progress_of,
    milestone_progress_of,
    streak_progress_of,
    unlock_of,
)

MAX_PAGE = 100


@strawberry.type
class Player:
    id: strawberry.ID

    @strawberry.field
    async def challenges(self, info: Info) -> list[ChallengeProgress]:
        """Current instance of every challenge open to this player."""
        program = info.context.service.engine.program
        progress = await info.context.progress(self.id)
        return [challenge_progress_of(program, item) for item in progress.challenges]

    @strawberry.field
    async def milestones(self, info: Info) -> list[MilestoneProgress]:
        program = info.context.service.engine.program
        progress = await info.context.progress(self.id)
        return [milestone_progress_of(program, item) for item in progress.milestones]

    @strawberry.field
    async def streaks(self, info: Info) -> list[StreakProgress]:
        program = info.context.service.engine.program
        progress = await info.context.progress(self.id)
        return [streak_progress_of(program, item) for item in progress.streaks]

    @strawberry.field
    async def badges(self, info: Info) -> list[EarnedBadge]:
        program = info.context.service.engine.program
        progress = await info.context.progress(self.id)
        earned = []
        for item in progress.badges:
            badge = badge_of(program, item.id)
            assert badge is not None
            earned.append(EarnedBadge(badge=badge, unlocked_at=item.unlocked_at))
        return earned

    @strawberry.field(description="Durable unlock history, oldest first.")
    async def unlocks(
        self, info: Info, first: int | None = 20, after: str | None = None
    ) -> UnlockConnection:
        first = 20 if first is None else first
        if not 0 < first <= MAX_PAGE:
            raise BadRequestError(f"first must be between 1 and {MAX_PAGE}, got {first}")
        page = await info.context.service.history(self.id, after, first)
        program = info.context.service.engine.program
        edges = [
            UnlockEdge(cursor=cursor, node=unlock_of(program, unlock))
            for cursor, unlock in page.unlocks
        ]
        return UnlockConnection(
            edges=edges,
            page_info=PageInfo(
                has_next_page=page.has_next_page,
                end_cursor=edges[-1].cursor if edges else None,
            ),
        )
