"""Load a folder of YAML seed files as one validated, compiled program.

Designers get every problem at once, each located as `file:line path`:
YAML syntax, the shape of each item (pydantic models), then what only the
whole program can tell: duplicate ids across files, unknown metrics, badges,
challenges or milestone tiers, prerequisite cycles, bad timezones and
conditions that do not compile, tiers named by rewards. An item that fails
its own checks is left out of the cross-reference checks but still counts as
defined, so one typo is reported once, not once more by every item that
names it; for the same reason no name is called unknown while a file cannot
be read as YAML.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import types
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Union, get_args, get_origin
from zoneinfo import available_timezones

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from engine import durations
from engine.conditions import Predicate, compile_condition
from engine.errors import ConditionError, ConfigurationError, ProgramError, SeedIssue
from engine.periods import resolve_timezone
from engine.program.models import (
    CONDITION_PLACEHOLDER,
    CONDITION_SCHEMAS,
    Challenge,
    EarnRule,
    Metric,
    Points,
    ProgramInfo,
    Referrals,
    Reward,
    SeedFile,
    Tiers,
)
from engine.program.program import (
    EarnRuleDef,
    LeaderboardDef,
    MetricDef,
    Program,
    ReferralsDef,
    TierDef,
    TierLadder,
)

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
#: Sections holding items by id, merged across files.
SECTIONS = (
    "badges",
    "metrics",
    "milestones",
    "challenges",
    "streaks",
    "rewards",
    "leaderboards",
)
#: Sections that are one item, held by at most one file.
SINGLE_SECTIONS = ("program", "points", "tiers", "referrals")
#: Parts pydantic adds to an error location that are not keys of the YAML.
_TAGS = frozenset({"date", "datetime", "[key]"})
Location = tuple[str | int, ...]


@dataclass
class _File:
    """One seed file: its valid content and the line of every path in it."""

    name: str
    lines: dict[Location, int] = field(default_factory=dict)
    seed: SeedFile | None = None
    #: (section, id) of the items that failed their own validation, and
    #: (section,) of the one-item sections that did.
    invalid: set[Location] = field(default_factory=set)

    def line(self, location: Location) -> int | None:
        """Line of the longest known prefix of `location`."""
        for end in range(len(location), -1, -1):
            found = self.lines.get(location[:end])
            if found is not None:
                return found
        return None


@dataclass
class _Collector:
    issues: list[SeedIssue] = field(default_factory=list)

    def add(self, file: _File, location: Location, message: str, path: str | None = None) -> None:
        dotted = _dotted(location) if path is None else path
        self.issues.append(SeedIssue(file.name, file.line(location), dotted, message))


def _dotted(location: Iterable[str | int]) -> str:
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _suggest(name: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(options), n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


def seed_files(path: Path) -> list[Path]:
    """The seed files of a program folder (or the one file), in load order."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise ProgramError([SeedIssue(str(path), None, "", "no such file or folder")])
    files = sorted(
        p
        for p in path.iterdir()
        if p.suffix in (".yaml", ".yml") and p.is_file() and not p.name.startswith(".")
    )
    if not files:
        raise ProgramError([SeedIssue(str(path), None, "", f"no seed files (*.yaml) in {path}")])
    return files


# --- one file: YAML with line numbers, then the models ----------------------


def _index_lines(node: yaml.Node, location: Location, file: _File, collector: _Collector) -> None:
    """Record the line of every key and item; report keys given twice, which
    YAML would otherwise resolve silently in favour of the last one (whose
    lines are then the ones kept, as its value is the one validated)."""
    file.lines.setdefault(location, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*location, str(key.value))
            line = key.start_mark.line + 1
            if child in file.lines and key.value != "<<":
                collector.issues.append(
                    SeedIssue(
                        file.name,
                        line,
                        _dotted(child),
                        f"duplicate key, already given on line {file.lines[child]}",
                    )
                )
                for known in [known for known in file.lines if known[: len(child)] == child]:
                    del file.lines[known]
            file.lines[child] = line
            _index_lines(value, child, file, collector)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index_lines(item, (*location, index), file, collector)


def _read_yaml(file: _File, collector: _Collector) -> Any:
    """The file's data, with `file.lines` filled in; None when unreadable."""
    try:
        text = Path(file.name).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        collector.add(file, (), f"cannot read the file: {error}")
        return None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return {}
        _index_lines(node, (), file, collector)
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        problem = error.problem or error.context or "cannot parse"
        column = f" (column {mark.column + 1})" if mark else ""
        line = mark.line + 1 if mark else None
        collector.issues.append(SeedIssue(file.name, line, "", f"invalid YAML: {problem}{column}"))
    except yaml.YAMLError as error:
        collector.add(file, (), f"invalid YAML: {error}")
    finally:
        loader.dispose()
    return None


