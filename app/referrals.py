"""Referrals in SQL: each player's code, and each referee's one referral.

`referral.referee_id` is the primary key: a referee has one referrer, and a
second application of another code cannot slip in beside the first. A
referral is rewarded in one transaction that locks both players' accounts
(in player order, so two referrals in opposite directions cannot deadlock),
re-reads its status and grants both REFERRAL entries, whose references make
each grant unique, with the reward's webhook deliveries (app.webhooks.outbox);
the rules are the engine's (engine.referrals).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, Index, Row, UniqueConstraint, func, select, update
from sqlmodel import Field, SQLModel

from app import tiers
from app.points import ACCOUNTS, Account, append, lock_account, save
from app.sql import Database, UTCDateTime, row_as, table, translated_errors, upsert, writing
from app.tiers import Announcement
from app.webhooks import outbox
from engine.errors import UnknownReferralCodeError
from engine.points import LedgerReason
from engine.program.program import Program
from engine.referrals import (
    Referral,
    ReferralInfo,
    ReferralStatus,
    check_application,
    new_code,
    normalized,
    refusal,
    settings,
)


class ReferralCode(SQLModel, table=True):
    __tablename__ = "referral_code"
    __table_args__ = (UniqueConstraint("code", name="uq_referral_code_code"),)

    player_id: str = Field(primary_key=True)
    code: str


class ReferralRecord(SQLModel, table=True):
    __tablename__ = "referral"
    __table_args__ = (
        Index("ix_referral_referrer_id_status", "referrer_id", "status", "qualified_at"),
    )

    referee_id: str = Field(primary_key=True)
    referrer_id: str
    code: str
    status: str
    #: Why a qualified referral was not rewarded.
    reason: str | None = None
    applied_at: datetime = Field(sa_type=UTCDateTime)
    qualified_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


CODES = table(ReferralCode)
REFERRALS = table(ReferralRecord)


def code_of(database: Database, player_id: str) -> str:
    """The player's code, made the first time it is asked for."""
    with writing(database) as connection:
        found = _code(connection, player_id)
        while found is None:
            # A clash with another player's code inserts nothing; draw again.
            connection.execute(
                upsert(connection, CODES)
                .values(player_id=player_id, code=new_code())
                .on_conflict_do_nothing()
            )
            found = _code(connection, player_id)
        return found


def _code(connection: Connection, player_id: str) -> str | None:
    found: str | None = connection.execute(
        select(CODES.c.code).where(CODES.c.player_id == player_id)
    ).scalar_one_or_none()
    return found


def info(database: Database, player_id: str) -> ReferralInfo:
    code = code_of(database, player_id)
    with translated_errors(database), database.connect() as connection:
        counts: dict[str, int] = dict(
            connection.execute(
                select(REFERRALS.c.status, func.count())
                .where(REFERRALS.c.referrer_id == player_id)
                .group_by(REFERRALS.c.status)
            ).all()
        )
    return ReferralInfo(
        code=code,
        referred_count=sum(counts.values()),
        qualified_count=counts.get(ReferralStatus.QUALIFIED.value, 0),
    )


def apply(
    database: Database, program: Program, referee_id: str, code: str, now: datetime
) -> Referral:
    """Record that `referee_id` was referred by the owner of `code`, or refuse."""
    settings(program)
    wanted = normalized(code)
    with writing(database) as connection:
        referrer_id = connection.execute(
            select(CODES.c.player_id).where(CODES.c.code == wanted)
        ).scalar_one_or_none()
        if referrer_id is None:
            raise UnknownReferralCodeError(f"no player has the referral code {code!r}")
        account = lock_account(connection, referee_id)
        found = _referral(connection, referee_id)
        existing = check_application(
            referee_id, referrer_id, wanted, found, account.first_qualifying_at
        )
        if existing is not None:
            return existing
        connection.execute(
            REFERRALS.insert().values(
                referee_id=referee_id,
                referrer_id=referrer_id,
                code=wanted,
                status=ReferralStatus.PENDING.value,
                applied_at=now,
            )
        )
    return Referral(referee_id, referrer_id, wanted, ReferralStatus.PENDING, None, now, None)


