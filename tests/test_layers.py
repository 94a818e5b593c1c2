"""The layers docs/architecture.md draws, checked on the code's imports.

app -> schema -> engine: the engine imports neither (nor a web framework or an
ORM), the schema never imports the app, and within the app only the GraphQL
wiring loads Strawberry, so the CLI's database and seed commands start
without it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: What the engine may never import: the other layers, web frameworks, ORMs.
NOT_IN_ENGINE = {
    "app",
    "schema",
    "strawberry",
    "graphql",
    "starlette",
    "uvicorn",
    "httpx",
    "sqlalchemy",
    "sqlmodel",
    "alembic",
}
#: The schema's modules the app may import anywhere: no Strawberry behind them.
FRAMEWORK_FREE_SCHEMA = {"schema", "schema.service", "schema.permissions"}
#: The app's GraphQL wiring, the only app modules that may load the Strawberry schema
#: (the CLI only in its export-schema command).
GRAPHQL_WIRING = {"app/main.py", "app/cli.py"}


def imports(path: Path) -> set[str]:
    """Every module a file imports, wherever in the file (a function's body too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def top(module: str) -> str:
    return module.split(".")[0]


@pytest.mark.parametrize("path", files("engine"), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_engine_imports_no_other_layer_framework_or_orm(path: Path) -> None:
    assert {m for m in imports(path) if top(m) in NOT_IN_ENGINE} == set()


@pytest.mark.parametrize("path", files("schema"), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_schema_never_imports_the_app(path: Path) -> None:
    assert {m for m in imports(path) if top(m) == "app"} == set()


@pytest.mark.parametrize("path", files("app"), ids=lambda p: str(p.relative_to(ROOT)))
def test_only_the_graphql_wiring_loads_strawberry(path: Path) -> None:
    if str(path.relative_to(ROOT)) in GRAPHQL_WIRING:
        return
    found = imports(path)
    assert {m for m in found if top(m) == "strawberry"} == set()
    assert {m for m in found if top(m) == "schema"} <= FRAMEWORK_FREE_SCHEMA


def test_the_cli_and_the_service_start_without_strawberry_or_a_web_framework() -> None:
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, app.cli, app.service; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'strawberry', 'starlette'}))",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert loaded.stdout.strip() == "[]"


def test_the_checks_see_the_imports_they_guard() -> None:
    """The walk finds imports at any depth, so a test above cannot pass by seeing none."""
    assert "strawberry.asgi" in imports(ROOT / "app" / "main.py")
    assert "schema.build" in imports(ROOT / "app" / "cli.py")
    assert len(files("engine")) > 20
