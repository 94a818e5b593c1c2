"""Webhook deliveries in SQL, on SQLite and PostgreSQL alike: claims by several
senders at once never share a delivery."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from app.migrations import upgrade_database
from app.sql import make_database, writing
from app.webhooks import deliveries, endpoints, outbox
from engine.webhooks import Message, WebhookKind

SENDERS = 4
MESSAGES = 300


def test_senders_claiming_at_once_take_each_delivery_exactly_once(database_url: str) -> None:
    upgrade_database(database_url)
    db = make_database(database_url)
    now = datetime.now(UTC)
    endpoint, _ = endpoints.create(db, "https://example.com/", [WebhookKind.REDEMPTION], "", now)
    messages = [
        Message(WebhookKind.REDEMPTION, f"{endpoint.id}-{n}", now, {"n": n})
        for n in range(MESSAGES)
    ]
    with writing(db) as connection:
        assert outbox.enqueue(connection, messages) == MESSAGES
        assert outbox.enqueue(connection, messages[:10]) == 10  # written again: skipped
    start = threading.Barrier(SENDERS)

    def sender() -> list[str]:
        start.wait()
        taken: list[str] = []
        while True:
            claimed = deliveries.claim(db, {endpoint.id: 7}, now, timedelta(minutes=1))
            if not claimed:
                return taken
            taken += [item.delivery_id for _, items in claimed for item in items]

    with ThreadPoolExecutor(SENDERS) as pool:
        claims = list(pool.map(lambda _: sender(), range(SENDERS)))
    everything = [delivery for taken in claims for delivery in taken]
    assert len(everything) == MESSAGES
    assert len(set(everything)) == MESSAGES
    assert deliveries.due_endpoints(db, now) == []
    # Once the lease is over, what was never settled is due again (the sender died).
    assert deliveries.due_endpoints(db, now + timedelta(minutes=2)) == [endpoint.id]
    assert deliveries.oldest_pending(db) == now
    db.dispose()
