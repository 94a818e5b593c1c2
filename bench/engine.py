"""Engine throughput against a throwaway Redis, next to the physical limit.

    .venv/bin/python -m bench.engine [--players 2000] [--single 5000] [--batched 100000]

Loads `seed/`, generates a realistic event mix (mostly coffee purchases, some
food, reviews and visits) for many players, and measures:

- single_events_per_s: Engine.record, one event at a time, sequentially
- batch_events_per_s: Engine.record_many in batches of 500
- raw_single_per_s / raw_batch_per_s: redis-py calling a trivial Lua script
  with the same number of keys as an average plan, sequentially and
  pipelined in batches of 500: what Redis itself allows on this machine.

The last line printed is one JSON object with these numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis.asyncio as aioredis

from engine.engine import Engine
from engine.events import Event
from engine.program.loader import load_program
from engine.store import store_from_url
from tests.services import redis_server

SEED = Path(__file__).resolve().parent.parent / "seed"
BATCH = 500
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

    started = time.perf_counter()
    for event in events[:single]:
        await engine.record(event)
    single_rate = single / (time.perf_counter() - started)

    rest = events[single:]
    started = time.perf_counter()
    for offset in range(0, len(rest), BATCH):
        await engine.record_many(rest[offset : offset + BATCH])
    batch_rate = len(rest) / (time.perf_counter() - started)
    await store.close()

    client = aioredis.Redis.from_url(url)
    script = client.register_script(TRIVIAL_SCRIPT)
    keys = [f"{{p:raw}}:k{n}" for n in range(keys_per_plan)]
    argv = json.dumps({"p": "raw", "v": 0, "t": 60, "o": [["add", 4, 1, 0]]})
    await script(keys=keys, args=[argv])
    started = time.perf_counter()
    for _ in range(single):
        await script(keys=keys, args=[argv])
    raw_single = single / (time.perf_counter() - started)
    started = time.perf_counter()
    for offset in range(0, batched, BATCH):
        pipe = client.pipeline(transaction=False)
        for _ in range(min(BATCH, batched - offset)):
            await script(keys=keys, args=[argv], client=pipe)
        await pipe.execute()
    raw_batch = batched / (time.perf_counter() - started)
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
