"""Tiers in SQL: each player's level lives on their points account.

Qualifying points are read from the ledger (credits of the qualifying
reasons within the ladder's window). A change of level is written with the
unlock key that announces it (`tier_unlock`); the service claims that unlock
in the counter store after the transaction commits and then clears the key,
so a crash in between only delays the announcement to the player's next
grant or to the next start-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Connection, Engine, func, or_, select, update

from app.ledger import ACCOUNTS, ENTRIES, Account, lock_account, save, writing
from app.records import translated_errors
from engine.points import QUALIFYING
from engine.program.program import TierDef, TierLadder
from engine.store import keys
from engine.tiers import TierStatus, level_for, status


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


def qualifying_points(
    connection: Connection, player_id: str, ladder: TierLadder, now: datetime
) -> int:
    total = connection.execute(
        select(func.coalesce(func.sum(ENTRIES.c.delta), 0)).where(
            ENTRIES.c.player_id == player_id,
            ENTRIES.c.reason.in_([reason.value for reason in QUALIFYING]),
            ENTRIES.c.created_at > now - ladder.window,
        )
    ).scalar_one()
    return int(total)


def change_level(account: Account, level: TierDef, now: datetime, day: date) -> None:
    account.tier_id = level.id
    account.tier_since = now
    account.tier_unlock = keys.tier_unlock(level.id, day)


def upgrade(
    connection: Connection, account: Account, ladder: TierLadder, now: datetime, day: date
) -> None:
    """Move the (locked) account up at once when its qualifying points reach a higher level."""
    reached = level_for(ladder, qualifying_points(connection, account.player_id, ladder, now))
    if reached.rank > ladder.get(account.tier_id).rank:
        change_level(account, reached, now, day)


def tier_status(db: Engine, player_id: str, ladder: TierLadder, now: datetime) -> TierStatus:
    with translated_errors(db), db.connect() as connection:
        row = connection.execute(
            select(ACCOUNTS.c.tier_id, ACCOUNTS.c.tier_since).where(
                ACCOUNTS.c.player_id == player_id
            )
        ).one_or_none()
        qualifying = qualifying_points(connection, player_id, ladder, now)
    tier_id, since = (None, None) if row is None else (row.tier_id, row.tier_since)
    return status(ladder, tier_id, qualifying, since)


def review(db: Engine, ladder: TierLadder, now: datetime, period: date, page: int = 500) -> Review:
    """Apply the review of `period` to every account not yet reviewed for it:
    each moves to the level its qualifying points support now, down included."""
    done = period.isoformat()
    reviewed = upgraded = downgraded = 0
    announcements: list[Announcement] = []
    while True:
        with translated_errors(db), db.connect() as connection:
            players = list(
                connection.execute(
                    select(ACCOUNTS.c.player_id)
                    .where(or_(ACCOUNTS.c.reviewed.is_(None), ACCOUNTS.c.reviewed < done))
                    .order_by(ACCOUNTS.c.player_id)
                    .limit(page)
                ).scalars()
            )
        for player_id in players:
            with writing(db) as connection:
                account = lock_account(connection, player_id)
                if account.reviewed is not None and account.reviewed >= done:
                    continue  # another reviewer got here first
                held = ladder.get(account.tier_id)
                reached = level_for(ladder, qualifying_points(connection, player_id, ladder, now))
                if reached.rank != held.rank:
                    change_level(account, reached, now, period)
                    upgraded += reached.rank > held.rank
                    downgraded += reached.rank < held.rank
                account.reviewed = done
                save(connection, account)
            reviewed += 1
            if account.tier_unlock is not None:
                announcements.append(Announcement(player_id, account.tier_unlock))
        if len(players) < page:
            return Review(period, reviewed, upgraded, downgraded, announcements)


def pending(db: Engine, player_ids: list[str] | None = None) -> list[Announcement]:
    """Tier changes not yet claimed as unlocks (of these players, or of everyone)."""
    statement = select(ACCOUNTS.c.player_id, ACCOUNTS.c.tier_unlock).where(
        ACCOUNTS.c.tier_unlock.is_not(None)
    )
    if player_ids is not None:
        statement = statement.where(ACCOUNTS.c.player_id.in_(player_ids))
    with translated_errors(db), db.connect() as connection:
        return [
            Announcement(row.player_id, row.tier_unlock) for row in connection.execute(statement)
        ]


def announced(db: Engine, announcement: Announcement) -> None:
    """The change was claimed; a newer change (another key) stays pending."""
    with writing(db) as connection:
        connection.execute(
            update(ACCOUNTS)
            .where(
                ACCOUNTS.c.player_id == announcement.player_id,
                ACCOUNTS.c.tier_unlock == announcement.key,
            )
            .values(tier_unlock=None)
        )
