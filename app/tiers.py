"""Tiers in SQL: each player's level lives on their points account.

Qualifying points are the credits of the qualifying reasons within the
ladder's rolling window. Summing a player's ledger for every event made an
event's cost grow with the player's history, so the account keeps a running
figure instead: `qualifying`, the sum of qualifying credits made after
`qualifying_since` (a past start of the window). New credits add to it as
they are written (app.points); bringing it up to date subtracts only the
credits that left the window since, through the (player, created_at) index.
A window that grew, or a clock that went back, starts it over from the
ledger, as does a player never counted (`qualifying_since` is None).
Everything agrees to the credit with summing the ledger. A change of level is written with the
unlock key that announces it (`tier_unlock`); the service claims that unlock
in the counter store after the transaction commits and then clears the key,
so a crash in between only delays the announcement to the player's next
grant or to the next start-up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, Select, and_, func, or_, select, update

from app.points import ACCOUNTS, ENTRIES, Account, lock_account, save
from app.sql import Database, chunks, scan, translated_errors, writing
from engine.points import QUALIFYING
from engine.program.program import TierDef, TierLadder
from engine.store import keys
from engine.tiers import TierStatus, level_for, next_level, status


@dataclass(frozen=True, slots=True)
class Announcement:
    """A tier change to claim as an unlock."""

    player_id: str
    key: str


@dataclass(frozen=True, slots=True)
class Review:
    period: date
    reviewed: int
    upgraded: int
    downgraded: int
    announcements: list[Announcement]


_QUALIFYING_REASONS = [reason.value for reason in QUALIFYING]
#: Players whose figures one statement brings up to date.
_PER_STATEMENT = 100


def may_climb(account: Account, ladder: TierLadder) -> bool:
    """Whether the account's qualifying points may have reached a higher level.

    The running figure only loses the credits that left the window since it
    was last brought up to date, so it is an upper bound of the points now:
    below the next level's threshold, the player cannot have reached it, and
    nothing needs reading. Most events of a player therefore cost no tier
    statement at all; a player never counted (no figure yet) is counted once.
    """
    following = next_level(ladder, ladder.get(account.tier_id))
    if following is None:
        return False
    return account.qualifying_since is None or account.qualifying >= following.qualifying_points


def qualifying_of(
    connection: Connection,
    accounts: Sequence[Account],
    moments: Mapping[str, datetime],
    ladder: TierLadder,
) -> dict[str, int]:
    """Each player's qualifying points at their moment, brought up to date on
    their (locked) accounts, which the caller saves. One statement per
    hundred players, whatever their history."""
    ranges: list[tuple[Account, datetime, datetime | None]] = []
    for account in accounts:
        start, since = moments[account.player_id] - ladder.window, account.qualifying_since
        if since is None or since > start:
            account.qualifying = 0
            ranges.append((account, start, None))
        elif since < start:
            ranges.append((account, since, start))
        account.qualifying_since = start
    for part in chunks(ranges):
        found = _credits(connection, part)
        for account, _after, until in part:
            credits = found.get(account.player_id, 0)
            account.qualifying += credits if until is None else -credits
    return {account.player_id: account.qualifying for account in accounts}


def _credits(
    connection: Connection, ranges: Sequence[tuple[Account, datetime, datetime | None]]
) -> dict[str, int]:
    """Qualifying credits of each player made in (after, until] (no end: None)."""
    conditions = [
        and_(
            ENTRIES.c.player_id == account.player_id,
            ENTRIES.c.created_at > after,
            *([] if until is None else [ENTRIES.c.created_at <= until]),
        )
        for account, after, until in ranges
    ]
    statement = (
        select(ENTRIES.c.player_id, func.sum(ENTRIES.c.delta))
        .where(ENTRIES.c.reason.in_(_QUALIFYING_REASONS), or_(*conditions))
        .group_by(ENTRIES.c.player_id)
    )
    return {player_id: int(total) for player_id, total in connection.execute(statement)}


def change_level(account: Account, level: TierDef, now: datetime, day: date) -> None:
    account.tier_id = level.id
    account.tier_since = now
    account.tier_unlock = keys.tier_unlock(level.id, day)


def upgrade(
    connection: Connection, account: Account, ladder: TierLadder, now: datetime, day: date
) -> None:
    """Move the (locked) account up at once when its qualifying points reach a higher level."""
    qualifying = qualifying_of(connection, [account], {account.player_id: now}, ladder)
    reached = level_for(ladder, qualifying[account.player_id])
    if reached.rank > ladder.get(account.tier_id).rank:
        change_level(account, reached, now, day)


def tier_status(
    database: Database, player_id: str, ladder: TierLadder, now: datetime
) -> TierStatus:
    """A player's tier now; the running figure is brought up to date in memory
    only (the next grant writes it)."""
    with translated_errors(database), database.connect() as connection:
        row = connection.execute(
            select(ACCOUNTS).where(ACCOUNTS.c.player_id == player_id)
        ).one_or_none()
        if row is None:
            return status(ladder, None, 0, None)
        account = Account.of(row)
        qualifying = qualifying_of(connection, [account], {player_id: now}, ladder)[player_id]
    return status(ladder, account.tier_id, qualifying, account.tier_since)


def review(
    database: Database, ladder: TierLadder, now: datetime, period: date, page: int = 500
) -> Review:
    """Apply the review of `period` to every account not yet reviewed for it:
    each moves to the level its qualifying points support now, down included."""
    done = period.isoformat()
    reviewed = upgraded = downgraded = 0
    announcements: list[Announcement] = []

    def not_reviewed(after: str) -> Select[Any]:
        return (
            select(ACCOUNTS.c.player_id)
            .where(
                or_(ACCOUNTS.c.reviewed.is_(None), ACCOUNTS.c.reviewed < done),
                ACCOUNTS.c.player_id > after,
            )
            .order_by(ACCOUNTS.c.player_id)
        )

    for player_id in scan(database, not_reviewed, page):
        with writing(database) as connection:
            account = lock_account(connection, player_id)
            if account.reviewed is not None and account.reviewed >= done:
                continue  # another reviewer got here first
            held = ladder.get(account.tier_id)
            qualifying = qualifying_of(connection, [account], {player_id: now}, ladder)
            reached = level_for(ladder, qualifying[player_id])
            if reached.rank != held.rank:
                change_level(account, reached, now, period)
                upgraded += reached.rank > held.rank
                downgraded += reached.rank < held.rank
            account.reviewed = done
            save(connection, account)
        reviewed += 1
        if account.tier_unlock is not None:
            announcements.append(Announcement(player_id, account.tier_unlock))
    return Review(period, reviewed, upgraded, downgraded, announcements)


def pending(database: Database, player_ids: list[str] | None = None) -> list[Announcement]:
    """Tier changes not yet claimed as unlocks (of these players, or of everyone)."""
    statement = select(ACCOUNTS.c.player_id, ACCOUNTS.c.tier_unlock).where(
        ACCOUNTS.c.tier_unlock.is_not(None)
    )
    if player_ids is not None:
        statement = statement.where(ACCOUNTS.c.player_id.in_(player_ids))
    with translated_errors(database), database.connect() as connection:
        return [
            Announcement(row.player_id, row.tier_unlock) for row in connection.execute(statement)
        ]


def announced(database: Database, announcement: Announcement) -> None:
    """The change was claimed; a newer change (another key) stays pending."""
    with writing(database) as connection:
        connection.execute(
            update(ACCOUNTS)
            .where(
                ACCOUNTS.c.player_id == announcement.player_id,
                ACCOUNTS.c.tier_unlock == announcement.key,
            )
            .values(tier_unlock=None)
        )


def tier_counts(database: Database, ladder: TierLadder) -> dict[str, int]:
    """Players holding each level of the ladder, by level id, lowest level first.

    Only players with a points account are counted (a player never granted
    a point holds the first level without one); an account on a level the
    program no longer has counts as the first level, as `TierLadder.get` does.
    """
    with translated_errors(database), database.connect() as connection:
        rows = connection.execute(
            select(ACCOUNTS.c.tier_id, func.count()).group_by(ACCOUNTS.c.tier_id)
        ).all()
    counts = dict.fromkeys((level.id for level in ladder.levels), 0)
    for tier_id, players in rows:
        counts[ladder.get(tier_id).id] += players
    return counts
