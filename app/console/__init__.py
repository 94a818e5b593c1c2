"""The web console at /console, for designers and operators, in the service's own process.

Server-rendered pages (Jinja2 templates through Starlette) with small plain
scripts for the live parts, which use the same GraphQL subscriptions over
`graphql-transport-ws` as any client, authenticated by the console's session
cookie (app/console/sessions.py). Charts are drawn by Chart.js, shipped in
`static/vendor/` with its licence: consoles often run on closed networks.

    pages.py       the pages, security headers
    sessions.py    the signed session cookie and CSRF tokens
    sources.py     the seed files' text, each item's definition as written
    candidates.py  checking a pasted or uploaded candidate program
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from app.auth import Authenticator
from app.console.pages import Console, SecurityHeaders
from app.console.sessions import Sessions
from app.service import Service

__all__ = ["Sessions", "console_app"]


def console_app(service: Service, authenticator: Authenticator, sessions: Sessions) -> Starlette:
    """The console, to mount at /console."""
    console = Console(service, authenticator, sessions)
    page = console.page
    return Starlette(
        routes=[
            Route("/", page(console.overview), name="overview"),
            Route("/sign-in", console.sign_in, methods=["GET", "POST"], name="sign_in"),
            Route("/sign-out", page(console.sign_out), methods=["POST"], name="sign_out"),
            Route("/rates", page(console.rates), name="rates"),
            Route("/challenges", page(console.challenges), name="challenges"),
            Route("/players", page(console.find_player), name="players"),
            Route("/players/{player_id:path}", page(console.player), name="player"),
            Route("/feed", page(console.feed), name="feed"),
            Route("/program", page(console.program), methods=["GET", "POST"], name="program"),
            Mount("/static", StaticFiles(packages=[(__name__, "static")]), name="static"),
        ],
        middleware=[Middleware(SecurityHeaders)],
    )
