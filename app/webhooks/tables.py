"""The webhook tables: endpoints, and one delivery per message and endpoint.

A delivery is unique on (endpoint, kind, source), so writing a message
again (a retried event, start-up recovery) delivers it once. `delivery_id`
is the stable id a receiver sees on every attempt and redelivery. While a
delivery is pending, `next_attempt_at` says when it is due; a sender that
claims it moves that time past the attempt (a lease), so no other sender
takes it meanwhile, and a sender that dies mid-attempt only delays it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.sql import UTCDateTime, record_id, table


class WebhookEndpointRecord(SQLModel, table=True):
    __tablename__ = "webhook_endpoint"

    id: int | None = record_id()
    url: str
    description: str
    #: The kinds subscribed to, comma-separated (engine.webhooks.WebhookKind values).
    kinds: str
    secret: str
    #: The secret before the last rotation, valid until `previous_secret_expires_at`.
    previous_secret: str | None = None
    previous_secret_expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(sa_type=UTCDateTime)
    failing_since: datetime | None = Field(default=None, sa_type=UTCDateTime)
    disabled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    disabled_reason: str | None = None


class WebhookDeliveryRecord(SQLModel, table=True):
    __tablename__ = "webhook_delivery"
    __table_args__ = (
        UniqueConstraint(
            "endpoint_id", "kind", "source", name="uq_webhook_delivery_endpoint_id_kind_source"
        ),
        UniqueConstraint("delivery_id", name="uq_webhook_delivery_delivery_id"),
        Index("ix_webhook_delivery_due", "endpoint_id", "status", "next_attempt_at"),
        Index("ix_webhook_delivery_endpoint_id_id", "endpoint_id", "id"),
        Index("ix_webhook_delivery_status_created_at", "status", "created_at"),
    )

    id: int | None = record_id()
    delivery_id: str
    endpoint_id: int = Field(sa_type=BigInteger().with_variant(Integer(), "sqlite"))
    kind: str
    source: str
    body: str = Field(sa_type=Text)
    status: str
    attempts: int = 0
    created_at: datetime = Field(sa_type=UTCDateTime)
    #: Retries stop `QUESTLINE_WEBHOOK_RETRY_FOR` after this (written, or redelivered).
    retry_from: datetime = Field(sa_type=UTCDateTime)
    next_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_status_code: int | None = None
    last_error: str | None = None
    delivered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


ENDPOINTS = table(WebhookEndpointRecord)
DELIVERIES = table(WebhookDeliveryRecord)
