"""Player tokens from identity providers, verified against their published keys.

Every test runs a real JWKS endpoint on loopback (tests/support/identity_provider.py)
and asks the app who the token's player is: `{ me { id } }` over HTTP, or a
WebSocket's `connection_init`. The app's clock is injected, so the key cache
ages when a test moves it; token expiry times are relative to now.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from app.jwks import COOLDOWN, MAX_AGE
from app.launch import running_servers
from app.main import create_app
from app.settings import Settings
from tests.support.clock import Clock
from tests.support.graphql_client import API_KEY, JWT_SECRET, codes, gql, settings_for
from tests.support.identity_provider import IdentityProvider, SigningKey, hand_made_token
from tests.support.polling import eventually
from tests.support.programs import CAFE

ME = "{ me { id } }"
PROTOCOL = "graphql-transport-ws"


@pytest.fixture(scope="module")
def rs256() -> SigningKey:
    return SigningKey.generate("RS256")


@pytest.fixture(scope="module")
def es256() -> SigningKey:
    return SigningKey.generate("ES256")


@pytest.fixture(scope="module")
def stranger() -> SigningKey:
    """A key no provider publishes: what a forger signs with."""
    return SigningKey.generate("RS256")


@pytest.fixture
def provider(rs256: SigningKey, es256: SigningKey) -> Iterator[IdentityProvider]:
    provider = IdentityProvider("tenant", rs256, es256)
    provider.start()
    yield provider
    provider.down()


@pytest.fixture
def app_clock() -> Clock:
    return Clock(datetime.now(UTC))


def client_for(settings: Settings, clock: Clock) -> TestClient:
    return TestClient(create_app(settings, clock))


@pytest.fixture
def client(tmp_path: Path, provider: IdentityProvider, app_clock: Clock) -> Iterator[TestClient]:
    """The app trusting `provider` (and, as every test app, its own HS256 secret)."""
    settings = settings_for(tmp_path, jwt_issuers=(provider.trusted(),))
    with client_for(settings, app_clock) as client:
        yield client


def player_of(client: TestClient, token: str) -> str:
    body = gql(client, ME, token=token)
    assert "errors" not in body, body
    player_id: str = body["data"]["me"]["id"]
    return player_id


def refusal(client: TestClient, token: str) -> str:
    body = gql(client, ME, token=token)
    assert codes(body) == ["UNAUTHENTICATED"], body
    message: str = body["errors"][0]["message"]
    return message


def claims(provider: IdentityProvider, **extra: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "sub": "mallory",
        "iss": provider.issuer,
        "aud": "questline",
        "exp": int((now + timedelta(minutes=5)).timestamp()),
        **extra,
    }


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
def test_a_token_signed_with_a_published_key_is_its_player(
    client: TestClient, provider: IdentityProvider, algorithm: str
) -> None:
    key = next(key for key in provider.keys if key.algorithm == algorithm)

    assert player_of(client, provider.token(f"ada-{algorithm}", key=key)) == f"ada-{algorithm}"


def test_the_key_set_is_fetched_once_for_many_tokens(
    client: TestClient, provider: IdentityProvider, rs256: SigningKey, es256: SigningKey
) -> None:
    for number in range(10):
        assert player_of(client, provider.token(f"p{number}", key=(rs256, es256)[number % 2]))

    assert provider.fetches == 1


def test_a_rotated_key_is_accepted_after_a_refresh_and_the_withdrawn_one_refused(
    client: TestClient,
    provider: IdentityProvider,
    app_clock: Clock,
    rs256: SigningKey,
    es256: SigningKey,
) -> None:
    assert player_of(client, provider.token("ada", key=rs256)) == "ada"
    app_clock.advance(minutes=1)
    rotated = SigningKey.generate("RS256")
    provider.publish(rotated, es256)

    assert player_of(client, provider.token("ada", key=rotated)) == "ada"
    assert provider.fetches == 2
    assert "does not publish" in refusal(client, provider.token("ada", key=rs256))


def test_an_expired_key_set_is_refreshed_in_the_background(
    client: TestClient,
    provider: IdentityProvider,
    app_clock: Clock,
    rs256: SigningKey,
    es256: SigningKey,
) -> None:
    """Past its max age the set is fetched again, without making a request wait:
    the token is served from the cache meanwhile, and a key the provider has
    withdrawn is refused once the new set is in."""
    token = provider.token("ada", key=rs256)
    assert player_of(client, token) == "ada"
    provider.publish(es256)
    app_clock.advance(seconds=MAX_AGE.total_seconds())

    assert player_of(client, token) == "ada"
    eventually(
        lambda: gql(client, ME, token=token),
        lambda body: "errors" in body,
        "the withdrawn key was dropped",
    )
    assert provider.fetches == 2
    assert "does not publish" in refusal(client, token)


def test_unknown_kids_are_refused_with_at_most_one_fetch_per_cooldown(
    client: TestClient, provider: IdentityProvider, app_clock: Clock, stranger: SigningKey
) -> None:
    assert player_of(client, provider.token()) == "ada"
    rounds = 3
    for round_number in range(rounds):
        app_clock.advance(seconds=COOLDOWN.total_seconds())
        for number in range(40):
            forged = SigningKey(f"forged-{round_number}-{number}", "RS256", stranger.private_key)
            message = refusal(client, provider.token("mallory", key=forged))
            assert "which https://tenant.identity.test/ does not publish" in message

    assert provider.fetches == 1 + rounds


def test_an_unknown_kid_says_when_the_provider_cannot_be_reached(
    client: TestClient, provider: IdentityProvider, app_clock: Clock, stranger: SigningKey
) -> None:
    token = provider.token("ada")
    assert player_of(client, token) == "ada"
    provider.down()
    app_clock.advance(seconds=MAX_AGE.total_seconds() + 60)

    # Cached keys keep working, before and after the failed refresh.
    assert player_of(client, token) == "ada"
    message = refusal(client, provider.token("mallory", key=stranger))
    assert "which this server has not seen" in message
    assert "cannot be fetched right now" in message
    assert player_of(client, provider.token("grace")) == "grace"
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text


@pytest.mark.parametrize(
    ("forge", "expected"),
    [
        (
            lambda p, rs: hand_made_token({"alg": "none", "kid": rs.kid}, claims(p)),
            "tokens signed with 'none' are not accepted",
        ),
        (
            lambda p, rs: hand_made_token(
                {"alg": "HS256", "kid": rs.kid}, claims(p), rs.public_pem()
            ),
            "tokens from 'https://tenant.identity.test/' must be signed with ES256 or RS256, "
            "not HS256",
        ),
        (
            lambda p, rs: hand_made_token(
                {"alg": "HS256", "kid": rs.kid},
                {k: v for k, v in claims(p).items() if k != "iss"},
                rs.public_pem(),
            ),
            "the token signature is invalid",
        ),
        (
            lambda p, rs: hand_made_token(
                {"alg": "HS256"}, claims(p), json.dumps(rs.jwk()).encode()
            ),
            "must be signed with ES256 or RS256, not HS256",
        ),
        (
            lambda p, rs: p.token(aud="another-app"),
            "the token is meant for another audience; this server expects 'questline'",
        ),
        (
            lambda p, rs: p.token(iss="https://evil.identity.test/"),
            "the token comes from an issuer this server does not trust "
            "('https://evil.identity.test/'); trusted issuers: 'https://tenant.identity.test/'",
        ),
        (
            lambda p, rs: p.token(expires_in=-timedelta(minutes=2)),
            "the token has expired; sign in again",
        ),
    ],
    ids=[
        "alg none",
        "HS256 signed with the public key",
        "HS256 signed with the public key, no issuer",
        "HS256 signed with the JWK",
        "wrong audience",
        "wrong issuer",
        "expired beyond the leeway",
    ],
)
def test_a_token_that_does_not_prove_its_player_is_refused(
    client: TestClient, provider: IdentityProvider, rs256: SigningKey, forge: Any, expected: str
) -> None:
    assert expected in refusal(client, forge(provider, rs256))


def test_the_leeway_tolerates_clock_skew_and_no_more(
    tmp_path: Path, provider: IdentityProvider, app_clock: Clock
) -> None:
    settings = settings_for(
        tmp_path, jwt_issuers=(provider.trusted(),), jwt_leeway=timedelta(minutes=2)
    )
    with client_for(settings, app_clock) as client:
        assert player_of(client, provider.token(expires_in=-timedelta(seconds=90))) == "ada"
        message = refusal(client, provider.token(expires_in=-timedelta(minutes=3)))
        assert message == "the token has expired; sign in again"
        issued_ahead = provider.token(nbf=datetime.now(UTC) + timedelta(seconds=90))
        assert player_of(client, issued_ahead) == "ada"


def test_a_custom_player_claim_names_the_player(
    tmp_path: Path, provider: IdentityProvider, app_clock: Clock
) -> None:
    settings = settings_for(
        tmp_path, jwt_issuers=(provider.trusted(player_claim="cognito:username"),)
    )
    with client_for(settings, app_clock) as client:
        token = provider.token("3f6c-uuid", **{"cognito:username": "player-42"})
        assert player_of(client, token) == "player-42"
        assert refusal(client, provider.token("3f6c-uuid")) == (
            "the token has no 'cognito:username' claim"
        )


def test_two_issuers_are_trusted_at_once_each_with_its_own_keys_and_claim(
    tmp_path: Path, app_clock: Clock, rs256: SigningKey, es256: SigningKey
) -> None:
    """An app migrating from one provider to another: both are trusted, and a
    token is checked against the keys of the issuer it names, never the other's."""
    old = IdentityProvider("old-provider", rs256)
    new = IdentityProvider("new-provider", es256)
    old.start()
    new.start()
    try:
        settings = settings_for(
            tmp_path,
            jwt_issuers=(old.trusted(), new.trusted(audience="mobile", player_claim="uid")),
        )
        with client_for(settings, app_clock) as client:
            assert player_of(client, old.token("ada")) == "ada"
            assert player_of(client, new.token("firebase-uid", aud="mobile", uid="grace")) == (
                "grace"
            )
            cross = new.token("mallory", key=rs256, aud="mobile", uid="mallory")
            assert "which https://new-provider.identity.test/ does not publish" in refusal(
                client, cross
            )
            wrong_audience = new.token("grace", uid="grace")  # aud: questline, old's audience
            assert "expects 'mobile'" in refusal(client, wrong_audience)
        assert (old.fetches, new.fetches) == (1, 1)
    finally:
        old.down()
        new.down()


