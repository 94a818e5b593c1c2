"""The points ledger in SQL: every movement of a player's points, and their account.

A ledger entry is (player, delta, reason, reference, time). UNIQUE(player,
reason, reference) is a source's identity: an event earns once, an unlock's
points are granted once, a redemption is paid once. The account row holds
the balance, which always equals the sum of the player's entries because
both change in the same transaction, under a lock on that row (SELECT ...
FOR UPDATE on PostgreSQL; the database's write lock, BEGIN IMMEDIATE, on
SQLite). Every write of one player therefore runs one after the other, on
any number of processes.

Expiry takes the points that expire soonest first. With `debited` the sum
of every debit so far (spent, expired, adjusted down), the points that have
lapsed by `now` are max(0, credits expired by now - debited): debits always
use up the soonest-expiring credits, so whatever of those credits is left
is exactly what lapses. Expiry is applied lazily, whenever an account is
read or debited, and in bulk by `expire_all` (an admin mutation).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Index,
    Row,
    Select,
    Table,
    UniqueConstraint,
    bindparam,
    func,
    insert,
    select,
    tuple_,
    update,
)
from sqlalchemy.sql import Executable
from sqlmodel import Field, SQLModel

from app.sql import (
    Database,
    Upsert,
    UTCDateTime,
    chunks,
    per_database,
    record_id,
    row_as,
    scan,
    table,
    writing,
)
from engine.errors import InsufficientPointsError, PointsError
from engine.points import EXPIRING_SOON, QUALIFYING, Balance, LedgerLine, LedgerReason


class LedgerEntry(SQLModel, table=True):
    """One movement of points; `id` orders a player's ledger and pages it."""

    __tablename__ = "points_ledger"
    __table_args__ = (
        UniqueConstraint("player_id", "reason", "reference", name="uq_points_ledger_source"),
        Index("ix_points_ledger_player_id_id", "player_id", "id"),
        Index("ix_points_ledger_player_id_expires_at", "player_id", "expires_at"),
        Index("ix_points_ledger_player_id_created_at", "player_id", "created_at"),
    )

    id: int | None = record_id()
    player_id: str
    delta: int
    reason: str
    reference: str
    note: str | None = None
    created_at: datetime = Field(sa_type=UTCDateTime)
    #: When a credit's unspent points lapse; None for debits and points that never do.
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class PointsAccount(SQLModel, table=True):
    """A player's balance and tier: the row their writes lock."""

    __tablename__ = "points_account"

    player_id: str = Field(primary_key=True)
    balance: int = 0
    #: Sum of every credit.
    lifetime_earned: int = 0
    #: Sum of every debit (redeemed, expired, adjusted down), as a positive number.
    debited: int = 0
    #: None until the player first changes tier (they start at the first level).
    tier_id: str | None = None
    tier_since: datetime | None = Field(default=None, sa_type=UTCDateTime)
    #: Unlock key of a tier change not yet claimed in the counter store.
    tier_unlock: str | None = None
    #: First day (ISO) of the last review period applied to this player.
    reviewed: str | None = None
    #: When the player's first event qualifying a referral arrived (referees must be new).
    first_qualifying_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    #: Running sum of the qualifying credits made after `qualifying_since` (app.tiers).
    qualifying: int = 0
    #: Start of the tier window when `qualifying` was last brought up to date; None: never.
    qualifying_since: datetime | None = Field(default=None, sa_type=UTCDateTime)


class EarnCapUsage(SQLModel, table=True):
    """Points a capped earn rule granted a player in one period (`<rule>:<period key>`)."""

    __tablename__ = "points_cap_usage"

    player_id: str = Field(primary_key=True)
    bucket: str = Field(primary_key=True)
    points: int


ENTRIES = table(LedgerEntry)
ACCOUNTS = table(PointsAccount)
USAGE = table(EarnCapUsage)


@dataclass
class Account:
    """The locked account row, changed in memory and written back by `save`."""

    player_id: str
    balance: int
    lifetime_earned: int
    debited: int
    tier_id: str | None
    tier_since: datetime | None
    tier_unlock: str | None
    reviewed: str | None
    first_qualifying_at: datetime | None
    qualifying: int
    qualifying_since: datetime | None

    @classmethod
    def of(cls, row: Row[Any]) -> Account:
        return cls(**{f.name: getattr(row, f.name) for f in fields(cls)})


@dataclass(frozen=True, slots=True)
class Credit:
    """Points a source is to add to its player's ledger, at the moment it was
    recorded, lapsing at `expires_at` (None: never)."""

    player_id: str
    points: int
    reason: LedgerReason
    reference: str
    at: datetime
    expires_at: datetime | None


def _locking(insert_into: Callable[[Table], Upsert]) -> Executable:
    # The (empty) update takes the row lock on PostgreSQL, as SELECT ... FOR UPDATE would.
    statement = insert_into(ACCOUNTS)
    return statement.on_conflict_do_update(
        index_elements=["player_id"], set_={"player_id": statement.excluded.player_id}
    ).returning(*ACCOUNTS.c)


