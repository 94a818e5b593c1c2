"""Console sessions: a signed, expiring cookie, and the CSRF token of every form.

Signing in with an API key sets one cookie, `questline_console`: HttpOnly (no
script reads it), SameSite=Strict (no other site's page sends it), Secure
over HTTPS, with a fixed lifetime (`QUESTLINE_CONSOLE_SESSION_TTL`, 8 hours
by default) checked again on the server from the signed timestamp, so an
old cookie replayed by hand is refused too. The cookie holds no secret: only
whether its holder signed in and the session's CSRF token, signed with
itsdangerous (what Starlette's own sessions use) under a key derived from the
configured API keys. Every worker derives the same key, and changing the API
keys ends every session.

Every form carries the session's CSRF token and every POST must send it back
(compared in constant time); a visitor who has not signed in gets a session
with a token only, so the sign-in form is protected too.

The console's live parts use the same cookie on the `/graphql` WebSocket
(`principal`): a browser sends it with the handshake, and the handshake's
Origin must be this server, so another site's page cannot ride on it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from itsdangerous import BadSignature, URLSafeTimedSerializer
from pydantic import SecretStr
from starlette.requests import HTTPConnection
from starlette.responses import Response

from schema.permissions import Principal

COOKIE = "questline_console"
#: The form field that carries the CSRF token.
CSRF_FIELD = "csrf_token"


@dataclass(frozen=True, slots=True)
class Session:
    csrf_token: str
    signed_in: bool


class Sessions:
    """Issues and reads the console's session cookies for one set of API keys."""

    def __init__(self, api_keys: Sequence[SecretStr], ttl: timedelta) -> None:
        self.ttl = ttl
        keys = "\0".join(key.get_secret_value() for key in api_keys)
        secret = hmac.new(b"questline console session", keys.encode(), hashlib.sha256).hexdigest()
        self._serializer = URLSafeTimedSerializer(secret, salt="questline-console")

    def new(self, signed_in: bool) -> Session:
        """A session with a fresh CSRF token (a new one at each sign-in)."""
        return Session(csrf_token=secrets.token_urlsafe(32), signed_in=signed_in)

    def read(self, connection: HTTPConnection) -> Session | None:
        """The request's session; None when it has none, or a forged or expired one."""
        cookie = connection.cookies.get(COOKIE)
        if not cookie:
            return None
        try:
            data = self._serializer.loads(cookie, max_age=int(self.ttl.total_seconds()))
        except BadSignature:  # also SignatureExpired
            return None
        if not isinstance(data, Mapping):
            return None
        token, signed_in = data.get("csrf"), data.get("in")
        if not isinstance(token, str) or not isinstance(signed_in, bool):
            return None
        return Session(csrf_token=token, signed_in=signed_in)

    def encode(self, session: Session) -> str:
        """The cookie's signed and timestamped value."""
        return self._serializer.dumps({"csrf": session.csrf_token, "in": session.signed_in})

    def save(self, response: Response, session: Session, connection: HTTPConnection) -> None:
        response.set_cookie(
            COOKIE,
            self.encode(session),
            max_age=int(self.ttl.total_seconds()),
            path="/",
            secure=connection.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )

    def end(self, response: Response) -> None:
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")

    def principal(self, connection: HTTPConnection) -> Principal | None:
        """The console's signed-in operator, acting with the API key's rights,
        for a connection from this server's own pages; otherwise None."""
        if not same_origin(connection):
            return None
        session = self.read(connection)
        if session is None or not session.signed_in:
            return None
        return Principal("api_key")


def same_origin(connection: HTTPConnection) -> bool:
    """Whether the request's Origin header names this server (as the Host header does)."""
    origin = connection.headers.get("origin")
    host = connection.headers.get("host")
    return origin is not None and host is not None and urlsplit(origin).netloc == host


def csrf_matches(session: Session | None, sent: object) -> bool:
    return (
        session is not None
        and isinstance(sent, str)
        and hmac.compare_digest(session.csrf_token.encode(), sent.encode())
    )
