"""An engine of the test's own on a service's store: what another process
sharing that store would see or do, without the service's durable SQL work."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from app.settings import Settings
from engine.engine import Clock, Engine
from engine.events import Event
from engine.program.loader import load_program
from engine.store import store_from_url


@asynccontextmanager
async def engine_on(settings: Settings, clock: Clock) -> AsyncIterator[Engine]:
    store = store_from_url(settings.store_url)
    try:
        yield Engine(load_program(settings.seed_path), store, settings.engine_settings(), clock)
    finally:
        await store.close()


async def record_in_store_only(settings: Settings, clock: Clock, event: Event) -> None:
    """Record an event as a worker that dies right after the store's claim would."""
    async with engine_on(settings, clock) as engine:
        await engine.record(event)


async def store_unlock_keys(
    settings: Settings, clock: Clock, players: list[str]
) -> dict[str, list[str]]:
    """Each player's unlock keys as the store's outbox holds them, sorted."""
    async with engine_on(settings, clock) as engine:
        return {
            player: sorted(unlock.key for unlock in await engine.unlocks(player, None, 1000))
            for player in players
        }