def _crediting(insert_into: Callable[[Table], Upsert]) -> Executable:
    return (
        insert_into(ENTRIES)
        .on_conflict_do_nothing(index_elements=["player_id", "reason", "reference"])
        .returning(ENTRIES.c.player_id, ENTRIES.c.delta, ENTRIES.c.reason, ENTRIES.c.created_at)
    )


_LOCK = per_database(_locking)
_CREDIT = per_database(_crediting)
_SAVE = update(ACCOUNTS).where(ACCOUNTS.c.player_id == bindparam("account_id"))
_FIND = select(ENTRIES).where(
    ENTRIES.c.player_id == bindparam("player_id"),
    ENTRIES.c.reason == bindparam("reason"),
    ENTRIES.c.reference == bindparam("reference"),
)
_FOUND = select(ENTRIES.c.player_id, ENTRIES.c.reason, ENTRIES.c.reference).where(
    tuple_(ENTRIES.c.player_id, ENTRIES.c.reason, ENTRIES.c.reference).in_(
        bindparam("sources", expanding=True)
    )
)
_APPEND = insert(ENTRIES).returning(ENTRIES.c.id)


def lock_account(connection: Connection, player_id: str) -> Account:
    """The player's account, created when missing, locked until the transaction ends."""
    return lock_accounts(connection, [player_id])[player_id]


def lock_accounts(connection: Connection, player_ids: Sequence[str]) -> dict[str, Account]:
    """The players' accounts, created when missing, locked until the transaction
    ends. Rows are locked in the order given, which callers keep sorted: two
    batches then may wait for each other but never deadlock."""
    rows = connection.execute(
        _LOCK(connection),
        [
            {
                "player_id": player_id,
                "balance": 0,
                "lifetime_earned": 0,
                "debited": 0,
                "qualifying": 0,
            }
            for player_id in player_ids
        ],
    ).all()
    return {row.player_id: Account.of(row) for row in rows}


def save(connection: Connection, account: Account) -> None:
    save_all(connection, [account])


def save_all(connection: Connection, accounts: Iterable[Account]) -> None:
    """Write the (locked) accounts back, in one statement run for each."""
    rows = [
        {"account_id": account.player_id}
        | {f.name: getattr(account, f.name) for f in fields(account) if f.name != "player_id"}
        for account in accounts
    ]
    if rows:
        connection.execute(_SAVE, rows)


def find_entry(
    connection: Connection, player_id: str, reason: LedgerReason, reference: str
) -> LedgerLine | None:
    row = connection.execute(
        _FIND, {"player_id": player_id, "reason": reason.value, "reference": reference}
    ).one_or_none()
    return None if row is None else _line(row)


def found_sources(
    connection: Connection, sources: Iterable[tuple[str, LedgerReason, str]]
) -> set[tuple[str, str, str]]:
    """Which of these (player, reason, reference) already have their entry."""
    wanted = sorted(
        {(player_id, reason.value, reference) for player_id, reason, reference in sources}
    )
    found: set[tuple[str, str, str]] = set()
    for part in chunks(wanted):
        found.update(
            (row.player_id, row.reason, row.reference)
            for row in connection.execute(_FOUND, {"sources": list(part)})
        )
    return found


def credit_all(
    connection: Connection, accounts: Mapping[str, Account], credits: Sequence[Credit]
) -> set[str]:
    """Add credits (points > 0) of sources not in the ledger yet, in one statement,
    and move each (locked) account by the points actually added, so the balance
    stays the sum of the ledger even if a source was there; returns the players credited."""
    if not credits:
        return set()
    inserted = connection.execute(
        _CREDIT(connection),
        [
            {
                "player_id": credit.player_id,
                "delta": credit.points,
                "reason": credit.reason.value,
                "reference": credit.reference,
                "note": None,
                "created_at": credit.at,
                "expires_at": credit.expires_at,
            }
            for credit in credits
        ],
    ).all()
    for row in inserted:
        account = accounts[row.player_id]
        account.balance += row.delta
        account.lifetime_earned += row.delta
        count_qualifying(account, LedgerReason(row.reason), row.delta, row.created_at)
    return {row.player_id for row in inserted}


def count_qualifying(account: Account, reason: LedgerReason, delta: int, at: datetime) -> None:
    """Keep the account's running figure of qualifying points (app.tiers)
    up to date with an entry just added."""
    since = account.qualifying_since
    if reason in QUALIFYING and since is not None and at > since:
        account.qualifying += delta


def append(
    connection: Connection,
    account: Account,
    delta: int,
    reason: LedgerReason,
    reference: str,
    now: datetime,
    expires_at: datetime | None = None,
    note: str | None = None,
) -> LedgerLine:
    """Add an entry and move the (locked) account by the same delta."""
    kept_until = expires_at if delta > 0 else None
    values = {
        "player_id": account.player_id,
        "delta": delta,
        "reason": reason.value,
        "reference": reference,
        "note": note,
        "created_at": now,
        "expires_at": kept_until,
    }
    entry_id = connection.execute(_APPEND, values).scalar_one()
    account.balance += delta
    if delta > 0:
        account.lifetime_earned += delta
    else:
        account.debited -= delta
    count_qualifying(account, reason, delta, now)
    return LedgerLine(
        id=entry_id,
        player_id=account.player_id,
        delta=delta,
        reason=reason,
        reference=reference,
        note=note,
        created_at=now,
        expires_at=kept_until,
    )


