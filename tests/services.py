"""Private Redis and PostgreSQL servers for the test run.

The tests never touch the shared Redis on 6379: they start their own
`redis-server` on a free port and throw it away at the end. PostgreSQL is
reached through the local server, but each run creates and drops its own
database. When a service cannot be started the suite fails (never skips) with
a message that says how to install it, because CI must run these tests.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REDIS_HELP = (
    "the tests need a `redis-server` binary (Redis 6.2 or newer). Install it with "
    "`sudo apt-get install redis-server` (Debian/Ubuntu) or `brew install redis` (macOS), "
    "or point QUESTLINE_TEST_REDIS_SERVER at one."
)
POSTGRES_HELP = (
    "the tests need a PostgreSQL server they can create databases on. Start one "
    "(`sudo apt-get install postgresql`) or set QUESTLINE_TEST_POSTGRES_URL to an admin URL "
    "such as postgresql://postgres@127.0.0.1:5432/postgres."
)


class ServiceUnavailable(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def real_time_environ() -> dict[str, str]:
    """This process's environment without libfaketime.

    The suite also runs under libfaketime (`.ci/run`) to prove it does not
    depend on today's date; preloaded into redis-server, libfaketime clashes
    with its allocator and the server hangs at start. So Redis keeps real time,
    and a test comparing its expiries with the test's clock reads Redis's TIME.
    """
    environ = {name: value for name, value in os.environ.items() if "FAKETIME" not in name}
    preload = [
        lib
        for lib in environ.pop("LD_PRELOAD", "").replace(":", " ").split()
        if "faketime" not in lib
    ]
    if preload:
        environ["LD_PRELOAD"] = " ".join(preload)
    return environ


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServiceUnavailable(f"redis-server exited with code {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise ServiceUnavailable(f"redis-server did not listen on port {port} within {timeout}s")


@contextmanager
def redis_server(durable: bool = False) -> Iterator[str]:
    """Start a throwaway redis-server on a free port; yield its URL. A durable
    one writes every command to its append-only file before answering."""
    with redis_process(durable) as (url, _):
        yield url


@contextmanager
def redis_process(durable: bool = False) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Start a throwaway redis-server on a free port; yield its URL and process
    (to pause it with SIGSTOP, as a hung server would be)."""
    binary = shutil.which(os.environ.get("QUESTLINE_TEST_REDIS_SERVER") or "redis-server")
    if binary is None:
        raise ServiceUnavailable(REDIS_HELP)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="questline-redis-") as directory:
        args = [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "yes" if durable else "no",
            "--appendfsync",
            "always",
            "--dir",
            directory,
        ]
        process = subprocess.Popen(
            args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=directory,
            env=real_time_environ(),
        )
        try:
            _wait_for_port(port, process)
            yield f"redis://127.0.0.1:{port}/0", process
        finally:
            process.send_signal(signal.SIGCONT)  # a paused server cannot take SIGTERM
            process.terminate()
            process.wait(timeout=10)


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
    libfaketime (see `real_time_environ`); the SQLite store by this process's clock.
    """
    if store_url.startswith("sqlite"):
        return int(time.time())
    import redis

    with redis.Redis.from_url(store_url) as client:
        seconds, _ = client.time()
    return int(seconds)


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
