"""Recording's durable SQL work: group commit, the journal, and a cost per
event that does not grow with a player's history."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select
from starlette.testclient import TestClient

from app import journal
from app.main import create_app
from app.points import ACCOUNTS, ENTRIES
from app.settings import Settings
from app.sql import make_database
from engine.group_commit import GroupCommit
from engine.points import LedgerReason
from tests.support.clock import Clock
from tests.support.graphql_client import codes, gql, settings_for
from tests.support.programs import SEED

RECORD = """mutation($event: EventInput!) {
  recordEvent(event: $event) { eventId duplicate unlocks { key } } }"""


class Writes:
    """A `write` for GroupCommit that keeps every batch it was given."""

    def __init__(self, refuse: str | None = None) -> None:
        self.batches: list[list[str]] = []
        self.refuse = refuse

    async def __call__(self, batch: Sequence[str]) -> list[str | Exception]:
        self.batches.append(list(batch))
        await asyncio.sleep(0.01)  # a commit takes a while: others queue meanwhile
        if self.refuse in batch:
            raise ValueError(f"cannot write {self.refuse}")
        return [item.upper() for item in batch]


async def test_concurrent_work_is_written_in_few_transactions_and_each_caller_gets_its_own() -> (
    None
):
    writes = Writes()
    commit: GroupCommit[str, str] = GroupCommit(writes)
    results = await asyncio.gather(*(commit.submit(f"w{n}") for n in range(50)))
    assert results == [f"W{n}" for n in range(50)]
    assert len(writes.batches) <= 2  # the first alone, the rest queued behind it
    assert sorted(item for batch in writes.batches for item in batch) == sorted(
        f"w{n}" for n in range(50)
    )


async def test_one_bad_item_fails_alone_and_the_others_of_its_burst_are_written() -> None:
    writes = Writes(refuse="w3")
    commit: GroupCommit[str, str] = GroupCommit(writes)
    outcomes = await asyncio.gather(
        *(commit.submit(f"w{n}") for n in range(6)), return_exceptions=True
    )
    assert [str(o) for o in outcomes] == ["W0", "W1", "W2", "cannot write w3", "W4", "W5"]
    assert isinstance(outcomes[3], ValueError)


@pytest.fixture
def seed_settings(tmp_path: Path) -> Settings:
    return settings_for(tmp_path).model_copy(update={"seed_path": SEED})


def purchase(event_id: str, player: str, at: datetime | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {
        "id": event_id,
        "playerId": player,
        "type": "purchase",
        "properties": {"category": "coffee", "drink": "latte", "amount": 4.5, "store_id": "s1"},
    }
    if at is not None:
        event["occurredAt"] = at.isoformat()
    return {"event": event}


def test_every_accepted_event_is_journaled_once_with_what_it_caused(
    seed_settings: Settings,
) -> None:
    clock = Clock(datetime.now(UTC))
    earlier = clock.now - timedelta(hours=3)
    with TestClient(create_app(seed_settings, clock)) as client:
        first = gql(client, RECORD, purchase("e1", "ada", earlier))["data"]["recordEvent"]
        again = gql(client, RECORD, purchase("e1", "ada", earlier))["data"]["recordEvent"]
        gql(client, RECORD, purchase("e1", "bob"))  # event ids are unique per player
        version = client.app.state.service.program.version  # type: ignore[attr-defined]
    assert again["duplicate"] is True
    database = make_database(seed_settings.database_url)
    rows = list(journal.entries(database))
    database.dispose()
    assert [(row.event.player_id, row.event.id) for row in rows] == [("ada", "e1"), ("bob", "e1")]
    ada = rows[0]
    assert ada.event.occurred_at == earlier
    assert ada.recorded_at == clock.now
    assert ada.program_version == version
    assert ada.event.properties["amount"] == 4.5
    assert ada.unlock_keys == [unlock["key"] for unlock in first["unlocks"]]
    assert ada.unlock_keys  # a first coffee unlocks something


def test_the_journal_purge_deletes_only_events_older_than_the_retention(
    seed_settings: Settings,
) -> None:
    clock = Clock(datetime.now(UTC))
    days = [clock.now - timedelta(days=n) for n in (0, 3, 6)]
    with TestClient(create_app(seed_settings, clock)) as client:
        for n, at in enumerate(days):
            gql(client, RECORD, purchase(f"e{n}", "ada", at))
    database = make_database(seed_settings.database_url)
    assert journal.purge(database, clock.now - timedelta(days=4), chunk=1) == 1
    assert [row.event.id for row in journal.entries(database)] == ["e0", "e1"]
    database.dispose()


def statements(client: TestClient) -> float:
    metrics = client.app.state.service.metrics  # type: ignore[attr-defined]
    value: float = metrics.sql_statements._value.get()
    return value


def test_an_event_costs_the_same_statements_for_a_player_with_a_long_history(
    seed_settings: Settings,
) -> None:
    """Tier qualification keeps a running figure: 10,000 ledger entries are not re-summed."""
    # Mid-morning of today: both players' events fall on one local day (a
    # new day would add its own activity rows to one of them).
    clock = Clock(datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0))
    database = make_database(seed_settings.database_url)
    with TestClient(create_app(seed_settings, clock)) as client:
        gql(client, RECORD, purchase("warm-up", "someone"))
        with database.begin() as connection:
            connection.execute(
                insert(ENTRIES),
                [
                    {
                        "player_id": "veteran",
                        "delta": 1,
                        "reason": LedgerReason.EARN.value,
                        "reference": f"old-{n}",
                        "created_at": clock.now - timedelta(days=400) + timedelta(minutes=n),
                    }
                    for n in range(10_000)
                ],
            )
            connection.execute(
                insert(ACCOUNTS).values(
                    player_id="veteran", balance=10_000, lifetime_earned=10_000, debited=0
                )
            )
        cost = {}
        for player in ("veteran", "newcomer"):
            counts = []
            for n in range(3):
                before = statements(client)
                clock.advance(minutes=1)
                body = gql(client, RECORD, purchase(f"{player}-{n}", player))
                assert body["data"]["recordEvent"]["duplicate"] is False
                counts.append(statements(client) - before)
            cost[player] = counts
    with database.connect() as connection:
        figure = connection.execute(
            select(ACCOUNTS.c.qualifying).where(ACCOUNTS.c.player_id == "veteran")
        ).scalar_one()
        in_window = connection.execute(
            select(func.sum(ENTRIES.c.delta)).where(
                ENTRIES.c.player_id == "veteran",
                ENTRIES.c.created_at > clock.now - timedelta(days=365),
            )
        ).scalar_one()
    database.dispose()
    assert cost["veteran"] == cost["newcomer"]
    assert all(count > 0 for count in cost["veteran"])
    # The running figure is the ledger's sum over the window; the old entries lapsed.
    assert figure == in_window >= 3 * 45


RECORD_MANY = """mutation($events: [EventInput!]!) {
  recordEvents(events: $events) { eventId duplicate } }"""


def test_an_event_id_resent_with_another_payload_is_refused_and_a_true_retry_is_not(
    seed_settings: Settings,
) -> None:
    clock = Clock(datetime.now(UTC))
    with TestClient(create_app(seed_settings, clock)) as client:
        first = purchase("e1", "ada")
        assert gql(client, RECORD, first)["data"]["recordEvent"]["duplicate"] is False
        clock.advance(seconds=30)  # a retry later still matches: occurredAt was not sent
        assert gql(client, RECORD, first)["data"]["recordEvent"]["duplicate"] is True
        other = purchase("e1", "ada")
        other["event"]["properties"]["amount"] = 99.0
        body = gql(client, RECORD, other)
        assert codes(body) == ["EVENT_ID_REUSED"]
        assert "e1" in body["errors"][0]["message"]
        batch = [purchase("e2", "ada")["event"], other["event"]]
        assert codes(gql(client, RECORD_MANY, {"events": batch})) == ["EVENT_ID_REUSED"]
        # The rest of the batch was recorded: sending it again finds it.
        again = gql(client, RECORD_MANY, {"events": [batch[0]]})["data"]["recordEvents"]
        assert again == [{"eventId": "e2", "duplicate": True}]
    database = make_database(seed_settings.database_url)
    assert [row.event.id for row in journal.entries(database)] == ["e1", "e2"]
    database.dispose()
