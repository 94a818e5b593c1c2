"""Several OS processes doing the same work at the same moment.

Each worker is spawned (nothing is shared but the services it reaches) and
waits on one barrier, so the workers start together and really interleave.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Callable
from multiprocessing.synchronize import Barrier
from typing import Any, TypeVar

T = TypeVar("T")
#: Once it returned, a worker's process ends this soon.
EXIT_WAIT = 10.0


async def hammer(work: Callable[[int, Barrier], T], workers: int, timeout: float) -> list[T]:
    """Run `work(worker number, barrier)` in `workers` spawned processes (it must
    wait on the barrier before its work starts, and be picklable: a module-level
    function or a `functools.partial` of one); what each returned, as they finish.
    Fails when a worker raised or took more than `timeout` seconds."""
    spawn = multiprocessing.get_context("spawn")
    start = spawn.Barrier(workers)
    outcomes = spawn.Queue()
    processes = [
        spawn.Process(target=_run, args=(work, worker, start, outcomes))
        for worker in range(workers)
    ]
    for process in processes:
        process.start()
    results = [await asyncio.to_thread(outcomes.get, timeout=timeout) for _ in processes]
    for process in processes:
        process.join(timeout=EXIT_WAIT)
        assert process.exitcode == 0
    return results


def _run(work: Callable[[int, Barrier], Any], worker: int, start: Barrier, outcomes: Any) -> None:
    outcomes.put(work(worker, start))