def test_a_websocket_connection_init_follows_the_same_rules(
    client: TestClient, provider: IdentityProvider, stranger: SigningKey
) -> None:
    with client.websocket_connect("/graphql", subprotocols=[PROTOCOL]) as ws:
        ws.send_json({"type": "connection_init", "payload": {"authorization": provider.token()}})
        assert ws.receive_json()["type"] == "connection_ack"
        ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": ME}})
        assert ws.receive_json()["payload"] == {"data": {"me": {"id": "ada"}}}

    for refused in (
        provider.token(key=SigningKey("forged", "RS256", stranger.private_key)),
        provider.token(aud="another-app"),
        provider.token(expires_in=-timedelta(minutes=2)),
    ):
        with client.websocket_connect("/graphql", subprotocols=[PROTOCOL]) as ws:
            ws.send_json(
                {"type": "connection_init", "payload": {"authorization": f"Bearer {refused}"}}
            )
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_json()
            assert closed.value.code == 4403


@pytest.fixture
def served(tmp_path: Path, provider: IdentityProvider) -> Iterator[str]:
    """A real server (uvicorn in its own process) configured only by environment
    variables, trusting `provider` through QUESTLINE_JWT_ISSUERS; its base URL."""
    issuers = [
        {
            "issuer": provider.issuer,
            "jwks_url": provider.jwks_url,
            "audience": "questline",
            "player_claim": "sub",
        }
    ]
    env = {
        "QUESTLINE_STORE_URL": f"sqlite:///{tmp_path / 'store.db'}",
        "QUESTLINE_DATABASE_URL": f"sqlite:///{tmp_path / 'history.db'}",
        "QUESTLINE_SEED_PATH": str(CAFE.resolve()),
        "QUESTLINE_API_KEYS": API_KEY,
        "QUESTLINE_JWT_SECRET": JWT_SECRET,
        "QUESTLINE_JWT_ISSUERS": json.dumps(issuers),
    }
    with running_servers([env], tmp_path) as (server,):
        yield server.url