def pending(connection: Connection, referee_ids: Sequence[str]) -> list[str]:
    """Which of these players have a referral waiting for them to qualify."""
    if not referee_ids:
        return []
    return list(
        connection.execute(
            select(REFERRALS.c.referee_id).where(
                REFERRALS.c.referee_id.in_(referee_ids),
                REFERRALS.c.status == ReferralStatus.PENDING.value,
            )
        ).scalars()
    )


def reward(
    database: Database,
    program: Program,
    referee_id: str,
    now: datetime,
    month: tuple[datetime, datetime],
    day: date,
) -> list[Announcement]:
    """Reward the referee's pending referral now that they qualified, or record
    why not; returns the tier changes the points caused."""
    found = settings(program)
    with writing(database) as connection:
        referral = _referral(connection, referee_id)
        if referral is None or referral.status is not ReferralStatus.PENDING:
            return []
        referrer_id = referral.referrer_id
        accounts = {
            player_id: lock_account(connection, player_id)
            for player_id in sorted({referee_id, referrer_id})
        }
        referral = _referral(connection, referee_id)
        if referral is None or referral.status is not ReferralStatus.PENDING:
            return []  # another worker got here first
        rewarded = connection.execute(
            select(func.count()).where(
                REFERRALS.c.referrer_id == referrer_id,
                REFERRALS.c.status == ReferralStatus.QUALIFIED.value,
                REFERRALS.c.qualified_at >= month[0],
                REFERRALS.c.qualified_at < month[1],
            )
        ).scalar_one()
        reason = refusal(found, int(rewarded))
        status = ReferralStatus.REFUSED if reason else ReferralStatus.QUALIFIED
        connection.execute(
            update(REFERRALS)
            .where(REFERRALS.c.referee_id == referee_id)
            .values(status=status.value, reason=reason, qualified_at=now)
        )
        if reason is not None:
            return []
        expire_after = program.points_expire_after
        expires_at = now + expire_after if expire_after is not None else None
        for account, points, reference in (
            (accounts[referrer_id], found.referrer_points, f"referee:{referee_id}"),
            (accounts[referee_id], found.referee_points, f"referrer:{referrer_id}"),
        ):
            if points:
                append(
                    connection,
                    account,
                    points,
                    LedgerReason.REFERRAL,
                    reference,
                    now,
                    expires_at,
                )
        outbox.referral_rewarded(
            connection, referee_id, referrer_id, (found.referrer_points, found.referee_points), now
        )
        return _settle(connection, program, list(accounts.values()), now, day)


def _settle(
    connection: Connection, program: Program, accounts: list[Account], now: datetime, day: date
) -> list[Announcement]:
    announcements = []
    for account in accounts:
        if program.tiers is not None:
            tiers.upgrade(connection, account, program.tiers, now, day)
        save(connection, account)
        if account.tier_unlock is not None:
            announcements.append(Announcement(account.player_id, account.tier_unlock))
    return announcements


def unrewarded(database: Database) -> list[str]:
    """Referees who qualified but whose referral a crash left pending."""
    statement = (
        select(REFERRALS.c.referee_id)
        .join(ACCOUNTS, ACCOUNTS.c.player_id == REFERRALS.c.referee_id)
        .where(
            REFERRALS.c.status == ReferralStatus.PENDING.value,
            ACCOUNTS.c.first_qualifying_at.is_not(None),
        )
    )
    with translated_errors(database), database.connect() as connection:
        return list(connection.execute(statement).scalars())


def _referral(connection: Connection, referee_id: str) -> Referral | None:
    row = connection.execute(
        select(REFERRALS).where(REFERRALS.c.referee_id == referee_id)
    ).one_or_none()
    return None if row is None else _of(row)


def _of(row: Row[Any]) -> Referral:
    return row_as(Referral, row, status=ReferralStatus(row.status))
