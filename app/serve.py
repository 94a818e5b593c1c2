"""`questline serve`: check the settings, prepare the database, run uvicorn.

uvicorn builds the app in each worker from the environment
(`app.main:app_from_env`), so anything decided here (generated development
credentials) is handed over through QUESTLINE_* variables.
"""

from __future__ import annotations

import os
from collections.abc import Callable, MutableMapping

import uvicorn

from app.auth import generate_api_key, issue_player_token
from app.migrations import upgrade_database
from app.settings import Settings, check_serving

DEMO_PLAYER = "demo-player"
DEMO_TOKEN_TTL = 24 * 3600


def development_credentials(
    settings: Settings, environ: MutableMapping[str, str], say: Callable[[str], None]
) -> Settings:
    """On loopback in development with no credentials configured, generate an
    admin key and a demo player token so the server is usable at once, and
    print them. Never done on another address or in production."""
    if not (settings.is_development and settings.is_loopback):
        return settings
    if settings.api_keys or settings.accepts_player_tokens:
        return settings
    environ["QUESTLINE_API_KEYS"] = generate_api_key()
    environ["QUESTLINE_JWT_SECRET"] = generate_api_key()
    settings = Settings.from_env(environ)
    token = issue_player_token(settings, DEMO_PLAYER, DEMO_TOKEN_TTL)
    say("development mode: generated credentials for this run (loopback only)")
    say(f"  admin API key      : {settings.api_keys[0].get_secret_value()}")
    say(f"  demo player token  : {token}   (player {DEMO_PLAYER!r}, valid 24 h)")
    say(f"  GraphiQL           : http://{settings.host}:{settings.port}/graphql")
    return settings


def serve(
    settings: Settings, overrides: dict[str, str], say: Callable[[str], None] = print
) -> None:
    """Run the server; `overrides` (command-line options as QUESTLINE_* variables)
    join the environment the workers build their settings from."""
    check_serving(settings)
    os.environ.update(overrides)
    settings = development_credentials(settings, os.environ, say)
    if settings.migrate_on_start:
        upgrade_database(settings.database_url)
    uvicorn.run(
        "app.main:app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level="info",
        # Closes connections that take over QUESTLINE_HEADER_TIMEOUT to send
        # their request headers (slowloris), which uvicorn alone keeps open.
        http="app.header_timeout:HeaderTimeoutProtocol",
    )
