"""What a backfill did (app.backfill), in terms the schema and the CLI show."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from engine.simulation import rule_of
from engine.unlocks import Unlock


@dataclass
class Backfilled:
    """What a backfill did, or with `dry_run` would do."""

    dry_run: bool
    #: Each new metric, with the journaled events replayed into it.
    metrics: dict[str, int] = field(default_factory=dict)
    #: Events recorded under program versions written down nowhere: left alone.
    unknown_events: int = 0
    #: Rule (`challenge:<id>`, `milestone:<id>:<tier>`, ...) -> the player of
    #: each of its unlocks (a recurring challenge: once per instance).
    rules: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    unlocks: int = 0
    #: Points those unlocks carry.
    points: int = 0

    def add(self, unlocks: Sequence[Unlock]) -> None:
        for unlock in unlocks:
            self.add_key(unlock.player_id, unlock.key, unlock.points or 0)

    def add_key(self, player_id: str, key: str, points: int) -> None:
        rule = rule_of(key)
        if rule is not None:
            self.rules[rule].append(player_id)
            self.unlocks += 1
            self.points += points
