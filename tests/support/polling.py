"""Waiting for something another thread, process or server does: poll a
read until it satisfies a condition, and fail after a deadline saying what
never happened and what was last read."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")
#: Long enough for a loaded two-core machine; a condition that holds comes far sooner.
PATIENCE = 10.0
INTERVAL = 0.02


def eventually(
    read: Callable[[], T],
    until: Callable[[T], Any] = bool,
    what: str = "the condition",
    timeout: float = PATIENCE,
) -> T:
    """Poll `read()` until `until(value)` holds; that value."""
    deadline = time.monotonic() + timeout
    while not until(value := read()):
        if time.monotonic() > deadline:
            raise AssertionError(_failure(what, timeout, value))
        time.sleep(INTERVAL)
    return value


async def eventually_async(
    read: Callable[[], Awaitable[T]],
    until: Callable[[T], Any] = bool,
    what: str = "the condition",
    timeout: float = PATIENCE,
) -> T:
    """`eventually` for a coroutine read, sleeping without blocking the event loop."""
    deadline = time.monotonic() + timeout
    while not until(value := await read()):
        if time.monotonic() > deadline:
            raise AssertionError(_failure(what, timeout, value))
        await asyncio.sleep(INTERVAL)
    return value


def _failure(what: str, timeout: float, value: object) -> str:
    return f"{what} did not hold within {timeout:g}s; last read: {value!r:.500}"
