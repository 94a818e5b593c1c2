"""Explain: why a player has, or has not yet, a challenge, milestone tier,
streak milestone or badge.

Everything is read in one store round trip, as progress is, from the same
counters the hot path updates, and worked out with the same rules (the
planner's thresholds, engine.periods' instances in the player's timezone,
the compiled audience). The service adds what only the journal knows (the
event that caused an unlock, the last event that counted) and then asks
`support_text` for the sentence a support agent pastes to the player.

A target is named as in simulations (`challenge:three-this-week`,
`milestone:coffee-lover:2`, `streak:daily-coffee:7`, `badge:regular`) or by
its bare id when that is unambiguous; a bare milestone or streak id means
its next step not yet reached.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from engine import periods
from engine.conditions import MISSING, compile_condition, lookup
from engine.errors import UnknownTargetError
from engine.periods import Granularity
from engine.planner import scale_of, threshold, window_bucket
from engine.profiles import Profile
from engine.program.models import Challenge
from engine.program.program import Program
from engine.progress import streak_progress
from engine.store import keys
from engine.store.base import Read, Store
from engine.unlocks import describe, granted_badge, unlock_time

#: What a missing attribute is reported as.
ABSENT = "(missing)"


@dataclass(frozen=True, slots=True)
class Goal:
    metric: str
    current: float
    target: float
    met: bool


@dataclass(frozen=True, slots=True)
class Feed:
    """A metric that feeds the target: which events, under which condition."""

    metric: str
    event: str
    aggregate: str
    #: The property summed, maximised or counted distinctly; None for a count.
    property: str | None
    #: The `where` as written, as JSON; None: every event of the type counts.
    where: str | None


@dataclass(frozen=True, slots=True)
class FailedCondition:
    """One entry of an audience that the player's attributes do not meet."""

    condition: str
    #: The attribute it tests (None for `all`/`any`/`not`) and the value seen.
    attribute: str | None
    seen: str | None


@dataclass(frozen=True, slots=True)
class JournalEvent:
    """An event of the journal, as an explanation points at it."""

    journal_id: int
    event_id: str
    type: str
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class Explanation:
    target: str
    kind: str
    title: str
    #: The unlock key in question (for a recurring challenge, of the current instance).
    unlock_key: str
    unlocked: bool
    unlocked_at: datetime | None
    timezone: str
    #: The instance's period (day, week, month), None for a window or a lifetime goal.
    period: str | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    goals: list[Goal] = field(default_factory=list)
    feeds: list[Feed] = field(default_factory=list)
    in_audience: bool = True
    audience_failures: list[FailedCondition] = field(default_factory=list)
    missing_prerequisites: list[str] = field(default_factory=list)
    #: "open", "closed" or "not open yet" for a fixed window; None otherwise.
    window: str | None = None
    #: A recurring challenge completed in an earlier instance.
    completed_before: bool = False
    #: For a badge: the rules that grant it, each explained.
    via: list[Explanation] = field(default_factory=list)
    unlocked_by: JournalEvent | None = None
    last_event: JournalEvent | None = None
    text: str = ""

    @property
    def event_types(self) -> list[str]:
        """Every event type that feeds it, directly or through `via`."""
        found = [feed.event for feed in self.feeds]
        found += [kind for rule in self.via for kind in rule.event_types]
        return list(dict.fromkeys(found))


def target_of(program: Program, target: str) -> str:
    """The row id of a target as a designer or support agent may write it;
    UnknownTargetError (with the candidates) otherwise."""
    if target.count(":") and target.split(":", 1)[0] in (
        "challenge",
        "milestone",
        "streak",
        "badge",
    ):
        kind, _, rest = target.partition(":")
        found = _named(program, kind, rest)
        if found is None:
            raise UnknownTargetError(f"{target!r} is not in the program; {_hint(program)}")
        return found
    matches = [
        found
        for kind in ("challenge", "milestone", "streak", "badge")
        if (found := _named(program, kind, target)) is not None
    ]
    if not matches:
        raise UnknownTargetError(f"{target!r} is not in the program; {_hint(program)}")
    if len(matches) > 1:
        raise UnknownTargetError(
            f"{target!r} names several things: {', '.join(matches)}; pass one of these"
        )
    return matches[0]


