"""Who is calling: API keys for the business's servers, JWTs for players.

A request carries one credential, in `Authorization: Bearer <token>` or in
`X-API-Key`; a WebSocket carries it in its `connection_init` payload, which the
schema layer hands to `authenticate_token`. The token is first compared with the
configured API keys (in constant time, against every key, so timing does not say
which one nearly matched); anything shaped like a JWT is then verified as a player
token. An API key acts for the business (record events, read any player); a
player token reads and subscribes to its own player only, and can never record
events: a mobile client must not be able to award itself points.

A player token is matched to a trusted issuer by its `iss` claim (the issuer of
Questline's own HS256 secret or RS256 public key may be left unnamed, and then
takes tokens no provider claims), then verified with that issuer's key for the
token's `alg`: the HS256 secret, the RS256 public key, or the provider's
published key named by `kid` (app/jwks.py). Each algorithm is bound to its own
kind of key, so a public key can never serve as an HMAC secret (the classic
algorithm-confusion attack), and `none` is never accepted. The issuer's audience
is checked when set, and its player claim (default `sub`) is the player id.

Every refusal is an `AuthError` (UNAUTHENTICATED: who are you?) or a
`ForbiddenError` (FORBIDDEN: you may not), with a message telling the developer
what to send instead.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from app.jwks import ALGORITHMS as JWKS_ALGORITHMS
from app.jwks import JwksKeys, http_client, quoted
from app.settings import Settings
from engine.engine import Clock, utc_now
from engine.errors import AuthError, ConfigurationError
from schema.permissions import Principal

VerifyingKey = str | RSAPublicKey | EllipticCurvePublicKey


@dataclass(frozen=True)
class TrustedIssuer:
    """Who may sign player tokens, with which keys, and what their claims must say."""

    issuer: str | None
    audience: tuple[str, ...]
    player_claim: str
    static_keys: Mapping[str, VerifyingKey]
    jwks: JwksKeys | None = None

    @property
    def algorithms(self) -> frozenset[str]:
        published = JWKS_ALGORITHMS if self.jwks is not None else frozenset()
        return frozenset(self.static_keys) | published

    async def key(self, algorithm: str, header: Mapping[str, Any]) -> VerifyingKey:
        """The key for a token with this (already accepted) `alg` and header."""
        if algorithm in self.static_keys:
            return self.static_keys[algorithm]
        assert self.jwks is not None, "algorithms lists only the keys this issuer has"
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AuthError(
                f"the token has no 'kid' header, so none of the keys {self.jwks.issuer} "
                "publishes can be picked to verify it"
            )
        return await self.jwks.key(algorithm, kid)


class Authenticator:
    """Turns credentials into a `Principal`, with the keys of one `Settings`.

    `clock` times the cache of published keys; `aclose()` (the app's lifespan
    calls it) closes the connections to identity providers.
    """

    def __init__(self, settings: Settings, clock: Clock = utc_now) -> None:
        self._api_keys = tuple(key.get_secret_value().encode() for key in settings.api_keys)
        self._leeway = settings.jwt_leeway.total_seconds()
        static_keys: dict[str, VerifyingKey] = {}
        if settings.jwt_secret is not None:
            static_keys["HS256"] = settings.jwt_secret.get_secret_value()
        if settings.jwt_public_key is not None:
            public_key = load_pem_public_key(settings.jwt_public_key.encode())
            if not isinstance(public_key, RSAPublicKey):
                raise ConfigurationError("QUESTLINE_JWT_PUBLIC_KEY must be an RSA public key")
            static_keys["RS256"] = public_key
        issuers: list[TrustedIssuer] = []
        if static_keys:
            audience = () if settings.jwt_audience is None else (settings.jwt_audience,)
            issuers.append(
                TrustedIssuer(settings.jwt_issuer, audience, settings.jwt_player_claim, static_keys)
            )
        self._http: httpx.AsyncClient | None = None
        for provider in settings.jwt_issuers:
            self._http = self._http or http_client()
            keys = JwksKeys(provider.issuer, provider.jwks_url, self._http, clock)
            issuers.append(
                TrustedIssuer(provider.issuer, provider.audience, provider.player_claim, {}, keys)
            )
        self._issuers = tuple(issuers)
        self._algorithms = frozenset().union(*(issuer.algorithms for issuer in issuers))

    async def aclose(self) -> None:
        """Stop key fetches under way and close the client they share."""
        for issuer in self._issuers:
            if issuer.jwks is not None:
                await issuer.jwks.aclose()
        if self._http is not None:
            await self._http.aclose()

    async def authenticate_headers(self, headers: Mapping[str, str]) -> Principal | None:
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
        return await self.authenticate_token(token)

    async def authenticate_token(self, token: str) -> Principal:
        """The caller behind a bare token: an API key or a player JWT."""
        token = token.strip()
        if not token:
            raise AuthError("empty token: send an API key or a player token")
        if self._is_api_key(token):
            return Principal("api_key")
        if token.count(".") != 2:
            # Not a JWT (header.payload.signature), so it was meant as an API key.
            raise AuthError("invalid API key")
        return Principal("player", await self._player_id(token))

    def _is_api_key(self, token: str) -> bool:
        candidate = token.encode()
        matched = False
        for key in self._api_keys:
            matched |= hmac.compare_digest(key, candidate)
        return matched

    async def _player_id(self, token: str) -> str:
        if not self._issuers:
            raise AuthError("this server accepts no player tokens (JWT); use an API key")
        try:
            header = jwt.get_unverified_header(token)
            # Read unverified only to pick the issuer; `decode` below checks it.
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.InvalidTokenError:
            raise AuthError("malformed token: neither an API key nor a JWT") from None
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in self._algorithms:
            accepted = " or ".join(sorted(self._algorithms))
            raise AuthError(
                f"tokens signed with {quoted(algorithm)} are not accepted; use {accepted}"
            )
        issuer = self._issuer_of(unverified.get("iss"), algorithm)
        key = await issuer.key(algorithm, header)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=issuer.audience or None,
                issuer=issuer.issuer,
                leeway=self._leeway,
                options={
                    "require": ["exp", issuer.player_claim],
                    "verify_aud": bool(issuer.audience),
                },
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("the token has expired; sign in again") from None
        except jwt.MissingRequiredClaimError as error:
            raise AuthError(f"the token has no {error.claim!r} claim") from None
        except jwt.InvalidSignatureError:
            raise AuthError("the token signature is invalid") from None
        except jwt.InvalidAudienceError:
            expected = " or ".join(map(repr, issuer.audience))
            raise AuthError(
                f"the token is meant for another audience; this server expects {expected}"
            ) from None
        except jwt.ImmatureSignatureError:
            raise AuthError("the token is not valid yet; check the issuer's clock") from None
        except jwt.InvalidTokenError as error:
            raise AuthError(f"invalid token: {error}") from None
        player_id = claims[issuer.player_claim]
        if isinstance(player_id, bool) or not isinstance(player_id, str | int) or player_id == "":
            raise AuthError(
                f"the token's {issuer.player_claim!r} claim must be the player id "
                "(a non-empty string)"
            )
        return str(player_id)

    def _issuer_of(self, iss: object, algorithm: str) -> TrustedIssuer:
        """The trusted issuer named by the token's (not yet verified) `iss` claim."""
        named = [
            issuer for issuer in self._issuers if issuer.issuer is not None and issuer.issuer == iss
        ]
        for issuer in named:
            if algorithm in issuer.algorithms:
                return issuer
        if named:
            accepted = " or ".join(sorted(frozenset().union(*(i.algorithms for i in named))))
            raise AuthError(
                f"tokens from {quoted(iss)} must be signed with {accepted}, not {algorithm}"
            )
        for issuer in self._issuers:
            if issuer.issuer is None and algorithm in issuer.algorithms:
                return issuer
        if iss is None:
            raise AuthError("the token has no 'iss' claim")
        trusted = ", ".join(repr(issuer.issuer) for issuer in self._issuers if issuer.issuer)
        raise AuthError(
            f"the token comes from an issuer this server does not trust ({quoted(iss)}); "
            f"trusted issuers: {trusted}"
        )


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
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm="HS256")


def generate_api_key() -> str:
    return secrets.token_urlsafe(32)
