"""Webhooks as the GraphQL schema sees them: endpoints managed, deliveries
listed and redelivered, and the sender run in the service's lifespan.

The blocking SQL calls run on worker threads; time is the service's clock.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import timedelta

from anyio import to_thread

from app.metrics import Metrics
from app.paging import page_of, row_cursor
from app.settings import Settings
from app.sql import Database
from app.webhooks import deliveries, endpoints
from app.webhooks.sender import Sender
from app.webhooks.urls import check_url
from engine.engine import Clock
from engine.errors import WebhookError
from engine.webhooks import DeliveryStatus, WebhookDelivery, WebhookEndpoint, WebhookKind
from schema.service import Page

#: The longest description kept.
MAX_DESCRIPTION = 500


class Webhooks:
    def __init__(
        self, database: Database, settings: Settings, clock: Clock, metrics: Metrics
    ) -> None:
        self._database = database
        self._settings = settings
        self._clock = clock
        self._sender = Sender(database, settings, clock, metrics)

    def start(self) -> None:
        self._sender.start()

    async def stop(self) -> None:
        await self._sender.stop()

    async def create(
        self, url: str, kinds: Collection[WebhookKind], description: str
    ) -> tuple[WebhookEndpoint, str]:
        """A new endpoint and its signing secret (shown this once)."""
        url = await self._checked(url)
        return await to_thread.run_sync(
            endpoints.create,
            self._database,
            url,
            _subscribed(kinds),
            _described(description),
            self._clock(),
        )

    async def update(
        self,
        endpoint_id: int,
        url: str | None,
        kinds: Collection[WebhookKind] | None,
        description: str | None,
        enabled: bool | None,
    ) -> WebhookEndpoint:
        return await to_thread.run_sync(
            endpoints.change,
            self._database,
            endpoint_id,
            None if url is None else await self._checked(url),
            None if kinds is None else _subscribed(kinds),
            None if description is None else _described(description),
            enabled,
            self._clock(),
        )

    async def delete(self, endpoint_id: int) -> None:
        await to_thread.run_sync(endpoints.remove, self._database, endpoint_id)

    async def rotate_secret(
        self, endpoint_id: int, grace: timedelta | None
    ) -> tuple[WebhookEndpoint, str]:
        """A new secret; the old one keeps signing for `grace` (the setting's by default)."""
        grace = self._settings.webhook_secret_grace if grace is None else grace
        if grace < timedelta(0):
            raise WebhookError("the grace period cannot be negative; pass 0 to stop at once")
        return await to_thread.run_sync(
            endpoints.rotate, self._database, endpoint_id, self._clock() + grace
        )

    async def endpoints(self) -> list[WebhookEndpoint]:
        return await to_thread.run_sync(endpoints.endpoints, self._database)

    async def deliveries(
        self,
        endpoint_id: int | None,
        status: DeliveryStatus | None,
        after: str | None,
        first: int,
    ) -> Page[WebhookDelivery]:
        """Newest first; `after` is an edge's cursor."""
        before = row_cursor(after, "delivery")
        if endpoint_id is not None:
            await to_thread.run_sync(endpoints.endpoint, self._database, endpoint_id)  # known?
        found = await to_thread.run_sync(
            deliveries.page, self._database, endpoint_id, status, before, first + 1
        )
        return page_of([(delivery.cursor, delivery) for delivery in found], first)

    async def redeliver(self, delivery_id: str) -> WebhookDelivery:
        return await to_thread.run_sync(
            deliveries.redeliver, self._database, delivery_id, self._clock()
        )

    async def _checked(self, url: str) -> str:
        url = url.strip()
        settings = self._settings
        await to_thread.run_sync(
            check_url, url, settings.webhook_allow_hosts, settings.is_development
        )
        return url


def _subscribed(kinds: Collection[WebhookKind]) -> Collection[WebhookKind]:
    if not kinds:
        raise WebhookError("subscribe the endpoint to at least one event kind (`events`)")
    return kinds


def _described(description: str) -> str:
    if len(description) > MAX_DESCRIPTION:
        raise WebhookError(f"a description has at most {MAX_DESCRIPTION} characters")
    return description
