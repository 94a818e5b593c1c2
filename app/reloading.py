"""Reloading the program, and keeping every worker on the same version.

A reload (mutation or SIGHUP) loads the seed folder, swaps it in and
announces the version through the store; every worker sharing the store
loads its own seed folder in turn (`_converge`): all of them serve the new
version, or keep the old one and log why not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from anyio import to_thread

from app import program_metrics
from app.sql import Database
from engine.engine import Engine
from engine.errors import ProgramError, QuestlineError, StoreError
from engine.program.loader import load_program

logger = logging.getLogger("questline.service")

#: Broadcast channel on which a worker announces the program version it serves.
PROGRAM_CHANNEL = "program"


class Reloads:
    def __init__(self, engine: Engine, database: Database, seed_path: Path) -> None:
        self.engine = engine
        self.database = database
        self.seed_path = seed_path
        self._lock = asyncio.Lock()
        self._following: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Follow the other workers' announcements, from the moment this returns."""
        listening = asyncio.Event()
        self._following = asyncio.create_task(
            self._follow_announcements(listening), name="questline-program-announcements"
        )
        await listening.wait()

    async def stop(self) -> None:
        for task in (self._following, *self._background):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def reload(self) -> tuple[str, bool]:
        """Validate the seed folder, swap it in and tell the other workers.

        A broken program raises ProgramError and the current one keeps
        serving. The version is announced even when it did not change here,
        so repeating a reload whose announcement failed still makes every
        worker converge. Returns (version, changed here).
        """
        version, changed = await self._load()
        try:
            await self.engine.store.broadcast(PROGRAM_CHANNEL, version)
        except StoreError as error:
            raise StoreError(
                f"program {version} serves here, but the other workers could not be told: "
                f"{error}; reload again once the store answers"
            ) from error
        return version, changed

    def reload_in_background(self) -> None:
        """Start a reload nobody waits for (SIGHUP); its outcome goes to the log."""
        task = asyncio.create_task(self._reload_logged(), name="questline-reload")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _reload_logged(self) -> None:
        serving = self.engine.program.version
        try:
            version, changed = await self.reload()
        except ProgramError as error:
            logger.error("program reload refused, still serving version %s: %s", serving, error)
        except QuestlineError as error:
            logger.error("program reload failed: %s", error)
        except Exception:
            logger.exception("program reload failed")  # nobody else would hear of it
        else:
            if not changed:
                logger.info("program reload: version %s unchanged", version)

    async def _load(self) -> tuple[str, bool]:
        async with self._lock:
            program = await to_thread.run_sync(load_program, self.seed_path)
            changed = program.version != self.engine.program.version
            if changed:
                await to_thread.run_sync(program_metrics.serving, self.database, program)
                self.engine.use_program(program)
                logger.info("program reloaded: version %s", program.version)
            return program.version, changed

    async def _follow_announcements(self, listening: asyncio.Event) -> None:
        async for channel, version in self.engine.store.listen_broadcasts(listening.set):
            if channel != PROGRAM_CHANNEL or version == self.engine.program.version:
                continue  # our own announcement, or a worker catching up with us
            serving = self.engine.program.version
            try:
                await self._converge(version)
            except ProgramError as error:
                logger.error(
                    "another worker serves program %s, but the seed folder here does not "
                    "load; still serving version %s: %s",
                    version,
                    serving,
                    error,
                )
            except QuestlineError as error:
                logger.error(
                    "following program %s announced by another worker failed: %s", version, error
                )
            except Exception:  # keep following: the next announcement may succeed
                logger.exception("following program %s announced by another worker failed", version)

    async def _converge(self, version: str) -> None:
        """Another worker announced `version`: load the seed folder here too.

        Workers that see different files (say, different hosts) each serve
        their own and say so; one that loads a newer version than announced
        (the files changed again meanwhile) announces it, so all converge.
        """
        loaded, changed = await self._load()
        if loaded != version:
            logger.warning(
                "another worker announced program %s, but the seed folder here is version %s",
                version,
                loaded,
            )
            if changed:
                await self.engine.store.broadcast(PROGRAM_CHANNEL, loaded)
