"""Granting points in SQL: what events earn and what unlocks carry, once per source.

The group commit (app.recording) calls `grant` in the transaction of a burst
of recorded events, for every event (duplicates too) and every unlock,
before it answers: a retried event finds its entry and grants nothing, and
one whose first attempt died before this point is granted now. Accounts are
locked in player order, so concurrent transactions never deadlock.

The earnings of an event depend on the player's tier (its multiplier), which
is only known under the account's lock; a `Grant` therefore carries a
function from multiplier to earnings, computed by the engine's rules.

A grant may also mark the player's first event qualifying a referral, in the
same transaction, so a player is "new" for referrals until exactly then.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Table, bindparam, select, tuple_
from sqlalchemy.sql import Executable

from app import referrals, tiers
from app.points import (
    USAGE,
    Account,
    Credit,
    credit_all,
    found_sources,
    lock_accounts,
    save_all,
)
from app.sql import Database, Upsert, chunks, per_database, writing
from app.tiers import Announcement
from engine.points import Earning, LedgerReason
from engine.program.program import Program, TierLadder
from engine.tiers import level_for

ONE = Decimal(1)


@dataclass(frozen=True, slots=True)
class Grant:
    player_id: str
    reason: LedgerReason
    reference: str
    #: Earnings for the player's tier multiplier.
    earnings: Callable[[Decimal], Sequence[Earning]]
    #: When the source was recorded: the credit's time, from which its points lapse.
    at: datetime
    #: An event that qualifies a referral of its player.
    qualifies: bool = False


@dataclass(frozen=True, slots=True)
class Granted:
    #: Tier changes to claim as unlocks.
    announcements: list[Announcement]
    #: Players whose first referral-qualifying event this was, and who have a
    #: referral waiting for it.
    qualified: list[str]


def fixed(points: int) -> Callable[[Decimal], Sequence[Earning]]:
    """Earnings that no multiplier changes: the points of an unlock."""
    return lambda _multiplier: [Earning(points)]


def _using(insert_into: Callable[[Table], Upsert]) -> Executable:
    statement = insert_into(USAGE)
    return statement.on_conflict_do_update(
        index_elements=["player_id", "bucket"],
        set_={"points": USAGE.c.points + statement.excluded.points},
    )


_USE = per_database(_using)
_USED = select(USAGE.c.player_id, USAGE.c.bucket, USAGE.c.points).where(
    tuple_(USAGE.c.player_id, USAGE.c.bucket).in_(bindparam("buckets", expanding=True))
)


def grant(
    connection: Connection, grants: Sequence[Grant], program: Program, timezone: ZoneInfo
) -> Granted:
    """Credit every grant not credited before; return the tier changes to announce
    for the players involved (new ones, and any a crash left unannounced) and
    the players who just became eligible to qualify a referral.

    Set-based: a handful of statements however many grants (locks, sources
    already granted, cap usage, new entries, accounts, tiers), each built once
    per process; one statement per event made granting cost ten times what
    recording does."""
    if not grants:
        return Granted([], [])
    by_player: dict[str, list[Grant]] = {}
    for item in grants:
        by_player.setdefault(item.player_id, []).append(item)
    players = sorted(by_player)
    ladder = program.tiers
    expire_after = program.points_expire_after
    qualified = []
    accounts = lock_accounts(connection, players)
    before = {player_id: replace(account) for player_id, account in accounts.items()}
    found = found_sources(connection, ((g.player_id, g.reason, g.reference) for g in grants))
    pending: list[tuple[Grant, Sequence[Earning]]] = []
    for player_id in players:
        account = accounts[player_id]
        multiplier = ladder.get(account.tier_id).multiplier if ladder is not None else ONE
        for item in by_player[player_id]:
            if item.qualifies and account.first_qualifying_at is None:
                account.first_qualifying_at = item.at
                qualified.append(player_id)
            source = (player_id, item.reason.value, item.reference)
            if source not in found:
                found.add(source)  # a source twice in the batch is granted once
                pending.append((item, item.earnings(multiplier)))
    points = _within_caps(connection, pending)
    credited = credit_all(
        connection,
        accounts,
        [
            Credit(
                item.player_id,
                given,
                item.reason,
                item.reference,
                item.at,
                item.at + expire_after if expire_after is not None else None,
            )
            for (item, _), given in zip(pending, points, strict=True)
            if given > 0
        ],
    )
    if ladder is not None:
        latest = {player_id: max(g.at for g in by_player[player_id]) for player_id in credited}
        _upgrade(connection, [accounts[p] for p in sorted(credited)], ladder, latest, timezone)
    save_all(connection, (accounts[p] for p in players if accounts[p] != before[p]))
    announcements = [
        Announcement(player_id, unlock)
        for player_id in players
        if (unlock := accounts[player_id].tier_unlock) is not None
    ]
    return Granted(announcements, referrals.pending(connection, qualified))


def grant_now(
    database: Database, grants: Sequence[Grant], program: Program, timezone: ZoneInfo
) -> Granted:
    """`grant` in a transaction of its own (start-up recovery)."""
    with writing(database) as connection:
        return grant(connection, grants, program, timezone)


def _within_caps(
    connection: Connection, pending: Sequence[tuple[Grant, Sequence[Earning]]]
) -> list[int]:
    """The points of each pending grant that its rules' caps still allow in their
    periods, taken in order; the usage is written back, one row per bucket."""
    capped = sorted(
        {
            (item.player_id, earning.bucket)
            for item, earnings in pending
            for earning in earnings
            if earning.bucket is not None and earning.cap is not None
        }
    )
    used: dict[tuple[str, str], int] = {}
    for part in chunks(capped):
        used.update(
            ((row.player_id, row.bucket), row.points)
            for row in connection.execute(_USED, {"buckets": list(part)})
        )
    taken: dict[tuple[str, str], int] = {}
    points = []
    for item, earnings in pending:
        total = 0
        for earning in earnings:
            if earning.bucket is None or earning.cap is None:
                total += earning.points
                continue
            bucket = (item.player_id, earning.bucket)
            so_far = used.get(bucket, 0) + taken.get(bucket, 0)
            allowed = max(0, min(earning.points, earning.cap - so_far))
            if allowed:
                taken[bucket] = taken.get(bucket, 0) + allowed
            total += allowed
        points.append(total)
    if taken:
        connection.execute(
            _USE(connection),
            [
                {"player_id": player_id, "bucket": bucket, "points": allowed}
                for (player_id, bucket), allowed in sorted(taken.items())
            ],
        )
    return points


def _upgrade(
    connection: Connection,
    accounts: Sequence[Account],
    ladder: TierLadder,
    latest: Mapping[str, datetime],
    timezone: ZoneInfo,
) -> None:
    """Move each (locked) account up at once when its qualifying points reach a
    higher level, as of its latest grant; only those that may climb are
    looked at."""
    climbing = [account for account in accounts if tiers.may_climb(account, ladder)]
    qualifying = tiers.qualifying_of(connection, climbing, latest, ladder)
    for account in climbing:
        reached = level_for(ladder, qualifying.get(account.player_id, 0))
        if reached.rank > ladder.get(account.tier_id).rank:
            now = latest[account.player_id]
            tiers.change_level(account, reached, now, now.astimezone(timezone).date())
