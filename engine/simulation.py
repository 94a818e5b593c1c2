"""Simulation: what a program would have done with events already recorded.

A designer's candidate program and the program in use each replay the same
journal events into a throwaway store; every result passes through a
`Tally` of its side, and `compare` lays the two tallies side by side, one
row per rule a player can earn (challenge, milestone tier, streak milestone,
badge) or spend on (catalog reward).

Points are tallied as the service would grant them, with the rules of
engine.points and engine.tiers: what events earn under the earn rules (tier
multiplier and caps included) and what unlocks carry. Every player starts
the window at the first tier with no points, so balances, tiers and the
liability are those the window's events alone produce; nothing is redeemed
or expires. Referral rewards are left out (they depend on sign-ups, which the
journal does not hold).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from engine.conditions import lookup
from engine.engine import Recorded
from engine.events import Event
from engine.points import earnings
from engine.program.program import Program
from engine.tiers import level_for
from engine.unlocks import describe

ONE = Decimal(1)

#: The kinds of rows, in the order a comparison lists them.
KINDS = ("challenge", "milestone", "streak", "badge", "reward")


def rule_of(key: str) -> str | None:
    """The rule an unlock key belongs to, as a row id: `challenge:<id>` (every
    instance of a recurring challenge together), `milestone:<id>:<tier>`,
    `streak:<id>:<length>`, `badge:<id>`; None for tier changes and markers."""
    kind, _, rest = key.partition(":")
    if kind == "challenge":
        return f"challenge:{rest.split(':', 1)[0]}"
    if kind in ("milestone", "streak", "badge"):
        return key
    return None


def rules(program: Program) -> dict[str, str]:
    """Every row id of a program with the name a designer knows it by."""
    found: dict[str, str] = {}
    for challenge_id, challenge in program.challenges.items():
        found[f"challenge:{challenge_id}"] = challenge.name or challenge_id
    for milestone_id, milestone in program.milestones.items():
        for number in range(1, len(milestone.tiers) + 1):
            key = f"milestone:{milestone_id}:{number}"
            found[key] = describe(program, key).title
    for streak_id, streak in program.streaks.items():
        for step in streak.milestones:
            key = f"streak:{streak_id}:{step.at}"
            found[key] = describe(program, key).title
    for badge_id, badge in program.badges.items():
        found[f"badge:{badge_id}"] = badge.name
    for reward_id, reward in program.rewards.items():
        found[f"reward:{reward_id}"] = reward.name
    return found


class Tally:
    """What one program did with the replayed events: unlocks per rule,
    players reached, points earned and carried, balances and tiers."""

    def __init__(self, program: Program, timezone_of: Callable[[str], ZoneInfo]) -> None:
        self.program = program
        self._timezone_of = timezone_of
        self.unlocks: Counter[str] = Counter()
        self.players: dict[str, set[str]] = defaultdict(set)
        self.carried: Counter[str] = Counter()
        self.earned = 0
        #: Points per player (earned and carried), all of which qualify for tiers.
        self.balances: Counter[str] = Counter()
        self._caps: Counter[tuple[str, str]] = Counter()

    def add(self, recorded: Recorded) -> None:
        """Count one replayed event: its unlocks, then what it earns."""
        player_id = recorded.event.player_id
        for unlock in recorded.unlocks:
            rule = rule_of(unlock.key)
            if rule is None:
                continue
            self.unlocks[rule] += 1
            self.players[rule].add(player_id)
            if unlock.points:
                self.carried[rule] += unlock.points
                self.balances[player_id] += unlock.points
        if self.program.earn_rules_by_event.get(recorded.event.type):
            points = self._earn(recorded.event)
            self.earned += points
            self.balances[player_id] += points

    def _earn(self, event: Event) -> int:
        """Points an event earns at the player's tier, within the caps."""
        ladder = self.program.tiers
        player_id = event.player_id
        multiplier = (
            level_for(ladder, self.balances[player_id]).multiplier if ladder is not None else ONE
        )
        total = 0
        for earning in earnings(self.program, event, self._timezone_of(player_id), multiplier):
            if earning.bucket is None or earning.cap is None:
                total += earning.points
                continue
            bucket = (player_id, earning.bucket)
            allowed = max(0, min(earning.points, earning.cap - self._caps[bucket]))
            self._caps[bucket] += allowed
            total += allowed
        return total

    @property
    def carried_total(self) -> int:
        return sum(self.carried.values())

    def tiers(self, players: Iterable[str]) -> dict[str, int]:
        """Players per tier level at the end of the window, every level listed."""
        ladder = self.program.tiers
        if ladder is None:
            return {}
        found = dict.fromkeys((level.id for level in ladder.levels), 0)
        for player_id in players:
            found[level_for(ladder, self.balances[player_id]).id] += 1
        return found

    def affording(self, cost: int) -> int:
        """Players whose points at the end of the window would pay for `cost`."""
        return sum(1 for balance in self.balances.values() if balance >= cost)


