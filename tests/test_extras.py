"""The embedded default needs neither redis-py nor psycopg; picking their
backend without them says which extra to install."""

from __future__ import annotations

import subprocess
import sys

import pytest

from app.sql import make_database
from engine.errors import ConfigurationError
from engine.store import store_from_url


def without(monkeypatch: pytest.MonkeyPatch, *packages: str) -> None:
    """Make `packages` (and their modules) fail to import, as when they are not installed."""
    for name in list(sys.modules):
        if name.partition(".")[0] in packages or name == "engine.store.redis":
            monkeypatch.delitem(sys.modules, name)
    for package in packages:
        monkeypatch.setitem(sys.modules, package, None)


def test_a_redis_url_without_redis_py_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    without(monkeypatch, "redis", "hiredis")

    with pytest.raises(ConfigurationError) as caught:
        store_from_url("redis://:hunter2@127.0.0.1:6379/0")

    assert str(caught.value).startswith(
        "the store redis://:***@127.0.0.1:6379/0 needs the redis extra, which is not installed"
    )
    assert str(caught.value).endswith("pip install 'questline[redis]'")


def test_a_postgresql_url_without_psycopg_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    without(monkeypatch, "psycopg")

    with pytest.raises(ConfigurationError) as caught:
        make_database("postgresql://questline:hunter2@127.0.0.1/questline")

    assert str(caught.value) == (
        "the database postgresql://questline:***@127.0.0.1/questline needs the postgres extra, "
        "which is not installed (no module named 'psycopg'): pip install 'questline[postgres]'"
    )


def test_the_embedded_default_loads_neither() -> None:
    script = (
        "import sys, app.main, app.cli\n"
        "from app.sql import make_database\n"
        "from engine.store import store_from_url\n"
        "store_from_url('sqlite://:memory:')\n"
        "make_database('sqlite://').connect().close()\n"
        "loaded = {name.partition('.')[0] for name in sys.modules}\n"
        "print(sorted(loaded & {'redis', 'hiredis', 'psycopg'}))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )

    assert loaded.stdout.strip() == "[]"
