"""Webhook endpoints in SQL: created, changed, rotated, deleted, and read for sending.

The signing secret is stored as it is (the server must sign with it); it is
shown to the caller once, by `createWebhook` and `rotateWebhookSecret`.
After a rotation the previous secret still signs until its grace period
ends, so receivers can switch without refusing a delivery.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, delete, insert, select, update

from app.sql import Database, row_as, translated_errors, writing
from app.webhooks.tables import DELIVERIES, ENDPOINTS
from engine.errors import UnknownWebhookError
from engine.webhooks import DeliveryStatus, WebhookEndpoint, WebhookKind


@dataclass(frozen=True, slots=True)
class Target:
    """What sending to an endpoint needs."""

    id: int
    url: str
    #: The secrets that sign, the newest first.
    secrets: list[str]


def new_secret() -> str:
    return f"whsec_{secrets.token_urlsafe(32)}"


def create(
    database: Database, url: str, kinds: Collection[WebhookKind], description: str, now: datetime
) -> tuple[WebhookEndpoint, str]:
    secret = new_secret()
    with writing(database) as connection:
        endpoint_id = connection.execute(
            insert(ENDPOINTS)
            .values(
                url=url,
                description=description,
                kinds=_kinds(kinds),
                secret=secret,
                created_at=now,
            )
            .returning(ENDPOINTS.c.id)
        ).scalar_one()
        return _get(connection, endpoint_id), secret


def change(
    database: Database,
    endpoint_id: int,
    url: str | None,
    kinds: Collection[WebhookKind] | None,
    description: str | None,
    enabled: bool | None,
    now: datetime,
) -> WebhookEndpoint:
    """Change what is given; enabling a disabled endpoint forgets its failures."""
    values: dict[str, Any] = {}
    if url is not None:
        values["url"] = url
    if kinds is not None:
        values["kinds"] = _kinds(kinds)
    if description is not None:
        values["description"] = description
    with writing(database) as connection:
        current = _get(connection, endpoint_id)
        if enabled is True and not current.enabled:
            values.update(disabled_at=None, disabled_reason=None, failing_since=None)
        elif enabled is False and current.enabled:
            values.update(disabled_at=now, disabled_reason="disabled by updateWebhook")
            fail_pending(connection, [endpoint_id], "the endpoint was disabled")
        if values:
            connection.execute(
                update(ENDPOINTS).where(ENDPOINTS.c.id == endpoint_id).values(**values)
            )
        return _get(connection, endpoint_id)


def rotate(
    database: Database, endpoint_id: int, grace_until: datetime
) -> tuple[WebhookEndpoint, str]:
    """A new secret; the current one keeps signing until `grace_until`."""
    secret = new_secret()
    with writing(database) as connection:
        current = connection.execute(
            select(ENDPOINTS.c.secret).where(ENDPOINTS.c.id == endpoint_id)
        ).scalar_one_or_none()
        if current is None:
            raise _unknown(endpoint_id)
        connection.execute(
            update(ENDPOINTS)
            .where(ENDPOINTS.c.id == endpoint_id)
            .values(secret=secret, previous_secret=current, previous_secret_expires_at=grace_until)
        )
        return _get(connection, endpoint_id), secret


def remove(database: Database, endpoint_id: int) -> None:
    """Delete the endpoint and every delivery to it."""
    with writing(database) as connection:
        found = connection.execute(delete(ENDPOINTS).where(ENDPOINTS.c.id == endpoint_id))
        if not found.rowcount:
            raise _unknown(endpoint_id)
        connection.execute(delete(DELIVERIES).where(DELIVERIES.c.endpoint_id == endpoint_id))


def endpoints(database: Database) -> list[WebhookEndpoint]:
    with translated_errors(database), database.connect() as connection:
        return [
            _endpoint(row) for row in connection.execute(select(ENDPOINTS).order_by(ENDPOINTS.c.id))
        ]


def endpoint(database: Database, endpoint_id: int) -> WebhookEndpoint:
    with translated_errors(database), database.connect() as connection:
        return _get(connection, endpoint_id)


def targets(connection: Connection, endpoint_ids: Sequence[int], now: datetime) -> list[Target]:
    """The enabled endpoints among these, with their signing secrets."""
    rows = connection.execute(
        select(ENDPOINTS).where(ENDPOINTS.c.id.in_(endpoint_ids), ENDPOINTS.c.disabled_at.is_(None))
    )
    found = []
    for row in rows:
        signing = [row.secret]
        if row.previous_secret is not None and row.previous_secret_expires_at > now:
            signing.append(row.previous_secret)
        found.append(Target(row.id, row.url, signing))
    return found


def fail_pending(connection: Connection, endpoint_ids: Sequence[int], why: str) -> None:
    """Fail the pending deliveries of disabled endpoints (they can be redelivered)."""
    connection.execute(
        update(DELIVERIES)
        .where(
            DELIVERIES.c.endpoint_id.in_(endpoint_ids),
            DELIVERIES.c.status == DeliveryStatus.PENDING.value,
        )
        .values(status=DeliveryStatus.FAILED.value, next_attempt_at=None, last_error=why)
    )


def _kinds(kinds: Collection[WebhookKind]) -> str:
    return ",".join(sorted(kind.value for kind in kinds))


def _get(connection: Connection, endpoint_id: int) -> WebhookEndpoint:
    row = connection.execute(select(ENDPOINTS).where(ENDPOINTS.c.id == endpoint_id)).one_or_none()
    if row is None:
        raise _unknown(endpoint_id)
    return _endpoint(row)


def _unknown(endpoint_id: int) -> UnknownWebhookError:
    return UnknownWebhookError(
        f"no webhook endpoint has the id {endpoint_id}; `webhooks` lists them"
    )


def _endpoint(row: Row[Any]) -> WebhookEndpoint:
    kinds = frozenset(WebhookKind(kind) for kind in row.kinds.split(","))
    return row_as(WebhookEndpoint, row, kinds=kinds)
