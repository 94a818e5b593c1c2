"""The history database, on SQLite and on PostgreSQL alike."""

from __future__ import annotations

import dataclasses
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text
from sqlmodel import SQLModel

from app import migrations, records
from app.launch import free_port
from app.migrations import upgrade_database
from app.records import UnlockData, list_unlocks
from app.sql import DatabaseError, make_database, ping_database, writing
from engine.errors import ConfigurationError
from tests.support.services import postgres_database, required

T = TypeVar("T")
START = datetime(2024, 3, 4, 8, 30, tzinfo=UTC)
#: The newest revision in app/migrations/versions.
HEAD = ScriptDirectory(str(Path(migrations.__file__).parent)).get_current_head()


def save_unlocks(engine: Engine, unlocks: list[UnlockData]) -> int:
    """Copy unlocks in a transaction of their own; how many were new."""
    with writing(engine) as connection:
        return len(records.save_unlocks(connection, unlocks))


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of each backend that has never been migrated."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    with required(postgres_database()) as url:
        yield url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    upgrade_database(database_url)
    engine = make_database(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def player() -> str:
    return f"player-{uuid.uuid4().hex[:12]}"


def unlock(player_id: str, key: str, minutes: int = 0, **changes: Any) -> UnlockData:
    made = UnlockData(
        key=key,
        player_id=player_id,
        kind="MILESTONE",
        title=f"Title of {key}",
        badge_id=None,
        points=None,
        unlocked_at=START + timedelta(minutes=minutes),
        outbox_id=f"{1709541000000 + minutes}-0",
        payload=json.dumps({"key": key}),
    )
    return dataclasses.replace(made, **changes)


def all_at_once(count: int, action: Callable[[], T]) -> list[T]:
    """Run `action` on `count` threads released together, so they really race."""
    barrier = threading.Barrier(count)

    def raced() -> T:
        barrier.wait()
        return action()

    with ThreadPoolExecutor(count) as pool:
        futures = [pool.submit(raced) for _ in range(count)]
        return [future.result(timeout=60) for future in futures]


def test_saved_unlocks_come_back_in_order_with_every_field(engine: Engine, player: str) -> None:
    paris = timezone(timedelta(hours=1))
    saved = [
        unlock(player, "milestone:coffee-lover:1", 0, badge_id="first-sip"),
        unlock(
            player,
            "challenge:three-this-week:2024-W10",
            5,
            kind="CHALLENGE",
            points=50,
            unlocked_at=datetime(2024, 3, 4, 9, 35, tzinfo=paris),
        ),
    ]

    assert save_unlocks(engine, saved) == 2

    records = list_unlocks(engine, player, after=None, limit=10)
    assert [record.key for record in records] == [item.key for item in saved]
    first, second = records
    assert first.id is not None and second.id is not None and first.id < second.id
    assert (first.kind, first.title, first.badge_id, first.points) == (
        "MILESTONE",
        "Title of milestone:coffee-lover:1",
        "first-sip",
        None,
    )
    assert first.unlocked_at == START
    assert first.unlocked_at.tzinfo is UTC
    assert second.unlocked_at == datetime(2024, 3, 4, 8, 35, tzinfo=UTC)
    assert second.unlocked_at.tzinfo is UTC
    assert (second.kind, second.points, second.outbox_id) == ("CHALLENGE", 50, "1709541000005-0")
    assert json.loads(second.payload) == {"key": "challenge:three-this-week:2024-W10"}


def count_unlocks(engine: Engine, player_id: str) -> int:
    return len(list_unlocks(engine, player_id, None, 1000))


def test_saving_an_unlock_again_records_it_once(engine: Engine, player: str) -> None:
    first = unlock(player, "milestone:coffee-lover:1")

    assert save_unlocks(engine, [first]) == 1
    assert save_unlocks(engine, [first, unlock(player, "badge:regular", 1)]) == 1
    assert save_unlocks(engine, [first]) == 0

    assert count_unlocks(engine, player) == 2
    assert [r.key for r in list_unlocks(engine, player, None, 10)] == [
        "milestone:coffee-lover:1",
        "badge:regular",
    ]


def test_a_retried_copy_keeps_what_was_first_recorded(engine: Engine, player: str) -> None:
    save_unlocks(engine, [unlock(player, "badge:regular", title="Regular")])

    save_unlocks(engine, [unlock(player, "badge:regular", title="Renamed later")])

    [record] = list_unlocks(engine, player, None, 10)
    assert record.title == "Regular"


def test_the_same_unlock_twice_in_one_batch_is_recorded_once(engine: Engine, player: str) -> None:
    same = unlock(player, "streak:daily-coffee:7", kind="STREAK")

    assert save_unlocks(engine, [same, same]) == 1
    assert count_unlocks(engine, player) == 1


def test_the_same_key_for_two_players_is_two_unlocks(engine: Engine, player: str) -> None:
    other = f"{player}-friend"

    assert save_unlocks(engine, [unlock(player, "badge:x"), unlock(other, "badge:x")]) == 2
    assert count_unlocks(engine, player) == 1
    assert count_unlocks(engine, other) == 1


def test_saving_nothing_records_nothing(engine: Engine, player: str) -> None:
    assert save_unlocks(engine, []) == 0
    assert count_unlocks(engine, player) == 0


def test_concurrent_copies_of_one_unlock_record_it_once(engine: Engine, player: str) -> None:
    same = unlock(player, "milestone:coffee-lover:2")

    inserted = all_at_once(8, lambda: save_unlocks(engine, [same]))

    assert sorted(inserted) == [0] * 7 + [1]
    assert count_unlocks(engine, player) == 1


def test_history_pages_by_record_id_after_a_cursor(engine: Engine, player: str) -> None:
    save_unlocks(engine, [unlock(player, f"badge:{n}", n) for n in range(5)])

    first_page = list_unlocks(engine, player, after=None, limit=2)
    second_page = list_unlocks(engine, player, after=first_page[-1].id, limit=2)
    last_page = list_unlocks(engine, player, after=second_page[-1].id, limit=2)
    after_the_end = list_unlocks(engine, player, after=last_page[-1].id, limit=2)

    assert [r.key for r in first_page + second_page + last_page] == [f"badge:{n}" for n in range(5)]
    assert len(last_page) == 1
    assert after_the_end == []


def test_a_page_of_zero_is_empty_and_a_negative_limit_is_refused(
    engine: Engine, player: str
) -> None:
    save_unlocks(engine, [unlock(player, "badge:a")])

    assert list_unlocks(engine, player, None, 0) == []
    with pytest.raises(ValueError, match="limit must not be negative"):
        list_unlocks(engine, player, None, -1)


def test_a_player_without_history_has_none(engine: Engine, player: str) -> None:
    assert list_unlocks(engine, player, None, 10) == []
    assert count_unlocks(engine, player) == 0


def test_a_naive_unlock_time_is_refused() -> None:
    with pytest.raises(ValueError, match="unlocked_at must be timezone-aware"):
        unlock("ada", "badge:a", unlocked_at=datetime(2024, 3, 4, 8, 30))


def test_upgrading_twice_changes_nothing(database_url: str, engine: Engine, player: str) -> None:
    save_unlocks(engine, [unlock(player, "badge:a")])

    upgrade_database(database_url)

    assert count_unlocks(engine, player) == 1


def test_the_migrations_build_exactly_the_models(fresh_database_url: str) -> None:
    upgrade_database(fresh_database_url)
    engine = make_database(fresh_database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection)
            differences = compare_metadata(context, SQLModel.metadata)
            assert context.get_current_revision() == HEAD
    finally:
        engine.dispose()

    assert differences == []


def test_concurrent_upgrades_of_a_fresh_database_all_succeed(fresh_database_url: str) -> None:
    all_at_once(4, lambda: upgrade_database(fresh_database_url))

    engine = make_database(fresh_database_url)
    try:
        assert save_unlocks(engine, [unlock("ada", "badge:a")]) == 1
        with engine.connect() as connection:
            versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
        assert versions == [(HEAD,)]
    finally:
        engine.dispose()


def test_a_database_that_was_never_migrated_says_to_upgrade(fresh_database_url: str) -> None:
    engine = make_database(fresh_database_url)
    try:
        with pytest.raises(ConfigurationError) as caught:
            count_unlocks(engine, "ada")
    finally:
        engine.dispose()

    # Permanent until an operator migrates: not the retryable STORE_UNAVAILABLE.
    assert caught.value.code == "CONFIGURATION" and not caught.value.retryable
    assert "has no Questline tables: run `questline db upgrade`" in str(caught.value)


def test_a_reachable_database_answers_a_ping(engine: Engine) -> None:
    ping_database(engine)


def test_an_unreachable_postgresql_fails_the_ping_without_showing_the_password() -> None:
    url = f"postgresql+psycopg://questline:hunter2@127.0.0.1:{free_port()}/questline"
    engine = make_database(url)

    with pytest.raises(DatabaseError) as caught:
        ping_database(engine)

    message = str(caught.value)
    assert message.startswith("the database postgresql+psycopg://questline:***@127.0.0.1:")
    assert "is unavailable" in message
    assert "hunter2" not in message


def test_an_unreachable_sqlite_file_fails_the_ping(tmp_path: Path) -> None:
    engine = make_database(f"sqlite:///{tmp_path / 'missing-directory' / 'history.db'}")

    with pytest.raises(DatabaseError, match="is unavailable: unable to open database file"):
        ping_database(engine)


def test_sqlite_runs_in_wal_mode_so_readers_do_not_wait_for_writers(tmp_path: Path) -> None:
    engine = make_database(f"sqlite:///{tmp_path / 'history.db'}")
    try:
        with engine.connect() as connection:
            mode = connection.execute(text("PRAGMA journal_mode")).scalar()
    finally:
        engine.dispose()

    assert mode == "wal"


def test_an_in_memory_sqlite_database_answers_a_ping() -> None:
    engine = make_database("sqlite://")
    try:
        ping_database(engine)
    finally:
        engine.dispose()


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_a_plain_postgresql_url_uses_the_psycopg_driver(scheme: str) -> None:
    engine = make_database(f"{scheme}://questline@db.internal/questline")

    assert engine.url.drivername == "postgresql+psycopg"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://questline@db/questline", "database 'mysql' is not supported; use sqlite:///"),
        ("not a url", "database URL 'not a url' cannot be parsed; use sqlite:///"),
    ],
)
def test_an_unsupported_database_url_is_a_configuration_error(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        make_database(url)

    assert str(caught.value).startswith(message)
    assert "QUESTLINE_DATABASE_URL" in str(caught.value)
