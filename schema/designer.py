"""GraphQL types of the designer's tools: a candidate program simulated on
the journal (`simulateProgram`), why a player has something or not yet
(`explain`), and what a reload's new rules owe players (`backfill`)."""

from __future__ import annotations

from datetime import datetime

import strawberry

from engine import explain as engine_explain
from engine.simulation import Figure, RuleRow, Simulated, rules
from schema.context import Info


@strawberry.input(description="One seed file of a candidate program: its name and YAML text.")
class SeedFileInput:
    name: str = strawberry.field(description="File name, e.g. challenges.yaml (no folder).")
    content: str


@strawberry.type(description="A figure under the program in use (before) and the candidate.")
class Comparison:
    before: float | None = strawberry.field(description="Null: the rule is not in that program.")
    after: float | None
    change: float | None


def comparison_of(figure: Figure) -> Comparison:
    return Comparison(before=figure.before, after=figure.after, change=figure.change)


@strawberry.type(description="One challenge, milestone tier, streak milestone, badge or reward.")
class SimulatedRule:
    id: str = strawberry.field(
        description="challenge:<id>, milestone:<id>:<tier>, streak:<id>:<length>, "
        "badge:<id> or reward:<id>."
    )
    kind: str
    name: str
    status: str = strawberry.field(description="Empty, added, removed or renamed.")
    renamed_from: str | None
    unlocks: Comparison
    players: Comparison = strawberry.field(
        description="Players who earned it; for a reward, players whose points would pay for it."
    )
    completion_rate: Comparison = strawberry.field(
        description="Players who earned it / players with an event in the window (0..1)."
    )
    points: Comparison = strawberry.field(
        description="Points its unlocks carried; for a reward, its cost."
    )
    orphaned_unlocks: int = strawberry.field(
        description="Unlocks in history that a removed or renamed rule leaves undefined."
    )


def rule_of(row: RuleRow) -> SimulatedRule:
    return SimulatedRule(
        id=row.id,
        kind=row.kind,
        name=row.name,
        status=row.status,
        renamed_from=row.renamed_from,
        unlocks=comparison_of(row.unlocks),
        players=comparison_of(row.players),
        completion_rate=comparison_of(row.completion),
        points=comparison_of(row.points),
        orphaned_unlocks=row.orphaned,
    )


@strawberry.type
class SimulatedPoints:
    earned: Comparison = strawberry.field(description="Points the earn rules grant.")
    carried: Comparison = strawberry.field(description="Points unlocks carry.")
    issued: Comparison
    spend: float = strawberry.field(
        description="Amounts the rate-based earn rules of either program read."
    )
    earn_rate: Comparison = strawberry.field(description="Earned points per 1.00 of spend.")
    liability_change: int = strawberry.field(
        description="Outstanding points the candidate adds (negative: removes)."
    )


@strawberry.type
class SimulatedTier:
    tier: str
    players: Comparison = strawberry.field(description="Players at this tier at the end.")


@strawberry.type(description="A candidate program compared with the one in use on real history.")
class Simulation:
    since: datetime | None
    until: datetime | None
    current_version: str
    candidate_version: str
    window_events: int = strawberry.field(description="Journal events in the window.")
    events_replayed: int
    event_limit: int | None = strawberry.field(
        description="The most events one call replays (QUESTLINE_SIMULATE_MAX_EVENTS)."
    )
    complete: bool = strawberry.field(description="False when the limit cut the window.")
    players: int = strawberry.field(description="Players with an event replayed.")
    rules: list[SimulatedRule]
    points: SimulatedPoints
    tiers: list[SimulatedTier]
    added: list[str]
    removed: list[str]


def simulation_of(simulated: Simulated) -> Simulation:
    comparison = simulated.comparison
    return Simulation(
        since=simulated.since,
        until=simulated.until,
        current_version=simulated.current_version,
        candidate_version=simulated.candidate_version,
        window_events=simulated.window_events,
        events_replayed=comparison.events,
        event_limit=simulated.limit,
        complete=simulated.complete,
        players=comparison.players,
        rules=[rule_of(row) for row in comparison.rows],
        points=SimulatedPoints(
            earned=comparison_of(comparison.earned),
            carried=comparison_of(comparison.carried),
            issued=comparison_of(comparison.issued),
            spend=comparison.spend,
            earn_rate=comparison_of(comparison.earn_rate),
            liability_change=comparison.liability_change,
        ),
        tiers=[
            SimulatedTier(tier=tier, players=comparison_of(figure))
            for tier, figure in comparison.tiers.items()
        ],
        added=comparison.added,
        removed=comparison.removed,
    )


async def simulate_program(
    info: Info, files: list[SeedFileInput], since: datetime | None, until: datetime | None
) -> Simulation:
    info.context.caller().require_admin("simulating a program")
    simulated = await info.context.service.designer.simulate(
        [(file.name, file.content) for file in files], since, until
    )
    return simulation_of(simulated)


@strawberry.type(description="A metric a backfill replays the journal into.")
class BackfilledMetric:
    metric: str
    events: int = strawberry.field(
        description="Journaled events recorded under program versions that did not count it."
    )


@strawberry.type(description="A rule a backfill unlocks for players who already met it.")
class BackfilledRule:
    id: str = strawberry.field(
        description="challenge:<id>, milestone:<id>:<tier>, streak:<id>:<length> or badge:<id>."
    )
    name: str
    unlocks: int = strawberry.field(description="A recurring challenge: one per instance.")
    players: int


