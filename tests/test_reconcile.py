"""A crash between claiming an unlock and copying it to SQL loses nothing.

The crash is simulated by recording events with the engine alone: the store
claims the unlocks and appends them to the outbox, and nothing copies them
to history, exactly as if the service died right after the store answered.
Starting the service must then copy them, once, on every store.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from app import history as history_module
from app.settings import Settings
from engine.engine import Engine, EngineSettings
from engine.events import Event
from engine.program.loader import load_program
from engine.store import store_from_url
from tests.support.clock import Clock
from tests.support.graphql_client import client_for, gql, settings_for
from tests.support.programs import CAFE

HISTORY = """query($id: ID!) {
    player(id: $id) { unlocks(first: 100) { edges { node { id key kind title points } } } } }"""
RECORD = """mutation($id: String!, $player: ID!) {
    recordEvent(event: {id: $id, playerId: $player, type: "purchase",
                        properties: {category: "coffee", amount: 4.5}}) { unlocks { key } } }"""


@pytest.fixture
def settings(tmp_path: Path, store_url: str) -> Settings:
    return settings_for(tmp_path, store_url)


def coffee(event_id: str, player: str) -> Event:
    return Event(
        id=event_id,
        player_id=player,
        type="purchase",
        properties={"category": "coffee", "amount": 4.5},
    )


def crash_after_claiming(settings: Settings, clock: Clock, events: list[Event]) -> list[str]:
    """Record events with the engine alone; return the unlock keys claimed."""

    async def record() -> list[str]:
        store = store_from_url(settings.store_url)
        engine = Engine(
            load_program(CAFE),
            store,
            EngineSettings(default_timezone=settings.default_timezone),
            clock,
        )
        try:
            results = await engine.record_many(events)
        finally:
            await store.close()
        return [unlock.key for result in results for unlock in result.unlocks]

    return asyncio.run(record())


def history(settings: Settings, clock: Clock, player: str) -> list[dict[str, Any]]:
    with client_for(settings, clock) as client:
        body = gql(client, HISTORY, {"id": player})
    return [edge["node"] for edge in body["data"]["player"]["unlocks"]["edges"]]


def test_unlocks_claimed_but_never_copied_are_in_history_after_a_restart(
    settings: Settings, clock: Clock
) -> None:
    claimed = crash_after_claiming(settings, clock, [coffee(f"e{n}", "ada") for n in range(3)])
    assert claimed  # the program unlocks something for three coffees
    found = history(settings, clock, "ada")
    assert [unlock["key"] for unlock in found] == claimed
    first_sip = found[0]
    assert first_sip["kind"] == "MILESTONE" and first_sip["title"] == "First sip"


def test_starting_twice_copies_nothing_twice(
    settings: Settings, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    claimed = crash_after_claiming(settings, clock, [coffee("e1", "ada"), coffee("e2", "bob")])
    caplog.set_level(logging.INFO, logger="questline.service")
    first = {player: history(settings, clock, player) for player in ("ada", "bob")}
    assert f"history recovery: {len(claimed)} unlocks found" in caplog.text
    caplog.clear()
    again = {player: history(settings, clock, player) for player in ("ada", "bob")}
    assert "history recovery: 0 unlocks found" in caplog.text
    assert again == first
    assert sorted(u["key"] for found in again.values() for u in found) == sorted(claimed)


def test_recovery_pages_through_long_outboxes_and_keeps_what_was_copied(
    settings: Settings, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unlocks copied by the service before the crash stay as they were,
    and those after it follow them, in outbox order."""
    monkeypatch.setattr(history_module, "RECOVERY_PAGE", 2)
    with client_for(settings, clock) as client:
        copied = gql(client, RECORD, {"id": "e1", "player": "ada"})["data"]["recordEvent"]
    before = history(settings, clock, "ada")
    claimed = crash_after_claiming(settings, clock, [coffee(f"e{n}", "ada") for n in range(2, 6)])
    assert len(claimed) > 2  # more than one page
    after = history(settings, clock, "ada")
    assert after[: len(before)] == before
    assert [u["key"] for u in after] == [u["key"] for u in copied["unlocks"]] + claimed
