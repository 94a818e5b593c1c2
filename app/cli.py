"""The `questline` command: what designers and operators run in a terminal.

Each command is a small function on `cli`; output that scripts read (the
validation summary, the JSON Schema) goes to stdout, problems to stderr, and
the exit code says which happened.
"""

from __future__ import annotations

import asyncio
import json
import os
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from app.backfill import report as backfill_report
from app.candidates import plural, summary
from app.metrics import Metrics
from app.migrations import upgrade_database
from app.rebuild import rebuild as run_rebuild
from app.serve import serve as run_server
from app.service import Service
from app.settings import Settings
from app.simulate import simulate as run_simulation
from app.simulation_report import as_json as simulation_json
from app.simulation_report import tables as simulation_tables
from app.sql import Database, make_database
from engine.backfill import Backfilled
from engine.durations import is_duration, parse_duration
from engine.errors import ConfigurationError, ProgramError, QuestlineError
from engine.program.loader import load_program, program_json_schema
from engine.program.program import Program
from engine.urls import redacted
from schema import SDL_PATH

cli = typer.Typer(
    name="questline",
    help="Questline: a gamification and loyalty engine.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@cli.command()
def validate(
    path: Annotated[Path, typer.Argument(help="Program folder (or a single YAML file).")] = Path(
        "seed"
    ),
) -> None:
    """Check a seed program; print a one-line summary, or every error as file:line path."""
    try:
        program = load_program(path)
    except ProgramError as error:
        for issue in error.issues:
            typer.echo(str(issue), err=True)
        typer.echo(f"{path}: invalid, {plural(len(error.issues), 'error')}", err=True)
        raise typer.Exit(1) from None
    typer.echo(summary(path, program))


@cli.command("seed-schema")
def seed_schema() -> None:
    """Print the JSON Schema of a seed file, for editor autocompletion."""
    typer.echo(json.dumps(program_json_schema(), indent=2))


@contextmanager
def _reported() -> Iterator[None]:
    """Our errors as a command reports them: a broken program's issues one per
    line (exit 1), anything else as one `error:` line (exit 2)."""
    try:
        yield
    except ProgramError as error:
        for issue in error.issues:
            typer.echo(str(issue), err=True)
        raise typer.Exit(1) from None
    except QuestlineError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None


def _overrides(**options: object) -> dict[str, str]:
    """Command-line options as the QUESTLINE_* variables they stand for."""
    return {f"QUESTLINE_{name.upper()}": str(v) for name, v in options.items() if v is not None}


def _settings(overrides: dict[str, str] | None = None) -> Settings:
    """Settings from the environment, with command-line overrides validated the same way."""
    try:
        return Settings.from_env({**os.environ, **(overrides or {})})
    except ConfigurationError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None


@cli.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on [QUESTLINE_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="Port [QUESTLINE_PORT].")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Worker processes; more than 1 needs Redis.")
    ] = None,
) -> None:
    """Start the GraphQL server (SQLite and ./seed unless QUESTLINE_* say otherwise)."""
    overrides = _overrides(host=host, port=port, workers=workers)
    settings = _settings(overrides)
    try:
        load_program(settings.seed_path)
        run_server(settings, overrides, typer.echo)
    except ProgramError as error:
        for issue in error.issues:
            typer.echo(str(issue), err=True)
        if not settings.seed_path.exists():
            typer.echo(
                f"no seed program at {settings.seed_path} ({settings.seed_path.resolve()}); "
                f"the working directory is {Path.cwd()}. Point QUESTLINE_SEED_PATH at your "
                "seed folder, or run from the folder that holds ./seed",
                err=True,
            )
        raise typer.Exit(1) from None
    except QuestlineError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None


@cli.command("export-schema")
def export_schema(
    path: Annotated[Path, typer.Argument(help="Where to write the SDL; '-' prints it.")] = SDL_PATH,
) -> None:
    """Write the GraphQL SDL (schema/schema.graphql) that clients generate code from."""
    # Only this command loads Strawberry: `db upgrade` and the rest have no use for it.
    from schema.build import sdl

    if str(path) == "-":
        typer.echo(sdl(), nl=False)
        return
    path.write_text(sdl())
    typer.echo(f"wrote {path}")


