"""Several OS processes redeeming for the same players at once, through GraphQL.

Each worker is a spawned process running its own app (sharing a Redis store
and the SQL database, as `questline serve --workers N` does) and sends a mix
of redemptions, some with an idempotency key every worker also sends, and
points adjustments. Whatever the interleaving: the balance never goes below
zero, it equals the sum of the ledger, every success is paid once, the stock
and the per-player limit hold, and a shared key redeems once.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from functools import partial
from multiprocessing.synchronize import Barrier
from pathlib import Path

from sqlalchemy import func, select

from app import points
from app.migrations import upgrade_database
from app.points import ACCOUNTS, ENTRIES
from app.rewards import REDEMPTIONS
from app.settings import Settings
from app.sql import make_database
from tests.support.clock import WEDNESDAY, Clock
from tests.support.graphql_client import client_for, gql, settings_for
from tests.support.loyalty import REDEEM, empty_economy
from tests.support.processes import hammer
from tests.support.programs import LOYALTY

WORKERS = 4
PLAYERS = ("ada", "bob")
COST = {"espresso": 50, "mug": 100, "latte": 30}
GRANTED = 1000

Outcome = list[tuple[str, str, str, str]]  # (player, reward, idempotency key, id or error code)


def requests(worker: int) -> list[tuple[str, str, str]]:
    """(player, reward, idempotency key) a worker sends; `shared-*` keys are sent by all."""
    sent = []
    for player in PLAYERS:
        sent += [(player, "espresso", f"w{worker}-espresso-{n}") for n in range(8)]
        sent += [(player, "mug", f"w{worker}-mug"), (player, "latte", f"w{worker}-latte")]
        sent += [(player, "espresso", "shared-espresso"), (player, "latte", "shared-latte")]
    return sent[worker % 3 :] + sent[: worker % 3]  # each worker starts elsewhere


ADJUST = """mutation($id: ID!, $key: String!) {
  adjustPoints(playerId: $id, delta: 10, reason: "bonus", idempotencyKey: $key) { delta }
}"""


def redeem(settings: Settings, worker: int, start: Barrier) -> Outcome:
    """One worker's requests, through an app of its own."""
    outcome: Outcome = []
    with client_for(settings, Clock(WEDNESDAY)) as client:
        start.wait()
        for n, (player, reward, key) in enumerate(requests(worker)):
            if n % 4 == 0:  # credits land between the debits
                gql(client, ADJUST, {"id": player, "key": f"w{worker}-bonus-{n}"})
            body = gql(client, REDEEM, {"reward": reward, "key": key, "player": player})
            if "errors" in body:
                result = body["errors"][0]["extensions"]["code"]
            else:
                result = body["data"]["redeem"]["id"]
            outcome.append((player, reward, key, result))
    return outcome


async def test_concurrent_redemptions_never_overspend_or_oversell(
    tmp_path: Path, clean_redis_url: str, database_url: str
) -> None:
    upgrade_database(database_url)
    db = make_database(database_url)
    empty_economy(db)
    for player in PLAYERS:
        points.adjust(db, player, GRANTED, "start", "start", WEDNESDAY, timedelta(days=3650))
    settings = settings_for(tmp_path, clean_redis_url).model_copy(
        update={
            "database_url": database_url,
            "seed_path": LOYALTY,
            "migrate_on_start": False,  # done above, once
        }
    )

    outcomes = await hammer(partial(redeem, settings), WORKERS, timeout=100)
    results = [result for outcome in outcomes for result in outcome]

    codes = Counter(result for *_, result in results if not result.isdigit())
    assert set(codes) <= {"INSUFFICIENT_POINTS", "OUT_OF_STOCK", "LIMIT_REACHED"}, codes
    assert codes["INSUFFICIENT_POINTS"] > 0, "the test must run the balance dry"
    ids_by_key: dict[tuple[str, str], set[str]] = {}
    for player, _, key, result in results:
        if result.isdigit():
            ids_by_key.setdefault((player, key), set()).add(result)
    assert all(len(ids) == 1 for ids in ids_by_key.values()), "one redemption per key"

    mugs = 0
    with db.connect() as connection:
        for player in PLAYERS:
            total = connection.execute(
                select(func.sum(ENTRIES.c.delta)).where(ENTRIES.c.player_id == player)
            ).scalar_one()
            balance = connection.execute(
                select(ACCOUNTS.c.balance).where(ACCOUNTS.c.player_id == player)
            ).scalar_one()
            bought = Counter(
                connection.execute(
                    select(REDEMPTIONS.c.reward_id).where(REDEMPTIONS.c.player_id == player)
                ).scalars()
            )
            bonuses = connection.execute(
                select(func.count()).where(
                    ENTRIES.c.player_id == player,
                    ENTRIES.c.reason == "adjust",
                    ENTRIES.c.reference != "start",
                )
            ).scalar_one()
            assert balance == total >= 0, "the balance is the ledger's sum, never negative"
            assert bought["latte"] <= 2, "the per-player limit holds"
            assert sum(bought.values()) == sum(1 for p, _ in ids_by_key if p == player)
            spent = sum(COST[reward] * count for reward, count in bought.items())
            assert balance == GRANTED + 10 * bonuses - spent, "each success is paid once"
            mugs += bought["mug"]
    db.dispose()
    assert mugs <= 2, "the stock of two mugs holds across players"
