from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from app.settings import Settings
from tests import services
from tests.clock import Clock
from tests.engines import WEDNESDAY
from tests.graphql_client import client_for, settings_for


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A private redis-server for the whole run; failing, not skipping, when absent."""
    try:
        with services.redis_server() as url:
            yield url
    except services.ServiceUnavailable as error:
        pytest.fail(str(error), pytrace=False)


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


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    try:
        with services.postgres_database() as url:
            yield url
    except services.ServiceUnavailable as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Service settings on private SQLite files, the test program and known credentials."""
    return settings_for(tmp_path)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """The app, started (lifespan run), behind Starlette's TestClient."""
    with client_for(settings) as client:
        yield client


@pytest.fixture
def clock() -> Clock:
    """The engine tests' injected clock, starting on a Wednesday morning in Paris."""
    return Clock(WEDNESDAY)