def spend_of(programs: Iterable[Program], event: Event) -> Decimal:
    """The amounts an event carries that rate-based earn rules of either program
    read (each property once): the denominator of the earn rate, the same for
    both sides."""
    paths = {
        rule.per
        for program in programs
        for rule in program.earn_rules_by_event.get(event.type, ())
        if rule.per is not None
    }
    total = Decimal(0)
    for path in paths:
        value = event.value if path == "value" else lookup(event.properties, path)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            total += Decimal(str(value))
    return total


@dataclass(frozen=True, slots=True)
class Figure:
    """One figure before (the program in use) and after (the candidate)."""

    before: float | None
    after: float | None

    @property
    def change(self) -> float | None:
        if self.before is None or self.after is None:
            return None
        return round(self.after - self.before, 4)


@dataclass(frozen=True, slots=True)
class RuleRow:
    """One rule of either program, compared.

    `status` is "", "added", "removed" or "renamed" (then `renamed_from` is
    the removed id it takes over). `orphaned` counts unlocks of history that
    a removed or renamed rule would leave without a definition."""

    id: str
    kind: str
    name: str
    status: str
    unlocks: Figure
    players: Figure
    #: Players reached / players who sent an event in the window.
    completion: Figure
    #: Points carried by the rule's unlocks; for a catalog reward, its cost.
    points: Figure
    renamed_from: str | None = None
    orphaned: int = 0


@dataclass(frozen=True, slots=True)
class Comparison:
    events: int
    players: int
    rows: list[RuleRow]
    earned: Figure
    carried: Figure
    issued: Figure
    spend: float
    #: Earned points per 1.00 of spend.
    earn_rate: Figure
    #: Outstanding points the candidate adds (negative: removes).
    liability_change: int
    tiers: dict[str, Figure]
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    #: New row id -> the id it had in the program in use.
    renamed: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Simulated:
    comparison: Comparison
    since: datetime | None
    until: datetime | None
    #: Events of the window there are; `comparison.events` of them were replayed.
    window_events: int
    #: The most events one call replays (None: no limit).
    limit: int | None
    current_version: str
    candidate_version: str

    @property
    def complete(self) -> bool:
        """Every event of the window was replayed (no limit or player sample cut it)."""
        return self.comparison.events == self.window_events


def renames(before: Program, after: Program) -> dict[str, str]:
    """Removed ids whose definition the candidate keeps under a new id:
    new row id -> old row id (same section, same content but the name)."""
    found: dict[str, str] = {}
    for section, prefix in (
        ("challenges", "challenge"),
        ("milestones", "milestone"),
        ("streaks", "streak"),
        ("badges", "badge"),
        ("rewards", "reward"),
    ):
        old: Mapping[str, Any] = getattr(before, section)
        new: Mapping[str, Any] = getattr(after, section)
        gone = {key: _content(item) for key, item in old.items() if key not in new}
        for key, item in new.items():
            if key in old:
                continue
            content = _content(item)
            match = next((was for was, kept in gone.items() if kept == content), None)
            if match is not None:
                found[f"{prefix}:{key}"] = f"{prefix}:{match}"
                del gone[match]
    return found


def _content(item: Any) -> dict[str, Any]:
    data: dict[str, Any] = item.model_dump()
    data.pop("name", None)
    data.pop("description", None)
    return data


def _was(row_id: str, renamed: Mapping[str, str]) -> str | None:
    """The old row id of a rule whose section entry was renamed
    (`milestone:new:2` -> `milestone:old:2`), None when it was not."""
    kind, _, rest = row_id.partition(":")
    parent, _, tail = rest.partition(":")
    was = renamed.get(f"{kind}:{parent}")
    if was is None:
        return None
    return f"{was}:{tail}" if tail else was


