"""Several processes hammering the same players through one Redis store.

Each worker is a separate OS process (spawned, so nothing is shared but the
server) applying interleaved plans for the same three players, some one by
one and some in batches, and a tenth of the event ids are sent by every
worker. Counters must be exact and every unlock granted once.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from functools import partial
from multiprocessing.synchronize import Barrier

from engine.store import keys, store_from_url
from engine.store.base import Plan, Read, cursor_order
from engine.store.ops import Add, Claim, Condition, Extra
from tests.support.processes import hammer

WORKERS = 4
PLANS_PER_WORKER = 300
PLAYERS = ["p0", "p1", "p2"]
TIERS = 30

Outcome = list[tuple[str, str, list[str]]]  # (event id, status, unlock keys)


def event_ids(worker: int) -> list[tuple[str, str]]:
    """(player, event id) of every plan a worker sends; every tenth id is shared by all."""
    return [
        (PLAYERS[i % len(PLAYERS)], f"shared-{i}" if i % 10 == 0 else f"w{worker}-{i}")
        for i in range(PLANS_PER_WORKER)
    ]


def coffee_plan(player: str, event: str) -> Plan:
    plan = Plan(
        player,
        [
            keys.event(player, event),
            keys.profile(player),
            keys.unlocks(player),
            keys.outbox(player),
        ],
    )
    coffees = plan.op(Add(plan.key_index(keys.metric(player, "coffees")), 1, 0))
    for tier in range(1, TIERS + 1):
        badges = (Extra(f"badge:{tier}", json.dumps({"badge": tier})),) if tier % 10 == 0 else ()
        plan.op(
            Claim(
                keys.milestone_unlock("coffee", tier),
                (Condition(coffees, tier),),
                (),
                json.dumps({"tier": tier}),
                badges,
            )
        )
    plan.op(Claim("challenge:regular", (Condition(coffees, 15),), ("badge:10",), '{"c":1}', ()))
    return plan


async def apply_plans(url: str, worker: int, start: Barrier) -> Outcome:
    store = store_from_url(url)
    await store.ping()
    start.wait()
    plans = [coffee_plan(player, event) for player, event in event_ids(worker)]
    if worker % 2:
        results = [await store.apply(plan) for plan in plans]
    else:
        results = []
        for first in range(0, len(plans), 25):
            results += await store.apply_many(plans[first : first + 25])
    await store.close()
    return [
        (plan.keys[0], applied.status, [entry.key for entry in applied.entries])
        for plan, applied in zip(plans, results, strict=True)
    ]


def work(url: str, worker: int, start: Barrier) -> Outcome:
    return asyncio.run(apply_plans(url, worker, start))


async def test_processes_sharing_players_count_exactly_and_unlock_once(
    clean_redis_url: str,
) -> None:
    outcomes = await hammer(partial(work, clean_redis_url), WORKERS, timeout=60)
    results = [result for outcome in outcomes for result in outcome]

    events = {event for worker in range(WORKERS) for event in event_ids(worker)}
    applied_by = Counter(event_key for event_key, status, _ in results if status == "ok")
    assert set(applied_by.values()) == {1}, "each event id is applied by exactly one process"
    assert len(applied_by) == len(events)
    granted = Counter(key for _, status, unlocked in results if status == "ok" for key in unlocked)
    expected = {keys.milestone_unlock("coffee", tier) for tier in range(1, TIERS + 1)}
    expected |= {f"badge:{tier}" for tier in range(10, TIERS + 1, 10)} | {"challenge:regular"}
    assert set(granted.values()) == {len(PLAYERS)}, "each unlock once per player"
    assert set(granted) == expected

    store = store_from_url(clean_redis_url)
    counts = await store.read([Read("int", keys.metric(p, "coffees")) for p in PLAYERS])
    assert counts == [sum(1 for player, _ in events if player == p) for p in PLAYERS]
    for player in PLAYERS:
        outbox = await store.outbox(player, None, 1000)
        assert sorted(entry.key for entry in outbox) == sorted(expected)
        assert sorted(outbox, key=lambda entry: cursor_order(entry.id)) == outbox
        [unlocks] = await store.read([Read("hash", keys.unlocks(player))])
        assert set(unlocks) == expected
    await store.close()
