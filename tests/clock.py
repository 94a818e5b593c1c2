"""An injected clock: tests move time instead of sleeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start if start.tzinfo else start.replace(tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def set(self, moment: datetime) -> None:
        self.now = moment if moment.tzinfo else moment.replace(tzinfo=UTC)

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)
