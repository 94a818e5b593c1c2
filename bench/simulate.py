"""Simulation replay rate: a candidate program tried on 100,000 journal events.

    .venv/bin/python -m bench.simulate [--events 100000] [--players 5000]

Writes a journal of realistic events (bench.engine's mix, over the last six
days, each recorded a few seconds after it occurred) into a fresh SQLite
history database, then runs `app.simulate.simulate` with the example program
in use and a candidate that doubles a challenge's target: both replay every
event into their own SQLite store in memory, side by side.

`replay_events_per_s` is journal events per second of the whole simulation
(reading the journal, both replays, tallying, comparing); each event is
replayed twice, once per program. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from app import journal
from app.migrations import upgrade_database
from app.simulate import simulate
from app.sql import make_database, writing
from bench.engine import SEED, event_mix
from engine.engine import EngineSettings
from engine.events import Event
from engine.program.loader import load_program

#: Journal rows written per transaction while preparing.
CHUNK = 5000
#: The issue's target, on SQLite in memory.
TARGET = 20_000


def occurred(event: Event) -> datetime:
    assert event.occurred_at is not None, "the mix dates every event"
    return event.occurred_at


def write_journal(database_url: str, events: int, players: int) -> None:
    now = datetime.now(UTC)
    mix = sorted(event_mix(players, events, now - timedelta(days=6)), key=occurred)
    database = make_database(database_url)
    rows: list[dict[str, object]] = [
        {
            "event_id": event.id,
            "player_id": event.player_id,
            "type": event.type,
            "value": event.value,
            "occurred_at": occurred(event),
            "properties": json.dumps(event.properties),
            "recorded_at": occurred(event) + timedelta(seconds=3),
            "program_version": "bench",
            "unlock_keys": "[]",
            "digest": journal.digest(event),
        }
        for event in mix
    ]
    for start in range(0, len(rows), CHUNK):
        with writing(database) as connection:
            journal.append(connection, rows[start : start + CHUNK])
    database.dispose()


def candidate_folder(root: Path) -> Path:
    folder = root / "candidate"
    shutil.copytree(SEED, folder)
    challenges = folder / "challenges.yaml"
    challenges.write_text(
        challenges.read_text().replace(
            "    metric: coffees\n    target: 3\n", "    metric: coffees\n    target: 6\n"
        )
    )
    return folder


async def measure(database_url: str, root: Path) -> dict[str, float]:
    database = make_database(database_url)
    current, candidate = load_program(SEED), load_program(candidate_folder(root))
    started = time.perf_counter()
    simulated = await simulate(current, candidate, database, EngineSettings())
    elapsed = time.perf_counter() - started
    database.dispose()
    events = simulated.comparison.events
    return {
        "events": events,
        "players": simulated.comparison.players,
        "seconds": round(elapsed, 2),
        "replay_events_per_s": round(events / elapsed),
        "target_events_per_s": TARGET,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--players", type=int, default=5000)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="questline-bench-simulate-") as folder:
        root = Path(folder)
        url = f"sqlite:///{root / 'history.db'}"
        upgrade_database(url)
        write_journal(url, options.events, options.players)
        print(json.dumps(asyncio.run(measure(url, root))))


if __name__ == "__main__":
    main()
