"""Points: what an event earns under the program's earn rules, and the words
of the ledger.

The rules are decided here, beside the other rules of the program; the
service only keeps the result in its SQL ledger. Amounts are multiplied in
decimal and rounded down once, so 4.35 at 10 points per 1.00 is 43 and not
the 42 a float would give. A cap counts per period of the player's own
timezone, like challenges; the ledger enforces it, because only the ledger
knows what the rule already granted in that period.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from enum import StrEnum
from zoneinfo import ZoneInfo

from engine import periods
from engine.conditions import lookup
from engine.events import Event
from engine.periods import Granularity
from engine.program.program import EarnRuleDef, Program

#: `expiringSoon` counts the points that lapse within this long.
EXPIRING_SOON = timedelta(days=30)


class LedgerReason(StrEnum):
    """Why points moved; with the reference, a source's identity in the ledger."""

    EARN = "earn"  # an earn rule; reference: the event id
    REWARD = "reward"  # the points of an unlock; reference: the unlock key
    REDEEM = "redeem"  # a redemption; reference: the redemption id
    EXPIRE = "expire"  # points that lapsed; reference: the latest expiry they include
    ADJUST = "adjust"  # an admin's correction; reference: its idempotency key
    REFERRAL = "referral"  # a referral reward; reference: the referral


#: Reasons whose points count towards a tier (adjustments correct a balance, not a status).
QUALIFYING = (LedgerReason.EARN, LedgerReason.REWARD, LedgerReason.REFERRAL)


@dataclass(frozen=True, slots=True)
class Earning:
    """Points one source grants. `bucket` names the cap's rule and period
    (`<rule id>:<period key>`), which may hold at most `cap` points."""

    points: int
    bucket: str | None = None
    cap: int | None = None


@dataclass(frozen=True, slots=True)
class Balance:
    balance: int
    lifetime_earned: int
    expiring_soon: int


@dataclass(frozen=True, slots=True)
class LedgerLine:
    """One entry of a player's ledger; `id` orders entries and pages them."""

    id: int
    player_id: str
    delta: int
    reason: LedgerReason
    reference: str
    note: str | None
    created_at: datetime
    expires_at: datetime | None


def earnings(
    program: Program, event: Event, timezone: ZoneInfo, multiplier: Decimal
) -> list[Earning]:
    """What a checked event (occurred_at filled in) earns under each matching rule."""
    found = []
    for rule in program.earn_rules_by_event.get(event.type, ()):
        if rule.where is not None and not rule.where(event.properties):
            continue
        base = _base(rule, event)
        if base is None:
            continue
        points = int((base * multiplier).to_integral_value(ROUND_FLOOR))
        if points <= 0:
            continue
        if rule.cap is None:
            found.append(Earning(points))
            continue
        assert event.occurred_at is not None
        period = periods.period_of(
            event.occurred_at, Granularity(rule.cap.per), timezone, program.week_start
        )
        found.append(Earning(points, f"{rule.id}:{period.key}", rule.cap.points))
    return found


def _base(rule: EarnRuleDef, event: Event) -> Decimal | None:
    """Points before the multiplier, unrounded; None when the event has no amount."""
    if rule.points is not None:
        return Decimal(rule.points)
    assert rule.per is not None and rule.rate is not None
    value = event.value if rule.per == "value" else lookup(event.properties, rule.per)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    # Through str: the decimal the sender wrote, not the float's binary neighbour.
    return Decimal(str(value)) * rule.rate