def _parse(path: Path, collector: _Collector) -> _File:
    file = _File(str(path))
    data = _read_yaml(file, collector)
    if data is None:
        return file
    if not isinstance(data, dict):
        collector.add(file, (), "a seed file must be a mapping of sections (metrics:, ...)")
        return file
    known: dict[str, Any] = {}
    for section, content in data.items():
        if section not in SeedFile.model_fields:
            hint = _suggest(str(section), SeedFile.model_fields) or (
                f"; sections are {', '.join(SeedFile.model_fields)}"
            )
            collector.add(file, (str(section),), f"unknown section{hint}")
        elif content is not None:  # a section whose entries are all commented out
            known[section] = content
    file.seed = _validate(file, known, collector)
    return file


def _validate(file: _File, data: dict[str, Any], collector: _Collector) -> SeedFile:
    """The file's valid items; every invalid one is reported and left out."""
    try:
        return SeedFile.model_validate(data)
    except ValidationError as error:
        broken: set[Location] = set()
        for location, message in _problems(error.errors()):
            collector.add(file, location, message)
            # A one-item section fails as a whole; elsewhere an item is (section, id).
            single = location[0] in SINGLE_SECTIONS
            broken.add(location[:1] if single else location[:2])
    file.invalid = {item for item in broken if len(item) == 2 or item[0] in SINGLE_SECTIONS}
    kept = {
        section: (
            {k: v for k, v in content.items() if (section, k) not in broken}
            if section not in SINGLE_SECTIONS and isinstance(content, dict)
            else content
        )
        for section, content in data.items()
        if (section,) not in broken
    }
    return SeedFile.model_validate(kept)  # items are independent: the rest is valid


def _problems(errors: list[ErrorDetails]) -> Iterator[tuple[Location, str]]:
    """Pydantic errors as (YAML location, message), once per location:
    a union such as `date | datetime` fails once per member."""
    seen: set[Location] = set()
    for error in errors:
        location = tuple(part for part in error["loc"] if part not in _TAGS)
        if location not in seen:
            seen.add(location)
            yield location, _message(error, location)


def _message(error: ErrorDetails, location: Location) -> str:
    kind, message = error["type"], error["msg"]
    if kind == "missing":
        return "missing required key"
    if kind == "extra_forbidden":
        return "unknown key" + _suggest(str(location[-1]), _keys_at(location[:-1]))
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "must be a mapping (key: value)"
    if kind == "string_pattern_mismatch":
        if error.get("ctx", {}).get("pattern") == durations.PATTERN:
            return f"must be {durations.EXAMPLES}"
        return "must be an id: lowercase letters, digits, '-' and '_', not starting with - or _"
    if kind == "too_short":
        least = error.get("ctx", {}).get("min_length", 1)
        return f"needs at least {least} item{'s' * (least != 1)}"
    message = re.sub(r"^(Value error|Assertion failed), ", "", message)
    message = re.sub(r"^(Input|String|List) should ", "must ", message)
    return message[:1].lower() + message[1:]


