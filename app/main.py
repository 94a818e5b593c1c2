"""The Starlette application, built by a factory from one Settings object.

    uvicorn --factory app.main:app_from_env --http app.header_timeout:HeaderTimeoutProtocol

Routes: /graphql (HTTP and graphql-transport-ws; GraphiQL in development,
its files under /graphiql/static), /healthz (the process is up), /readyz
(store and database answer), /metrics (Prometheus) and the web console at
/console (app/console/), where / redirects. SIGHUP reloads the program.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import signal
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import partial
from typing import Any

from cross_web import HTTPException
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketState
from strawberry.asgi import ASGIWebSocketAdapter, GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from app.auth import Authenticator
from app.console import Sessions, console_app
from app.graphiql import STATIC_PATH as GRAPHIQL_STATIC
from app.graphiql import graphiql_page, graphiql_static
from app.metrics import Metrics
from app.service import Service
from app.settings import Settings
from engine.engine import Clock, utc_now
from engine.errors import AuthError, QuestlineError, StoreError
from schema.build import build_schema
from schema.context import Context
from schema.errors import (
    BODY_TOO_LARGE,
    INTERNAL,
    MALFORMED_REQUEST,
    REQUEST_CODES,
    request_error,
)

logger = logging.getLogger("questline.http")

#: How deep JSON may nest in a request (event properties included): deeper is
#: refused before anything walks it, so no recursion limit is ever reached.
MAX_JSON_DEPTH = 64
#: The longest close reason a WebSocket frame carries (RFC 6455), in bytes.
MAX_CLOSE_REASON = 123


class MalformedJson(json.JSONDecodeError):
    """A body or message that is JSON we will not take (not UTF-8, NaN, too deep)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "", 0)


class ClosingWebSocket(ASGIWebSocketAdapter):
    """Strawberry's WebSocket adapter, for a socket we may close first (with our
    own reason): closing it again is then nothing."""

    async def close(self, code: int, reason: str) -> None:
        if self.ws.application_state != WebSocketState.DISCONNECTED:
            await self.ws.close(code=code, reason=reason)


class QuestlineGraphQL(GraphQL[Context, None]):
    """Strawberry's ASGI view with our context, WebSocket authentication, and a
    GraphQL error body with `extensions.code` for every refused request."""

    websocket_adapter_class = ClosingWebSocket

    def __init__(self, service: Service, authenticator: Authenticator, sessions: Sessions) -> None:
        settings = service.settings
        super().__init__(
            build_schema(
                development=settings.is_development,
                max_depth=settings.max_query_depth,
                max_tokens=settings.max_query_tokens,
                open_introspection=settings.open_introspection,
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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        try:
            response = await self.run(Request(scope, receive))
        except HTTPException as error:
            # Strawberry's refusals of what is not a GraphQL request, as plain text: ours
            # say why in the GraphQL error format, so every client can read them.
            cause = error.__cause__
            reason = cause.msg if isinstance(cause, MalformedJson) else error.reason
            response = refused(error.status_code, MALFORMED_REQUEST, reason)
        except Exception:
            logger.exception("unexpected error answering %s %s", scope["method"], scope["path"])
            response = refused(500, INTERNAL, "internal error; it has been logged")
        await response(scope, receive, send)

    def decode_json(self, data: str | bytes) -> object:
        """JSON as a client may send it: UTF-8, no NaN or Infinity (not JSON, though
        Python reads them), nested at most MAX_JSON_DEPTH deep."""
        try:
            decoded = json.loads(data, parse_constant=_no_constant)
        except UnicodeDecodeError:
            raise MalformedJson("the body is not valid UTF-8") from None
        except RecursionError:
            raise MalformedJson(f"JSON nested more than {MAX_JSON_DEPTH} levels deep") from None
        if _nesting(decoded) > MAX_JSON_DEPTH:
            raise MalformedJson(f"JSON nested more than {MAX_JSON_DEPTH} levels deep")
        if not isinstance(decoded, dict | list):
            raise MalformedJson(
                'a GraphQL request is a JSON object: {"query": "...", "variables": {...}}'
            )
        return decoded

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: Response,
    ) -> Response:
        """A request refused before execution (a query that does not validate, a
        variable of the wrong type) is an HTTP 400; once resolvers ran, 200."""
        if isinstance(response_data, dict) and _refused_before_execution(response_data):
            sub_response.status_code = 400
        return super().create_response(response_data, sub_response)

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        context = Context(service=self.service)
        if isinstance(request, Request):
            try:
                context.principal = await self.authenticator.authenticate_headers(request.headers)
            except QuestlineError as error:
                context.auth_error = error
        else:  # the console's own pages open WebSockets with its session cookie
            context.principal = self.sessions.principal(request)
            context.close = partial(_close, request)
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
            error: QuestlineError = AuthError(
                "send {authorization: 'Bearer <token>'} in connection_init"
            )
        else:
            try:
                context.principal = await self.authenticator.authenticate_token(
                    credential.removeprefix("Bearer ").strip()
                )
                return
            except QuestlineError as refused_with:
                error = refused_with
        # The reason goes in the close frame: what the client developer needs
        # (expired, wrong signature), never which key nearly matched.
        assert context.close is not None
        await context.close(4403, f"{error.code}: {error}")
        raise ConnectionRejectionError({"code": error.code, "message": str(error)})


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
        message = f"request body larger than {self.limit} bytes (QUESTLINE_MAX_BODY_BYTES)"
        await refused(413, BODY_TOO_LARGE, message)(scope, receive, send)


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


def refused(status: int, code: str, message: str) -> Response:
    """An HTTP answer in the GraphQL error format, for refusals outside execution."""
    return JSONResponse({"data": None, "errors": [request_error(code, message)]}, status)


def _refused_before_execution(response: GraphQLHTTPResponse) -> bool:
    errors: list[Any] = list(response.get("errors") or [])
    return (
        response.get("data") is None
        and bool(errors)
        and all(
            "path" not in error and (error.get("extensions") or {}).get("code") in REQUEST_CODES
            for error in errors
        )
    )


def _no_constant(name: str) -> object:
    raise MalformedJson(f"{name} is not a JSON number; send a finite number or null")


def _nesting(value: object) -> int:
    """How deep JSON containers nest in `value`, without recursion; stops counting
    past MAX_JSON_DEPTH."""
    deepest = 0
    pending: list[tuple[object, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children: list[object] = list(item.values())
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > MAX_JSON_DEPTH:
            break
        pending += [(child, depth + 1) for child in children]
    return deepest


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    """Close a WebSocket with our code and reason (cut to what a frame can carry)."""
    if websocket.application_state != WebSocketState.DISCONNECTED:
        encoded = reason.encode()[:MAX_CLOSE_REASON].decode(errors="ignore")
        await websocket.close(code=code, reason=encoded)


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
            metrics.track_subscriptions(lambda: service.subscribers)
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
        return JSONResponse({"status": "ready", "program": service.program.version})

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