def _named(program: Program, kind: str, rest: str) -> str | None:
    name, _, step = rest.partition(":")
    if kind == "challenge" and name in program.challenges and not step:
        return f"challenge:{name}"
    if kind == "badge" and name in program.badges and not step:
        return f"badge:{name}"
    if kind == "milestone" and name in program.milestones:
        tiers = program.milestones[name].tiers
        if not step:
            return f"milestone:{name}:0"  # the next tier, decided with the counter
        if step.isdigit() and 1 <= int(step) <= len(tiers):
            return f"milestone:{name}:{int(step)}"
    if kind == "streak" and name in program.streaks:
        lengths = [milestone.at for milestone in program.streaks[name].milestones]
        if not step and lengths:
            return f"streak:{name}:0"  # the next milestone, decided with the streak
        if step.isdigit() and int(step) in lengths:
            return f"streak:{name}:{int(step)}"
    return None


def _hint(program: Program) -> str:
    return (
        "name a challenge, a milestone tier (coffee-lover:2), a streak milestone "
        "(daily-coffee:7) or a badge, e.g. "
        + ", ".join(
            [
                *(f"challenge:{c}" for c in list(program.challenges)[:2]),
                *(f"badge:{b}" for b in list(program.badges)[:1]),
            ]
        )
    )


async def explain(
    program: Program, store: Store, player_id: str, profile: Profile, now: datetime, target: str
) -> Explanation:
    """Why `target` (see `target_of`) is unlocked or not for this player, now."""
    row = target_of(program, target)
    unlocks, values = await _read(program, store, player_id, profile, now, row)
    return _explained(program, row, _Seen(player_id, profile, now, unlocks, values))


async def _read(
    program: Program, store: Store, player_id: str, profile: Profile, now: datetime, row: str
) -> tuple[dict[str, str], dict[str, Any]]:
    """The unlocks hash and every counter or streak the target (or, for a
    badge, each rule granting it) depends on, by key, in one round trip."""
    wanted: dict[str, Read] = {}
    for rule in [row, *_granting(program, row)]:
        kind, name = rule.split(":")[:2]
        if kind == "challenge":
            challenge = program.challenges[name]
            bucket = _instance(program, name, challenge, profile, now)[0]
            for goal in challenge.all_goals():
                read = _metric(program, player_id, goal.metric, bucket)
                wanted[read.key] = read
        elif kind == "milestone":
            read = _metric(program, player_id, program.milestones[name].metric, None)
            wanted[read.key] = read
        elif kind == "streak":
            key = keys.streak(player_id, name)
            wanted[key] = Read("hash", key)
    unlocks_key = keys.unlocks(player_id)
    found = await store.read([Read("hash", unlocks_key), *wanted.values()])
    return found[0], dict(zip(wanted, found[1:], strict=True))


def _metric(program: Program, player_id: str, metric_id: str, bucket: str | None) -> Read:
    key = keys.metric(player_id, metric_id, bucket)
    return (
        Read("card", key)
        if program.metrics[metric_id].aggregate == "distinct"
        else Read("int", key)
    )


def _granting(program: Program, row: str) -> list[str]:
    """For a badge, the rules that grant it; nothing for other targets."""
    if not row.startswith("badge:"):
        return []
    badge = row.split(":", 1)[1]
    found = [
        f"milestone:{milestone_id}:{number}"
        for milestone_id, milestone in program.milestones.items()
        for number, tier in enumerate(milestone.tiers, start=1)
        if granted_badge(tier.badge, tier.reward) == badge
    ]
    found += [
        f"challenge:{challenge_id}"
        for challenge_id, challenge in program.challenges.items()
        if granted_badge(None, challenge.reward) == badge
    ]
    found += [
        f"streak:{streak_id}:{step.at}"
        for streak_id, streak in program.streaks.items()
        for step in streak.milestones
        if granted_badge(step.badge, step.reward) == badge
    ]
    return found


def _instance(
    program: Program, challenge_id: str, challenge: Challenge, profile: Profile, now: datetime
) -> tuple[str, str | None, datetime, datetime, str]:
    """(bucket, period, starts_at, ends_at, unlock key) of a challenge's instance now."""
    if challenge.every is not None:
        period = periods.period_of(
            now, Granularity(challenge.every), profile.timezone, program.week_start
        )
        return (
            period.key,
            challenge.every,
            period.starts_at,
            period.ends_at,
            keys.challenge_unlock(challenge_id, period.key),
        )
    assert challenge.window is not None
    window = periods.window_of(challenge.window.start, challenge.window.end, profile.timezone)
    return (
        window_bucket(challenge_id),
        None,
        window.starts_at,
        window.ends_at,
        keys.challenge_unlock(challenge_id, None),
    )


