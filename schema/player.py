"""The Player type: a player's whole progress, each field from one read."""

from __future__ import annotations

import strawberry

from engine.errors import InvalidArgumentError
from engine.program.program import Program as EngineProgram
from engine.progress import PlayerProgress
from schema.context import Info
from schema.loyalty import (
    LedgerEntry,
    PointsBalance,
    Redemption,
    ReferralInfo,
    TierStatus,
    balance_of,
    ledger_entry_of,
    redemption_of,
    referral_info_of,
    tier_status_of,
)
from schema.types import (
    ChallengeProgress,
    Connection,
    EarnedBadge,
    MilestoneProgress,
    StreakProgress,
    Unlock,
    badge_of,
    challenge_progress_of,
    connection_of,
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
        program, progress = await _progress(info, self.id)
        return [challenge_progress_of(program, item) for item in progress.challenges]

    @strawberry.field
    async def milestones(self, info: Info) -> list[MilestoneProgress]:
        program, progress = await _progress(info, self.id)
        return [milestone_progress_of(program, item) for item in progress.milestones]

    @strawberry.field
    async def streaks(self, info: Info) -> list[StreakProgress]:
        program, progress = await _progress(info, self.id)
        return [streak_progress_of(program, item) for item in progress.streaks]

    @strawberry.field
    async def badges(self, info: Info) -> list[EarnedBadge]:
        program, progress = await _progress(info, self.id)
        earned = []
        for item in progress.badges:
            badge = badge_of(program, item.id)
            assert badge is not None
            earned.append(EarnedBadge(badge=badge, unlocked_at=item.unlocked_at))
        return earned

    @strawberry.field(description="Durable unlock history, oldest first.")
    async def unlocks(
        self, info: Info, first: int | None = 20, after: str | None = None
    ) -> Connection[Unlock]:
        page = await info.context.service.history(self.id, after, page_size(first))
        program = info.context.service.program
        return connection_of(page, lambda unlock: unlock_of(program, unlock))

    @strawberry.field(description="Points to spend, after expiring what has lapsed.")
    async def points(self, info: Info) -> PointsBalance:
        return balance_of(await info.context.service.economy.balance(self.id))

    @strawberry.field(description="Every movement of the player's points, newest first.")
    async def ledger(
        self, info: Info, first: int | None = 20, after: str | None = None
    ) -> Connection[LedgerEntry]:
        economy = info.context.service.economy
        return connection_of(
            await economy.ledger(self.id, after, page_size(first)), ledger_entry_of
        )

    @strawberry.field(description="The player's tier and the way to the next one.")
    async def tier(self, info: Info) -> TierStatus:
        return tier_status_of(await info.context.service.economy.tier(self.id))

    @strawberry.field(description="Rewards the player redeemed, newest first.")
    async def redemptions(self, info: Info, first: int | None = 20) -> list[Redemption]:
        found = await info.context.service.economy.redemptions(self.id, page_size(first))
        return [redemption_of(redemption) for redemption in found]

    @strawberry.field(description="The player's referral code and the friends it brought.")
    async def referral(self, info: Info) -> ReferralInfo:
        return referral_info_of(await info.context.service.economy.referral(self.id))


def page_size(first: int | None) -> int:
    """A page size argument, 20 when not given."""
    first = 20 if first is None else first
    if not 0 < first <= MAX_PAGE:
        raise InvalidArgumentError(f"first must be between 1 and {MAX_PAGE}, got {first}")
    return first


async def _progress(info: Info, player_id: str) -> tuple[EngineProgram, PlayerProgress]:
    """The program in use and the player's progress, read once per request."""
    return info.context.service.program, await info.context.progress.load(player_id)
