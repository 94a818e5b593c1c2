"""The loyalty program's app for the tests in this folder.

Here `clock` starts on the loyalty tests' Monday (START) and `settings` run the
loyalty program, replacing the parent conftest's (a folder's conftest overrides
its parent's), so the parent's `client` serves them both.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from app.settings import Settings
from tests.support.clock import Clock
from tests.support.graphql_client import client_for, settings_for
from tests.support.loyalty import START
from tests.support.programs import LOYALTY


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return settings_for(tmp_path).model_copy(update={"seed_path": LOYALTY})


@pytest.fixture
def client_cafe(tmp_path: Path, clock: Clock) -> Iterator[TestClient]:
    """The app on the engine tests' program, which has no points, tiers or rewards."""
    with client_for(settings_for(tmp_path), clock) as client:
        yield client