def _credits_expiring_by(
    connection: Connection, player_id: str, moment: datetime
) -> tuple[int, datetime | None]:
    """Sum of the player's credits that expire by `moment`, and the latest such expiry."""
    total, latest = connection.execute(
        select(func.coalesce(func.sum(ENTRIES.c.delta), 0), func.max(ENTRIES.c.expires_at)).where(
            ENTRIES.c.player_id == player_id,
            ENTRIES.c.delta > 0,
            ENTRIES.c.expires_at <= moment,
        )
    ).one()
    return int(total), latest


def expire_due(connection: Connection, account: Account, now: datetime) -> int:
    """Expire what has lapsed by `now` (see the module docstring); returns the points."""
    expired, latest = _credits_expiring_by(connection, account.player_id, now)
    lapsed = expired - account.debited
    if lapsed <= 0 or latest is None:
        return 0
    # The latest expiry included names the entry: a later expiry always includes a later one.
    append(connection, account, -lapsed, LedgerReason.EXPIRE, latest.isoformat(), now)
    return lapsed


def balance(database: Database, player_id: str, now: datetime) -> Balance:
    """A player's balance after expiring what has lapsed."""
    with writing(database) as connection:
        account = _expired_account(connection, player_id, now)
        if account is None:
            return Balance(balance=0, lifetime_earned=0, expiring_soon=0)
        soon, _ = _credits_expiring_by(connection, player_id, now + EXPIRING_SOON)
        return Balance(
            balance=account.balance,
            lifetime_earned=account.lifetime_earned,
            expiring_soon=max(0, soon - account.debited),
        )


def entries(
    database: Database, player_id: str, before: int | None, limit: int, now: datetime
) -> list[LedgerLine]:
    """A player's entries, newest first, strictly before entry id `before`; what
    has lapsed by `now` is expired first, so the page agrees with the balance."""
    statement = select(ENTRIES).where(ENTRIES.c.player_id == player_id)
    if before is not None:
        statement = statement.where(ENTRIES.c.id < before)
    statement = statement.order_by(ENTRIES.c.id.desc()).limit(limit)
    with writing(database) as connection:
        _expired_account(connection, player_id, now)
        return [_line(row) for row in connection.execute(statement)]


def _expired_account(connection: Connection, player_id: str, now: datetime) -> Account | None:
    """The player's locked account with lapsed points expired; None if they have none."""
    exists = connection.execute(
        select(ACCOUNTS.c.player_id).where(ACCOUNTS.c.player_id == player_id)
    ).one_or_none()
    if exists is None:
        return None
    account = lock_account(connection, player_id)
    if expire_due(connection, account, now):
        save(connection, account)
    return account


def adjust(
    database: Database,
    player_id: str,
    delta: int,
    note: str,
    reference: str,
    now: datetime,
    expire_after: timedelta | None,
) -> LedgerLine:
    """An admin's correction; the same reference returns the first one unchanged."""
    if delta == 0:
        raise PointsError("delta must not be 0: an adjustment moves points")
    with writing(database) as connection:
        account = lock_account(connection, player_id)
        found = find_entry(connection, player_id, LedgerReason.ADJUST, reference)
        if found is not None:
            return found
        expire_due(connection, account, now)
        if account.balance + delta < 0:
            raise InsufficientPointsError(
                f"cannot take {-delta} points: the balance of {player_id!r} is {account.balance}"
            )
        expires_at = now + expire_after if expire_after is not None else None
        line = append(
            connection, account, delta, LedgerReason.ADJUST, reference, now, expires_at, note
        )
        save(connection, account)
        return line


def expire_all(database: Database, now: datetime, page: int = 500) -> tuple[int, int]:
    """Expire lapsed points of every player; returns (players touched, points expired).

    Only players holding a lapsed credit are locked, one transaction each.
    """
    players = points = 0

    def holding_lapsed(after: str) -> Select[Any]:
        return (
            select(ENTRIES.c.player_id)
            .where(ENTRIES.c.expires_at <= now, ENTRIES.c.player_id > after)
            .group_by(ENTRIES.c.player_id)
            .order_by(ENTRIES.c.player_id)
        )

    for player_id in scan(database, holding_lapsed, page):
        with writing(database) as connection:
            account = lock_account(connection, player_id)
            lapsed = expire_due(connection, account, now)
            save(connection, account)
        if lapsed:
            players, points = players + 1, points + lapsed
    return players, points


def _line(row: Row[Any]) -> LedgerLine:
    return row_as(LedgerLine, row, reason=LedgerReason(row.reason))
