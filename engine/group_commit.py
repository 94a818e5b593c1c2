"""Group commit: many concurrent callers, one transaction per burst.

A caller hands its work to `submit` and waits. One writer task takes
everything queued, writes it with one call of `write` (one transaction, one
commit, one fsync) and wakes every caller with its own outcome; while it
writes, new work queues up for the next round. Throughput therefore rises
with concurrency while a caller's latency stays near one commit, and a
caller is still answered only after its own work is committed.

`write` returns one outcome per item, an exception for an item that failed
alone. If `write` raises, the batch is written again one item at a time
(`isolate`), so one bad item cannot fail the others of its burst; where a
raised error can only mean the backend failed for all (a store call that
isolates its plans itself), every item gets that error instead.

Used by the counter stores (concurrent calls share one transaction on
SQLite, one script call on Redis) and by the service (the durable SQL work
of recording events).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

W = TypeVar("W")
R = TypeVar("R")

Write = Callable[[Sequence[W]], Awaitable[Sequence[R | Exception]]]


class GroupCommit(Generic[W, R]):
    def __init__(self, write: Write[W, R], *, isolate: bool = True, max_items: int = 512) -> None:
        self._write = write
        self._isolate = isolate
        self._max_items = max_items
        self._queue: list[tuple[W, asyncio.Future[R]]] = []
        self._writer: asyncio.Task[None] | None = None
        #: A caller is writing its own work in its own task (see `submit`).
        self._alone = False

    async def submit(self, work: W) -> R:
        """Write `work` with whatever else is queued; return once it is committed.

        A caller that finds nothing being written writes its work itself,
        without a task of its own (sequential callers pay nothing for the
        grouping); whatever queues meanwhile is written next by the writer.
        """
        if self._writer is None and not self._alone:
            self._alone = True
            try:
                [outcome] = await self._outcomes([work])
            finally:
                self._alone = False
                self._start_writer()
            if isinstance(outcome, Exception):
                raise outcome
            return outcome
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((work, future))
        if not self._alone:
            self._start_writer()
        return await future

    async def wait_idle(self) -> None:
        """Return once everything submitted so far is written (shutdown)."""
        while self._writer is not None or self._alone:
            if self._writer is not None:
                await asyncio.shield(self._writer)
            else:
                await asyncio.sleep(0.001)

    def _start_writer(self) -> None:
        if self._queue and self._writer is None:
            self._writer = asyncio.create_task(self._drain(), name="questline-group-commit")

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch = self._queue[: self._max_items]
                del self._queue[: self._max_items]
                outcomes = await self._outcomes([work for work, _ in batch])
                for (_, future), outcome in zip(batch, outcomes, strict=True):
                    if future.done():  # its caller went away; the work is written all the same
                        continue
                    if isinstance(outcome, Exception):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
        finally:
            self._writer = None

    async def _outcomes(self, batch: Sequence[W]) -> list[R | Exception]:
        try:
            return list(await self._write(batch))
        except Exception as error:
            if len(batch) == 1 or not self._isolate:
                return [error] * len(batch)
        alone: list[R | Exception] = []
        for work in batch:
            try:
                [outcome] = await self._write([work])
            except Exception as error:
                outcome = error
            alone.append(outcome)
        return alone