@strawberry.type(description="What a backfill did, or with dryRun would do.")
class Backfill:
    dry_run: bool
    metrics: list[BackfilledMetric]
    rules: list[BackfilledRule]
    unlocks: int
    points: int = strawberry.field(description="Points the unlocks carry, granted once.")
    unknown_events: int = strawberry.field(
        description="Events recorded under program versions with no record of their metrics "
        "(journaled before this feature): left alone."
    )


async def run_backfill(info: Info, dry_run: bool) -> Backfill:
    info.context.caller().require_admin("backfilling the program's new rules")
    designer = info.context.service.designer
    done = await designer.backfill(dry_run)
    names = rules(info.context.service.program)
    return Backfill(
        dry_run=done.dry_run,
        metrics=[
            BackfilledMetric(metric=metric_id, events=events)
            for metric_id, events in sorted(done.metrics.items())
        ],
        rules=[
            BackfilledRule(
                id=rule, name=names.get(rule, rule), unlocks=len(players), players=len(set(players))
            )
            for rule, players in sorted(done.rules.items())
        ],
        unlocks=done.unlocks,
        points=done.points,
        unknown_events=done.unknown_events,
    )


@strawberry.type(description="A goal: where the player stands against its target.")
class ExplainedGoal:
    metric: str
    current: float
    target: float
    met: bool


@strawberry.type(description="A metric feeding the target: which events, under which condition.")
class ExplainedFeed:
    metric: str
    event_type: str
    aggregate: str = strawberry.field(description="count, sum, max or distinct.")
    property: str | None
    where: str | None = strawberry.field(description="The `where` as written, as JSON.")


@strawberry.type(description="An audience entry the player's attributes fail.")
class FailedCondition:
    condition: str = strawberry.field(description="The entry as written, as JSON.")
    attribute: str | None
    seen: str | None = strawberry.field(description="The attribute's value, as JSON, or (missing).")


@strawberry.type(description="An event of the journal.")
class JournalEvent:
    journal_id: int
    event_id: str
    type: str
    occurred_at: datetime


@strawberry.type(description="Why a player has something, or not yet.")
class Explanation:
    target: str = strawberry.field(
        description="challenge:<id>, milestone:<id>:<tier>, streak:<id>:<length> or badge:<id>."
    )
    kind: str
    title: str
    unlock_key: str = strawberry.field(
        description="The key in question; for a recurring challenge, the current instance's."
    )
    unlocked: bool
    unlocked_at: datetime | None
    unlocked_by: JournalEvent | None = strawberry.field(
        description="The journaled event that caused the unlock."
    )
    timezone: str = strawberry.field(description="The player's; periods and text use it.")
    period: str | None = strawberry.field(description="day, week or month of the instance.")
    starts_at: datetime | None
    ends_at: datetime | None
    goals: list[ExplainedGoal]
    in_audience: bool
    audience_failures: list[FailedCondition]
    missing_prerequisites: list[str]
    window: str | None = strawberry.field(
        description="open, closed or not open yet (fixed-window challenges)."
    )
    completed_before: bool = strawberry.field(
        description="A recurring challenge completed in an earlier instance."
    )
    feeds: list[ExplainedFeed]
    last_event: JournalEvent | None = strawberry.field(
        description="The player's last journaled event that fed it."
    )
    via: list[Explanation] = strawberry.field(
        description="For a badge: each rule that grants it, explained."
    )
    text: str = strawberry.field(description="What a support agent can paste to the player.")


def _event_of(event: engine_explain.JournalEvent | None) -> JournalEvent | None:
    if event is None:
        return None
    return JournalEvent(
        journal_id=event.journal_id,
        event_id=event.event_id,
        type=event.type,
        occurred_at=event.occurred_at,
    )


def explanation_of(found: engine_explain.Explanation) -> Explanation:
    return Explanation(
        target=found.target,
        kind=found.kind,
        title=found.title,
        unlock_key=found.unlock_key,
        unlocked=found.unlocked,
        unlocked_at=found.unlocked_at,
        unlocked_by=_event_of(found.unlocked_by),
        timezone=found.timezone,
        period=found.period,
        starts_at=found.starts_at,
        ends_at=found.ends_at,
        goals=[
            ExplainedGoal(metric=g.metric, current=g.current, target=g.target, met=g.met)
            for g in found.goals
        ],
        in_audience=found.in_audience,
        audience_failures=[
            FailedCondition(condition=f.condition, attribute=f.attribute, seen=f.seen)
            for f in found.audience_failures
        ],
        missing_prerequisites=found.missing_prerequisites,
        window=found.window,
        completed_before=found.completed_before,
        feeds=[
            ExplainedFeed(
                metric=f.metric,
                event_type=f.event,
                aggregate=f.aggregate,
                property=f.property,
                where=f.where,
            )
            for f in found.feeds
        ],
        last_event=_event_of(found.last_event),
        via=[explanation_of(rule) for rule in found.via],
        text=found.text,
    )


async def explain(info: Info, player_id: str, target: str) -> Explanation:
    info.context.caller().require_read(player_id)
    return explanation_of(await info.context.service.designer.explain(player_id, target))
