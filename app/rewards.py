"""Redemptions in SQL: spending points on the rewards catalog, atomically.

One transaction locks the player's account (so their balance and their
count of this reward cannot move underneath), then the reward's stock row
(always in that order, so redemptions never deadlock), asks the engine's
rules, and writes the redemption, its ledger debit, the stock and its
webhook deliveries (app.webhooks.outbox) together.
Balance and stock therefore never go below zero, whatever the number of
processes redeeming at once. The idempotency key is unique per player: the
same key returns the same redemption, without charging again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Index,
    Row,
    UniqueConstraint,
    func,
    insert,
    select,
    update,
)
from sqlmodel import Field, SQLModel

from app.points import append, expire_due, lock_account, save
from app.sql import (
    Database,
    UTCDateTime,
    record_id,
    row_as,
    table,
    translated_errors,
    upsert,
    writing,
)
from app.webhooks import outbox
from engine.errors import IdempotencyKeyReusedError
from engine.points import LedgerReason
from engine.program.program import Program
from engine.rewards import Redemption, Standing, catalog_reward, check_redemption


class RedemptionRecord(SQLModel, table=True):
    __tablename__ = "redemption"
    __table_args__ = (
        UniqueConstraint(
            "player_id", "idempotency_key", name="uq_redemption_player_id_idempotency_key"
        ),
        Index("ix_redemption_player_id_reward_id", "player_id", "reward_id"),
    )

    id: int | None = record_id()
    player_id: str
    reward_id: str
    cost: int
    idempotency_key: str
    created_at: datetime = Field(sa_type=UTCDateTime)


class RewardStock(SQLModel, table=True):
    """How many of a reward with a stock were redeemed, by everyone."""

    __tablename__ = "reward_stock"

    reward_id: str = Field(primary_key=True)
    redeemed: int = 0


REDEMPTIONS = table(RedemptionRecord)
STOCK = table(RewardStock)


def redeem(
    database: Database,
    program: Program,
    player_id: str,
    reward_id: str,
    idempotency_key: str,
    now: datetime,
) -> Redemption:
    """Spend the reward's cost, or raise the typed error saying why not."""
    catalog_reward(program, reward_id)  # an unknown reward takes no lock
    with writing(database) as connection:
        account = lock_account(connection, player_id)
        found = connection.execute(
            select(REDEMPTIONS).where(
                REDEMPTIONS.c.player_id == player_id,
                REDEMPTIONS.c.idempotency_key == idempotency_key,
            )
        ).one_or_none()
        if found is not None:
            if found.reward_id != reward_id:
                raise IdempotencyKeyReusedError(
                    f"idempotency key {idempotency_key!r} already redeemed {found.reward_id!r}; "
                    "use a new key for each redemption"
                )
            return _redemption(found)
        expire_due(connection, account, now)
        has_stock = program.rewards[reward_id].stock is not None
        standing = Standing(
            balance=account.balance,
            tier_id=account.tier_id,
            redeemed_by_player=_count(connection, player_id, reward_id),
            redeemed_in_all=_lock_stock(connection, reward_id) if has_stock else 0,
        )
        reward = check_redemption(program, reward_id, standing)
        values = {
            "player_id": player_id,
            "reward_id": reward_id,
            "cost": reward.cost,
            "idempotency_key": idempotency_key,
            "created_at": now,
        }
        redemption_id = connection.execute(
            insert(REDEMPTIONS).values(values).returning(REDEMPTIONS.c.id)
        ).scalar_one()
        append(connection, account, -reward.cost, LedgerReason.REDEEM, str(redemption_id), now)
        if has_stock:
            connection.execute(
                update(STOCK)
                .where(STOCK.c.reward_id == reward_id)
                .values(redeemed=STOCK.c.redeemed + 1)
            )
        save(connection, account)
        redemption = Redemption(
            id=str(redemption_id),
            player_id=player_id,
            reward_id=reward_id,
            cost=reward.cost,
            idempotency_key=idempotency_key,
            created_at=now,
        )
        outbox.redeemed(connection, redemption)
        return redemption


def _count(connection: Connection, player_id: str, reward_id: str) -> int:
    return int(
        connection.execute(
            select(func.count()).where(
                REDEMPTIONS.c.player_id == player_id, REDEMPTIONS.c.reward_id == reward_id
            )
        ).scalar_one()
    )


def _lock_stock(connection: Connection, reward_id: str) -> int:
    """How many of the reward were redeemed, its row locked until the transaction ends."""
    connection.execute(
        upsert(connection, STOCK)
        .values(reward_id=reward_id, redeemed=0)
        .on_conflict_do_nothing(index_elements=["reward_id"])
    )
    return int(
        connection.execute(
            select(STOCK.c.redeemed).where(STOCK.c.reward_id == reward_id).with_for_update()
        ).scalar_one()
    )


def redemptions(database: Database, player_id: str, limit: int) -> list[Redemption]:
    """A player's redemptions, newest first."""
    statement = (
        select(REDEMPTIONS)
        .where(REDEMPTIONS.c.player_id == player_id)
        .order_by(REDEMPTIONS.c.id.desc())
        .limit(limit)
    )
    with translated_errors(database), database.connect() as connection:
        return [_redemption(row) for row in connection.execute(statement)]


def redeemed_in_all(database: Database) -> dict[str, int]:
    """Redemptions so far of every reward that has a stock."""
    with translated_errors(database), database.connect() as connection:
        return {row.reward_id: row.redeemed for row in connection.execute(select(STOCK))}


def _redemption(row: Row[Any]) -> Redemption:
    return row_as(Redemption, row, id=str(row.id))
