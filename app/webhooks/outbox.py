"""Writing deliveries in the transaction that makes what they announce durable.

The outbox pattern: an unlock, a tier change, a redemption or a referral
reward and its deliveries commit together or not at all, so a crash can
neither lose a delivery of something that happened nor announce something
that did not. Each function here takes the caller's open connection:

- `unlocked`: the unlocks that a transaction copied into history for the
  first time (the group commit of recording, app.recording, and the copies
  of tier changes and start-up recovery, `History.save`); an
  unlock of kind TIER is a tier change.
- `redeemed`: a new redemption (app.rewards).
- `referral_rewarded`: a referral just rewarded (app.referrals).

Every enabled endpoint subscribed to the message's kind gets a delivery.
An endpoint added later does not receive what happened before it existed,
and a disabled one receives nothing until it is enabled again.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, select

from app.records import UnlockData
from app.sql import per_database
from app.webhooks.tables import DELIVERIES, ENDPOINTS
from engine.rewards import Redemption
from engine.unlocks import UnlockKind
from engine.webhooks import DeliveryStatus, Message, WebhookKind, body_of, kind_of_unlock

_SUBSCRIBED = select(ENDPOINTS.c.id, ENDPOINTS.c.kinds).where(ENDPOINTS.c.disabled_at.is_(None))
_INSERT = per_database(
    lambda insert: insert(DELIVERIES).on_conflict_do_nothing(
        index_elements=["endpoint_id", "kind", "source"]
    )
)


def new_delivery_id() -> str:
    return f"dlv_{uuid.uuid4().hex}"


def enqueue(connection: Connection, messages: Sequence[Message]) -> int:
    """A delivery of each message to every enabled endpoint subscribed to its
    kind (one read and one multi-row insert); returns how many were written
    or already there."""
    if not messages:
        return 0
    rows = []
    for endpoint_id, kinds in connection.execute(_SUBSCRIBED):
        wanted = set(kinds.split(","))
        for message in messages:
            if message.kind.value in wanted:
                delivery_id = new_delivery_id()
                rows.append(
                    {
                        "delivery_id": delivery_id,
                        "endpoint_id": endpoint_id,
                        "kind": message.kind.value,
                        "source": message.source,
                        "body": body_of(delivery_id, message),
                        "status": DeliveryStatus.PENDING.value,
                        "attempts": 0,
                        "created_at": message.time,
                        "retry_from": message.time,
                        "next_attempt_at": message.time,
                    }
                )
    if rows:
        connection.execute(_INSERT(connection), rows)
    return len(rows)


def unlocked(connection: Connection, unlocks: Sequence[UnlockData]) -> int:
    return enqueue(connection, [_unlock_message(unlock) for unlock in unlocks])


def _unlock_message(unlock: UnlockData) -> Message:
    kind = kind_of_unlock(UnlockKind(unlock.kind))
    source = f"{unlock.player_id}:{unlock.key}"
    if kind is WebhookKind.TIER_CHANGE:
        return Message(
            kind,
            source,
            unlock.unlocked_at,
            {
                "playerId": unlock.player_id,
                "tierId": unlock.key.split(":")[1],
                "title": unlock.title,
                "unlockKey": unlock.key,
                "changedAt": unlock.unlocked_at.isoformat(),
            },
        )
    return Message(
        kind,
        source,
        unlock.unlocked_at,
        {
            "playerId": unlock.player_id,
            "unlockKey": unlock.key,
            "unlockKind": unlock.kind,
            "title": unlock.title,
            "badgeId": unlock.badge_id,
            "points": unlock.points,
            "unlockedAt": unlock.unlocked_at.isoformat(),
        },
    )


def redeemed(connection: Connection, redemption: Redemption) -> int:
    return enqueue(
        connection,
        [
            Message(
                WebhookKind.REDEMPTION,
                redemption.id,
                redemption.created_at,
                {
                    "redemptionId": redemption.id,
                    "playerId": redemption.player_id,
                    "rewardId": redemption.reward_id,
                    "cost": redemption.cost,
                    "idempotencyKey": redemption.idempotency_key,
                    "createdAt": redemption.created_at.isoformat(),
                },
            )
        ],
    )


def referral_rewarded(
    connection: Connection,
    referee_id: str,
    referrer_id: str,
    points: tuple[int, int],
    at: datetime,
) -> int:
    """`points`: (the referrer's, the referee's)."""
    return enqueue(
        connection,
        [
            Message(
                WebhookKind.REFERRAL_REWARD,
                referee_id,
                at,
                {
                    "refereeId": referee_id,
                    "referrerId": referrer_id,
                    "referrerPoints": points[0],
                    "refereePoints": points[1],
                    "rewardedAt": at.isoformat(),
                },
            )
        ],
    )