@dataclass(frozen=True, slots=True)
class _Seen:
    """What was read for one explanation."""

    player_id: str
    profile: Profile
    now: datetime
    unlocks: Mapping[str, str]
    #: Counters and streak states by store key.
    values: Mapping[str, Any]

    def value(self, metric_id: str, bucket: str | None = None) -> int:
        return int(self.values.get(keys.metric(self.player_id, metric_id, bucket), 0))


def _explained(program: Program, row: str, seen: _Seen) -> Explanation:
    kind, name, *step = row.split(":")
    profile, now, unlocks = seen.profile, seen.now, seen.unlocks
    timezone = profile.timezone.key
    if kind == "challenge":
        return _challenge(program, name, seen)
    if kind == "milestone":
        milestone = program.milestones[name]
        metric = program.metrics[milestone.metric]
        raw = seen.value(milestone.metric)
        number = int(step[0])
        if number == 0:  # the next tier: the first one the counter has not reached
            reached = [t for t in milestone.tiers if raw >= threshold(metric, t.at)]
            number = min(len(reached) + 1, len(milestone.tiers))
        tier = milestone.tiers[number - 1]
        key = keys.milestone_unlock(name, number)
        return Explanation(
            target=f"milestone:{name}:{number}",
            kind="milestone",
            title=describe(program, key).title,
            unlock_key=key,
            unlocked=key in unlocks,
            unlocked_at=_when(unlocks, key),
            goals=[
                Goal(
                    milestone.metric,
                    raw / scale_of(metric),
                    tier.at,
                    raw >= threshold(metric, tier.at),
                )
            ],
            feeds=[_feed(program, milestone.metric)],
            timezone=timezone,
        )
    if kind == "streak":
        streak = program.streaks[name]
        state = seen.values.get(keys.streak(seen.player_id, name), {})
        standing = streak_progress(name, streak, state, program, profile.timezone, now)
        length = int(step[0])
        if length == 0:
            upcoming = [m.at for m in streak.milestones if f"streak:{name}:{m.at}" not in unlocks]
            length = upcoming[0] if upcoming else streak.milestones[-1].at
        key = keys.streak_unlock(name, length)
        period = periods.period_of(
            now, Granularity(streak.per), profile.timezone, program.week_start
        )
        return Explanation(
            target=key,
            kind="streak",
            title=describe(program, key).title,
            unlock_key=key,
            unlocked=key in unlocks,
            unlocked_at=_when(unlocks, key),
            period=streak.per,
            starts_at=period.starts_at,
            ends_at=period.ends_at,
            goals=[
                Goal(
                    f"{streak.per}s in a row", standing.current, length, standing.current >= length
                )
            ],
            feeds=[_feed(program, streak.metric)],
            timezone=timezone,
        )
    key = keys.badge_unlock(name)
    return Explanation(
        target=row,
        kind="badge",
        title=program.badges[name].name,
        unlock_key=key,
        unlocked=key in unlocks,
        unlocked_at=_when(unlocks, key),
        via=[_explained(program, rule, seen) for rule in _granting(program, row)],
        timezone=timezone,
    )


def _challenge(program: Program, challenge_id: str, seen: _Seen) -> Explanation:
    profile, now, unlocks = seen.profile, seen.now, seen.unlocks
    challenge = program.challenges[challenge_id]
    bucket, period, starts_at, ends_at, key = _instance(
        program, challenge_id, challenge, profile, now
    )
    goals = []
    for goal in challenge.all_goals():
        metric = program.metrics[goal.metric]
        raw = seen.value(goal.metric, bucket)
        goals.append(
            Goal(
                goal.metric,
                raw / scale_of(metric),
                goal.target,
                raw >= threshold(metric, goal.target),
            )
        )
    failures = (
        audience_failures(challenge.audience, profile.attributes)
        if challenge.audience is not None
        else []
    )
    required = [
        keys.challenge_done(requirement.challenge)
        if requirement.challenge is not None
        else keys.milestone_unlock(str(requirement.milestone), int(requirement.tier or 1))
        for requirement in challenge.requires
    ]
    missing = [key.removeprefix("done:") for key in required if key not in unlocks]
    window = None
    if challenge.window is not None:
        window = "not open yet" if now < starts_at else "closed" if now >= ends_at else "open"
    return Explanation(
        target=f"challenge:{challenge_id}",
        kind="challenge",
        title=challenge.name or challenge_id,
        unlock_key=key,
        unlocked=key in unlocks,
        unlocked_at=_when(unlocks, key),
        timezone=profile.timezone.key,
        period=period,
        starts_at=starts_at,
        ends_at=ends_at,
        goals=goals,
        in_audience=not failures,
        audience_failures=failures,
        missing_prerequisites=missing,
        window=window,
        feeds=[_feed(program, metric) for metric in dict.fromkeys(g.metric for g in goals)],
        completed_before=keys.challenge_done(challenge_id) in unlocks and key not in unlocks,
    )


