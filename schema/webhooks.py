"""GraphQL of webhooks (API key only): endpoints, their deliveries, and the
resolvers that manage them. Query and Mutation take these resolvers as fields."""

from __future__ import annotations

from datetime import datetime, timedelta

import strawberry

from engine import webhooks as engine_webhooks
from engine.errors import UnknownWebhookError
from schema.context import Info
from schema.player import page_size
from schema.types import Connection, connection_of

WebhookEvent = strawberry.enum(
    engine_webhooks.WebhookKind,
    name="WebhookEvent",
    description="What a delivery announces: an unlock by kind, a tier change, a redemption "
    "or a referral reward. The body's `kind` is the dotted value (`unlock.milestone`).",
)
WebhookDeliveryStatus = strawberry.enum(
    engine_webhooks.DeliveryStatus,
    name="WebhookDeliveryStatus",
    description="PENDING: not delivered yet (retries included); DELIVERED: a 2xx answer; "
    "FAILED: given up on (a dead letter), which `redeliverWebhook` sends again.",
)


@strawberry.type(description="A URL of the business's backend that receives signed deliveries.")
class WebhookEndpoint:
    id: strawberry.ID
    url: str
    description: str
    events: list[WebhookEvent]  # type: ignore[valid-type]
    enabled: bool
    created_at: datetime
    failing_since: datetime | None = strawberry.field(
        description="Since when every attempt failed; null while the endpoint is healthy."
    )
    disabled_at: datetime | None
    disabled_reason: str | None = strawberry.field(
        description="Why the endpoint was disabled, and what to do about it."
    )
    previous_secret_expires_at: datetime | None = strawberry.field(
        description="Until when the secret before the last rotation still signs too."
    )


def endpoint_of(endpoint: engine_webhooks.WebhookEndpoint) -> WebhookEndpoint:
    return WebhookEndpoint(
        id=strawberry.ID(str(endpoint.id)),
        url=endpoint.url,
        description=endpoint.description,
        events=sorted(endpoint.kinds, key=list(engine_webhooks.WebhookKind).index),
        enabled=endpoint.enabled,
        created_at=endpoint.created_at,
        failing_since=endpoint.failing_since,
        disabled_at=endpoint.disabled_at,
        disabled_reason=endpoint.disabled_reason,
        previous_secret_expires_at=endpoint.previous_secret_expires_at,
    )


@strawberry.type(description="An endpoint with its signing secret: shown only this once.")
class WebhookSecret:
    endpoint: WebhookEndpoint
    secret: str = strawberry.field(
        description="Verify `Questline-Signature` with it (see the README); store it now."
    )


@strawberry.type(description="One message to one endpoint, with its attempts so far.")
class WebhookDelivery:
    id: strawberry.ID = strawberry.field(
        description="The `Questline-Delivery-Id` header and the body's `id`: the same on "
        "every attempt, so receivers can drop a duplicate."
    )
    endpoint_id: strawberry.ID
    event: WebhookEvent  # type: ignore[valid-type]
    status: WebhookDeliveryStatus  # type: ignore[valid-type]
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status_code: int | None = strawberry.field(
        description="The receiver's last HTTP status; null when it did not answer."
    )
    last_error: str | None
    delivered_at: datetime | None
    body: str = strawberry.field(description="The JSON body sent, byte for byte.")


def delivery_of(delivery: engine_webhooks.WebhookDelivery) -> WebhookDelivery:
    return WebhookDelivery(
        id=strawberry.ID(delivery.id),
        endpoint_id=strawberry.ID(str(delivery.endpoint_id)),
        event=delivery.kind,
        status=delivery.status,
        attempts=delivery.attempts,
        created_at=delivery.created_at,
        next_attempt_at=delivery.next_attempt_at,
        last_attempt_at=delivery.last_attempt_at,
        last_status_code=delivery.last_status_code,
        last_error=delivery.last_error,
        delivered_at=delivery.delivered_at,
        body=delivery.body,
    )


def endpoint_id_of(raw: strawberry.ID) -> int:
    if not str(raw).isdigit():
        raise UnknownWebhookError(f"{raw!r} is not a webhook endpoint id; `webhooks` lists them")
    return int(raw)


def _admin(info: Info, action: str) -> None:
    info.context.caller().require_admin(action)


async def webhooks(info: Info) -> list[WebhookEndpoint]:
    _admin(info, "reading webhooks")
    return [endpoint_of(endpoint) for endpoint in await info.context.service.webhooks.endpoints()]


async def webhook_deliveries(
    info: Info,
    endpoint_id: strawberry.ID | None = None,
    status: WebhookDeliveryStatus | None = None,  # type: ignore[valid-type]
    first: int | None = 20,
    after: str | None = None,
) -> Connection[WebhookDelivery]:
    _admin(info, "reading webhook deliveries")
    page = await info.context.service.webhooks.deliveries(
        None if endpoint_id is None else endpoint_id_of(endpoint_id),
        status,
        after,
        page_size(first),
    )
    return connection_of(page, delivery_of)


async def create_webhook(
    info: Info,
    url: str,
    events: list[WebhookEvent],  # type: ignore[valid-type]
    description: str = "",
) -> WebhookSecret:
    _admin(info, "creating webhooks")
    endpoint, secret = await info.context.service.webhooks.create(url, set(events), description)
    return WebhookSecret(endpoint=endpoint_of(endpoint), secret=secret)


async def update_webhook(
    info: Info,
    id: strawberry.ID,
    url: str | None = None,
    events: list[WebhookEvent] | None = None,  # type: ignore[valid-type]
    description: str | None = None,
    enabled: bool | None = None,
) -> WebhookEndpoint:
    _admin(info, "changing webhooks")
    endpoint = await info.context.service.webhooks.update(
        endpoint_id_of(id), url, None if events is None else set(events), description, enabled
    )
    return endpoint_of(endpoint)


async def delete_webhook(info: Info, id: strawberry.ID) -> bool:
    _admin(info, "deleting webhooks")
    await info.context.service.webhooks.delete(endpoint_id_of(id))
    return True


async def rotate_webhook_secret(
    info: Info, id: strawberry.ID, grace_period_seconds: int | None = None
) -> WebhookSecret:
    _admin(info, "rotating webhook secrets")
    grace = None if grace_period_seconds is None else timedelta(seconds=grace_period_seconds)
    endpoint, secret = await info.context.service.webhooks.rotate_secret(endpoint_id_of(id), grace)
    return WebhookSecret(endpoint=endpoint_of(endpoint), secret=secret)


async def redeliver_webhook(info: Info, delivery_id: strawberry.ID) -> WebhookDelivery:
    _admin(info, "redelivering webhooks")
    return delivery_of(await info.context.service.webhooks.redeliver(str(delivery_id)))
