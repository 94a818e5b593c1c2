"""Who is calling: API keys for the business's servers, JWTs for players.

A request carries one credential, in `Authorization: Bearer <token>` or in
`X-API-Key`; a WebSocket carries it in its `connection_init` payload, which the
schema layer hands to `authenticate_token`. The token is first compared with the
configured API keys (in constant time, against every key, so timing does not say
which one nearly matched); anything shaped like a JWT is then verified as a player
token. An API key acts for the business (record events, read any player); a
player token reads and subscribes to its own player only, and can never record
events: a mobile client must not be able to award itself points.

Every refusal is an `AuthError` (UNAUTHENTICATED: who are you?) or a
`ForbiddenError` (FORBIDDEN: you may not), with a message telling the developer
what to send instead.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from app.settings import Settings
from engine.errors import ConfigurationError
from schema.permissions import AuthError, Principal

# Tolerated clock difference between the token issuer and this server.
LEEWAY_SECONDS = 30


class Authenticator:
    """Turns credentials into a `Principal`, with the keys of one `Settings`."""

    def __init__(self, settings: Settings) -> None:
        self._api_keys = tuple(key.encode() for key in settings.api_keys)
        # Each algorithm is bound to its own key, so an RS256 public key can never
        # be used as an HS256 secret (the classic algorithm-confusion attack).
        self._jwt_keys: dict[str, str | RSAPublicKey] = {}
        if settings.jwt_secret is not None:
            self._jwt_keys["HS256"] = settings.jwt_secret
        if settings.jwt_public_key is not None:
            public_key = load_pem_public_key(settings.jwt_public_key.encode())
            if not isinstance(public_key, RSAPublicKey):
                raise ConfigurationError("QUESTLINE_JWT_PUBLIC_KEY must be an RSA public key")
            self._jwt_keys["RS256"] = public_key
        self._audience = settings.jwt_audience
        self._issuer = settings.jwt_issuer

    def authenticate_headers(self, headers: Mapping[str, str]) -> Principal | None:
        """The caller of an HTTP request, or None when it sent no credentials."""
        lowered = {name.lower(): value for name, value in headers.items()}
        authorization = lowered.get("authorization")
        api_key = lowered.get("x-api-key")
        if authorization is None:
            if api_key is None:
                return None
            if not self._is_api_key(api_key.strip()):
                raise AuthError("invalid API key")
            return Principal("api_key")
        if api_key is not None:
            raise AuthError("send credentials in one header, Authorization or X-API-Key, not both")
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError("malformed Authorization header: use 'Bearer <token>'")
        return self.authenticate_token(token)

    def authenticate_token(self, token: str) -> Principal:
        """The caller behind a bare token: an API key or a player JWT."""
        token = token.strip()
        if not token:
            raise AuthError("empty token: send an API key or a player token")
        if self._is_api_key(token):
            return Principal("api_key")
        if token.count(".") != 2:
            # Not a JWT (header.payload.signature), so it was meant as an API key.
            raise AuthError("invalid API key")
        return Principal("player", self._player_id(token))

    def _is_api_key(self, token: str) -> bool:
        candidate = token.encode()
        matched = False
        for key in self._api_keys:
            matched |= hmac.compare_digest(key, candidate)
        return matched

    def _player_id(self, token: str) -> str:
        if not self._jwt_keys:
            raise AuthError("this server accepts no player tokens (JWT); use an API key")
        try:
            algorithm = jwt.get_unverified_header(token).get("alg")
        except jwt.InvalidTokenError:
            raise AuthError("malformed token: neither an API key nor a JWT") from None
        if not isinstance(algorithm, str) or algorithm not in self._jwt_keys:
            accepted = " or ".join(sorted(self._jwt_keys))
            raise AuthError(f"tokens signed with {algorithm!r} are not accepted; use {accepted}")
        try:
            claims = jwt.decode(
                token,
                self._jwt_keys[algorithm],
                algorithms=[algorithm],
                audience=self._audience,
                issuer=self._issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("the token has expired; sign in again") from None
        except jwt.MissingRequiredClaimError as error:
            raise AuthError(f"the token has no {error.claim!r} claim") from None
        except jwt.InvalidSignatureError:
            raise AuthError("the token signature is invalid") from None
        except jwt.InvalidAudienceError:
            raise AuthError("the token is meant for another audience") from None
        except jwt.InvalidIssuerError:
            raise AuthError("the token comes from an issuer this server does not trust") from None
        except jwt.ImmatureSignatureError:
            raise AuthError("the token is not valid yet; check the issuer's clock") from None
        except jwt.InvalidTokenError as error:
            raise AuthError(f"invalid token: {error}") from None
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject:
            raise AuthError("the token's 'sub' claim must be the player id")
        return subject


def issue_player_token(settings: Settings, player_id: str, ttl_seconds: int) -> str:
    """An HS256 player token, for development mode's demo token and for tests.

    Production tokens come from the business's identity provider; this server
    only ever verifies them.
    """
    if settings.jwt_secret is None:
        raise ConfigurationError("issuing player tokens needs QUESTLINE_JWT_SECRET (HS256)")
    if ttl_seconds <= 0:
        raise ValueError(f"ttl_seconds must be positive, got {ttl_seconds}")
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": player_id,
        "iat": now,
        "exp": now + timedelta(seconds=ttl_seconds),
    }
    if settings.jwt_audience is not None:
        claims["aud"] = settings.jwt_audience
    if settings.jwt_issuer is not None:
        claims["iss"] = settings.jwt_issuer
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")


def generate_api_key() -> str:
    return secrets.token_urlsafe(32)
