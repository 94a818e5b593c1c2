"""Player profiles: timezone and attributes, as the planner needs them.

A profile is stored with the player's counters and carries a version. The
engine keeps recently used profiles in memory and plans with them; the store
refuses a plan built on a stale version, so a profile changed by another
process is re-read instead of silently ignored.
"""

from __future__ import annotations

import json
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


#: Profiles an engine keeps in memory (`Engine.profile`), the most recently used.
PROFILES_KEPT = 100_000
