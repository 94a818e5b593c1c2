"""The Starlette application, built by a factory from one Settings object.

    uvicorn --factory app.main:app_from_env

Routes: /graphql (HTTP and graphql-transport-ws; GraphiQL in development,
its files under /graphiql/static), /healthz (the process is up), /readyz
(store and database answer), /metrics (Prometheus) and the web console at
/console (app/console/), where / redirects. SIGHUP reloads the program.
"""

from __future__ import annotations

import asyncio
import gc
import signal
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from app.auth import Authenticator
from app.console import Sessions, console_app
from app.graphiql import STATIC_PATH as GRAPHIQL_STATIC
from app.graphiql import graphiql_page, graphiql_static
from app.metrics import Metrics
from app.service import Service
from app.settings import Settings
from engine.engine import Clock, utc_now
from engine.errors import QuestlineError, StoreError
from schema import build_schema
from schema.context import Context


class QuestlineGraphQL(GraphQL[Context, None]):
    """Strawberry's ASGI view with our context and WebSocket authentication."""

    def __init__(self, service: Service, authenticator: Authenticator, sessions: Sessions) -> None:
        settings = service.settings
        super().__init__(
            build_schema(
                development=settings.is_development,
                max_depth=settings.max_query_depth,
                max_tokens=settings.max_query_tokens,
            ),
            graphql_ide="graphiql" if settings.is_development else None,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            max_subscriptions_per_connection=settings.max_subscriptions_per_connection,
            keep_alive=True,
            keep_alive_interval=15,
        )
        self.service = service
        self.authenticator = authenticator
        self.sessions = sessions

    async def render_graphql_ide(self, request: Request) -> Response:
        return graphiql_page()  # Strawberry's loads its files from a CDN

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        context = Context(service=self.service)
        if isinstance(request, Request):
            try:
                context.principal = await self.authenticator.authenticate_headers(request.headers)
            except QuestlineError as error:
                context.auth_error = error
        else:  # the console's own pages open WebSockets with its session cookie
            context.principal = self.sessions.principal(request)
        return context

    async def on_ws_connect(self, context: Context) -> None:
        """Authenticate a WebSocket from its connection_init payload (or, sent
        without credentials, from a console session's cookie), or close it (4403)."""
        params = context.connection_params or {}
        credential = (
            params.get("authorization") or params.get("Authorization") or params.get("token")
        )
        if not isinstance(credential, str) or not credential:
            if context.principal is not None:
                return
            raise ConnectionRejectionError(
                {"code": "UNAUTHENTICATED", "message": "send {authorization: 'Bearer <token>'}"}
            )
        token = credential.removeprefix("Bearer ").strip()
        try:
            context.principal = await self.authenticator.authenticate_token(token)
        except QuestlineError as error:
            raise ConnectionRejectionError({"code": error.code, "message": str(error)}) from None


class BodyLimit:
    """Refuse request bodies over the limit (413) before they are parsed."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(
            {
                "errors": [
                    {
                        "message": f"request body larger than {self.limit} bytes",
                        "extensions": {"code": "BODY_TOO_LARGE"},
                    }
                ]
            },
            status_code=413,
        )
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass


class Timing:
    """Request latency per route into the Prometheus histogram."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            path = scope["path"] if scope["path"] in ROUTES else "other"
            self.metrics.latency.labels(path).observe(time.perf_counter() - started)


ROUTES = ("/graphql", "/healthz", "/readyz", "/metrics")


@contextmanager
def reload_on_hangup(service: Service) -> Iterator[None]:
    """SIGHUP reloads the program (`kill -HUP <pid>`), as `reloadProgram` does.

    Only the main thread of a POSIX process can take signals: uvicorn runs
    the app there, a test client does not, and then nothing is installed.
    With `--workers N`, uvicorn's parent process takes SIGHUP itself and
    restarts the workers; a signal sent to one worker reloads in place.
    """
    hangup = getattr(signal, "SIGHUP", None)
    if hangup is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(hangup, service.reload_in_background)
    try:
        yield
    finally:
        loop.remove_signal_handler(hangup)


def create_app(settings: Settings, clock: Clock = utc_now) -> Starlette:
    """The app; `clock` is the service's time (tests move it instead of waiting)."""
    metrics = Metrics()
    service = Service(settings, metrics, clock)
    authenticator = Authenticator(settings, clock)
    sessions = Sessions(settings.api_keys, settings.console_session_ttl)
    graphql = QuestlineGraphQL(service, authenticator, sessions)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            await service.start()
            metrics.track_subscriptions(lambda: service.feed.subscribers)
            # What start-up built (program, schema, caches) lives as long as the
            # process: keep it out of the collector's full passes, which
            # otherwise stalled requests for hundreds of milliseconds.
            gc.freeze()
            with reload_on_hangup(service):
                yield
        finally:
            await authenticator.aclose()
            await service.stop()

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        try:
            await service.ready()
        except StoreError as error:
            return JSONResponse({"status": "unavailable", "reason": str(error)}, status_code=503)
        return JSONResponse({"status": "ready", "program": service.engine.program.version})

    async def prometheus(request: Request) -> Response:
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    async def home(request: Request) -> Response:
        return RedirectResponse("/console/", status_code=307)

    app = Starlette(
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", prometheus),
            Mount(GRAPHIQL_STATIC, graphiql_static()),
            Mount("/console", console_app(service, authenticator, sessions)),
            Route("/", home),
        ],
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.authenticator = authenticator
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(Timing, metrics=metrics)
    return app


def app_from_env() -> Starlette:
    """The uvicorn factory: settings from QUESTLINE_* variables."""
    return create_app(Settings.from_env())
