"""Webhook rules: what is sent, how it is signed, and when a failed send is retried.

Plain functions and values, no I/O: the service (app/webhooks/) stores
endpoints and deliveries in SQL and sends them; this module decides.

A delivery's body is JSON, fixed when the delivery is written and sent
byte for byte on every attempt:

    {"id": "dlv_…", "kind": "unlock.milestone", "time": "2025-…Z", "payload": {…}}

It is signed Stripe-style: `Questline-Signature: t=<unix seconds>,v1=<hex>`,
the HMAC-SHA256 of `<t>.<body>` under the endpoint's secret (one `v1` per
valid secret while a rotated secret is in its grace period). The timestamp
is signed too, so a receiver can refuse a replayed old request.

Retries: a timeout, a connection error, 408, 429 or any 5xx is retried with
exponential backoff and jitter (the delay doubles from the first backoff
up to the largest, and between half of it and all of it is waited, at
random, so a receiver coming back is not hit by every retry at once), at least as long
as a `Retry-After` asks, until the retry window (24 hours by default) is
over; the delivery is then failed, a dead letter that can be redelivered.
Any other answer outside 2xx is final at once: the receiver said no.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Any

from engine.unlocks import UnlockKind

SIGNATURE_HEADER = "Questline-Signature"
DELIVERY_HEADER = "Questline-Delivery-Id"
#: Answers that say "later", not "no".
RETRIED_STATUSES = frozenset({408, 429})


class WebhookKind(StrEnum):
    """What a delivery is about; endpoints subscribe to a set of these."""

    UNLOCK_CHALLENGE = "unlock.challenge"
    UNLOCK_MILESTONE = "unlock.milestone"
    UNLOCK_STREAK = "unlock.streak"
    UNLOCK_BADGE = "unlock.badge"
    TIER_CHANGE = "tier.changed"
    REDEMPTION = "redemption.created"
    REFERRAL_REWARD = "referral.rewarded"


_OF_UNLOCK = {
    UnlockKind.CHALLENGE: WebhookKind.UNLOCK_CHALLENGE,
    UnlockKind.MILESTONE: WebhookKind.UNLOCK_MILESTONE,
    UnlockKind.STREAK: WebhookKind.UNLOCK_STREAK,
    UnlockKind.BADGE: WebhookKind.UNLOCK_BADGE,
    UnlockKind.TIER: WebhookKind.TIER_CHANGE,
}


def kind_of_unlock(kind: UnlockKind) -> WebhookKind:
    """A tier change is claimed as an unlock of kind TIER; it is its own webhook kind."""
    return _OF_UNLOCK[kind]


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    #: Given up on (a final answer, or the retry window is over): a dead letter.
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Message:
    """Something that happened, to be delivered to every endpoint subscribed to its kind.

    `source` identifies it among messages of its kind (an unlock's player and
    key, a redemption's id): writing a message twice delivers it once per
    endpoint.
    """

    kind: WebhookKind
    source: str
    time: datetime
    payload: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    id: int
    url: str
    description: str
    kinds: frozenset[WebhookKind]
    created_at: datetime
    #: When every attempt since the last success started failing; None when healthy.
    failing_since: datetime | None
    disabled_at: datetime | None
    disabled_reason: str | None
    #: Until when the secret before the last rotation still signs too.
    previous_secret_expires_at: datetime | None

    @property
    def enabled(self) -> bool:
        return self.disabled_at is None


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    id: str
    endpoint_id: int
    kind: WebhookKind
    status: DeliveryStatus
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    body: str
    #: The paging cursor.
    cursor: int


def body_of(delivery_id: str, message: Message) -> str:
    """The JSON body sent on every attempt of a delivery."""
    return json.dumps(
        {
            "id": delivery_id,
            "kind": message.kind.value,
            "time": message.time.isoformat().replace("+00:00", "Z"),
            "payload": message.payload,
        },
        separators=(",", ":"),
        default=str,
    )


def signature(secrets: Sequence[str], timestamp: int, body: str) -> str:
    """The `Questline-Signature` header value: one `v1` per secret that signs."""
    signed = f"{timestamp}.{body}".encode()
    return ",".join(
        [
            f"t={timestamp}",
            *(
                f"v1={hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()}"
                for secret in secrets
            ),
        ]
    )


@dataclass(frozen=True, slots=True)
class Attempt:
    """How one attempt ended: a status code, or a transport error (timeout, refused);
    `final` when the attempt was not even made and retrying cannot help."""

    status_code: int | None = None
    error: str | None = None
    retry_after: str | None = None
    final: bool = False

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def retryable(self) -> bool:
        code = self.status_code
        if code is None:
            return not self.final
        return code in RETRIED_STATUSES or code >= 500

    def describe(self) -> str:
        if self.status_code is not None:
            return f"HTTP {self.status_code}"
        return self.error or "no answer"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    first_backoff: timedelta
    max_backoff: timedelta
    #: How long after a delivery is written (or redelivered) it is still tried.
    retry_for: timedelta


def next_attempt(
    policy: RetryPolicy,
    attempt: Attempt,
    attempts: int,
    now: datetime,
    retry_until: datetime,
    fraction: Callable[[], float] = random.random,
) -> datetime | None:
    """When to try again after the `attempts`-th attempt failed; None: give up.

    The last try falls on the end of the window rather than past it.
    """
    if not attempt.retryable or now >= retry_until:
        return None
    # The exponent stops growing long before a timedelta would overflow.
    ceiling = min(policy.max_backoff, policy.first_backoff * (1 << min(attempts - 1, 30)))
    delay = ceiling * (0.5 + fraction() / 2)
    asked = retry_after(attempt.retry_after, now)
    if asked is not None:
        delay = max(delay, asked)
    return min(now + delay, retry_until)


def retry_after(value: str | None, now: datetime) -> timedelta | None:
    """A `Retry-After` header: seconds, or an HTTP date; None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return timedelta(seconds=int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(timedelta(0), when - now)
