"""`questline backfill`: what a reloaded program's new rules owe players already.

A reload that adds a metric starts it at zero: the events recorded before
count nowhere in it. A reload that adds a milestone or a challenge on a
metric players already counted claims nothing until their next event (and a
milestone whose tier they passed long ago, never). A backfill settles both:

1. It replays into each new metric only, and with only the rules on it, the
   journal's events recorded under program versions that did not count it
   (app.program_metrics keeps which those are): existing counters are left
   as they are. The events are replayed at the moments they were recorded,
   so period buckets, streaks and recurring challenge instances are those
   the rules would have produced; their replays have ids of their own, so
   the original events' duplicate checks do not swallow them.
2. Then, for every player in the journal, it claims every milestone tier and
   current challenge instance their counters now meet and they lack
   (`Engine.settle`).

Everything is claimed through the store's exactly-once claim, now, flagged
`backfilled` (announced to subscribers with `backfilled: true`), copied to
history and its points granted once (the ledger is unique per unlock key).
Running it again replays nothing (the versions are written down as counting
the metrics) and claims nothing (the claims are held): it is idempotent.

`--dry-run` changes nothing: it replays the whole journal with the program in
use into memory, runs the claim pass there, and reports the unlocks that the
store lacks, per rule. It counts from the journal only, so where the journal
was purged (QUESTLINE_JOURNAL_RETENTION) it may foresee fewer than a run finds.

Events recorded under versions written down nowhere (journaled before
migration 0006) are left alone and counted in the answer: whether they were
counted in a metric is unknown, and counting one twice is worse than not at all.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence

from anyio import to_thread

from app import journal, program_metrics
from app.rebuild import MEMORY, batches, restore_profiles
from app.sql import Database
from engine.backfill import Backfilled
from engine.engine import Engine
from engine.events import Event
from engine.program.program import Program
from engine.simulation import rules
from engine.store import keys, store_from_url
from engine.store.base import Read
from engine.unlocks import Unlock, describe

#: Copies unlocks to history and grants their points, each once; returns how many were new.
Settle = Callable[[Sequence[Unlock]], Awaitable[int]]


async def backfill(
    engine: Engine,
    database: Database,
    settle: Settle,
    *,
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
) -> Backfilled:
    """Backfill the new rules of `engine`'s program into its store (see the
    module); `progress` is told how many events are replayed so far."""
    program = engine.program
    done = Backfilled(dry_run)
    lacking = await _lacking(program, database, done)
    if dry_run:
        await _foresee(engine, database, done, progress)
        return done
    replayed = 0
    run = f"backfill:{int(engine.clock().timestamp() * 1000)}"
    for metrics, versions in lacking.items():
        counting = _counting(program, metrics)
        partial = Engine(counting, engine.store, engine.settings, engine.clock)
        async for batch in batches(journal.entries(database, versions=versions)):
            feeding = [entry for entry in batch if entry.event.type in counting.metrics_by_event]
            results = await partial.replay(
                [_replayed(entry.event, metrics) for entry in feeding],
                [entry.recorded_at for entry in feeding],
                backfilled=True,
            )
            unlocks = [u for result in results if not result.duplicate for u in result.unlocks]
            await settle(unlocks)
            done.add(unlocks)
            replayed += len(batch)
            if progress is not None:
                progress(replayed)
        await to_thread.run_sync(program_metrics.add, database, versions, metrics)
    for player_id in await to_thread.run_sync(journal.players, database):
        unlocks = await engine.settle(player_id, run)
        await settle(unlocks)
        done.add(unlocks)
    return done


async def _lacking(
    program: Program, database: Database, done: Backfilled
) -> dict[frozenset[str], list[str]]:
    """The program's metrics that some journaled versions did not count, each
    set with those versions; events of unknown versions are counted in `done`."""
    counted = await to_thread.run_sync(program_metrics.counted, database)
    lacking: dict[frozenset[str], list[str]] = defaultdict(list)
    for version, events in (await to_thread.run_sync(journal.versions, database)).items():
        if version not in counted:
            done.unknown_events += events
            continue
        new = frozenset(program.metrics) - counted[version]
        if new:
            lacking[new].append(version)
            for metric_id in new:
                done.metrics[metric_id] = done.metrics.get(metric_id, 0) + events
    return lacking


def _counting(program: Program, metrics: frozenset[str]) -> Program:
    """The program as it plans events for these metrics only: every rule stays,
    but only the rules on these metrics are reached."""
    return dataclasses.replace(
        program,
        metrics_by_event={
            event_type: fed
            for event_type, defined in program.metrics_by_event.items()
            if (fed := tuple(metric for metric in defined if metric.id in metrics))
        },
    )


def _replayed(event: Event, metrics: frozenset[str]) -> Event:
    """The event under an id of its replay into these metrics: the store's
    duplicate check knows the original, and would answer with its result."""
    digest = hashlib.sha256("\0".join([*sorted(metrics), event.id]).encode()).hexdigest()
    return dataclasses.replace(event, id=f"backfill:{digest[:32]}")


async def _foresee(
    engine: Engine, database: Database, done: Backfilled, progress: Callable[[int], None] | None
) -> None:
    """The dry run: the journal replayed into memory, then the unlocks held
    there and not in the store, per rule."""
    memory = store_from_url(MEMORY, announce=False)
    try:
        replica = Engine(engine.program, memory, engine.settings, engine.clock)
        await restore_profiles(replica, database)
        replayed = 0
        async for batch in batches(journal.entries(database)):
            await replica.replay(
                [entry.event for entry in batch], [entry.recorded_at for entry in batch]
            )
            replayed += len(batch)
            if progress is not None:
                progress(replayed)
        run = f"backfill:{int(engine.clock().timestamp() * 1000)}"
        for player_id in await to_thread.run_sync(journal.players, database):
            await replica.settle(player_id, run)
            read = [Read("hash", keys.unlocks(player_id))]
            [held] = await engine.store.read(read)
            [foreseen] = await memory.read(read)
            for key in sorted(foreseen.keys() - held.keys()):
                done.add_key(player_id, key, describe(engine.program, key).points or 0)
    finally:
        await memory.close()


def report(done: Backfilled, program: Program) -> list[str]:
    """What a backfill did (or would do), as lines for a terminal, rule by rule."""
    verb = "would" if done.dry_run else "did"
    lines = [
        f"new metric {metric_id}: {events} journaled events "
        f"{'to replay' if done.dry_run else 'replayed'}"
        for metric_id, events in sorted(done.metrics.items())
    ]
    if not done.metrics:
        lines.append("no metric of the program lacks journaled events")
    if done.unknown_events:
        lines.append(
            f"{done.unknown_events} events recorded under program versions with no record "
            "of their metrics (journaled before migration 0006): left alone"
        )
    names = rules(program)
    for rule, players in sorted(done.rules.items()):
        lines.append(
            f"{verb} unlock {rule} ({names.get(rule, rule)}): {len(players)} unlocks, "
            f"{len(set(players))} players"
        )
    lines.append(
        f"{verb} unlock {done.unlocks} in all, carrying {done.points} points"
        + (" (dry run: nothing changed)" if done.dry_run else "")
    )
    return lines