def _when(unlocks: Mapping[str, str], key: str) -> datetime | None:
    return unlock_time(unlocks[key]) if key in unlocks else None


def _feed(program: Program, metric_id: str) -> Feed:
    metric = program.metrics[metric_id]
    return Feed(
        metric=metric_id,
        event=metric.event,
        aggregate=metric.aggregate,
        property=metric.property,
        where=None if metric.condition is None else _json(metric.condition),
    )


def _json(value: Any) -> str:
    return json.dumps(value, separators=(", ", ": "), default=str)


def audience_failures(
    audience: Mapping[str, Any], attributes: Mapping[str, Any]
) -> list[FailedCondition]:
    """The entries of an audience (each must hold) that these attributes fail,
    each with the attribute it tests and the value seen."""
    failed = []
    for name, spec in audience.items():
        if compile_condition({name: spec}, "audience")(attributes):
            continue
        if name in ("all", "any", "not"):
            failed.append(FailedCondition(_json({name: spec}), None, None))
            continue
        failed.append(FailedCondition(_json({name: spec}), name, _attribute(attributes, name)))
    return failed


def _attribute(attributes: Mapping[str, Any], path: str) -> str:
    """The value at a dotted attribute path, as JSON, or ABSENT."""
    found = lookup(attributes, path)
    return ABSENT if found is MISSING else _json(found)


def matches(program: Program, explanation: Explanation) -> list[tuple[str, Any]]:
    """(event type, predicate) of every feed, for finding the last event that counted."""
    found = []
    for rule in [explanation, *explanation.via]:
        for feed in rule.feeds:
            found.append((feed.event, program.metrics[feed.metric].where))
    return found


def with_journal(
    explanation: Explanation,
    unlocked_by: JournalEvent | None,
    last_event: JournalEvent | None,
) -> Explanation:
    """The explanation with what the journal says, and its support text."""
    found = replace(explanation, unlocked_by=unlocked_by, last_event=last_event)
    return replace(found, text=support_text(found))


def support_text(explanation: Explanation) -> str:
    """What a support agent can paste to the player, in plain words."""
    tz = explanation.timezone
    title = explanation.title
    if explanation.unlocked and explanation.unlocked_at is not None:
        when = _local(explanation.unlocked_at, tz)
        cause = explanation.unlocked_by
        by = (
            f", with the {cause.type} of {_local(cause.occurred_at, tz)} (event {cause.event_id})"
            if cause is not None
            else ""
        )
        return f"{title}: unlocked on {when} {tz}{by}."
    if explanation.via:
        parts = [support_text(rule) for rule in explanation.via]
        return f"{title} is earned through {len(parts)} way(s): " + " ".join(parts)
    parts = []
    if not explanation.in_audience:
        failure = explanation.audience_failures[0]
        seen = f" (yours: {failure.seen})" if failure.attribute is not None else ""
        parts.append(f"{title} is open to players with {failure.condition}{seen}")
    elif explanation.window == "closed":
        parts.append(f"{title} ended on {_local(explanation.ends_at, tz)} {tz}")
    elif explanation.window == "not open yet":
        parts.append(f"{title} starts on {_local(explanation.starts_at, tz)} {tz}")
    else:
        goals = "; ".join(
            f"{_amount(goal.current)} of {_amount(goal.target)} {goal.metric}"
            + (
                f" this {explanation.period}"
                if explanation.period and explanation.kind == "challenge"
                else ""
            )
            for goal in explanation.goals
        )
        parts.append(f"{title}: {goals}" if goals else title)
        if explanation.ends_at is not None and explanation.kind == "challenge":
            last_minute = explanation.ends_at - timedelta(minutes=1)
            span = f"the {explanation.period}" if explanation.period else "it"
            parts.append(f"{span} ends {_local(last_minute, tz, weekday=True)} {tz}")
        if explanation.missing_prerequisites:
            parts.append(f"first needs {', '.join(explanation.missing_prerequisites)}")
    return "; ".join(parts) + "."


def _amount(value: float) -> str:
    return f"{value:g}"


def _local(moment: datetime | None, tz: str, weekday: bool = False) -> str:
    if moment is None:
        return ""
    local = moment.astimezone(periods.resolve_timezone(tz))
    return local.strftime("%A %H:%M") if weekday else local.strftime("%Y-%m-%d %H:%M")
