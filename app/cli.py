"""The `questline` command: what designers and operators run in a terminal.

Each command is a small function on `cli`; output that scripts read (the
validation summary, the JSON Schema) goes to stdout, problems to stderr, and
the exit code says which happened.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from engine.errors import ProgramError
from engine.program.loader import load_program, program_json_schema
from engine.program.program import Program

cli = typer.Typer(
    name="questline",
    help="Questline: a gamification and loyalty engine.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def summary(path: Path, program: Program) -> str:
    """One line that says a program is valid and how big it is."""
    sizes = ", ".join(
        _plural(len(items), noun)
        for items, noun in (
            (program.metrics, "metric"),
            (program.milestones, "milestone"),
            (program.challenges, "challenge"),
            (program.streaks, "streak"),
            (program.badges, "badge"),
        )
    )
    return f"{path}: valid, {sizes} (version {program.version})"


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
        typer.echo(f"{path}: invalid, {_plural(len(error.issues), 'error')}", err=True)
        raise typer.Exit(1) from None
    typer.echo(summary(path, program))


@cli.command("seed-schema")
def seed_schema() -> None:
    """Print the JSON Schema of a seed file, for editor autocompletion."""
    typer.echo(json.dumps(program_json_schema(), indent=2))


def main() -> None:
    cli()