async def test_a_flood_of_forged_kids_on_a_real_server_costs_the_provider_little(
    served: str, provider: IdentityProvider, stranger: SigningKey
) -> None:
    """Concurrent requests with made-up `kid`s share fetches and are refused:
    the provider sees at most one fetch per cooldown, not one per request."""
    limit = asyncio.Semaphore(16)

    async def ask(http: httpx.AsyncClient, token: str) -> dict[str, Any]:
        async with limit:
            response = await http.post(
                f"{served}/graphql",
                json={"query": ME},
                headers={"Authorization": f"Bearer {token}"},
            )
            body: dict[str, Any] = response.json()
            return body

    forged = [
        provider.token("mallory", key=SigningKey(f"forged-{n}", "RS256", stranger.private_key))
        for n in range(300)
    ]
    started = time.monotonic()
    async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
        bodies = await asyncio.gather(*(ask(http, token) for token in forged))
        elapsed = time.monotonic() - started
        genuine = await ask(http, provider.token("ada"))

    assert all(codes(body) == ["UNAUTHENTICATED"] for body in bodies)
    assert genuine == {"data": {"me": {"id": "ada"}}}
    assert 1 <= provider.fetches <= 1 + int(elapsed / COOLDOWN.total_seconds())


async def test_a_real_websocket_is_accepted_with_a_provider_token(
    served: str, provider: IdentityProvider
) -> None:
    url = served.replace("http://", "ws://") + "/graphql"
    init = {"type": "connection_init", "payload": {"authorization": f"Bearer {provider.token()}"}}
    async with connect(url, subprotocols=[Subprotocol(PROTOCOL)], proxy=None) as ws:
        await ws.send(json.dumps(init))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": ME}}))
        assert json.loads(await ws.recv())["payload"] == {"data": {"me": {"id": "ada"}}}
