"""Player profiles: timezone and attributes, as the planner needs them.

A profile is stored with the player's counters and carries a version. The
engine keeps recently used profiles in memory and plans with them; the store
refuses a plan built on a stale version, so a profile changed by another
process is re-read instead of silently ignored.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from engine.periods import resolve_timezone


@dataclass(frozen=True, slots=True)
class Profile:
    version: int
    timezone: ZoneInfo
    attributes: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_fields(cls, fields: Mapping[str, str], default_timezone: ZoneInfo) -> Profile:
        """Decode the stored hash (empty for a player never described)."""
        name = fields.get("timezone")
        return cls(
            version=int(fields.get("version", 0)),
            timezone=resolve_timezone(name) if name else default_timezone,
            attributes=json.loads(fields.get("attributes", "{}")),
        )


class ProfileCache:
    """The most recently used profiles of this process, bounded."""

    def __init__(self, capacity: int = 100_000) -> None:
        self._capacity = capacity
        self._profiles: OrderedDict[str, Profile] = OrderedDict()

    def get(self, player_id: str) -> Profile | None:
        profile = self._profiles.get(player_id)
        if profile is not None:
            self._profiles.move_to_end(player_id)
        return profile

    def put(self, player_id: str, profile: Profile) -> None:
        self._profiles[player_id] = profile
        self._profiles.move_to_end(player_id)
        if len(self._profiles) > self._capacity:
            self._profiles.popitem(last=False)

    def clear(self) -> None:
        self._profiles.clear()
