"""Engine throughput against a throwaway Redis, next to the physical limit.

    .venv/bin/python -m bench.engine [--players 2000] [--single 5000] [--batched 100000]

Loads `seed/`, generates a realistic event mix (mostly coffee purchases, some
food, reviews and visits) for many players, and measures:

- single_events_per_s: Engine.record, one event at a time, sequentially
- batch_events_per_s: Engine.record_many in batches of 500
- raw_single_per_s / raw_batch_per_s: redis-py calling a trivial Lua script
  with the same number of keys as an average plan, sequentially and
  pipelined in batches of 500: what Redis itself allows on this machine.

The engine and the baseline take turns, in rounds, so that on a shared
machine both see the same load and their ratio means something.

The last line printed is one JSON object with these numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis.asyncio as aioredis

from app.launch import redis_server
from engine.engine import Engine
from engine.events import Event
from engine.program.loader import load_program
from engine.store import store_from_url

SEED = Path(__file__).resolve().parent.parent / "seed"
BATCH = 500
#: Rounds the engine and the baseline take turns in.
ROUNDS = 10
TRIVIAL_SCRIPT = "return #KEYS"


def event_mix(players: int, count: int, start: datetime, seed: int = 7) -> list[Event]:
    """Purchases dominate, as in a real coffee shop; times spread over a week."""
    rng = random.Random(seed)
    drinks = ["espresso", "latte", "cappuccino", "flat-white", "mocha"]
    events = []
    for n in range(count):
        player = f"player-{rng.randrange(players)}"
        at = start + timedelta(seconds=rng.randrange(6 * 24 * 3600))
        roll = rng.random()
        if roll < 0.7:
            properties = {
                "category": "coffee",
                "drink": rng.choice(drinks),
                "amount": round(rng.uniform(2.5, 7.5), 2),
                "store_id": f"store-{rng.randrange(12)}",
            }
            kind = "purchase"
        elif roll < 0.85:
            properties = {
                "category": "food",
                "amount": round(rng.uniform(3, 12), 2),
                "store_id": f"store-{rng.randrange(12)}",
            }
            kind = "purchase"
        elif roll < 0.95:
            properties = {"rating": rng.randint(1, 5)}
            kind = "review"
        else:
            properties = {
                "store_id": f"store-{rng.randrange(12)}",
                "store": {"city": rng.choice(["Paris", "Lyon"])},
            }
            kind = "visit"
        events.append(
            Event(id=f"ev-{n}", player_id=player, type=kind, occurred_at=at, properties=properties)
        )
    return events


async def measure(
    url: str, seed: Path, players: int, single: int, batched: int
) -> dict[str, float]:
    now = datetime.now(UTC)
    program = load_program(seed)
    store = store_from_url(url)
    engine = Engine(program, store, clock=lambda: now)
    events = event_mix(players, single + batched, now - timedelta(days=6))

    key_counts = [len(engine.plan(event).keys) for event in events[:2000]]
    keys_per_plan = round(sum(key_counts) / len(key_counts))

    client = aioredis.Redis.from_url(url)
    script = client.register_script(TRIVIAL_SCRIPT)
    keys = [f"{{p:raw}}:k{n}" for n in range(keys_per_plan)]
    argv = json.dumps({"p": "raw", "v": 0, "t": 60, "o": [["add", 4, 1, 0]]})
    await script(keys=keys, args=[argv])

    async def record_one_by_one(part: list[Event]) -> None:
        for event in part:
            await engine.record(event)

    async def record_in_batches(part: list[Event]) -> None:
        for offset in range(0, len(part), BATCH):
            await engine.record_many(part[offset : offset + BATCH])

    async def raw_one_by_one(part: list[Event]) -> None:
        for _ in part:
            await script(keys=keys, args=[argv])

    async def raw_in_batches(part: list[Event]) -> None:
        for offset in range(0, len(part), BATCH):
            pipe = client.pipeline(transaction=False)
            for _ in range(min(BATCH, len(part) - offset)):
                await script(keys=keys, args=[argv], client=pipe)
            await pipe.execute()

    single_rate, raw_single = await side_by_side(events[:single], record_one_by_one, raw_one_by_one)
    batch_rate, raw_batch = await side_by_side(events[single:], record_in_batches, raw_in_batches)
    await store.close()
    await client.aclose()
    return {
        "players": players,
        "keys_per_plan": keys_per_plan,
        "single_events_per_s": round(single_rate),
        "batch_events_per_s": round(batch_rate),
        "raw_single_per_s": round(raw_single),
        "raw_batch_per_s": round(raw_batch),
        "single_vs_raw": round(single_rate / raw_single, 2),
        "batch_vs_raw": round(batch_rate / raw_batch, 2),
    }


Run = Callable[[list[Event]], Awaitable[None]]


async def side_by_side(events: list[Event], engine: Run, raw: Run) -> tuple[float, float]:
    """Events per second of the engine and of the raw baseline on the same
    events, measured in alternating rounds: on a shared machine the load
    changes by the second, and each side should see the same share of it."""
    size = max(BATCH, -(-len(events) // ROUNDS // BATCH) * BATCH)
    took = {engine: 0.0, raw: 0.0}
    for offset in range(0, len(events), size):
        part = events[offset : offset + size]
        for run in (engine, raw):
            started = time.perf_counter()
            await run(part)
            took[run] += time.perf_counter() - started
    return len(events) / took[engine], len(events) / took[raw]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=Path, default=SEED)
    parser.add_argument("--players", type=int, default=2000)
    parser.add_argument("--single", type=int, default=5000)
    parser.add_argument("--batched", type=int, default=100_000)
    args = parser.parse_args()
    with redis_server() as url:
        result = asyncio.run(measure(url, args.seed, args.players, args.single, args.batched))
    for name, value in result.items():
        print(f"{name:>22}: {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
