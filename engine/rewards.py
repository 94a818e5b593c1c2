"""Redeeming a reward of the catalog: the rules, apart from where the numbers live.

The service reads the player's balance, tier and past redemptions and the
reward's stock under one lock, asks `check_redemption`, and writes the
redemption in the same transaction, so two concurrent redemptions cannot
both spend the last points or the last item.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from engine.errors import (
    InsufficientPointsError,
    LimitReachedError,
    OutOfStockError,
    TierRequiredError,
    UnknownRewardError,
)
from engine.program.models import CatalogReward
from engine.program.program import Program


@dataclass(frozen=True, slots=True)
class Redemption:
    id: str
    player_id: str
    reward_id: str
    cost: int
    idempotency_key: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Standing:
    """What a redemption depends on, read under the player's and the reward's locks."""

    balance: int
    tier_id: str | None
    redeemed_by_player: int
    redeemed_in_all: int


def catalog_reward(program: Program, reward_id: str) -> CatalogReward:
    reward = program.rewards.get(reward_id)
    if reward is None:
        known = ", ".join(program.rewards) or "none"
        raise UnknownRewardError(
            f"no reward {reward_id!r} in the catalog; query `rewards` for the ids ({known})"
        )
    return reward


def check_redemption(program: Program, reward_id: str, standing: Standing) -> CatalogReward:
    """The reward, or the typed error saying why this player cannot redeem it now."""
    reward = catalog_reward(program, reward_id)
    ladder = program.tiers
    if reward.min_tier is not None and ladder is not None:
        needed, held = ladder.get(reward.min_tier), ladder.get(standing.tier_id)
        if held.rank < needed.rank:
            raise TierRequiredError(
                f"{reward.name!r} needs the {needed.name} tier or above; the player is {held.name}"
            )
    limit = reward.per_player_limit
    if limit is not None and standing.redeemed_by_player >= limit:
        raise LimitReachedError(
            f"{reward.name!r} can be redeemed {limit} time{'s' * (limit != 1)} per player, "
            "and this player already has"
        )
    if standing.balance < reward.cost:
        raise InsufficientPointsError(
            f"{reward.name!r} costs {reward.cost} points; the balance is {standing.balance}"
        )
    if reward.stock is not None and standing.redeemed_in_all >= reward.stock:
        raise OutOfStockError(f"{reward.name!r} is out of stock (all {reward.stock} redeemed)")
    return reward
