"""Program reload without a restart: the mutation, SIGHUP, and convergence of workers."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from starlette.testclient import TestClient

from app.main import create_app
from app.reloading import PROGRAM_CHANNEL
from app.service import Service
from app.settings import Settings
from engine.store import store_from_url
from tests.support.clock import Clock
from tests.support.graphql_client import API_KEY, client_for, codes, gql, settings_for
from tests.support.polling import eventually, eventually_async
from tests.support.programs import CAFE

RELOAD = "mutation { reloadProgram { version changed } }"
CATALOG = "{ program { version challenges { id name } } }"
RECORD = """mutation($id: String!) {
    recordEvent(event: {id: $id, playerId: "ada", type: "purchase",
                        properties: {category: "coffee"}}) { unlocks { key } } }"""
WEEKEND = "\n  weekend-treat: {name: Weekend treat, metric: coffees, target: 2, every: week}\n"
#: Two mistakes at once: an unknown metric, and a target that must be positive.
BROKEN = (
    "\n  broken: {metric: teas, target: 3, every: week}"
    "\n  broken-too: {metric: coffees, target: 0, every: week}\n"
)


def seed_copy(folder: Path) -> Path:
    """A private copy of the test program that a test may edit."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "cafe.yaml"
    shutil.copy(CAFE, target)
    return target


def add_challenge(seed: Path, text: str) -> None:
    """Append a challenge to the `challenges:` section of the seed file."""
    content = seed.read_text()
    marker = "challenges:"
    seed.write_text(content.replace(marker, marker + text.rstrip("\n"), 1))


def challenges(client: TestClient) -> list[str]:
    return [c["id"] for c in gql(client, CATALOG)["data"]["program"]["challenges"]]


def version(client: TestClient) -> str:
    found: str = gql(client, CATALOG)["data"]["program"]["version"]
    return found


def settings_with(tmp_path: Path, store_url: str | None, seed: Path) -> Settings:
    return settings_for(tmp_path, store_url).model_copy(update={"seed_path": seed})


@pytest.fixture
def seed(tmp_path: Path) -> Path:
    return seed_copy(tmp_path / "seed")


@pytest.fixture
def settings(tmp_path: Path, seed: Path) -> Settings:
    return settings_with(tmp_path, None, seed)


@pytest.fixture
def client(settings: Settings, clock: Clock) -> Iterator[TestClient]:
    with client_for(settings, clock) as client:
        yield client


# --- the mutation -----------------------------------------------------------------


def test_reload_program_picks_up_an_edited_seed(client: TestClient, seed: Path) -> None:
    before = version(client)
    assert "weekend-treat" not in challenges(client)
    add_challenge(seed, WEEKEND)
    result = gql(client, RELOAD)["data"]["reloadProgram"]
    assert result["changed"] is True and result["version"] != before
    assert "weekend-treat" in challenges(client)
    assert version(client) == result["version"]


def test_reloading_an_unchanged_seed_changes_nothing(client: TestClient) -> None:
    before = version(client)
    assert gql(client, RELOAD)["data"]["reloadProgram"] == {"version": before, "changed": False}


def test_a_broken_seed_is_refused_with_every_error_and_the_old_program_keeps_serving(
    client: TestClient, seed: Path
) -> None:
    before = version(client)
    add_challenge(seed, BROKEN)
    body = gql(client, RELOAD)
    assert codes(body) == ["BAD_PROGRAM"]
    message = body["errors"][0]["message"]
    assert message.startswith("the program has 2 errors")
    assert "cafe.yaml:" in message
    assert "challenges.broken.metric" in message and "teas" in message
    assert "challenges.broken-too.target" in message
    assert version(client) == before
    assert "broken" not in challenges(client)
    unlocks = gql(client, RECORD, {"id": "e1"})["data"]["recordEvent"]["unlocks"]
    assert [u["key"] for u in unlocks] == ["milestone:coffee-lover:1", "badge:first-sip"]


def test_only_an_api_key_may_reload(client: TestClient) -> None:
    assert codes(gql(client, RELOAD, token=None)) == ["UNAUTHENTICATED"]


# --- several workers on one Redis ---------------------------------------------------


def test_a_reload_on_one_worker_reaches_every_worker_sharing_the_store(
    tmp_path: Path, seed: Path, clean_redis_url: str, clock: Clock
) -> None:
    first = settings_with(tmp_path / "a", clean_redis_url, seed)
    second = settings_with(tmp_path / "b", clean_redis_url, seed)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with client_for(first, clock) as one, client_for(second, clock) as other:
        before = version(other)
        add_challenge(seed, WEEKEND)
        reloaded = gql(one, RELOAD)["data"]["reloadProgram"]["version"]
        assert reloaded != before
        eventually(lambda: version(other) == reloaded)
        assert "weekend-treat" in challenges(other)