def compare(
    before: Tally,
    after: Tally,
    events: int,
    players: set[str],
    spend: Decimal,
    history: Mapping[str, int],
) -> Comparison:
    """The two tallies side by side; `history` counts the unlocks kept in
    history per row id (to tell which removed rules would orphan some)."""
    old_rules, new_rules = rules(before.program), rules(after.program)
    renamed = renames(before.program, after.program)
    sources = {row_id: _was(row_id, renamed) for row_id in new_rules}
    taken_over = {was for was in sources.values() if was in old_rules}
    rows = [
        _row(row_id, sources.get(row_id), before, after, old_rules, new_rules, players, history)
        for row_id in sorted(
            (old_rules.keys() - taken_over) | new_rules.keys(),
            key=lambda r: (KINDS.index(r.split(":", 1)[0]), r),
        )
    ]
    issued_before = before.earned + before.carried_total
    issued_after = after.earned + after.carried_total
    levels = before.tiers(players), after.tiers(players)
    return Comparison(
        events=events,
        players=len(players),
        rows=rows,
        earned=Figure(before.earned, after.earned),
        carried=Figure(before.carried_total, after.carried_total),
        issued=Figure(issued_before, issued_after),
        spend=float(spend),
        earn_rate=Figure(_per(before.earned, spend), _per(after.earned, spend)),
        liability_change=issued_after - issued_before,
        tiers={
            level: Figure(levels[0].get(level), levels[1].get(level))
            for level in dict.fromkeys([*levels[0], *levels[1]])
        },
        added=[row.id for row in rows if row.status == "added"],
        removed=[row.id for row in rows if row.status == "removed"],
        renamed={row.id: row.renamed_from for row in rows if row.renamed_from is not None},
    )


def _row(
    row_id: str,
    was: str | None,
    before: Tally,
    after: Tally,
    old_rules: Mapping[str, str],
    new_rules: Mapping[str, str],
    players: set[str],
    history: Mapping[str, int],
) -> RuleRow:
    """One row: `was` is the id the rule had in the program in use, if renamed."""
    if row_id in old_rules and row_id in new_rules:
        status, source = "", row_id
    elif row_id in new_rules:
        renamed = was is not None and was in old_rules
        status, source = ("renamed", str(was)) if renamed else ("added", row_id)
    else:
        status, source = "removed", row_id
    kind = row_id.split(":", 1)[0]
    in_before, in_after = source in old_rules, row_id in new_rules
    if kind == "reward":
        cost_before = _cost(before.program, source) if in_before else None
        cost_after = _cost(after.program, row_id) if in_after else None
        reach = Figure(
            before.affording(cost_before) if cost_before is not None else None,
            after.affording(cost_after) if cost_after is not None else None,
        )
        unlocks, points = Figure(None, None), Figure(cost_before, cost_after)
        completion = Figure(None, None)
    else:
        reach = Figure(
            len(before.players[source]) if in_before else None,
            len(after.players[row_id]) if in_after else None,
        )
        unlocks = Figure(
            before.unlocks[source] if in_before else None,
            after.unlocks[row_id] if in_after else None,
        )
        points = Figure(
            before.carried[source] if in_before else None,
            after.carried[row_id] if in_after else None,
        )
        completion = Figure(_rate(reach.before, len(players)), _rate(reach.after, len(players)))
    return RuleRow(
        id=row_id,
        kind=kind,
        name=new_rules.get(row_id) or old_rules[row_id],
        status=status,
        unlocks=unlocks,
        players=reach,
        completion=completion,
        points=points,
        renamed_from=source if status == "renamed" else None,
        orphaned=history.get(source, 0) if status in ("removed", "renamed") else 0,
    )


def _cost(program: Program, row_id: str) -> int:
    return program.rewards[row_id.split(":", 1)[1]].cost


def _rate(reached: float | None, active: int) -> float | None:
    if reached is None or not active:
        return None
    return round(reached / active, 4)


def _per(points: int, spend: Decimal) -> float | None:
    return round(float(points / spend), 4) if spend else None
