"""An engine on a real store, for tests that drive the rules directly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from engine.engine import Engine, EngineSettings
from engine.program.loader import load_program
from engine.store import store_from_url
from tests.clock import Clock


@asynccontextmanager
async def engine_on(program: Path, store_url: str, clock: Clock) -> AsyncIterator[Engine]:
    store = store_from_url(store_url)
    try:
        yield Engine(
            load_program(program), store, EngineSettings(default_timezone="Europe/Paris"), clock
        )
    finally:
        await store.close()
