"""GraphQL types of the loyalty economy: points, the ledger, tiers, the rewards
catalog, redemptions and referrals, each built from an engine value by a
`*_of` function."""

from __future__ import annotations

from datetime import date, datetime

import strawberry

from engine import points as engine_points
from engine import referrals as engine_referrals
from engine import rewards as engine_rewards
from engine import tiers as engine_tiers
from engine.program.models import CatalogReward
from engine.program.program import Program as EngineProgram
from engine.program.program import TierDef
from schema.context import Info
from schema.types import Progress, progress_of

LedgerReason = strawberry.enum(engine_points.LedgerReason, name="LedgerReason")
ReferralStatus = strawberry.enum(engine_referrals.ReferralStatus, name="ReferralStatus")


@strawberry.type(description="A player's points.")
class PointsBalance:
    balance: int = strawberry.field(description="Points the player can spend now.")
    lifetime_earned: int = strawberry.field(description="Every point ever granted.")
    expiring_soon: int = strawberry.field(
        description="Points of the balance that lapse within 30 days unless spent."
    )


def balance_of(balance: engine_points.Balance) -> PointsBalance:
    return PointsBalance(
        balance=balance.balance,
        lifetime_earned=balance.lifetime_earned,
        expiring_soon=balance.expiring_soon,
    )


@strawberry.type(description="One movement of a player's points.")
class LedgerEntry:
    id: strawberry.ID
    delta: int = strawberry.field(description="Points added (positive) or taken (negative).")
    reason: LedgerReason  # type: ignore[valid-type]
    reference: str = strawberry.field(
        description="The source: event id (EARN), unlock key (REWARD), redemption id "
        "(REDEEM), latest expiry included (EXPIRE), idempotency key (ADJUST)."
    )
    note: str | None = strawberry.field(description="An admin's reason for an adjustment.")
    created_at: datetime
    expires_at: datetime | None = strawberry.field(
        description="When what is left of a credit lapses; null for debits and for points "
        "that never expire."
    )


def ledger_entry_of(line: engine_points.LedgerLine) -> LedgerEntry:
    return LedgerEntry(
        id=strawberry.ID(str(line.id)),
        delta=line.delta,
        reason=line.reason,
        reference=line.reference,
        note=line.note,
        created_at=line.created_at,
        expires_at=line.expires_at,
    )


@strawberry.type(description="A level of the tier ladder.")
class Tier:
    id: strawberry.ID
    name: str
    description: str
    qualifying_points: int
    multiplier: float = strawberry.field(description="Earn rules grant this many times.")
    benefits: list[str]


def tier_of(tier: TierDef) -> Tier:
    return Tier(
        id=strawberry.ID(tier.id),
        name=tier.name,
        description=tier.description,
        qualifying_points=tier.qualifying_points,
        multiplier=float(tier.multiplier),
        benefits=list(tier.benefits),
    )


@strawberry.type(description="Where a player stands on the tier ladder.")
class TierStatus:
    tier: Tier | None = strawberry.field(
        description="The player's tier; null only when the program has no tiers."
    )
    next_tier: Tier | None = strawberry.field(description="Null at the top.")
    qualifying_points: int = strawberry.field(
        description="Points earned within the ladder's window (earn rules, unlocks, referrals)."
    )
    since: datetime | None = strawberry.field(
        description="When the player last changed tier; null while at the starting tier."
    )
    progress: Progress = strawberry.field(
        description="Qualifying points towards the next tier (completed at the top)."
    )


def tier_status_of(found: engine_tiers.TierStatus | None) -> TierStatus:
    if found is None:
        return TierStatus(
            tier=None,
            next_tier=None,
            qualifying_points=0,
            since=None,
            progress=Progress(current=0, target=1, percent=0, completed=False),
        )
    return TierStatus(
        tier=tier_of(found.level),
        next_tier=tier_of(found.next) if found.next is not None else None,
        qualifying_points=found.qualifying_points,
        since=found.since,
        progress=progress_of(found.progress),
    )


@strawberry.type(description="A reward of the catalog, bought with points.")
class Reward:
    id: strawberry.ID
    name: str
    description: str
    icon: str | None
    cost: int
    stock: int | None = strawberry.field(description="How many in all; null when unlimited.")
    stock_left: int | None = strawberry.field(description="How many are left; null when unlimited.")
    per_player_limit: int | None
    min_tier: Tier | None = strawberry.field(description="Needed, or any tier above it.")


def reward_of(
    program: EngineProgram, reward_id: str, reward: CatalogReward, stock_left: int | None
) -> Reward:
    min_tier = None
    if reward.min_tier is not None and program.tiers is not None:
        min_tier = tier_of(program.tiers.get(reward.min_tier))
    return Reward(
        id=strawberry.ID(reward_id),
        name=reward.name,
        description=reward.description,
        icon=reward.icon,
        cost=reward.cost,
        stock=reward.stock,
        stock_left=stock_left,
        per_player_limit=reward.per_player_limit,
        min_tier=min_tier,
    )


async def catalog(info: Info) -> list[Reward]:
    program = info.context.service.program
    stocked = await info.context.rewards.load_many(list(program.rewards))
    return [
        reward_of(program, reward_id, *found)
        for reward_id, found in zip(program.rewards, stocked, strict=True)
        if found is not None
    ]


@strawberry.type(description="Points spent on a reward.")
class Redemption:
    id: strawberry.ID
    reward_id: strawberry.ID
    cost: int = strawberry.field(description="Points it cost when redeemed.")
    idempotency_key: str
    created_at: datetime

    @strawberry.field(description="The reward; null when it left the catalog since.")
    async def reward(self, info: Info) -> Reward | None:
        found = await info.context.rewards.load(str(self.reward_id))
        if found is None:
            return None
        return reward_of(info.context.service.program, str(self.reward_id), *found)


def redemption_of(redemption: engine_rewards.Redemption) -> Redemption:
    return Redemption(
        id=strawberry.ID(redemption.id),
        reward_id=strawberry.ID(redemption.reward_id),
        cost=redemption.cost,
        idempotency_key=redemption.idempotency_key,
        created_at=redemption.created_at,
    )


@strawberry.type
class ExpiryResult:
    players: int = strawberry.field(description="Players who lost lapsed points.")
    points: int = strawberry.field(description="Points expired in all.")


@strawberry.type
class TierReviewResult:
    period: date = strawberry.field(description="First day of the review period applied.")
    reviewed: int = strawberry.field(description="Players reviewed now (not before).")
    upgraded: int
    downgraded: int


@strawberry.type(description="A player's referral code and what it brought.")
class ReferralInfo:
    code: str = strawberry.field(description="Give it to friends; made on first use.")
    referred_count: int = strawberry.field(description="Players who applied the code.")
    qualified_count: int = strawberry.field(
        description="Of those, the ones whose first qualifying event rewarded both players."
    )


def referral_info_of(found: engine_referrals.ReferralInfo) -> ReferralInfo:
    return ReferralInfo(
        code=found.code,
        referred_count=found.referred_count,
        qualified_count=found.qualified_count,
    )


@strawberry.type(description="A referral code applied by a new player.")
class ReferralResult:
    code: str
    status: ReferralStatus  # type: ignore[valid-type]
    reason: str | None = strawberry.field(description="Why a qualified referral was refused.")
    applied_at: datetime
    qualified_at: datetime | None


def referral_result_of(found: engine_referrals.Referral) -> ReferralResult:
    return ReferralResult(
        code=found.code,
        status=found.status,
        reason=found.reason,
        applied_at=found.applied_at,
        qualified_at=found.qualified_at,
    )
