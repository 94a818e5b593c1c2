"""Webhook deliveries in SQL: claimed by senders, settled, listed, redelivered.

Several senders (one per worker process) share the table. A sender claims
due deliveries of an endpoint in one short transaction: on PostgreSQL the
rows are locked with FOR UPDATE SKIP LOCKED, so two senders claiming at
once take different rows instead of waiting for each other; SQLite's write
lock makes claims one at a time. The claim moves `next_attempt_at` past
the attempt (a lease) and counts the attempt, and the HTTP request is made
outside any transaction: a sender that dies mid-attempt leaves the
delivery to be claimed again when the lease ends (at least once, never
two attempts at the same time while the lease holds).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, bindparam, func, select, update

from app.sql import Database, row_as, translated_errors, writing
from app.webhooks import endpoints
from app.webhooks.endpoints import Target
from app.webhooks.tables import DELIVERIES, ENDPOINTS
from engine.errors import UnknownDeliveryError, WebhookError
from engine.webhooks import Attempt, DeliveryStatus, WebhookDelivery, WebhookKind

PENDING = DeliveryStatus.PENDING.value


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery a sender holds for one attempt."""

    row_id: int
    delivery_id: str
    endpoint_id: int
    body: str
    #: Attempts so far, this one included.
    attempts: int
    retry_from: datetime


@dataclass(frozen=True, slots=True)
class Settled:
    """How an attempt ended: delivered, retried at `next_attempt_at`, or failed."""

    claimed: Claimed
    attempt: Attempt
    at: datetime
    status: DeliveryStatus
    next_attempt_at: datetime | None


def due_endpoints(database: Database, now: datetime) -> list[int]:
    """Enabled endpoints with a delivery due; read without locks (claiming
    re-checks), one index probe per endpoint however long the backlog."""
    due = (
        select(DELIVERIES.c.id)
        .where(
            DELIVERIES.c.endpoint_id == ENDPOINTS.c.id,
            DELIVERIES.c.status == PENDING,
            DELIVERIES.c.next_attempt_at <= now,
        )
        .exists()
    )
    with translated_errors(database), database.connect() as connection:
        return list(
            connection.execute(
                select(ENDPOINTS.c.id).where(ENDPOINTS.c.disabled_at.is_(None), due)
            ).scalars()
        )


def oldest_pending(database: Database) -> datetime | None:
    """When the oldest delivery still pending was written."""
    with translated_errors(database), database.connect() as connection:
        oldest: datetime | None = connection.execute(
            select(func.min(DELIVERIES.c.created_at)).where(DELIVERIES.c.status == PENDING)
        ).scalar_one()
        return oldest


def claim(
    database: Database, wanted: Mapping[int, int], now: datetime, lease: timedelta
) -> list[tuple[Target, list[Claimed]]]:
    """Claim up to `wanted[endpoint]` due deliveries of each enabled endpoint."""
    claimed = []
    with writing(database) as connection:
        for target in endpoints.targets(connection, sorted(wanted), now):
            rows = connection.execute(
                select(
                    DELIVERIES.c.id,
                    DELIVERIES.c.delivery_id,
                    DELIVERIES.c.body,
                    DELIVERIES.c.attempts,
                    DELIVERIES.c.retry_from,
                )
                .where(
                    DELIVERIES.c.endpoint_id == target.id,
                    DELIVERIES.c.status == PENDING,
                    DELIVERIES.c.next_attempt_at <= now,
                )
                .order_by(DELIVERIES.c.next_attempt_at)
                .limit(wanted[target.id])
                .with_for_update(skip_locked=True)
            ).all()
            if not rows:
                continue
            connection.execute(
                update(DELIVERIES)
                .where(DELIVERIES.c.id.in_([row.id for row in rows]))
                .values(next_attempt_at=now + lease, attempts=DELIVERIES.c.attempts + 1)
            )
            claimed.append(
                (
                    target,
                    [
                        Claimed(
                            row.id,
                            row.delivery_id,
                            target.id,
                            row.body,
                            row.attempts + 1,
                            row.retry_from,
                        )
                        for row in rows
                    ],
                )
            )
    return claimed


_SETTLE = (
    update(DELIVERIES)
    .where(DELIVERIES.c.id == bindparam("row_id"))
    .values(
        status=bindparam("new_status"),
        next_attempt_at=bindparam("next_at"),
        last_attempt_at=bindparam("at"),
        last_status_code=bindparam("code"),
        last_error=bindparam("error"),
        delivered_at=bindparam("delivered"),
    )
)
#: An attempt that did not deliver changes nothing of a delivery no longer
#: pending: its endpoint was disabled, or it was delivered meanwhile.
_SETTLE_UNDELIVERED = _SETTLE.where(DELIVERIES.c.status == PENDING)


