from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext
from starlette.testclient import TestClient

from app.launch import Server, redis_server, running_servers
from app.settings import Settings
from tests.support import browser as browsers
from tests.support.clock import WEDNESDAY, Clock
from tests.support.graphql_client import client_for, seed_env, settings_for
from tests.support.services import postgres_database, required, store_time


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A private redis-server for the whole run; failing, not skipping, when absent."""
    with required(redis_server()) as url:
        yield url


@pytest.fixture
def clean_redis_url(redis_url: str) -> Iterator[str]:
    """The private server, emptied before each test (it is ours alone to flush)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    client.flushall()
    client.close()
    yield redis_url


@pytest.fixture(params=["sqlite", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each store backend in turn: the contract is that they agree exactly."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    url: str = request.getfixturevalue("clean_redis_url")
    return url


@pytest.fixture
def store_now(store_url: str) -> int:
    """Now, in Unix seconds, by the store's own clock: the one its expiries follow."""
    return store_time(store_url)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A private PostgreSQL database for the whole run; failing, not skipping, when absent."""
    with required(postgres_database()) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The history database on each backend in turn: a SQLite file of the test's
    own, or the run's PostgreSQL database, shared, where tests use players of
    their own or empty the tables they count."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'history.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Service settings on private SQLite files, the test program and known credentials."""
    return settings_for(tmp_path)


@pytest.fixture
def client(settings: Settings, clock: Clock) -> Iterator[TestClient]:
    """The app on the injected clock, started (lifespan run), behind Starlette's TestClient."""
    with client_for(settings, clock) as client:
        yield client


@pytest.fixture
def clock() -> Clock:
    """The tests' injected clock, starting on a Wednesday morning in Paris (WEDNESDAY)."""
    return Clock(WEDNESDAY)


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    """Debian's Chromium; failing, not skipping, when it is not installed."""
    if not browsers.CHROMIUM.exists():
        pytest.fail(browsers.CHROMIUM_HELP, pytrace=False)
    return browsers.CHROMIUM


@pytest.fixture
def browser(chromium_path: Path, tmp_path: Path) -> Iterator[BrowserContext]:
    """A fresh Chromium (own profile, no cookies), 1280 px wide."""
    with browsers.chromium(tmp_path / "chromium-profile") as context:
        yield context


@pytest.fixture(scope="module")
def seed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A real server in development mode on the example program (seed/), with
    SQLite files of its own and the test credentials, for a whole module."""
    folder = tmp_path_factory.mktemp("seed-server")
    with running_servers([seed_env(folder)], folder) as (server,):
        yield server