def test_a_worker_whose_seed_folder_is_broken_keeps_its_program_and_says_why(
    tmp_path: Path,
    seed: Path,
    clean_redis_url: str,
    caplog: pytest.LogCaptureFixture,
    clock: Clock,
) -> None:
    elsewhere = seed_copy(tmp_path / "elsewhere")  # another host's copy of the files
    first = settings_with(tmp_path, clean_redis_url, seed)
    (tmp_path / "b").mkdir()
    second = settings_with(tmp_path / "b", clean_redis_url, elsewhere)
    with client_for(first, clock) as one, client_for(second, clock) as other:
        before = version(other)
        add_challenge(seed, WEEKEND)
        add_challenge(elsewhere, BROKEN)
        caplog.set_level(logging.ERROR, logger="questline.service")
        reloaded = gql(one, RELOAD)["data"]["reloadProgram"]["version"]
        eventually(lambda: "does not load" in caplog.text)
        assert f"another worker serves program {reloaded}" in caplog.text
        assert "challenges.broken" in caplog.text
        assert version(other) == before
        assert version(one) == reloaded


def test_workers_whose_files_differ_each_serve_their_own_and_stop_there(
    tmp_path: Path,
    seed: Path,
    clean_redis_url: str,
    caplog: pytest.LogCaptureFixture,
    clock: Clock,
) -> None:
    """A worker that loads another version than announced announces its own;
    the first one then finds its files unchanged, so the exchange ends."""
    elsewhere = seed_copy(tmp_path / "elsewhere")
    first = settings_with(tmp_path, clean_redis_url, seed)
    (tmp_path / "b").mkdir()
    second = settings_with(tmp_path / "b", clean_redis_url, elsewhere)
    with client_for(first, clock) as one, client_for(second, clock) as other:
        before = version(other)
        add_challenge(seed, WEEKEND)
        add_challenge(elsewhere, WEEKEND.replace("target: 2", "target: 5"))
        caplog.set_level(logging.WARNING, logger="questline.service")
        reloaded = gql(one, RELOAD)["data"]["reloadProgram"]["version"]
        eventually(lambda: len(differing(caplog)) == 2)
        assert version(other) not in (before, reloaded)
        assert "weekend-treat" in challenges(other)
        assert version(one) == reloaded
        # A worker follows announcements one at a time, in the order the store
        # delivers them. Once both followed a first marker, neither is still
        # answering the exchange; once both followed a second one, sent after
        # that, each has heard every announcement made before it.
        for marker in ("marker-1", "marker-2"):
            both_follow(clean_redis_url, caplog, marker)
        assert len(differing(caplog)) == 2, differing(caplog)


def differing(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The warnings of workers whose files differ from an announced version
    (not counting the test's markers)."""
    return [
        message
        for message in caplog.messages
        if "but the seed folder here is version" in message and "program marker-" not in message
    ]


def both_follow(store_url: str, caplog: pytest.LogCaptureFixture, marker: str) -> None:
    """Announce a version no worker has, and wait until both said so."""
    announce(store_url, marker)
    eventually(lambda: caplog.text.count(f"announced program {marker},") == 2)


def announce(store_url: str, version: str) -> None:
    """Announce `version` on the store as a worker would."""

    async def broadcast() -> None:
        store = store_from_url(store_url)
        try:
            await store.broadcast(PROGRAM_CHANNEL, version)
        finally:
            await store.close()

    asyncio.run(broadcast())


# --- SIGHUP -----------------------------------------------------------------------


async def query(app: Any, text: str) -> dict[str, Any]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://questline") as http:
        response = await http.post(
            "/graphql", json={"query": text}, headers={"Authorization": f"Bearer {API_KEY}"}
        )
    body: dict[str, Any] = response.json()
    return body


async def served(app: Any) -> str:
    found: str = (await query(app, CATALOG))["data"]["program"]["version"]
    return found


async def test_sighup_reloads_the_program_in_place(settings: Settings, seed: Path) -> None:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        assert signal.getsignal(signal.SIGHUP) not in (signal.SIG_DFL, signal.SIG_IGN, None)
        before = await served(app)
        add_challenge(seed, WEEKEND)
        os.kill(os.getpid(), signal.SIGHUP)

        async def reloaded() -> bool:
            return await served(app) != before

        await eventually_async(reloaded)
        catalog = (await query(app, CATALOG))["data"]["program"]["challenges"]
        assert "weekend-treat" in [c["id"] for c in catalog]
    assert signal.getsignal(signal.SIGHUP) == signal.SIG_DFL


async def test_sighup_with_a_broken_seed_logs_every_error_and_keeps_serving(
    settings: Settings, seed: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(settings)
    caplog.set_level(logging.INFO, logger="questline.service")
    async with app.router.lifespan_context(app):
        before = await served(app)
        add_challenge(seed, BROKEN)
        os.kill(os.getpid(), signal.SIGHUP)

        async def refused() -> bool:
            return "program reload refused" in caplog.text

        await eventually_async(refused)
        assert f"still serving version {before}" in caplog.text
        assert "the program has 2 errors" in caplog.text
        assert "challenges.broken.metric" in caplog.text
        assert "challenges.broken-too.target" in caplog.text
        assert await served(app) == before
        service: Service = app.state.service
        assert service.program.version == before
