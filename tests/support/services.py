"""PostgreSQL databases for the test run, and the store's own clock.

The tests never touch a shared database: each run creates its own on the
local PostgreSQL server and drops it at the end. When that server cannot be
reached the suite fails (never skips) with a message that says how to install
it, because CI must run these tests. Redis and Questline servers are started
by `app.launch`, which the benchmarks use too.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

import pytest

from app.launch import ServiceUnavailable

POSTGRES_HELP = (
    "the tests need a PostgreSQL server they can create databases on. Start one "
    "(`sudo apt-get install postgresql`) or set QUESTLINE_TEST_POSTGRES_URL to an admin URL "
    "such as postgresql://postgres@127.0.0.1:5432/postgres."
)


@contextmanager
def required(service: AbstractContextManager[str]) -> Iterator[str]:
    """The URL of a service started by `service`; when it cannot start, the test
    fails (never skips) with the message saying how to install it."""
    try:
        with service as url:
            yield url
    except ServiceUnavailable as error:
        pytest.fail(str(error), pytrace=False)


@contextmanager
def postgres_database() -> Iterator[str]:
    """Create a throwaway PostgreSQL database; yield its SQLAlchemy URL."""
    import psycopg

    admin = os.environ.get(
        "QUESTLINE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    name = f"questline_test_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as error:
        raise ServiceUnavailable(f"{POSTGRES_HELP} ({error})") from error
    base = admin.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def store_time(store_url: str) -> int:
    """Now, in Unix seconds, by the clock the store at `store_url` expires keys by.

    Redis expires by its own TIME, which stays real when the suite runs under
    libfaketime (see `app.launch.real_time_environ`); the SQLite store by this
    process's clock.
    """
    if store_url.startswith("sqlite"):
        return int(time.time())
    import redis

    with redis.Redis.from_url(store_url) as client:
        seconds, _ = client.time()
    return int(seconds)
