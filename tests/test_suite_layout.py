"""The suite's own layout: test modules share code only through tests/support/
and conftest.py (a fixture imported from another test module would silently
replace conftest's), and nothing outside tests/ imports from it."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support.programs import REPO

TESTS = REPO / "tests"


def imported(source: str, package: str) -> set[str]:
    """The absolute names of the modules (and maybe attributes) `source` imports,
    relative imports resolved from `package`."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            names |= {base} | {f"{base}.{alias.name}" for alias in node.names}
    return names


def suite_modules_among(names: set[str]) -> set[str]:
    """Those of `names` that are test modules or conftest files of this repository."""
    found = set()
    for name in names:
        path = REPO.joinpath(*name.split("."))
        if path.with_suffix(".py").is_file() and (
            path.name.startswith("test_") or path.name == "conftest"
        ):
            found.add(name)
    return found


def package_of(path: Path) -> str:
    return ".".join(path.relative_to(REPO).parent.parts)


def test_no_test_module_imports_another_test_module() -> None:
    offenders = {
        str(path.relative_to(REPO)): sorted(found)
        for path in sorted(TESTS.rglob("*.py"))
        if (found := suite_modules_among(imported(path.read_text(), package_of(path))))
    }
    assert offenders == {}, "move what they share to tests/support/ or a conftest.py"


def test_the_check_sees_every_way_of_importing_a_test_module() -> None:
    source = (
        "import tests.test_loader\n"
        "from tests import test_points\n"
        "from tests.loyalty.test_loyalty import START\n"
        "from .test_ledger import empty_economy\n"
        "from . import conftest\n"
        "from tests.support.polling import eventually\n"
    )
    assert suite_modules_among(imported(source, "tests")) == {
        "tests.test_loader",
        "tests.test_points",
        "tests.loyalty.test_loyalty",
        "tests.test_ledger",
        "tests.conftest",
    }


def test_nothing_outside_the_tests_imports_them() -> None:
    """The benchmarks start servers through app.launch, as the tests do."""
    offenders = {
        str(path.relative_to(REPO)): sorted(found)
        for folder in ("app", "engine", "schema", "bench", "seed")
        for path in sorted((REPO / folder).rglob("*.py"))
        if (
            found := {
                name
                for name in imported(path.read_text(), package_of(path))
                if name == "tests" or name.startswith("tests.")
            }
        )
    }
    assert offenders == {}
