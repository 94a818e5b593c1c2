"""Granting points in SQL: what events earn and what unlocks carry, once per source.

The service calls `grant` after the engine recorded a batch, for every event
(duplicates too) and every unlock, before it answers: a retried event finds
its entry and grants nothing, and one whose first attempt died before this
point is granted now. One transaction covers the batch; accounts are locked
in player order, so concurrent batches never deadlock.

The earnings of an event depend on the player's tier (its multiplier), which
is only known under the account's lock; a `Grant` therefore carries a
function from multiplier to earnings, computed by the engine's rules.

A grant may also mark the player's first event qualifying a referral, in the
same transaction, so a player is "new" for referrals until exactly then.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, select

from app import tier_records
from app.ledger import USAGE, append, find_entry, lock_account, save, upsert, writing
from app.tier_records import Announcement
from engine.points import Earning, LedgerReason
from engine.program.program import Program

ONE = Decimal(1)


@dataclass(frozen=True, slots=True)
class Grant:
    player_id: str
    reason: LedgerReason
    reference: str
    #: Earnings for the player's tier multiplier.
    earnings: Callable[[Decimal], Sequence[Earning]]
    #: An event that qualifies a referral of its player.
    qualifies: bool = False


@dataclass(frozen=True, slots=True)
class Granted:
    #: Tier changes to claim as unlocks.
    announcements: list[Announcement]
    #: Players whose first referral-qualifying event this was.
    qualified: list[str]


def fixed(points: int) -> Callable[[Decimal], Sequence[Earning]]:
    """Earnings that no multiplier changes: the points of an unlock."""
    return lambda _multiplier: [Earning(points)]


def grant(
    db: Engine, grants: Sequence[Grant], program: Program, now: datetime, timezone: ZoneInfo
) -> Granted:
    """Credit every grant not credited before; return the tier changes to announce
    for the players involved (new ones, and any a crash left unannounced) and
    the players who just became eligible to qualify a referral."""
    if not grants:
        return Granted([], [])
    by_player: dict[str, list[Grant]] = {}
    for item in grants:
        by_player.setdefault(item.player_id, []).append(item)
    ladder = program.tiers
    expire_after = program.points_expire_after
    expires_at = now + expire_after if expire_after is not None else None
    announcements, qualified = [], []
    with writing(db) as connection:
        for player_id in sorted(by_player):
            account = lock_account(connection, player_id)
            multiplier = ladder.get(account.tier_id).multiplier if ladder is not None else ONE
            credited = False
            for item in by_player[player_id]:
                if item.qualifies and account.first_qualifying_at is None:
                    account.first_qualifying_at = now
                    qualified.append(player_id)
                if find_entry(connection, player_id, item.reason, item.reference) is not None:
                    continue
                points = sum(
                    _within_cap(connection, player_id, earning)
                    for earning in item.earnings(multiplier)
                )
                if points > 0:
                    append(
                        connection, account, points, item.reason, item.reference, now, expires_at
                    )
                    credited = True
            if credited and ladder is not None:
                tier_records.upgrade(
                    connection, account, ladder, now, now.astimezone(timezone).date()
                )
            save(connection, account)
            if account.tier_unlock is not None:
                announcements.append(Announcement(player_id, account.tier_unlock))
    return Granted(announcements, qualified)


def _within_cap(connection: Connection, player_id: str, earning: Earning) -> int:
    """The part of an earning its rule's cap still allows in that period."""
    if earning.bucket is None or earning.cap is None:
        return earning.points
    used = connection.execute(
        select(USAGE.c.points).where(
            USAGE.c.player_id == player_id, USAGE.c.bucket == earning.bucket
        )
    ).scalar_one_or_none()
    allowed = max(0, min(earning.points, earning.cap - (used or 0)))
    if allowed:
        statement = upsert(connection, USAGE).values(
            player_id=player_id, bucket=earning.bucket, points=allowed
        )
        connection.execute(
            statement.on_conflict_do_update(
                index_elements=["player_id", "bucket"],
                set_={"points": USAGE.c.points + allowed},
            )
        )
    return allowed
