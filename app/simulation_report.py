"""How `questline simulate` shows a comparison: rich tables, or JSON for machines."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table

from engine.simulation import Figure, RuleRow, Simulated


def as_json(simulated: Simulated) -> dict[str, Any]:
    """Every figure, each as {before, after, change}."""
    comparison = simulated.comparison
    return {
        "since": simulated.since.isoformat() if simulated.since else None,
        "until": simulated.until.isoformat() if simulated.until else None,
        "currentVersion": simulated.current_version,
        "candidateVersion": simulated.candidate_version,
        "windowEvents": simulated.window_events,
        "events": comparison.events,
        "complete": simulated.complete,
        "limit": simulated.limit,
        "players": comparison.players,
        "rules": [_row_json(row) for row in comparison.rows],
        "points": {
            "earned": _figure(comparison.earned),
            "carried": _figure(comparison.carried),
            "issued": _figure(comparison.issued),
            "spend": comparison.spend,
            "earnRate": _figure(comparison.earn_rate),
            "liabilityChange": comparison.liability_change,
        },
        "tiers": {level: _figure(figure) for level, figure in comparison.tiers.items()},
        "added": comparison.added,
        "removed": comparison.removed,
        "renamed": comparison.renamed,
        "orphaning": {row.id: row.orphaned for row in comparison.rows if row.orphaned},
    }


def _figure(figure: Figure) -> dict[str, float | None]:
    return {"before": figure.before, "after": figure.after, "change": figure.change}


def _row_json(row: RuleRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "kind": row.kind,
        "name": row.name,
        "status": row.status,
        "renamedFrom": row.renamed_from,
        "unlocks": _figure(row.unlocks),
        "players": _figure(row.players),
        "completionRate": _figure(row.completion),
        "points": _figure(row.points),
        "orphanedUnlocks": row.orphaned,
    }


def tables(simulated: Simulated) -> Group:
    """The comparison a designer reads at a glance: rules, points, tiers."""
    comparison = simulated.comparison
    window = (
        f"{simulated.since:%Y-%m-%d %H:%M} .. {simulated.until:%Y-%m-%d %H:%M}"
        if simulated.since and simulated.until
        else f"from {simulated.since:%Y-%m-%d %H:%M}"
        if simulated.since
        else f"until {simulated.until:%Y-%m-%d %H:%M}"
        if simulated.until
        else "the whole journal"
    )
    cut = "" if simulated.complete else f" (of {simulated.window_events}: cut by the limit)"
    rules = Table(
        title=f"{comparison.events} events{cut} of {comparison.players} players, {window}: "
        f"version {simulated.current_version} (before) -> {simulated.candidate_version} (after)",
        title_justify="left",
    )
    for column in ("rule", "status", "unlocks", "players", "completion", "points", "orphans"):
        words = column in ("rule", "status")
        rules.add_column(column, justify="left" if words else "right", no_wrap=words)
    for row in comparison.rows:
        status = f"renamed from {row.renamed_from}" if row.renamed_from else row.status
        rules.add_row(
            row.id,
            status,
            _change(row.unlocks),
            _change(row.players),
            _change(row.completion, percent=True),
            _change(row.points),
            str(row.orphaned) if row.orphaned else "",
            style="dim" if _same(row) else None,
        )
    points = Table(title="points", title_justify="left")
    for column in ("", "before", "after", "change"):
        points.add_column(column, justify="right")
    for name, figure in (
        ("earned by earn rules", comparison.earned),
        ("carried by unlocks", comparison.carried),
        ("issued", comparison.issued),
        ("earn rate (per 1.00 spent)", comparison.earn_rate),
    ):
        points.add_row(name, _number(figure.before), _number(figure.after), _signed(figure.change))
    points.add_row("liability change", "", "", _signed(comparison.liability_change))
    parts: list[Table] = [rules, points]
    if comparison.tiers:
        tiers = Table(title="players per tier at the end of the window", title_justify="left")
        for column in ("tier", "before", "after", "change"):
            tiers.add_column(column, justify="right")
        for level, figure in comparison.tiers.items():
            tiers.add_row(
                level, _number(figure.before), _number(figure.after), _signed(figure.change)
            )
        parts.append(tiers)
    return Group(*parts)


def _same(row: RuleRow) -> bool:
    return not row.status and all(
        figure.before == figure.after for figure in (row.unlocks, row.players, row.points)
    )


def _number(value: float | None, percent: bool = False) -> str:
    if value is None:
        return "-"
    if percent:
        return f"{value * 100:.1f}%"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.4g}"
    return f"{value:,.0f}"


def _signed(value: float | None) -> str:
    if value is None:
        return ""
    text = _number(value)
    return f"+{text}" if value > 0 else text


def _change(figure: Figure, percent: bool = False) -> str:
    before, after = _number(figure.before, percent), _number(figure.after, percent)
    if figure.before is None and figure.after is None:
        return ""
    if before == after:
        return before
    return f"{before} -> {after}"
