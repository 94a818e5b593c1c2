"""The signing keys an identity provider publishes at its JWKS URL, cached.

A player token names the key that signed it by `kid`. The provider's key set
is fetched on first use and kept; it is fetched again

- in the background once it is older than `max_age`, so that a key the provider
  withdrew stops being trusted, without any request waiting for the fetch;
- at once when a token names a `kid` the cache does not hold: that is how a key
  the provider has just started signing with is picked up, so a rotation logs
  nobody out.

Whatever triggers them, fetches start at most once per `cooldown`: a flood of
tokens with made-up `kid`s costs the provider one request per cooldown, not one
per token, and an unreachable provider is retried at that pace too.

Requests waiting for a key share one fetch. A failed fetch keeps the keys
already held: while the provider is unreachable, tokens signed with cached keys
keep working and only unknown `kid`s are refused (and the failure is logged
once per attempt, not per token). Fetches go through httpx's async client, so a
slow provider never blocks the event loop.

Only RS256 and ES256 public keys that carry a `kid` are kept: never a
symmetric (`oct`) key, whatever the set holds, so a public key can never be
turned into an HMAC secret. A token must use the algorithm of the key it names.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from engine.engine import Clock
from engine.errors import AuthError

logger = logging.getLogger("questline.auth")

ALGORITHMS = frozenset({"RS256", "ES256"})
#: How long a fetched key set is trusted before it is fetched again.
MAX_AGE = timedelta(minutes=10)
#: The least time between the starts of two fetches.
COOLDOWN = timedelta(seconds=10)
#: A provider slower than this counts as unreachable for that attempt.
TIMEOUT_SECONDS = 5.0
_QUOTED_LENGTH = 64


def http_client() -> httpx.AsyncClient:
    """The client every key set of an app fetches with (one connection pool)."""
    return httpx.AsyncClient(timeout=TIMEOUT_SECONDS, follow_redirects=True)


@dataclass(frozen=True, slots=True)
class PublicKey:
    algorithm: str
    key: RSAPublicKey | EllipticCurvePublicKey


class KeySetError(Exception):
    """A JWKS answer that cannot be used, and why."""


class JwksKeys:
    """The keys of one issuer, fetched from `url` with a shared httpx client."""

    def __init__(
        self,
        issuer: str,
        url: str,
        http: httpx.AsyncClient,
        clock: Clock,
        max_age: timedelta = MAX_AGE,
        cooldown: timedelta = COOLDOWN,
    ) -> None:
        self.issuer = issuer
        self.url = url
        self._http = http
        self._clock = clock
        self._max_age = max_age
        self._cooldown = cooldown
        self._keys: dict[str, PublicKey] = {}
        self._fetched_at: datetime | None = None
        self._attempted_at: datetime | None = None
        self._failure: str | None = None
        self._fetch: asyncio.Task[None] | None = None

    async def key(self, algorithm: str, kid: str) -> RSAPublicKey | EllipticCurvePublicKey:
        """The public key `kid` for a token signed with `algorithm`, or an `AuthError`."""
        found = self._keys.get(kid)
        if found is None:
            found = await self._fetched(kid)
        elif self._due():
            self._start_fetch()
        if found.algorithm != algorithm:
            raise AuthError(
                f"the token says {algorithm} but key {quoted(kid)} of {self.issuer} signs "
                f"{found.algorithm} tokens; the token was not made by this provider"
            )
        return found.key

    async def aclose(self) -> None:
        """Stop a fetch under way (the app is shutting down)."""
        if self._fetch is not None and not self._fetch.done():
            self._fetch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._fetch

    async def _fetched(self, kid: str) -> PublicKey:
        """`kid` after a fetch: the one under way, or a new one if the cooldown allows."""
        if not self._fetching():
            if self._cooling_down():
                raise self._unknown(kid)
            self._start_fetch()
        assert self._fetch is not None
        # Shielded: a client hanging up must not cancel the fetch others wait for.
        await asyncio.shield(self._fetch)
        found = self._keys.get(kid)
        if found is None:
            raise self._unknown(kid)
        return found

    def _due(self) -> bool:
        """Whether the cached set is old enough to be refreshed in the background."""
        if self._fetching() or self._cooling_down():
            return False
        return self._fetched_at is None or self._clock() - self._fetched_at >= self._max_age

    def _fetching(self) -> bool:
        return self._fetch is not None and not self._fetch.done()

    def _cooling_down(self) -> bool:
        started = self._attempted_at
        return started is not None and self._clock() - started < self._cooldown

    def _start_fetch(self) -> None:
        self._attempted_at = self._clock()
        self._fetch = asyncio.get_running_loop().create_task(self._refresh())

    async def _refresh(self) -> None:
        try:
            response = await self._http.get(self.url, headers={"Accept": "application/json"})
            if response.status_code != 200:
                raise KeySetError(f"it answered HTTP {response.status_code}")
            keys = parse_key_set(response.json())
        except (httpx.HTTPError, ValueError, KeySetError) as error:
            self._failure = describe(error)
            logger.warning(
                "could not fetch the signing keys of %s from %s: %s; tokens signed with the "
                "%d key(s) already cached are still accepted",
                self.issuer,
                self.url,
                self._failure,
                len(self._keys),
            )
            return
        self._keys = keys
        self._fetched_at = self._clock()
        self._failure = None

    def _unknown(self, kid: str) -> AuthError:
        if self._failure is not None:
            return AuthError(
                f"the token is signed with key {quoted(kid)}, which this server has not seen, and "
                f"the keys of {self.issuer} cannot be fetched right now ({self._failure}); "
                "try again in a moment"
            )
        return AuthError(
            f"the token is signed with key {quoted(kid)}, which {self.issuer} does not publish; "
            "if the provider has just rotated its keys, try again in a few seconds, otherwise "
            "sign in again"
        )


def parse_key_set(data: Any) -> dict[str, PublicKey]:
    """The usable signing keys of a JWKS document, by `kid`.

    Keys this server would never accept (encryption keys, symmetric keys, other
    algorithms, keys without a `kid`) are skipped rather than refused: providers
    publish them side by side with the signing keys.
    """
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise KeySetError("its answer is not a JSON Web Key Set (no 'keys' list)")
    keys: dict[str, PublicKey] = {}
    for entry in data["keys"]:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        kid = entry.get("kid")
        if not isinstance(kid, str) or not kid or entry.get("kty") not in ("RSA", "EC"):
            continue
        try:
            jwk = jwt.PyJWK(entry)
        except jwt.PyJWTError:
            continue
        if jwk.algorithm_name in ALGORITHMS and isinstance(
            jwk.key, RSAPublicKey | EllipticCurvePublicKey
        ):
            keys[kid] = PublicKey(jwk.algorithm_name, jwk.key)
    if not keys:
        raise KeySetError("it publishes no RS256 or ES256 signing key with a 'kid'")
    return keys


def describe(error: Exception) -> str:
    """A one-line reason for a failed fetch, for the log and the refusal."""
    if isinstance(error, httpx.TimeoutException):
        return f"no answer within {TIMEOUT_SECONDS:g} s"
    if isinstance(error, httpx.HTTPError):
        return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    if isinstance(error, ValueError):
        return "its answer is not JSON"
    return str(error)


def quoted(value: object) -> str:
    """A value read from a token, quoted for a refusal: anyone can write a token,
    so a message repeats at most a few dozen characters of it."""
    text = repr(value)
    return text if len(text) <= _QUOTED_LENGTH else f"{text[:_QUOTED_LENGTH]}..."
