"""Load a folder of YAML seed files as one validated, compiled program.

Designers get every problem at once, each located as `file:line path`:
YAML syntax, the shape of each file (pydantic models), then what only the
whole program can tell: duplicate ids across files, unknown metrics, badges,
challenges or milestone tiers, prerequisite cycles, bad timezones and
conditions that do not compile.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from engine.conditions import Predicate, compile_condition
from engine.errors import ConditionError, ConfigurationError, ProgramError, SeedIssue
from engine.periods import resolve_timezone
from engine.program.models import (
    Badge,
    Challenge,
    Metric,
    Milestone,
    ProgramInfo,
    Reward,
    SeedFile,
    Streak,
)
from engine.program.program import MetricDef, Program

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
SECTIONS = ("badges", "metrics", "milestones", "challenges", "streaks")
Location = tuple[str | int, ...]


@dataclass
class _File:
    """One parsed seed file and the line of every path in it."""

    name: str
    lines: dict[Location, int]
    seed: SeedFile | None = None

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

    def add(self, file: _File, location: Location, message: str) -> None:
        self.issues.append(SeedIssue(file.name, file.line(location), _dotted(location), message))


def _dotted(location: Iterable[str | int]) -> str:
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _suggest(name: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(options), n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


def _seed_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise ProgramError([SeedIssue(str(path), None, "", "no such file or folder")])
    files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    if not files:
        raise ProgramError(
            [SeedIssue(str(path), None, "", "no seed files (*.yaml) in this folder")]
        )
    return files


def _lines(node: yaml.Node, location: Location, lines: dict[Location, int]) -> None:
    lines.setdefault(location, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*location, str(key.value))
            lines[child] = key.start_mark.line + 1
            _lines(value, child, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _lines(item, (*location, index), lines)


def _message(error: Mapping[str, Any]) -> str:
    kind, message = error["type"], str(error["msg"])
    if kind == "missing":
        return "missing required key"
    if kind == "extra_forbidden":
        return "unknown key"
    message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if message.startswith("Input should be "):
        message = "must be " + message.removeprefix("Input should be ")
    if message.startswith("String should "):
        message = "must " + message.removeprefix("String should ")
    return message[:1].lower() + message[1:]


def _parse(path: Path, collector: _Collector) -> _File | None:
    file = _File(str(path), {})
    try:
        text = path.read_text(encoding="utf-8")
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError) as error:
        collector.add(file, (), f"cannot read the file: {error}")
        return None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        problem = getattr(error, "problem", None) or str(error)
        collector.issues.append(
            SeedIssue(file.name, mark.line + 1 if mark else None, "", f"invalid YAML: {problem}")
        )
        return None
    if node is not None:
        _lines(node, (), file.lines)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        collector.add(file, (), "a seed file must be a mapping of sections")
        return None
    for section in data:
        if section not in SeedFile.model_fields:
            allowed = ", ".join(SeedFile.model_fields)
            hint = _suggest(str(section), SeedFile.model_fields) or f"; sections are {allowed}"
            collector.add(file, (str(section),), f"unknown section{hint}")
    try:
        file.seed = SeedFile.model_validate(
            {k: v for k, v in data.items() if k in SeedFile.model_fields}
        )
    except ValidationError as error:
        for problem in error.errors():
            location = tuple(
                part for part in problem["loc"] if part not in ("date", "datetime", "[key]")
            )
            collector.add(file, location, _message(problem))
    return file


@dataclass
class _Merged:
    """Definitions of all files, each id with the file that defined it."""

    info: tuple[_File, ProgramInfo] | None = None
    sections: dict[str, dict[str, tuple[_File, Any]]] = field(
        default_factory=lambda: {section: {} for section in SECTIONS}
    )


def _merge(files: list[_File], collector: _Collector) -> _Merged:
    merged = _Merged()
    for file in files:
        if file.seed is None:
            continue
        if file.seed.program is not None:
            if merged.info is not None:
                first = merged.info[0]
                collector.add(
                    file,
                    ("program",),
                    f"the program section is already in {first.name}:{first.line(('program',))}",
                )
            else:
                merged.info = (file, file.seed.program)
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
        self.collector = collector

    def reference(self, file: _File, location: Location, section: str, name: str | None) -> None:
        if name is None or name in self.sections[section]:
            return
        kind = section.removesuffix("s")
        hint = _suggest(name, self.sections[section])
        self.collector.add(file, location, f"unknown {kind} '{name}'{hint}")

    def reward(self, file: _File, location: Location, reward: Reward | None) -> None:
        if reward is not None:
            self.reference(file, (*location, "reward", "badge"), "badges", reward.badge)

    def run(self) -> None:
        for milestone_id, (file, milestone) in self.sections["milestones"].items():
            at = ("milestones", milestone_id)
            self.reference(file, (*at, "metric"), "metrics", milestone.metric)
            for n, tier in enumerate(milestone.tiers):
                self.reference(file, (*at, "tiers", n, "badge"), "badges", tier.badge)
                self.reward(file, (*at, "tiers", n), tier.reward)
        for challenge_id, (file, challenge) in self.sections["challenges"].items():
            self.challenge(file, ("challenges", challenge_id), challenge)
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
    """Challenge ids with prerequisites first; cycles reported."""
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(challenge_id: str, trail: list[str]) -> None:
        if state.get(challenge_id) == "done":
            return
        if state.get(challenge_id) == "visiting":
            cycle = [*trail[trail.index(challenge_id) :], challenge_id]
            file = challenges[challenge_id][0]
            collector.add(
                file,
                ("challenges", challenge_id, "requires"),
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


def _compile(spec: Any, file: _File, location: Location, collector: _Collector) -> Predicate | None:
    if spec is None:
        return None
    try:
        return compile_condition(spec, _dotted(location))
    except ConditionError as error:
        parts = error.path.removeprefix(_dotted(location)).replace("[", ".").replace("]", "")
        deeper = tuple(int(p) if p.isdigit() else p for p in parts.split(".") if p)
        collector.issues.append(
            SeedIssue(file.name, file.line((*location, *deeper)), error.path, error.message)
        )
        return None


def _metric(metric_id: str, metric: Metric, where: Predicate | None) -> MetricDef:
    for aggregate in ("sum", "max", "distinct"):
        prop = getattr(metric, aggregate)
        if prop is not None:
            return MetricDef(metric_id, metric.event, aggregate, prop, where, metric.description)
    return MetricDef(metric_id, metric.event, "count", None, where, metric.description)


def load_program(path: str | Path) -> Program:
    """Load, validate and compile a program folder (or a single file)."""
    files_on_disk = _seed_files(Path(path))
    collector = _Collector()
    parsed = [file for p in files_on_disk if (file := _parse(p, collector)) is not None]
    merged = _merge(parsed, collector)
    _Checker(merged, collector).run()
    sections = merged.sections
    order = _ordered_challenges(sections["challenges"], collector)

    info = merged.info[1] if merged.info else ProgramInfo()
    if merged.info and info.timezone is not None:
        try:
            resolve_timezone(info.timezone)
        except ConfigurationError as error:
            collector.add(merged.info[0], ("program", "timezone"), str(error))
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
    if collector.issues:
        raise ProgramError(collector.issues)

    by_event: dict[str, list[MetricDef]] = {}
    for metric in metrics.values():
        by_event.setdefault(metric.event, []).append(metric)
    digest = hashlib.sha256()
    for file_path in files_on_disk:
        digest.update(file_path.name.encode() + b"\0" + file_path.read_bytes())
    badges: dict[str, Badge] = {k: v for k, (_, v) in sections["badges"].items()}
    milestones: dict[str, Milestone] = {k: v for k, (_, v) in sections["milestones"].items()}
    streaks: dict[str, Streak] = {k: v for k, (_, v) in sections["streaks"].items()}
    return Program(
        info=info,
        week_start=WEEKDAYS.index(info.week_start),
        badges=badges,
        metrics=metrics,
        milestones=milestones,
        challenges={
            challenge_id: sections["challenges"][challenge_id][1] for challenge_id in order
        },
        streaks=streaks,
        audiences=audiences,
        metrics_by_event={event: tuple(defs) for event, defs in by_event.items()},
        version=digest.hexdigest()[:12],
    )


def program_json_schema() -> dict[str, Any]:
    """JSON Schema of one seed file, for yaml-language-server and other editors."""
    schema = SeedFile.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
