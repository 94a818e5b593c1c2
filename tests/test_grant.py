"""Engine.claim: unlocks no counter decides (tiers), on every store backend."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from engine.engine import Engine, EngineSettings
from engine.program.loader import load_program
from engine.store import store_from_url
from engine.unlocks import UnlockKind
from tests.support.clock import Clock
from tests.support.programs import LOYALTY

NOON = datetime(2026, 11, 25, 11, 0, tzinfo=UTC)


@pytest.fixture
async def engine(store_url: str) -> AsyncIterator[Engine]:
    store = store_from_url(store_url)
    yield Engine(load_program(LOYALTY), store, EngineSettings(), Clock(NOON))
    await store.close()


async def test_a_claimed_unlock_lands_in_the_outbox_described_by_the_program(
    engine: Engine,
) -> None:
    [unlock] = await engine.claim("ada", "tier:gold:2026-11-25")
    assert (unlock.kind, unlock.title, unlock.unlocked_at) == (UnlockKind.TIER, "Gold", NOON)
    assert [u.key for u in await engine.unlocks("ada")] == ["tier:gold:2026-11-25"]


async def test_claiming_a_key_again_claims_it_once(engine: Engine) -> None:
    first = await engine.claim("ada", "tier:gold:2026-11-25")
    again = await engine.claim("ada", "tier:gold:2026-11-25")
    assert again == first
    assert len(await engine.unlocks("ada")) == 1


async def test_a_claimed_key_is_pushed_to_listeners(engine: Engine) -> None:
    ready = asyncio.Event()
    listener = engine.store.listen(ready.set)
    received = asyncio.ensure_future(anext(listener))
    await ready.wait()
    await engine.claim("ada", "tier:platinum:2026-11-25")
    player, entries = await asyncio.wait_for(received, 5)
    assert (player, [e.key for e in entries]) == ("ada", ["tier:platinum:2026-11-25"])
    await listener.aclose()  # type: ignore[attr-defined]


async def test_a_claim_after_the_profile_changed_elsewhere_is_replanned(
    engine: Engine, store_url: str
) -> None:
    await engine.profile("ada")  # cached at version 0
    other = store_from_url(store_url)
    await other.set_profile("ada", {"timezone": "Asia/Tokyo"})
    await other.close()
    assert [u.key for u in await engine.claim("ada", "tier:gold:2026-11-25")] == [
        "tier:gold:2026-11-25"
    ]
