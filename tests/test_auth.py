from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.datastructures import Headers

from app.auth import Authenticator, generate_api_key, issue_player_token
from app.settings import Settings
from engine.errors import AuthError, ConfigurationError, ForbiddenError
from schema.permissions import Principal
from tests.support.identity_provider import hand_made_token

API_KEY = "server-key-0123456789abcdef"
OTHER_API_KEY = "second-server-key-fedcba9876"
SECRET = "k3Jq9vXw2LmN8pRt5YzA7cBd4FgH6jKs"
ADMIN = Principal("api_key")


@pytest.fixture(scope="module")
def rsa_private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def rsa_public_pem(rsa_private_key: rsa.RSAPrivateKey) -> str:
    return (
        rsa_private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture
def authenticator() -> Authenticator:
    return Authenticator(Settings(api_keys=(API_KEY, OTHER_API_KEY), jwt_secret=SECRET))


def hs256(claims: dict[str, Any], secret: str = SECRET) -> str:
    return jwt.encode(claims, secret, algorithm="HS256")


def valid_claims(player_id: str = "ada", **extra: Any) -> dict[str, Any]:
    return {"sub": player_id, "exp": datetime.now(UTC) + timedelta(minutes=5), **extra}


async def refusal(authenticator: Authenticator, headers: dict[str, str]) -> str:
    with pytest.raises(AuthError) as caught:
        await authenticator.authenticate_headers(headers)
    assert caught.value.code == "UNAUTHENTICATED"
    return str(caught.value)


async def test_a_request_without_credentials_has_no_principal(authenticator: Authenticator) -> None:
    assert await authenticator.authenticate_headers({"Content-Type": "application/json"}) is None


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": f"Bearer {API_KEY}"},
        {"authorization": f"bearer   {OTHER_API_KEY} "},
        {"X-API-Key": API_KEY},
        {"x-api-key": OTHER_API_KEY},
    ],
    ids=["bearer", "bearer lower-case", "x-api-key", "x-api-key lower-case"],
)
async def test_an_api_key_in_either_header_is_an_admin(
    authenticator: Authenticator, headers: dict[str, str]
) -> None:
    principal = await authenticator.authenticate_headers(headers)

    assert principal == ADMIN
    assert principal.is_admin


async def test_starlette_headers_are_accepted(authenticator: Authenticator) -> None:
    headers = Headers(raw=[(b"x-api-key", API_KEY.encode())])

    assert await authenticator.authenticate_headers(headers) == ADMIN


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer not-the-right-key-at-all"},
        {"X-API-Key": "not-the-right-key-at-all"},
        {"X-API-Key": API_KEY[:-1]},
        {"X-API-Key": hs256(valid_claims())},
    ],
    ids=["bearer", "x-api-key", "a prefix of a key", "a player token as api key"],
)
async def test_a_wrong_api_key_is_refused(
    authenticator: Authenticator, headers: dict[str, str]
) -> None:
    assert await refusal(authenticator, headers) == "invalid API key"


@pytest.mark.parametrize(
    "authorization", ["Basic YWRhOnB3", "Bearer", "Bearer   ", f"Token {API_KEY}", API_KEY]
)
async def test_a_malformed_authorization_header_says_how_to_write_it(
    authenticator: Authenticator, authorization: str
) -> None:
    message = await refusal(authenticator, {"Authorization": authorization})

    assert message == "malformed Authorization header: use 'Bearer <token>'"


async def test_credentials_in_both_headers_are_refused(authenticator: Authenticator) -> None:
    message = await refusal(
        authenticator, {"Authorization": f"Bearer {API_KEY}", "X-API-Key": API_KEY}
    )

    assert "not both" in message


async def test_a_valid_hs256_token_is_its_player(authenticator: Authenticator) -> None:
    token = hs256(valid_claims("ada"))

    principal = await authenticator.authenticate_headers({"Authorization": f"Bearer {token}"})

    assert principal == Principal("player", "ada")
    assert principal is not None and not principal.is_admin


async def test_an_expired_token_asks_to_sign_in_again(authenticator: Authenticator) -> None:
    token = hs256({"sub": "ada", "exp": datetime.now(UTC) - timedelta(minutes=2)})

    message = await refusal(authenticator, {"Authorization": f"Bearer {token}"})

    assert message == "the token has expired; sign in again"


async def test_a_token_expired_within_the_leeway_is_still_accepted(
    authenticator: Authenticator,
) -> None:
    token = hs256({"sub": "ada", "exp": datetime.now(UTC) - timedelta(seconds=10)})

    assert await authenticator.authenticate_token(token) == Principal("player", "ada")


async def test_a_token_signed_with_another_secret_is_refused(authenticator: Authenticator) -> None:
    token = hs256(valid_claims(), secret="another-secret-of-32-characters-x")

    with pytest.raises(AuthError, match="the token signature is invalid"):
        await authenticator.authenticate_token(token)


@pytest.mark.parametrize("claim", ["sub", "exp"])
async def test_a_token_without_a_required_claim_names_it(
    authenticator: Authenticator, claim: str
) -> None:
    claims = valid_claims()
    del claims[claim]

    with pytest.raises(AuthError) as caught:
        await authenticator.authenticate_token(hs256(claims))

    assert str(caught.value) == f"the token has no {claim!r} claim"


async def test_a_token_with_an_empty_subject_is_refused(authenticator: Authenticator) -> None:
    with pytest.raises(AuthError, match="'sub' claim must be the player id"):
        await authenticator.authenticate_token(hs256(valid_claims("")))


