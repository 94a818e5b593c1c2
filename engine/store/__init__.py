"""Counter stores, picked by URL scheme.

    redis://host:port/db, rediss://…, unix:///path.sock    RedisStore
    redis+cluster://host:port                             RedisStore on Redis Cluster
    sqlite:///relative/path, sqlite:////absolute/path     SqliteStore (embedded)
    sqlite://:memory:, sqlite:///:memory:                 SqliteStore in memory

Backends are imported only when chosen, so the embedded default never loads
redis-py: it is the `redis` extra (`pip install 'questline[redis]'`).
"""

from __future__ import annotations

import re

from engine.errors import ConfigurationError, CursorError
from engine.extras import extra
from engine.store.base import Store
from engine.urls import redacted

REDIS_SCHEMES = ("redis", "rediss", "unix", "redis+cluster")
SQLITE_SCHEME = "sqlite"
ACCEPTED = "redis://, rediss://, unix://, redis+cluster:// or sqlite:///path"
_CURSOR = re.compile(r"(\d{1,19})-(\d{1,19})")


#: Seconds a call to a networked store may take before it fails with StoreError.
DEFAULT_TIMEOUT = 2.0


def store_from_url(url: str, *, announce: bool = True, timeout: float = DEFAULT_TIMEOUT) -> Store:
    """The store a URL names; ConfigurationError when it names none.

    With `announce=False` new unlocks are not published to other processes'
    listeners (a rebuild replays history nobody should hear of again).
    `timeout` is the deadline of every call to a Redis store (connecting,
    waiting for a free connection, each command); a `socket_timeout` in the
    URL's query takes precedence. The embedded SQLite store has none: it
    runs in the process, on local disk.
    """
    scheme, separator, _ = url.partition("://")
    scheme = scheme.lower()
    if separator and scheme in REDIS_SCHEMES:
        with extra("redis", ("redis", "hiredis"), f"the store {redacted(url)}"):
            from engine.store.redis import RedisStore

        return RedisStore(url, announce=announce, timeout=timeout)
    if separator and scheme == SQLITE_SCHEME:
        path = sqlite_path(url)
        from engine.store.sqlite import SqliteStore

        return SqliteStore(path)
    raise ConfigurationError(f"store URL {redacted(url)!r} has no known scheme; use {ACCEPTED}")


def sqlite_path(url: str) -> str:
    """The database file a `sqlite://` URL names.

    Follows SQLAlchemy: three slashes for a relative path, four for an
    absolute one.
    """
    rest = url.partition("://")[2]
    if rest in (":memory:", "/:memory:"):
        return ":memory:"
    path = rest.removeprefix("/")
    if not rest.startswith("/") or not path:
        raise ConfigurationError(
            f"store URL {url!r} names no database file; use sqlite:///relative/path, "
            "sqlite:////absolute/path or sqlite://:memory:"
        )
    return path


def cursor_position(cursor: str) -> tuple[int, int]:
    """The (ms, seq) an outbox cursor stands for; CursorError when it is not one.

    Both stores issue `<ms>-<seq>` ids (SQLite with ms = 0), so either store
    can check a cursor a client sends back before it reaches the backend.
    """
    match = _CURSOR.fullmatch(cursor)
    if match is None:
        raise CursorError(
            f"{cursor!r} is not an outbox cursor; pass back the id of an entry you received"
        )
    return int(match[1]), int(match[2])


__all__ = ["Store", "cursor_position", "sqlite_path", "store_from_url"]
