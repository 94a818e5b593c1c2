"""Helpers to talk GraphQL to the app: HTTP posts and graphql-transport-ws."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from starlette.testclient import TestClient, WebSocketTestSession

from app.main import create_app
from app.settings import Settings
from tests.support.clock import Clock
from tests.support.programs import CAFE as PROGRAM
from tests.support.programs import SEED

API_KEY = "test-api-key-0123456789"
JWT_SECRET = "test-jwt-secret-0123456789abcdefghij"


def settings_for(tmp_path: Path, store_url: str | None = None, **overrides: Any) -> Settings:
    return Settings(
        store_url=store_url or f"sqlite:///{tmp_path / 'store.db'}",
        database_url=f"sqlite:///{tmp_path / 'history.db'}",
        seed_path=PROGRAM,
        api_keys=(API_KEY,),
        jwt_secret=JWT_SECRET,
        default_timezone="Europe/Paris",
        **overrides,
    )


def expired_token(settings: Settings, player_id: str) -> str:
    """A correctly signed token that expired an hour ago (beyond any leeway)."""
    claims = {"sub": player_id, "exp": datetime.now(UTC) - timedelta(hours=1)}
    assert settings.jwt_secret is not None
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm="HS256")


@contextmanager
def client_for(settings: Settings, clock: Clock) -> Iterator[TestClient]:
    """The app on an injected clock: what it records and shows never depends on today."""
    with TestClient(create_app(settings, clock)) as client:
        yield client


def gql(
    client: TestClient,
    query: str,
    variables: dict[str, Any] | None = None,
    token: str | None = API_KEY,
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = client.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
    )
    body: dict[str, Any] = response.json()
    return body


def codes(body: dict[str, Any]) -> list[str]:
    return [error.get("extensions", {}).get("code") for error in body.get("errors", [])]


@contextmanager
def subscription(
    client: TestClient, query: str, variables: dict[str, Any], token: str | None
) -> Iterator[WebSocketTestSession]:
    with client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
        ws.send_json({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})
        assert ws.receive_json()["type"] == "connection_ack"
        ws.send_json(
            {"id": "1", "type": "subscribe", "payload": {"query": query, "variables": variables}}
        )
        yield ws


def production_env(folder: Path, **overrides: str) -> dict[str, str]:
    """A production server's variables, on SQLite files in `folder`, the test program."""
    return {
        "QUESTLINE_ENV": "production",
        "QUESTLINE_STORE_URL": f"sqlite:///{folder / 'store.db'}",
        "QUESTLINE_DATABASE_URL": f"sqlite:///{folder / 'history.db'}",
        "QUESTLINE_MIGRATE_ON_START": "true",
        "QUESTLINE_SEED_PATH": str(PROGRAM.resolve()),
        "QUESTLINE_API_KEYS": API_KEY,
        "QUESTLINE_JWT_SECRET": JWT_SECRET,
        **overrides,
    }


def seed_env(folder: Path, **overrides: str) -> dict[str, str]:
    """A development server's variables, on SQLite files in `folder`, the example program."""
    return {
        "QUESTLINE_STORE_URL": f"sqlite:///{folder / 'store.db'}",
        "QUESTLINE_DATABASE_URL": f"sqlite:///{folder / 'history.db'}",
        "QUESTLINE_SEED_PATH": str(SEED),
        "QUESTLINE_API_KEYS": API_KEY,
        "QUESTLINE_JWT_SECRET": JWT_SECRET,
        **overrides,
    }
