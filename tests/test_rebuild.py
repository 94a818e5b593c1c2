"""The event journal and `questline rebuild`: losing the counter store loses nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import redis
from starlette.testclient import TestClient

from app import journal
from app.main import create_app
from app.rebuild import rebuild
from app.settings import Settings
from app.sql import make_database
from engine.store import keys
from tests.support.clock import Clock
from tests.support.engines import store_unlock_keys
from tests.support.graphql_client import gql, settings_for
from tests.support.histories import ELSEWHERE, history, player_id, send
from tests.support.programs import SEED

RECORD_MANY = """mutation($events: [EventInput!]!) {
  recordEvents(events: $events) { eventId duplicate unlocks { key } } }"""
PROGRESS = """query($id: ID!) { player(id: $id) {
  challenges { challenge { id } unlockKey startsAt endsAt goals { metric progress { current } }
               progress { current target completed } }
  milestones { milestone { id } value tiersReached progress { current target completed } }
  streaks { streak { id } current longest atRisk freezes progress { current target } }
  badges { badge { id } unlockedAt }
  points { balance lifetimeEarned } tier { tier { id } } } }"""
PLAYERS = 200
EVENTS = 1500


@pytest.fixture(params=["sqlite", "redis"])
def seed_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """The example program on each store, history in SQLite."""
    store_url = None
    if request.param == "redis":
        store_url = request.getfixturevalue("clean_redis_url")
    settings = settings_for(tmp_path, store_url)
    return settings.model_copy(update={"seed_path": SEED})


def snapshot(client: TestClient, settings: Settings, clock: Clock) -> dict[str, Any]:
    """Every player's whole progress (through GraphQL) and unlock keys (from the store)."""
    players = [player_id(n) for n in range(PLAYERS)]
    unlocks = client.portal.call(store_unlock_keys, settings, clock, players)
    found = {}
    for player in players:
        progress = gql(client, PROGRESS, {"id": player})
        assert "errors" not in progress, progress
        found[player] = (progress["data"], unlocks[player])
    return found


@contextmanager
def announcements(settings: Settings) -> Iterator[list[Any]]:
    """What other processes hear of new unlocks meanwhile (Redis pub/sub; the
    embedded store announces to its own process only)."""
    heard: list[Any] = []
    if not settings.store_url.startswith("redis"):
        yield heard
        return
    client = redis.Redis.from_url(settings.store_url)
    pubsub = client.pubsub()
    pubsub.subscribe(keys.UNLOCK_CHANNEL)
    assert pubsub.get_message(timeout=1)["type"] == "subscribe"  # type: ignore[index]
    try:
        yield heard
        while (message := pubsub.get_message(timeout=0.5)) is not None:
            heard.append(message)
    finally:
        pubsub.close()
        client.close()


def wipe(settings: Settings) -> None:
    if settings.store_url.startswith("redis"):
        client = redis.Redis.from_url(settings.store_url)
        client.flushall()
        client.close()
    else:
        Path(settings.store_url.removeprefix("sqlite:///")).unlink()


def test_a_rebuild_from_the_journal_gives_back_every_counter_and_unlock(
    seed_settings: Settings,
) -> None:
    clock = Clock(datetime.now(UTC))
    with TestClient(create_app(seed_settings, clock)) as client:
        events = history(clock.now, PLAYERS, EVENTS)
        send(partial(gql, client), events, PLAYERS)
        before = snapshot(client, seed_settings, clock)
    assert sum(len(keys) for _, keys in before.values()) > 300  # a real mix unlocks plenty

    database = make_database(seed_settings.database_url)
    assert journal.count(database) == EVENTS
    wipe(seed_settings)
    with announcements(seed_settings) as heard:
        rebuilt = asyncio.run(rebuild(seed_settings))
    assert (rebuilt.events, rebuilt.profiles) == (EVENTS, len(ELSEWHERE))
    assert heard == []  # subscribers are not told again

    with TestClient(create_app(seed_settings, clock)) as client:
        after = snapshot(client, seed_settings, clock)
    assert after == before
    dry = asyncio.run(rebuild(seed_settings, dry_run=True))
    assert dry.differences == {}
    database.dispose()


def test_a_rebuild_refuses_a_store_that_is_not_empty(seed_settings: Settings) -> None:
    clock = Clock(datetime.now(UTC))
    with TestClient(create_app(seed_settings, clock)) as client:
        gql(client, RECORD_MANY, {"events": history(clock.now, PLAYERS, 50)})
    with pytest.raises(Exception, match="already holds unlocks"):
        asyncio.run(rebuild(seed_settings))