db = typer.Typer(help="The durable history database.", no_args_is_help=True)
cli.add_typer(db, name="db")


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply the database migrations (QUESTLINE_DATABASE_URL) up to the latest."""
    settings = _settings()
    with _reported():
        upgrade_database(settings.database_url)
    typer.echo(f"database is up to date: {redacted(settings.database_url)}")


@cli.command()
def rebuild(
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Rebuild in memory and print what differs from the store now."
        ),
    ] = False,
) -> None:
    """Rebuild the counter store (QUESTLINE_STORE_URL, which must be empty) from the
    event journal, after Redis or the store's file was lost.

    Events are replayed in the order they were recorded, each at the moment it
    was recorded, with the program in use (events recorded under an older
    version are counted by today's rules) and players' profiles as they are
    now. Nothing is announced to subscribers and no points are granted again.
    Stop the servers first when the store is SQLite (it serves one process).
    """
    settings = _settings()
    with _reported():
        rebuilt = asyncio.run(run_rebuild(settings, dry_run=dry_run, progress=_progress_printer()))
    typer.echo(
        f"{'would replay' if dry_run else 'replayed'} {plural(rebuilt.events, 'event')} of "
        f"{plural(len(rebuilt.players), 'player')}, {plural(rebuilt.profiles, 'profile')}, "
        f"{plural(rebuilt.restored_unlocks, 'tier change')}"
    )
    if dry_run:
        for player_id, found in rebuilt.differences.items():
            typer.echo(f"{player_id}: {'; '.join(found)}")
        typer.echo(f"{plural(len(rebuilt.differences), 'player')} would differ from the store now")


@cli.command()
def backfill(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Change nothing; print what would unlock, per rule.")
    ] = False,
) -> None:
    """Give players what the program's new metrics, milestones and challenges owe
    them from their history: replay the journal into the new metrics only, then
    claim what is now met, announced with `backfilled: true`, points granted once.
    Running it twice changes nothing the second time. Reload the servers first
    (or this uses the seed folder's program); stop them when the store is SQLite."""
    settings = _settings()
    with _reported():
        done, program = asyncio.run(_backfill(settings, dry_run))
    for line in backfill_report(done, program):
        typer.echo(line)


async def _backfill(settings: Settings, dry_run: bool) -> tuple[Backfilled, Program]:
    """A backfill by a service of its own: its store, history, ledger and feed."""
    service = Service(settings, Metrics())
    await service.start()
    try:
        done = await service.designer.backfill(dry_run, _progress_printer())
        return done, service.program
    finally:
        await service.stop()


def _progress_printer() -> Callable[[int], None]:
    """Replay progress on stderr, every 10,000 events."""

    def report(events: int) -> None:
        if events % 10_000 == 0:
            typer.echo(f"  {events} events replayed", err=True)

    return report


def _moment(text: str | None, option: str) -> datetime | None:
    """A window bound: an ISO date or date-time (UTC unless it has an offset),
    or a duration before now such as `30d`, `12h` or `2w`."""
    if text is None:
        return None
    if is_duration(text):
        return datetime.now(UTC) - parse_duration(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        typer.echo(
            f"error: {option} {text!r} is neither a date (2026-03-01), a date-time "
            "(2026-03-01T08:00:00+01:00) nor a duration before now (30d, 12h, 2w)",
            err=True,
        )
        raise typer.Exit(2) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@cli.command()
def simulate(
    candidate: Annotated[Path, typer.Argument(help="The candidate program's folder.")],
    since: Annotated[
        str | None, typer.Option(help="Events that occurred from then: a date, or 30d ago.")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Events that occurred before then.")] = None,
    players: Annotated[
        int | None, typer.Option(min=1, help="Only the first N players met in the window.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Replay the journal's events through the program in use (QUESTLINE_SEED_PATH)
    and the candidate, each into a throwaway store in memory, and compare them
    rule by rule: unlocks, players reached, points, tiers. Nothing live changes."""
    settings = _settings()
    window = _moment(since, "--since"), _moment(until, "--until")
    console = Console(stderr=True)
    with _reported():
        current = load_program(settings.seed_path)
        proposed = load_program(candidate)
        with (
            Progress(
                TextColumn("replaying"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=console,
                transient=True,
            ) as bar,
            _database(settings) as database,
        ):
            task = bar.add_task("replay", total=None)
            simulated = asyncio.run(
                run_simulation(
                    current,
                    proposed,
                    database,
                    settings.engine_settings(),
                    since=window[0],
                    until=window[1],
                    players=players,
                    progress=lambda done, total: bar.update(task, completed=done, total=total),
                )
            )
    if as_json:
        typer.echo(json.dumps(simulation_json(simulated), indent=2))
    else:
        Console(width=max(160, Console().width)).print(simulation_tables(simulated))


@contextmanager
def _database(settings: Settings) -> Iterator[Database]:
    database = make_database(settings.database_url)
    try:
        yield database
    finally:
        database.dispose()


@cli.command()
def reload(
    url: Annotated[str, typer.Option(help="The running server.")] = "http://127.0.0.1:8000",
    api_key: Annotated[
        str | None, typer.Option(help="Admin API key (default: first of QUESTLINE_API_KEYS).")
    ] = None,
) -> None:
    """Ask a running server to reload the seed folder; a broken program is refused."""
    keys = _settings().api_keys
    key = api_key or (keys[0].get_secret_value() if keys else None)
    if key is None:
        typer.echo("error: pass --api-key or set QUESTLINE_API_KEYS", err=True)
        raise typer.Exit(2)
    request = urllib.request.Request(
        f"{url.rstrip('/')}/graphql",
        data=json.dumps({"query": "mutation { reloadProgram { version changed } }"}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            body = json.load(response)
    except OSError as failure:
        typer.echo(f"error: cannot reach {url}: {failure}", err=True)
        raise typer.Exit(2) from None
    if body.get("errors"):
        for problem in body["errors"]:
            typer.echo(problem["message"], err=True)
        raise typer.Exit(1)
    result = body["data"]["reloadProgram"]
    state = "reloaded" if result["changed"] else "unchanged"
    typer.echo(f"program {state}: version {result['version']}")


def main() -> None:
    cli()