def _keys_at(location: Location) -> list[str]:
    """Keys allowed in the mapping at `location`, found by walking the models."""
    annotation: Any = SeedFile
    for part in location:
        annotation = _inner(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found = annotation.model_fields.get(str(part))
            if found is None:
                return []
            annotation = found.annotation
        elif get_origin(annotation) in (dict, list):
            annotation = get_args(annotation)[-1]
        else:
            return []
    annotation = _inner(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return list(annotation.model_fields)
    return []


def _inner(annotation: Any) -> Any:
    """The model or container inside `X | None`."""
    if get_origin(annotation) in (Union, types.UnionType):
        return next(arg for arg in get_args(annotation) if arg is not type(None))
    return annotation


# --- the whole program -------------------------------------------------------


@dataclass
class _Merged:
    """Definitions of all files, each id with the file that defined it."""

    #: One-item sections (program, points, tiers) with the file holding each.
    singles: dict[str, tuple[_File, Any]] = field(default_factory=dict)
    sections: dict[str, dict[str, tuple[_File, Any]]] = field(
        default_factory=lambda: {section: {} for section in SECTIONS}
    )
    #: Ids defined by items that failed validation: known, but not checkable.
    invalid: dict[str, set[str]] = field(
        default_factory=lambda: {section: set() for section in SECTIONS}
    )
    #: One-item sections given somewhere but failing validation.
    invalid_singles: set[str] = field(default_factory=set)
    #: False when a file could not be read as YAML: any id may be defined there.
    complete: bool = True


def _merge(files: list[_File], collector: _Collector) -> _Merged:
    merged = _Merged()
    for file in files:
        for item in file.invalid:
            if len(item) == 1:
                merged.invalid_singles.add(str(item[0]))
            else:
                merged.invalid[str(item[0])].add(str(item[1]))
        if file.seed is None:
            merged.complete = False
            continue
        for single in SINGLE_SECTIONS:
            content = getattr(file.seed, single)
            if content is None:
                continue
            if single in merged.singles:
                first = merged.singles[single][0]
                collector.add(
                    file,
                    (single,),
                    f"the {single} section is already in {first.name}:{first.line((single,))}",
                )
            else:
                merged.singles[single] = (file, content)
        for section in SECTIONS:
            for item_id, item in getattr(file.seed, section).items():
                seen = merged.sections[section].get(item_id)
                if seen is not None:
                    where = f"{seen[0].name}:{seen[0].line((section, item_id))}"
                    collector.add(
                        file, (section, item_id), f"duplicate id, also defined in {where}"
                    )
                else:
                    merged.sections[section][item_id] = (file, item)
    return merged


class _Checker:
    """Cross-reference checks over the merged definitions."""

    def __init__(self, merged: _Merged, collector: _Collector) -> None:
        self.sections = merged.sections
        self.invalid = merged.invalid
        self.complete = merged.complete
        self.singles = merged.singles
        self.invalid_singles = merged.invalid_singles
        self.collector = collector

    def reference(self, file: _File, location: Location, section: str, name: str | None) -> None:
        known = name in self.sections[section] or name in self.invalid[section]
        if name is None or known or not self.complete:
            return
        kind = section.removesuffix("s")
        hint = _suggest(name, self.sections[section])
        self.collector.add(file, location, f"unknown {kind} '{name}'{hint}")

    def reward(self, file: _File, location: Location, reward: Reward | None) -> None:
        if reward is not None:
            self.reference(file, (*location, "reward", "badge"), "badges", reward.badge)

    def tier(self, file: _File, location: Location, name: str | None) -> None:
        if name is None or "tiers" in self.invalid_singles or not self.complete:
            return
        found = self.singles.get("tiers")
        if found is None:
            message = f"unknown tier '{name}': the program has no `tiers` section"
        elif name in found[1].levels:
            return
        else:
            message = f"unknown tier '{name}'{_suggest(name, found[1].levels)}"
        self.collector.add(file, location, message)

    def run(self) -> None:
        for reward_id, (file, reward) in self.sections["rewards"].items():
            self.tier(file, ("rewards", reward_id, "min_tier"), reward.min_tier)
        for milestone_id, (file, milestone) in self.sections["milestones"].items():
            at = ("milestones", milestone_id)
            self.reference(file, (*at, "metric"), "metrics", milestone.metric)
            for n, tier in enumerate(milestone.tiers):
                self.reference(file, (*at, "tiers", n, "badge"), "badges", tier.badge)
                self.reward(file, (*at, "tiers", n), tier.reward)
        for challenge_id, (file, challenge) in self.sections["challenges"].items():
            self.challenge(file, ("challenges", challenge_id), challenge)
        for board_id, (file, board) in self.sections["leaderboards"].items():
            self.reference(file, ("leaderboards", board_id, "metric"), "metrics", board.metric)
        for streak_id, (file, streak) in self.sections["streaks"].items():
            at = ("streaks", streak_id)
            self.reference(file, (*at, "metric"), "metrics", streak.metric)
            for n, milestone in enumerate(streak.milestones):
                self.reference(file, (*at, "milestones", n, "badge"), "badges", milestone.badge)
                self.reward(file, (*at, "milestones", n), milestone.reward)

    def challenge(self, file: _File, at: Location, challenge: Challenge) -> None:
        if challenge.metric is not None:
            self.reference(file, (*at, "metric"), "metrics", challenge.metric)
        for n, goal in enumerate(challenge.goals):
            self.reference(file, (*at, "goals", n, "metric"), "metrics", goal.metric)
        self.reward(file, at, challenge.reward)
        for n, requirement in enumerate(challenge.requires):
            where = (*at, "requires", n)
            if requirement.challenge is not None:
                self.reference(file, (*where, "challenge"), "challenges", requirement.challenge)
                continue
            self.reference(file, (*where, "milestone"), "milestones", requirement.milestone)
            found = self.sections["milestones"].get(str(requirement.milestone))
            tiers = len(found[1].tiers) if found else 0
            if found and requirement.tier is not None and requirement.tier > tiers:
                self.collector.add(
                    file,
                    (*where, "tier"),
                    f"milestone '{requirement.milestone}' has {tiers} tier{'s' * (tiers != 1)}",
                )


def _ordered_challenges(
    challenges: dict[str, tuple[_File, Challenge]], collector: _Collector
) -> list[str]:
    """Challenge ids with prerequisites first, otherwise in file order; each
    cycle reported once, where it closes."""
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(challenge_id: str, trail: list[str]) -> None:
        if state.get(challenge_id) == "done":
            return
        if state.get(challenge_id) == "visiting":
            cycle = [*trail[trail.index(challenge_id) :], challenge_id]
            file, closing = challenges[trail[-1]]
            n = next(n for n, r in enumerate(closing.requires) if r.challenge == challenge_id)
            collector.add(
                file,
                ("challenges", trail[-1], "requires", n, "challenge"),
                f"prerequisite cycle: {' -> '.join(cycle)}",
            )
            return
        state[challenge_id] = "visiting"
        for requirement in challenges[challenge_id][1].requires:
            if requirement.challenge in challenges:
                visit(requirement.challenge, [*trail, challenge_id])
        state[challenge_id] = "done"
        order.append(challenge_id)

    for challenge_id in challenges:
        visit(challenge_id, [])
    return order


def _check_timezone(merged: _Merged, collector: _Collector) -> None:
    if "program" not in merged.singles:
        return
    file, info = merged.singles["program"]
    if info.timezone is None:
        return
    try:
        resolve_timezone(info.timezone)
    except ConfigurationError as error:
        hint = _suggest(info.timezone, available_timezones())
        collector.add(file, ("program", "timezone"), f"{error}{hint}")


def _condition_location(file: _File, base: Location, rest: str) -> Location:
    """The YAML location of a condition error path such as `.store.city.gte`
    or `.all[1].amount`: property names may themselves contain dots, so
    parts are joined until they name a key the file has."""
    parts = re.findall(r"\[\d+\]|[^.\[\]]+", rest)
    location, start = base, 0
    while start < len(parts):
        if parts[start].startswith("["):
            location, start = (*location, int(parts[start][1:-1])), start + 1
            continue
        for end in range(len(parts), start, -1):
            candidate = (*location, ".".join(parts[start:end]))
            if candidate in file.lines:
                location, start = candidate, end
                break
        else:
            break
    return location


def _compile(spec: Any, file: _File, location: Location, collector: _Collector) -> Predicate | None:
    if spec is None:
        return None
    base = _dotted(location)
    try:
        return compile_condition(spec, base)
    except ConditionError as error:
        deeper = _condition_location(file, location, error.path.removeprefix(base))
        collector.add(file, deeper, error.message, path=error.path)
        return None


def _metric(metric_id: str, metric: Metric, where: Predicate | None) -> MetricDef:
    for aggregate in ("sum", "max", "distinct"):
        prop = getattr(metric, aggregate)
        if prop is not None:
            return MetricDef(
                metric_id, metric.event, aggregate, prop, where, metric.description, metric.where
            )
    return MetricDef(
        metric_id, metric.event, "count", None, where, metric.description, metric.where
    )


def _earn_rule(rule_id: str, rule: EarnRule, where: Predicate | None) -> EarnRuleDef:
    return EarnRuleDef(
        id=rule_id,
        event=rule.event,
        where=where,
        per=rule.per,
        # Through str: Decimal(0.1) would carry the float's binary error into the points.
        rate=None if rule.rate is None else Decimal(str(rule.rate)),
        points=rule.points,
        cap=rule.cap,
        description=rule.description,
    )


def _referrals(section: Referrals, where: Predicate | None) -> ReferralsDef:
    return ReferralsDef(
        event=section.qualify.event,
        where=where,
        referrer_points=section.referrer_points,
        referee_points=section.referee_points,
        monthly_cap=section.monthly_cap,
    )


def _ladder(tiers: Tiers) -> TierLadder:
    return TierLadder(
        levels=tuple(
            TierDef(
                id=level_id,
                rank=rank,
                name=level.name,
                description=level.description,
                qualifying_points=level.qualifying_points,
                multiplier=Decimal(str(level.multiplier)),
                benefits=tuple(level.benefits),
            )
            for rank, (level_id, level) in enumerate(tiers.levels.items())
        ),
        window=timedelta(days=tiers.window_days),
        review=tiers.review,
    )


def load_program(path: str | Path) -> Program:
    """Load, validate and compile a program folder (or a single file).

    Raises ProgramError with every issue found, sorted by file and line.
    """
    files_on_disk = seed_files(Path(path))
    collector = _Collector()
    merged = _merge([_parse(p, collector) for p in files_on_disk], collector)
    _Checker(merged, collector).run()
    _check_timezone(merged, collector)
    sections = merged.sections
    order = _ordered_challenges(sections["challenges"], collector)
    metrics = {
        metric_id: _metric(
            metric_id,
            metric,
            _compile(metric.where, file, ("metrics", metric_id, "where"), collector),
        )
        for metric_id, (file, metric) in sections["metrics"].items()
    }
    audiences = {}
    for challenge_id, (file, challenge) in sections["challenges"].items():
        compiled = _compile(
            challenge.audience, file, ("challenges", challenge_id, "audience"), collector
        )
        if compiled is not None:
            audiences[challenge_id] = compiled
    points: Points = merged.singles["points"][1] if "points" in merged.singles else Points()
    earn_rules = {}
    for rule_id, rule in points.earn.items():
        where = _compile(
            rule.where, merged.singles["points"][0], ("points", "earn", rule_id, "where"), collector
        )
        earn_rules[rule_id] = _earn_rule(rule_id, rule, where)
    referrals = None
    if "referrals" in merged.singles:
        referrals_file, section = merged.singles["referrals"]
        qualify = _compile(
            section.qualify.where, referrals_file, ("referrals", "qualify", "where"), collector
        )
        referrals = _referrals(section, qualify)
    if collector.issues:
        raise ProgramError(sorted(collector.issues, key=lambda i: (i.file, i.line or 0)))

    by_event: dict[str, list[MetricDef]] = {}
    for metric_def in metrics.values():
        by_event.setdefault(metric_def.event, []).append(metric_def)
    earn_by_event: dict[str, list[EarnRuleDef]] = {}
    for rule_def in earn_rules.values():
        earn_by_event.setdefault(rule_def.event, []).append(rule_def)
    info: ProgramInfo = (
        merged.singles["program"][1] if "program" in merged.singles else ProgramInfo()
    )
    tiers: Tiers | None = merged.singles["tiers"][1] if "tiers" in merged.singles else None
    items = {section: {k: v for k, (_, v) in found.items()} for section, found in sections.items()}
    return Program(
        info=info,
        week_start=WEEKDAYS.index(info.week_start),
        badges=types.MappingProxyType(items["badges"]),
        metrics=types.MappingProxyType(metrics),
        milestones=types.MappingProxyType(items["milestones"]),
        challenges=types.MappingProxyType({k: items["challenges"][k] for k in order}),
        streaks=types.MappingProxyType(items["streaks"]),
        audiences=types.MappingProxyType(audiences),
        metrics_by_event=types.MappingProxyType(
            {event: tuple(defs) for event, defs in by_event.items()}
        ),
        version=program_version(files_on_disk),
        earn_rules=types.MappingProxyType(earn_rules),
        earn_rules_by_event=types.MappingProxyType(
            {event: tuple(rules) for event, rules in earn_by_event.items()}
        ),
        points_expire_after=None
        if points.expire_after is None
        else durations.parse_duration(points.expire_after),
        tiers=None if tiers is None else _ladder(tiers),
        rewards=types.MappingProxyType(items["rewards"]),
        referrals=referrals,
        leaderboards=types.MappingProxyType(
            {
                board_id: LeaderboardDef(
                    id=board_id,
                    name=board.name or board_id,
                    description=board.description,
                    metric=board.metric,
                    periods=tuple(board.periods),
                )
                for board_id, board in items["leaderboards"].items()
            }
        ),
    )


def program_version(files: Iterable[Path]) -> str:
    """Short hash of the seed files' names and bytes: tells programs apart."""
    digest = hashlib.sha256()
    for file_path in files:
        digest.update(file_path.name.encode() + b"\0" + file_path.read_bytes())
    return digest.hexdigest()[:12]


def program_json_schema() -> dict[str, Any]:
    """JSON Schema of one seed file, for yaml-language-server and other editors."""
    schema = _with_conditions(SeedFile.model_json_schema())
    schema["$defs"] = {**schema["$defs"], **CONDITION_SCHEMAS}
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def _with_conditions(schema: Any) -> Any:
    """`schema` with every condition placeholder turned into a reference."""
    if schema == CONDITION_PLACEHOLDER:
        return {"$ref": "#/$defs/Condition"}
    if isinstance(schema, dict):
        return {key: _with_conditions(value) for key, value in schema.items()}
    if isinstance(schema, list):
        return [_with_conditions(value) for value in schema]
    return schema
