"""The production app plus a plain JSON route, for `bench.api` only.

    uvicorn --factory bench.plain_app:app

`POST /plain/record` takes one event as JSON and records it through the same
`Service` the GraphQL mutation uses (checks, engine, durable history, metrics),
after the same API key check, and answers the same fields as
`recordEvent { eventId duplicate unlocks { id key kind title } }`. What it
lacks is only GraphQL (parsing, validation, resolvers, result shaping), so
`record_event_rps / plain_record_event_rps` is what GraphQL costs. The route
lives here, not in `app.main`, so production never serves it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.auth import Authenticator
from app.main import create_app
from app.service import Service
from app.settings import Settings
from engine.errors import QuestlineError
from engine.events import Event

PLAIN_PATH = "/plain/record"


def app() -> Starlette:
    """The uvicorn factory: `create_app` from QUESTLINE_* variables, plus the plain route."""
    settings = Settings.from_env()
    application = create_app(settings)
    authenticator: Authenticator = application.state.authenticator
    service: Service = application.state.service

    async def record(request: Request) -> Response:
        try:
            principal = await authenticator.authenticate_headers(request.headers)
            if principal is None or not principal.is_admin:
                return JSONResponse({"error": "recording events needs an API key"}, status_code=401)
            [result] = await service.record([event_of(await request.json())])
        except QuestlineError as error:
            return JSONResponse({"error": str(error), "code": error.code}, status_code=400)
        except (KeyError, TypeError, ValueError) as error:
            return JSONResponse({"error": f"malformed event: {error!r}"}, status_code=400)
        return JSONResponse(
            {
                "eventId": result.event_id,
                "duplicate": result.duplicate,
                "unlocks": [
                    {"id": u.id, "key": u.key, "kind": u.kind.value, "title": u.title}
                    for u in result.unlocks
                ],
            }
        )

    application.add_route(PLAIN_PATH, record, methods=["POST"])
    return application


def event_of(data: dict[str, Any]) -> Event:
    """An event from the JSON body, with the field names of GraphQL's EventInput."""
    occurred_at = data.get("occurredAt")
    return Event(
        id=data["id"],
        player_id=data["playerId"],
        type=data["type"],
        value=data.get("value", 1.0),
        occurred_at=datetime.fromisoformat(occurred_at) if occurred_at else None,
        properties=data.get("properties") or {},
    )