async def test_an_unsigned_token_is_refused(authenticator: Authenticator) -> None:
    claims = {"sub": "ada", "exp": int((datetime.now(UTC) + timedelta(minutes=5)).timestamp())}
    token = hand_made_token({"alg": "none", "typ": "JWT"}, claims)

    with pytest.raises(AuthError, match="tokens signed with 'none' are not accepted; use HS256"):
        await authenticator.authenticate_token(token)


async def test_a_dotted_token_that_is_not_a_jwt_is_malformed(authenticator: Authenticator) -> None:
    with pytest.raises(AuthError, match="malformed token"):
        await authenticator.authenticate_token("a.b.c")


async def test_an_empty_token_is_refused(authenticator: Authenticator) -> None:
    with pytest.raises(AuthError, match="empty token"):
        await authenticator.authenticate_token("  ")


async def test_a_server_without_jwt_keys_refuses_player_tokens() -> None:
    authenticator = Authenticator(Settings(api_keys=(API_KEY,)))

    with pytest.raises(AuthError, match="accepts no player tokens"):
        await authenticator.authenticate_token(hs256(valid_claims()))


async def test_a_valid_rs256_token_is_its_player(
    rsa_private_key: rsa.RSAPrivateKey, rsa_public_pem: str
) -> None:
    authenticator = Authenticator(Settings(jwt_public_key=rsa_public_pem))
    token = jwt.encode(valid_claims("grace"), rsa_private_key, algorithm="RS256")

    assert await authenticator.authenticate_token(token) == Principal("player", "grace")


async def test_an_rs256_token_signed_by_another_key_is_refused(rsa_public_pem: str) -> None:
    authenticator = Authenticator(Settings(jwt_public_key=rsa_public_pem))
    impostor = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(valid_claims(), impostor, algorithm="RS256")

    with pytest.raises(AuthError, match="the token signature is invalid"):
        await authenticator.authenticate_token(token)


async def test_an_hs256_token_is_refused_when_only_a_public_key_is_configured(
    rsa_public_pem: str,
) -> None:
    authenticator = Authenticator(Settings(jwt_public_key=rsa_public_pem))

    with pytest.raises(AuthError, match="tokens signed with 'HS256' are not accepted; use RS256"):
        await authenticator.authenticate_token(hs256(valid_claims()))


async def test_the_public_key_is_never_used_as_an_hmac_secret(rsa_public_pem: str) -> None:
    """The algorithm-confusion attack: HS256 'signed' with the public key as secret."""
    authenticator = Authenticator(Settings(jwt_secret=SECRET, jwt_public_key=rsa_public_pem))
    claims = {"sub": "mallory", "exp": int((datetime.now(UTC) + timedelta(minutes=5)).timestamp())}
    forged = hand_made_token({"alg": "HS256", "typ": "JWT"}, claims, rsa_public_pem.encode())

    with pytest.raises(AuthError, match="the token signature is invalid"):
        await authenticator.authenticate_token(forged)


async def test_audience_and_issuer_are_checked_when_configured() -> None:
    authenticator = Authenticator(
        Settings(jwt_secret=SECRET, jwt_audience="mobile", jwt_issuer="https://auth.example/")
    )
    good = {"aud": "mobile", "iss": "https://auth.example/"}

    assert await authenticator.authenticate_token(hs256(valid_claims(**good))) == Principal(
        "player", "ada"
    )
    with pytest.raises(AuthError, match="meant for another audience"):
        await authenticator.authenticate_token(hs256(valid_claims(**{**good, "aud": "web"})))
    with pytest.raises(AuthError, match="issuer this server does not trust"):
        await authenticator.authenticate_token(
            hs256(valid_claims(**{**good, "iss": "https://evil/"}))
        )
    with pytest.raises(AuthError, match="the token has no 'aud' claim"):
        await authenticator.authenticate_token(hs256(valid_claims(iss="https://auth.example/")))


async def test_an_issued_player_token_authenticates_as_its_player() -> None:
    settings = Settings(jwt_secret=SECRET, jwt_audience="mobile", jwt_issuer="questline")

    token = issue_player_token(settings, "ada", ttl_seconds=60)

    assert await Authenticator(settings).authenticate_token(token) == Principal("player", "ada")
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience="mobile")
    assert claims["iss"] == "questline"
    assert claims["exp"] - claims["iat"] == 60


def test_issuing_a_player_token_needs_a_secret() -> None:
    with pytest.raises(ConfigurationError, match="QUESTLINE_JWT_SECRET"):
        issue_player_token(Settings(), "ada", ttl_seconds=60)


async def test_generated_api_keys_are_long_random_and_accepted() -> None:
    keys = {generate_api_key() for _ in range(20)}

    assert len(keys) == 20
    assert all(len(key) >= 40 for key in keys)
    settings = Settings.from_env({"QUESTLINE_API_KEYS": ",".join(keys)})
    authenticator = Authenticator(settings)
    assert [await authenticator.authenticate_token(key) for key in keys] == [ADMIN] * len(keys)


def test_a_player_reads_only_itself_and_an_api_key_reads_everyone() -> None:
    ada = Principal("player", "ada")

    assert ada.can_read("ada")
    assert not ada.can_read("grace")
    assert ADMIN.can_read("ada") and ADMIN.can_read("grace")


def test_reading_another_player_is_forbidden_with_a_clear_message() -> None:
    ada = Principal("player", "ada")
    ada.require_read("ada")
    ADMIN.require_read("grace")

    with pytest.raises(ForbiddenError) as caught:
        ada.require_read("grace")

    assert caught.value.code == "FORBIDDEN"
    assert "for player 'ada'" in str(caught.value)


def test_a_player_token_can_never_act_as_an_admin() -> None:
    ADMIN.require_admin("recording events")

    with pytest.raises(ForbiddenError, match="recording events needs an API key"):
        Principal("player", "ada").require_admin("recording events")
