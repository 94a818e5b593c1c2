"""An engine on a real store: for tests that drive the rules directly, with a
sender that records events through it with numbered ids, and for tests of the
service, as another process sharing its store would see it (without the
service's durable SQL work)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from app.settings import Settings
from engine.engine import Clock, Engine, EngineSettings
from engine.events import Event
from engine.program.loader import load_program
from engine.store import store_from_url

PARIS = EngineSettings(default_timezone="Europe/Paris")


@asynccontextmanager
async def engine_on(
    program: Path, store_url: str, clock: Clock, settings: EngineSettings = PARIS
) -> AsyncIterator[Engine]:
    store = store_from_url(store_url)
    try:
        yield Engine(load_program(program), store, settings, clock)
    finally:
        await store.close()


def service_engine(settings: Settings, clock: Clock) -> AbstractAsyncContextManager[Engine]:
    """An engine of the test's own on the service's store and program."""
    return engine_on(settings.seed_path, settings.store_url, clock, settings.engine_settings())


async def record_in_store_only(settings: Settings, clock: Clock, event: Event) -> None:
    """Record an event as a worker that dies right after the store's claim would."""
    async with service_engine(settings, clock) as engine:
        await engine.record(event)


async def store_unlock_keys(
    settings: Settings, clock: Clock, players: list[str]
) -> dict[str, list[str]]:
    """Each player's unlock keys as the store's outbox holds them, sorted."""
    async with service_engine(settings, clock) as engine:
        return {
            player: sorted(unlock.key for unlock in await engine.unlocks(player, None, 1000))
            for player in players
        }


class Sender:
    """Records events with numbered ids (e1, e2, ...), so tests read as a sequence
    of purchases; `defaults` are properties every event has unless given."""

    def __init__(self, engine: Engine, **defaults: Any) -> None:
        self.engine = engine
        self.defaults = defaults
        self.count = 0

    def event(
        self,
        player: str,
        type: str = "purchase",
        at: datetime | None = None,
        event_id: str | None = None,
        **properties: Any,
    ) -> Event:
        self.count += 1
        return Event(
            id=event_id or f"e{self.count}",
            player_id=player,
            type=type,
            occurred_at=at,
            properties={**self.defaults, **properties},
        )

    async def __call__(
        self,
        player: str = "ada",
        type: str = "purchase",
        at: datetime | None = None,
        event_id: str | None = None,
        **properties: Any,
    ) -> list[str]:
        """Record one event; the keys it unlocked."""
        result = await self.engine.record(self.event(player, type, at, event_id, **properties))
        return [unlock.key for unlock in result.unlocks]

    async def many(
        self, player: str, times: int = 1, at: datetime | None = None, **properties: Any
    ) -> None:
        """Record `times` purchases of `player` in one batch."""
        await self.engine.record_many(
            [self.event(player, at=at, **properties) for _ in range(times)]
        )
