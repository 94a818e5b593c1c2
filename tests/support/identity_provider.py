"""A real identity provider for the tests: signing keys and a JWKS endpoint on loopback.

`IdentityProvider` serves its published key set at `jwks_url` from an
`http.server` in a thread, on a free port, and counts the fetches. It signs
player tokens the way Auth0, Firebase or Keycloak do (RS256 or ES256, `kid` in
the header), can rotate to new keys, and can go down: its socket is closed, so
a fetch meets "connection refused" as it would from an unreachable provider.
Keys are generated with `cryptography` for each test run; token times are
relative to now.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from app.settings import TokenIssuer


def hand_made_token(header: dict[str, Any], claims: dict[str, Any], secret: bytes = b"") -> str:
    """A JWT built by hand, for the forgeries PyJWT refuses to produce: HS256 with
    `secret` (even a public key), or no signature at all for `alg: none`."""

    def segment(data: dict[str, Any] | bytes) -> str:
        raw = data if isinstance(data, bytes) else json.dumps(data, default=str).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    signing_input = f"{segment(header)}.{segment(claims)}"
    signature = b""
    if header.get("alg") == "HS256":
        signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{segment(signature) if signature else ''}"


@dataclass(frozen=True)
class SigningKey:
    kid: str
    algorithm: str
    private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

    @classmethod
    def generate(cls, algorithm: str) -> SigningKey:
        private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
        if algorithm == "RS256":
            private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif algorithm == "ES256":
            private_key = ec.generate_private_key(ec.SECP256R1())
        else:
            raise ValueError(f"no test keys for {algorithm}")
        return cls(f"{algorithm.lower()}-{secrets.token_hex(4)}", algorithm, private_key)

    def jwk(self) -> dict[str, Any]:
        """The public half, as the provider publishes it."""
        public_key = self.private_key.public_key()
        if isinstance(public_key, rsa.RSAPublicKey):
            fields = RSAAlgorithm.to_jwk(public_key, as_dict=True)
        else:
            fields = ECAlgorithm.to_jwk(public_key, as_dict=True)
        return {**fields, "kid": self.kid, "alg": self.algorithm, "use": "sig"}

    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


class IdentityProvider:
    """Publishes `keys` at `jwks_url` and signs tokens for `issuer`."""

    def __init__(self, name: str, *keys: SigningKey) -> None:
        self.issuer = f"https://{name}.identity.test/"
        self.keys: list[SigningKey] = list(keys)
        self.fetches = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def jwks_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/.well-known/jwks.json"

    def trusted(self, audience: str = "questline", player_claim: str = "sub") -> TokenIssuer:
        """How Questline's settings name this provider."""
        return TokenIssuer(self.issuer, self.jwks_url, (audience,), player_claim)

    def publish(self, *keys: SigningKey) -> None:
        """Replace the published key set (a rotation, or a withdrawal)."""
        with self._lock:
            self.keys = list(keys)

    def token(
        self,
        player_id: str = "ada",
        key: SigningKey | None = None,
        expires_in: timedelta = timedelta(minutes=5),
        **claims: Any,
    ) -> str:
        """A token as the provider signs it: `sub`, `iss`, `aud`, `iat`, `exp` and `claims`."""
        key = key or self.keys[0]
        now = datetime.now(UTC)
        payload = {
            "sub": player_id,
            "iss": self.issuer,
            "aud": "questline",
            "iat": now,
            "exp": now + expires_in,
            **claims,
        }
        return jwt.encode(
            payload, key.private_key, algorithm=key.algorithm, headers={"kid": key.kid}
        )

    def start(self) -> None:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with provider._lock:
                    provider.fetches += 1
                    body = json.dumps({"keys": [key.jwk() for key in provider.keys]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the tests count fetches; a line per request is noise

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def down(self) -> None:
        """Stop answering and close the socket: fetches are refused from now on."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            assert self._thread is not None
            self._thread.join()
            self._server = None


@contextmanager
def identity_provider(name: str, *algorithms: str) -> Iterator[IdentityProvider]:
    """A running provider with one key per algorithm, stopped on exit."""
    provider = IdentityProvider(name, *(SigningKey.generate(alg) for alg in algorithms))
    provider.start()
    try:
        yield provider
    finally:
        provider.down()