def settle(database: Database, outcomes: Sequence[Settled], disable_after: timedelta) -> list[int]:
    """Write how attempts ended, and each endpoint's health: a success clears its
    failures, an endpoint failing for `disable_after` is disabled and its
    pending deliveries failed. Returns the endpoints disabled now."""
    delivered = [o for o in outcomes if o.status is DeliveryStatus.DELIVERED]
    undelivered = [o for o in outcomes if o.status is not DeliveryStatus.DELIVERED]
    disabled = []
    with writing(database) as connection:
        for statement, part in ((_SETTLE, delivered), (_SETTLE_UNDELIVERED, undelivered)):
            if part:
                connection.execute(statement, [_values(outcome) for outcome in part])
        healthy = sorted({o.claimed.endpoint_id for o in delivered})
        if healthy:
            connection.execute(
                update(ENDPOINTS)
                .where(ENDPOINTS.c.id.in_(healthy), ENDPOINTS.c.failing_since.is_not(None))
                .values(failing_since=None)
            )
        last_failure = {o.claimed.endpoint_id: o for o in undelivered}
        for endpoint_id, outcome in sorted(last_failure.items()):
            if endpoint_id in healthy:
                continue
            connection.execute(
                update(ENDPOINTS)
                .where(ENDPOINTS.c.id == endpoint_id, ENDPOINTS.c.failing_since.is_(None))
                .values(failing_since=outcome.at)
            )
            since = outcome.at - disable_after
            reason = (
                f"every delivery attempt failed for {_duration(disable_after)} (the last one: "
                f"{outcome.attempt.describe()}); fix the receiver, then enable the endpoint "
                "with updateWebhook(enabled: true) and redeliver what failed"
            )
            turned_off = connection.execute(
                update(ENDPOINTS)
                .where(
                    ENDPOINTS.c.id == endpoint_id,
                    ENDPOINTS.c.disabled_at.is_(None),
                    ENDPOINTS.c.failing_since <= since,
                )
                .values(disabled_at=outcome.at, disabled_reason=reason)
            ).rowcount
            if turned_off:
                endpoints.fail_pending(connection, [endpoint_id], "the endpoint was disabled")
                disabled.append(endpoint_id)
    return disabled


def _values(outcome: Settled) -> dict[str, Any]:
    attempt = outcome.attempt
    return {
        "row_id": outcome.claimed.row_id,
        "new_status": outcome.status.value,
        "next_at": outcome.next_attempt_at,
        "at": outcome.at,
        "code": attempt.status_code,
        "error": attempt.error,
        "delivered": outcome.at if outcome.status is DeliveryStatus.DELIVERED else None,
    }


def _duration(span: timedelta) -> str:
    hours = span.total_seconds() / 3600
    return f"{hours:g} hours" if hours >= 1 else f"{span.total_seconds():g} seconds"


def page(
    database: Database,
    endpoint_id: int | None,
    status: DeliveryStatus | None,
    before: int | None,
    limit: int,
) -> list[WebhookDelivery]:
    """Deliveries newest first, strictly before row id `before`."""
    statement = select(DELIVERIES)
    if endpoint_id is not None:
        statement = statement.where(DELIVERIES.c.endpoint_id == endpoint_id)
    if status is not None:
        statement = statement.where(DELIVERIES.c.status == status.value)
    if before is not None:
        statement = statement.where(DELIVERIES.c.id < before)
    statement = statement.order_by(DELIVERIES.c.id.desc()).limit(limit)
    with translated_errors(database), database.connect() as connection:
        return [_delivery(row) for row in connection.execute(statement)]


def redeliver(database: Database, delivery_id: str, now: datetime) -> WebhookDelivery:
    """Send a delivery again, with the same id and body, retried afresh."""
    with writing(database) as connection:
        row = connection.execute(
            select(DELIVERIES.c.endpoint_id, ENDPOINTS.c.disabled_at)
            .join(ENDPOINTS, ENDPOINTS.c.id == DELIVERIES.c.endpoint_id)
            .where(DELIVERIES.c.delivery_id == delivery_id)
        ).one_or_none()
        if row is None:
            raise UnknownDeliveryError(
                f"no webhook delivery has the id {delivery_id!r}; `webhookDeliveries` lists them"
            )
        if row.disabled_at is not None:
            raise WebhookError(
                f"endpoint {row.endpoint_id} is disabled; enable it with "
                "updateWebhook(enabled: true) before redelivering to it"
            )
        connection.execute(
            update(DELIVERIES)
            .where(DELIVERIES.c.delivery_id == delivery_id)
            .values(
                status=PENDING,
                attempts=0,
                retry_from=now,
                next_attempt_at=now,
                delivered_at=None,
            )
        )
        return _delivery(
            connection.execute(
                select(DELIVERIES).where(DELIVERIES.c.delivery_id == delivery_id)
            ).one()
        )


def _delivery(row: Row[Any]) -> WebhookDelivery:
    return row_as(
        WebhookDelivery,
        row,
        id=row.delivery_id,
        kind=WebhookKind(row.kind),
        status=DeliveryStatus(row.status),
        cursor=row.id,
    )
