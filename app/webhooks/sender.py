"""The sender: a background task of each worker that sends due webhook deliveries.

Sending never happens on the request path: recording only writes delivery
rows (app.webhooks.outbox), and this task, started in the service's
lifespan, claims them (app.webhooks.deliveries) and posts them with one
shared `httpx.AsyncClient`. Each endpoint has at most
QUESTLINE_WEBHOOK_CONCURRENCY attempts in flight in a process, and each
attempt at most QUESTLINE_WEBHOOK_TIMEOUT, so a slow or dead receiver holds
a few of its own deliveries and nothing else. How attempts ended is
group-committed (engine.group_commit), one transaction per burst.

When nothing is due the sender sleeps QUESTLINE_WEBHOOK_POLL_INTERVAL. A
busy endpoint is claimed for again once half its slots are free (an
attempt ending then wakes the sender), so a backlog costs one claim per
few deliveries rather than one per delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from datetime import timedelta

import httpx
from anyio import to_thread

from app.metrics import Metrics
from app.settings import Settings
from app.sql import Database
from app.webhooks import deliveries
from app.webhooks.deliveries import Claimed, Settled
from app.webhooks.endpoints import Target
from app.webhooks.urls import check_url
from engine.engine import Clock
from engine.errors import QuestlineError, WebhookError
from engine.group_commit import GroupCommit
from engine.webhooks import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    Attempt,
    DeliveryStatus,
    RetryPolicy,
    next_attempt,
    signature,
)

logger = logging.getLogger("questline.webhooks")

USER_AGENT = "Questline-Webhooks/1"
#: Bytes of a receiver's answer read (and thrown away) so its connection can be reused.
ANSWER_LIMIT = 64 * 1024
#: How long an endpoint's URL check is trusted before its host is resolved again.
URL_CHECK_TTL = 60.0
#: Seconds between two readings of the oldest pending delivery's age.
PENDING_AGE_EVERY = 1.0


class Sender:
    def __init__(
        self,
        database: Database,
        settings: Settings,
        clock: Clock,
        metrics: Metrics,
    ) -> None:
        self._database = database
        self._settings = settings
        self._clock = clock
        self._metrics = metrics
        self._policy = RetryPolicy(
            settings.webhook_first_backoff, settings.webhook_max_backoff, settings.webhook_retry_for
        )
        self._timeout = settings.webhook_timeout.total_seconds()
        # A claim outlives its attempt (bounded by the timeout) and the write of
        # how it ended, so no other sender takes it meanwhile.
        self._lease = settings.webhook_timeout * 2 + timedelta(seconds=5)
        self._client = httpx.AsyncClient(
            trust_env=False,
            follow_redirects=False,
            timeout=self._timeout,
            headers={"user-agent": USER_AGENT, "content-type": "application/json"},
        )
        self._settled: GroupCommit[Settled, None] = GroupCommit(self._write)
        self._in_flight: dict[int, int] = {}
        self._concurrency = settings.webhook_concurrency
        #: Free slots an endpoint needs before it is claimed for.
        self._batch = max(1, self._concurrency // 2)
        self._measure_at = 0.0
        self._attempts: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._checked: dict[str, tuple[float, str | None]] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="questline-webhook-sender")

    async def stop(self) -> None:
        """Stop claiming; give attempts in flight their timeout, then cancel them
        (their leases expire and they are sent again)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._attempts:
            _, late = await asyncio.wait(self._attempts, timeout=self._timeout)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        await self._settled.wait_idle()
        await self._client.aclose()

    async def _run(self) -> None:
        poll = self._settings.webhook_poll_interval.total_seconds()
        while True:
            self._wake.clear()
            try:
                busy = await self._round()
            except QuestlineError as error:
                logger.warning("webhook sender: %s; trying again in %gs", error, poll)
                busy = False
            except Exception:  # keep sending: the next round may succeed
                logger.exception("webhook sender round failed")
                busy = False
            if not busy:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), poll)

    async def _round(self) -> bool:
        """Claim what is due for endpoints with half their slots free or more (fewer,
        larger claims) and start sending it; whether anything was claimed."""
        now = self._clock()
        if time.monotonic() >= self._measure_at:
            self._measure_at = time.monotonic() + PENDING_AGE_EVERY
            oldest = await to_thread.run_sync(deliveries.oldest_pending, self._database)
            self._metrics.webhooks_pending_age.set(
                0 if oldest is None else max(0.0, (now - oldest).total_seconds())
            )
        due = await to_thread.run_sync(deliveries.due_endpoints, self._database, now)
        wanted = {
            endpoint_id: free
            for endpoint_id in due
            if (free := self._concurrency - self._in_flight.get(endpoint_id, 0)) >= self._batch
        }
        if not wanted:
            return False
        claimed = await to_thread.run_sync(
            deliveries.claim, self._database, wanted, now, self._lease
        )
        for target, items in claimed:
            refusal = await self._refusal(target.url)
            for item in items:
                self._in_flight[target.id] = self._in_flight.get(target.id, 0) + 1
                task = asyncio.create_task(self._attempt(target, item, refusal))
                self._attempts.add(task)
                task.add_done_callback(self._attempts.discard)
        return bool(claimed)

    async def _refusal(self, url: str) -> str | None:
        """Why the URL may not be called now (its host may resolve elsewhere than
        when the endpoint was saved), or None; checked once a minute per URL."""
        checked = self._checked.get(url)
        if checked is not None and time.monotonic() - checked[0] < URL_CHECK_TTL:
            return checked[1]
        settings = self._settings
        try:
            await to_thread.run_sync(
                check_url, url, settings.webhook_allow_hosts, settings.is_development
            )
            refusal = None
        except WebhookError as error:
            refusal = str(error)
        self._checked[url] = (time.monotonic(), refusal)
        return refusal

    async def _attempt(self, target: Target, item: Claimed, refusal: str | None) -> None:
        try:
            attempt = (
                Attempt(error=refusal, final=True)
                if refusal is not None
                else await self._post(target, item)
            )
            now = self._clock()
            if attempt.succeeded:
                status, due = DeliveryStatus.DELIVERED, None
            else:
                retry_until = item.retry_from + self._policy.retry_for
                due = next_attempt(self._policy, attempt, item.attempts, now, retry_until)
                status = DeliveryStatus.PENDING if due is not None else DeliveryStatus.FAILED
            await self._settled.submit(Settled(item, attempt, now, status, due))
            if status is DeliveryStatus.DELIVERED:
                self._metrics.webhooks_sent.inc()
            elif status is DeliveryStatus.PENDING:
                self._metrics.webhooks_retried.inc()
            else:
                self._metrics.webhooks_failed.inc()
                logger.info(
                    "webhook delivery %s to endpoint %d failed after %d attempts: %s",
                    item.delivery_id,
                    target.id,
                    item.attempts,
                    attempt.describe(),
                )
        except QuestlineError as error:
            logger.warning(
                "webhook delivery %s: how the attempt ended could not be written (%s); it is "
                "sent again when its claim lapses",
                item.delivery_id,
                error,
            )
        finally:
            left = self._in_flight[target.id] = self._in_flight[target.id] - 1
            if left in (0, self._concurrency - self._batch):  # enough slots free to claim
                self._wake.set()

    async def _post(self, target: Target, item: Claimed) -> Attempt:
        timestamp = int(self._clock().timestamp())
        headers = {
            DELIVERY_HEADER: item.delivery_id,
            SIGNATURE_HEADER: signature(target.secrets, timestamp, item.body),
        }
        try:
            async with (
                asyncio.timeout(self._timeout),
                self._client.stream(
                    "POST", target.url, content=item.body.encode(), headers=headers
                ) as response,
            ):
                read = 0
                async for chunk in response.aiter_raw():
                    read += len(chunk)
                    if read > ANSWER_LIMIT:
                        break
                return Attempt(
                    status_code=response.status_code,
                    retry_after=response.headers.get("retry-after"),
                )
        except TimeoutError:
            return Attempt(error=f"no answer within {self._timeout:g}s")
        except httpx.HTTPError as error:
            return Attempt(error=f"{type(error).__name__}: {error}".rstrip(": "))

    async def _write(self, batch: Sequence[Settled]) -> list[None]:
        disabled = await to_thread.run_sync(
            deliveries.settle, self._database, batch, self._settings.webhook_disable_after
        )
        for endpoint_id in disabled:
            logger.warning(
                "webhook endpoint %d disabled: every attempt failed for %s",
                endpoint_id,
                self._settings.webhook_disable_after,
            )
        return [None] * len(batch)
