"""Events as the engine accepts them, and the checks they must pass.

An event is checked completely before anything is stored, so a refused event
changes nothing. Messages name the field the sender has to fix.

`occurredAt` must carry its UTC offset (`Z`, `+02:00`): a time without one
is refused, not read as UTC, since the player's day depends on it. An event
id is unique per player (the idempotency key is the pair player, id): two
players' events may share an id.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from engine.errors import EventError, EventInFutureError, EventTooOldError

MAX_ID_LENGTH = 200


@dataclass(frozen=True, slots=True)
class Event:
    """Something a player did. `id` is the idempotency key of the sender."""

    id: str
    player_id: str
    type: str
    value: float = 1.0
    occurred_at: datetime | None = None
    properties: Mapping[str, Any] = field(default_factory=dict)


def check_identifier(name: str, value: object) -> str:
    """Ids become parts of store keys: non-empty, bounded, and free of `{` `}`
    (which would break the per-player hash tag)."""
    if not isinstance(value, str) or not value.strip():
        raise EventError(f"{name} must be a non-empty string")
    if len(value) > MAX_ID_LENGTH:
        raise EventError(f"{name} is longer than {MAX_ID_LENGTH} characters")
    if "{" in value or "}" in value:
        raise EventError(f"{name} must not contain '{{' or '}}', got {value!r}")
    return value


def checked(
    event: Event,
    now: datetime,
    late_tolerance: timedelta,
    future_tolerance: timedelta,
) -> Event:
    """Return the event with defaults filled in, or raise an EventError."""
    check_identifier("id", event.id)
    check_identifier("playerId", event.player_id)
    if not isinstance(event.type, str) or not event.type.strip():
        raise EventError("type must be a non-empty string")
    if isinstance(event.value, bool) or not isinstance(event.value, int | float):
        raise EventError(f"value must be a number, got {event.value!r}")
    if not math.isfinite(event.value):
        raise EventError(f"value must be a finite number, got {event.value!r}")
    if not isinstance(event.properties, Mapping):
        raise EventError("properties must be a JSON object")
    occurred_at = now if event.occurred_at is None else event.occurred_at
    if occurred_at.tzinfo is None or occurred_at.utcoffset() is None:
        # Read as UTC it would land in the wrong day for a player in Tokyo or
        # Los Angeles: refused rather than guessed.
        raise EventError(
            f"occurredAt {occurred_at.isoformat()} has no UTC offset; send the instant, "
            f"such as {occurred_at.isoformat()}Z or {occurred_at.isoformat()}+02:00"
        )
    if occurred_at < now - late_tolerance:
        raise EventTooOldError(
            f"occurredAt {occurred_at.isoformat()} is older than the late-event tolerance of "
            f"{_human(late_tolerance)}; events that old are not counted"
        )
    if occurred_at > now + future_tolerance:
        raise EventInFutureError(
            f"occurredAt {occurred_at.isoformat()} is more than {_human(future_tolerance)} "
            "ahead of the server clock; check the sender's clock and timezone"
        )
    return Event(
        id=event.id,
        player_id=event.player_id,
        type=event.type,
        value=float(event.value),
        occurred_at=occurred_at,
        properties=event.properties,
    )


def _human(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"
