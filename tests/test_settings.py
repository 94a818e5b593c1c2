from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from app.settings import Settings, TokenIssuer, check_serving
from engine.errors import ConfigurationError

SECRET = "k3Jq9vXw2LmN8pRt5YzA7cBd4FgH6jKs"
API_KEY = "s3rv3r-to-s3rv3r-key-0001"


def public_pem(private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture(scope="module")
def rsa_public_pem() -> str:
    return public_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))


def refused(environ: dict[str, str]) -> str:
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env(environ)
    return str(caught.value)


def test_an_empty_environment_gives_the_development_defaults() -> None:
    settings = Settings.from_env({})

    assert settings == Settings()
    assert settings.store_url == "sqlite:///./questline.db"
    assert settings.database_url == "sqlite:///./questline-history.db"
    assert settings.seed_path == Path("./seed")
    assert settings.environment == "development"
    assert (settings.host, settings.port, settings.workers) == ("127.0.0.1", 8000, 1)
    assert settings.api_keys == ()
    assert settings.jwt_secret is None
    assert settings.jwt_public_key is None
    assert settings.jwt_player_claim == "sub"
    assert settings.jwt_leeway == timedelta(seconds=30)
    assert settings.jwt_issuers == ()
    assert settings.default_timezone == "UTC"
    assert settings.late_event_tolerance == timedelta(days=7)
    assert settings.future_event_tolerance == timedelta(minutes=5)
    assert settings.max_batch == 1000
    assert settings.max_body_bytes == 1024 * 1024
    assert settings.max_query_depth == 15
    assert settings.max_query_tokens == 2000
    assert settings.max_subscriptions_per_connection == 10
    assert settings.migrate_on_start is True
    assert settings.open_introspection is True
    assert settings.store_timeout == settings.database_timeout == timedelta(seconds=2)
    assert settings.subscriber_backlog == 1000
    assert settings.header_timeout == timedelta(seconds=10)


def test_production_closes_introspection_unless_told_otherwise() -> None:
    production = {"QUESTLINE_ENV": "production"}
    assert Settings.from_env(production).open_introspection is False
    opened = {**production, "QUESTLINE_OPEN_INTROSPECTION": "true"}
    assert Settings.from_env(opened).open_introspection is True


def test_every_variable_is_read() -> None:
    settings = Settings.from_env(
        {
            "QUESTLINE_STORE_URL": "redis://cache:6379/2",
            "QUESTLINE_DATABASE_URL": "postgresql+psycopg://questline@db/questline",
            "QUESTLINE_SEED_PATH": "/srv/seed",
            "QUESTLINE_ENV": "production",
            "QUESTLINE_HOST": "0.0.0.0",
            "QUESTLINE_PORT": "9000",
            "QUESTLINE_WORKERS": "4",
            "QUESTLINE_API_KEYS": f" {API_KEY} , another-key-of-16-chars,",
            "QUESTLINE_JWT_SECRET": SECRET,
            "QUESTLINE_JWT_AUDIENCE": "mobile",
            "QUESTLINE_JWT_ISSUER": "https://auth.example.com/",
            "QUESTLINE_JWT_PLAYER_CLAIM": "user_id",
            "QUESTLINE_JWT_LEEWAY": "1m",
            "QUESTLINE_DEFAULT_TIMEZONE": "Europe/Paris",
            "QUESTLINE_LATE_EVENT_TOLERANCE": "12h",
            "QUESTLINE_FUTURE_EVENT_TOLERANCE": "90",
            "QUESTLINE_MAX_BATCH": "500",
            "QUESTLINE_MAX_BODY_BYTES": "2048",
            "QUESTLINE_MAX_QUERY_DEPTH": "8",
            "QUESTLINE_MAX_QUERY_TOKENS": "300",
            "QUESTLINE_MAX_SUBSCRIPTIONS_PER_CONNECTION": "3",
            "QUESTLINE_MIGRATE_ON_START": "yes",
            "QUESTLINE_CONSOLE_SESSION_TTL": "30m",
            "QUESTLINE_OPEN_INTROSPECTION": "on",
            "QUESTLINE_STORE_TIMEOUT": "500ms",
            "QUESTLINE_DATABASE_TIMEOUT": "3s",
            "QUESTLINE_SUBSCRIBER_BACKLOG": "50",
            "QUESTLINE_HEADER_TIMEOUT": "5",
        }
    )

    assert settings == Settings(
        store_url="redis://cache:6379/2",
        database_url="postgresql+psycopg://questline@db/questline",
        seed_path=Path("/srv/seed"),
        environment="production",
        host="0.0.0.0",
        port=9000,
        workers=4,
        api_keys=(API_KEY, "another-key-of-16-chars"),
        jwt_secret=SECRET,
        jwt_audience="mobile",
        jwt_issuer="https://auth.example.com/",
        jwt_player_claim="user_id",
        jwt_leeway=timedelta(minutes=1),
        default_timezone="Europe/Paris",
        late_event_tolerance=timedelta(hours=12),
        future_event_tolerance=timedelta(seconds=90),
        max_batch=500,
        max_body_bytes=2048,
        max_query_depth=8,
        max_query_tokens=300,
        max_subscriptions_per_connection=3,
        migrate_on_start=True,
        console_session_ttl=timedelta(minutes=30),
        open_introspection=True,
        store_timeout=timedelta(milliseconds=500),
        database_timeout=timedelta(seconds=3),
        subscriber_backlog=50,
        header_timeout=timedelta(seconds=5),
    )


def test_empty_variables_count_as_unset() -> None:
    assert Settings.from_env({"QUESTLINE_PORT": "", "QUESTLINE_JWT_SECRET": "  "}) == Settings()


def test_variables_are_named_in_capitals_only() -> None:
    assert Settings.from_env({"questline_port": "9000"}).port == 8000
    assert Settings.from_env({"QUESTLINE_PORT": "9000"}).port == 9000


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7d", timedelta(days=7)),
        ("12h", timedelta(hours=12)),
        ("30m", timedelta(minutes=30)),
        ("45s", timedelta(seconds=45)),
        ("2w", timedelta(weeks=2)),
        ("500ms", timedelta(milliseconds=500)),
        ("3600", timedelta(hours=1)),
        ("0", timedelta(0)),
    ],
)
def test_tolerances_accept_seconds_or_a_unit_suffix(text: str, expected: timedelta) -> None:
    settings = Settings.from_env({"QUESTLINE_LATE_EVENT_TOLERANCE": text})

    assert settings.late_event_tolerance == expected


@pytest.mark.parametrize(
    ("environment", "expected"), [("development", True), ("production", False)]
)
def test_migrating_on_start_defaults_to_on_in_development_only(
    environment: str, expected: bool
) -> None:
    settings = Settings.from_env({"QUESTLINE_ENV": environment})

    assert settings.migrate_on_start is expected


@pytest.mark.parametrize(("text", "expected"), [("0", False), ("Off", False), ("TRUE", True)])
def test_migrate_on_start_can_be_set_explicitly(text: str, expected: bool) -> None:
    assert Settings.from_env({"QUESTLINE_MIGRATE_ON_START": text}).migrate_on_start is expected


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "QUESTLINE_PORT",
            "abc",
            "QUESTLINE_PORT must be an integer between 1 and 65535, got 'abc'",
        ),
        ("QUESTLINE_PORT", "0", "QUESTLINE_PORT must be an integer between 1 and 65535, got '0'"),
        (
            "QUESTLINE_PORT",
            "70000",
            "QUESTLINE_PORT must be an integer between 1 and 65535, got '70000'",
        ),
        ("QUESTLINE_WORKERS", "0", "QUESTLINE_WORKERS must be an integer of at least 1, got '0'"),
        ("QUESTLINE_MAX_BATCH", "1.5", "QUESTLINE_MAX_BATCH must be an integer of at least 1"),
        ("QUESTLINE_MAX_BODY_BYTES", "-1", "QUESTLINE_MAX_BODY_BYTES must be an integer"),
        ("QUESTLINE_MAX_QUERY_DEPTH", "deep", "QUESTLINE_MAX_QUERY_DEPTH must be an integer"),
        ("QUESTLINE_MAX_QUERY_TOKENS", "0", "QUESTLINE_MAX_QUERY_TOKENS must be an integer"),
        (
            "QUESTLINE_MAX_SUBSCRIPTIONS_PER_CONNECTION",
            "many",
            "QUESTLINE_MAX_SUBSCRIPTIONS_PER_CONNECTION must be an integer",
        ),
        ("QUESTLINE_ENV", "staging", "QUESTLINE_ENV must be 'development' or 'production'"),
        (
            "QUESTLINE_MIGRATE_ON_START",
            "maybe",
            "QUESTLINE_MIGRATE_ON_START must be true or false",
        ),
        (
            "QUESTLINE_LATE_EVENT_TOLERANCE",
            "1 week",
            "QUESTLINE_LATE_EVENT_TOLERANCE must be a positive whole number and a unit",
        ),
        (
            "QUESTLINE_FUTURE_EVENT_TOLERANCE",
            "-5m",
            "QUESTLINE_FUTURE_EVENT_TOLERANCE must be a positive whole number and a unit",
        ),
        (
            "QUESTLINE_DEFAULT_TIMEZONE",
            "Mars/Olympus",
            "QUESTLINE_DEFAULT_TIMEZONE must be an IANA time zone such as UTC or Europe/Paris, "
            "got 'Mars/Olympus'",
        ),
        ("QUESTLINE_DEFAULT_TIMEZONE", "../etc/passwd", "QUESTLINE_DEFAULT_TIMEZONE must be"),
    ],
)
def test_an_invalid_value_names_the_variable_and_what_is_accepted(
    name: str, value: str, message: str
) -> None:
    assert message in refused({name: value})


def test_a_short_api_key_is_refused_without_echoing_it() -> None:
    message = refused({"QUESTLINE_API_KEYS": f"{API_KEY},tiny-key"})

    assert "QUESTLINE_API_KEYS: key 2 of 2 has 8 characters" in message
    assert "at least 16" in message
    assert "tiny-key" not in message


@pytest.mark.parametrize(
    "secret",
    [
        "changeme",
        "secret",
        "CHANGEME-please-change-me-before-prod",
        "replace-me-with-a-real-secret-xyz",
    ],
)
def test_a_placeholder_jwt_secret_is_refused(secret: str) -> None:
    message = refused({"QUESTLINE_JWT_SECRET": secret})

    assert "QUESTLINE_JWT_SECRET is a placeholder value" in message
    assert repr(secret) not in message


def test_a_short_jwt_secret_is_refused() -> None:
    message = refused({"QUESTLINE_JWT_SECRET": "a1b2c3d4e5f6g7h8"})

    assert "QUESTLINE_JWT_SECRET has 16 characters; an HS256 secret needs at least 32" in message


def test_a_repetitive_jwt_secret_is_refused() -> None:
    assert "repeats a handful of characters" in refused({"QUESTLINE_JWT_SECRET": "ab" * 20})


def test_secrets_stay_out_of_the_repr() -> None:
    settings = Settings.from_env({"QUESTLINE_API_KEYS": API_KEY, "QUESTLINE_JWT_SECRET": SECRET})

    assert API_KEY not in repr(settings)
    assert SECRET not in repr(settings)


def test_the_rs256_public_key_is_read_inline_with_escaped_newlines(rsa_public_pem: str) -> None:
    flattened = rsa_public_pem.replace("\n", "\\n")

    settings = Settings.from_env({"QUESTLINE_JWT_PUBLIC_KEY": flattened})

    assert settings.jwt_public_key == rsa_public_pem
    assert settings.accepts_player_tokens


def test_the_rs256_public_key_is_read_from_a_file(rsa_public_pem: str, tmp_path: Path) -> None:
    path = tmp_path / "jwt.pem"
    path.write_text(rsa_public_pem)

    settings = Settings.from_env({"QUESTLINE_JWT_PUBLIC_KEY_FILE": str(path)})

    assert settings.jwt_public_key == rsa_public_pem


def test_a_missing_public_key_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"

    message = refused({"QUESTLINE_JWT_PUBLIC_KEY_FILE": str(missing)})

    assert message.startswith("QUESTLINE_JWT_PUBLIC_KEY_FILE cannot be read: No such file")
    assert str(missing) in message


def test_a_public_key_given_both_inline_and_as_a_file_is_refused(rsa_public_pem: str) -> None:
    message = refused(
        {"QUESTLINE_JWT_PUBLIC_KEY": rsa_public_pem, "QUESTLINE_JWT_PUBLIC_KEY_FILE": "/k.pem"}
    )

    assert message == "set QUESTLINE_JWT_PUBLIC_KEY or QUESTLINE_JWT_PUBLIC_KEY_FILE, not both"


@pytest.mark.parametrize(
    "pem",
    [
        "not a key",
        public_pem(ec.generate_private_key(ec.SECP256R1())),
    ],
    ids=["garbage", "an EC key"],
)
def test_a_public_key_that_is_not_rsa_pem_is_refused(pem: str) -> None:
    message = refused({"QUESTLINE_JWT_PUBLIC_KEY": pem})

    assert message.startswith("QUESTLINE_JWT_PUBLIC_KEY must be a PEM-encoded RSA public key")


AUTH0 = "https://questline-demo.eu.auth0.com/"
AUTH0_JWKS = "https://questline-demo.eu.auth0.com/.well-known/jwks.json"
FIREBASE = "https://securetoken.google.com/questline-demo"
FIREBASE_JWKS = (
    "https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com"
)


def issuers(*entries: dict[str, object]) -> str:
    return json.dumps(list(entries))


def test_one_provider_is_described_by_the_single_jwt_variables() -> None:
    settings = Settings.from_env(
        {
            "QUESTLINE_JWT_JWKS_URL": AUTH0_JWKS,
            "QUESTLINE_JWT_ISSUER": AUTH0,
            "QUESTLINE_JWT_AUDIENCE": "https://api.questline.example",
            "QUESTLINE_JWT_PLAYER_CLAIM": "https://questline.example/player",
        }
    )

    assert settings.jwt_issuers == (
        TokenIssuer(
            AUTH0,
            AUTH0_JWKS,
            ("https://api.questline.example",),
            "https://questline.example/player",
        ),
    )
    assert settings.accepts_player_tokens


def test_several_providers_are_a_json_list_matched_by_issuer() -> None:
    settings = Settings.from_env(
        {
            "QUESTLINE_JWT_JWKS_URL": AUTH0_JWKS,
            "QUESTLINE_JWT_ISSUER": AUTH0,
            "QUESTLINE_JWT_PLAYER_CLAIM": "uid",
            "QUESTLINE_JWT_ISSUERS": issuers(
                {"issuer": FIREBASE, "jwks_url": FIREBASE_JWKS, "audience": "questline-demo"},
                {
                    "issuer": "http://localhost:8080/realms/game",
                    "jwks_url": "http://localhost:8080/realms/game/protocol/openid-connect/certs",
                    "audience": ["ios", "android"],
                    "player_claim": "preferred_username",
                },
            ),
        }
    )

    assert settings.jwt_issuers == (
        TokenIssuer(AUTH0, AUTH0_JWKS, (), "uid"),
        TokenIssuer(FIREBASE, FIREBASE_JWKS, ("questline-demo",), "uid"),
        TokenIssuer(
            "http://localhost:8080/realms/game",
            "http://localhost:8080/realms/game/protocol/openid-connect/certs",
            ("ios", "android"),
            "preferred_username",
        ),
    )


def test_a_jwks_url_needs_the_issuer() -> None:
    message = refused({"QUESTLINE_JWT_JWKS_URL": AUTH0_JWKS})

    assert message.startswith("QUESTLINE_JWT_JWKS_URL needs QUESTLINE_JWT_ISSUER")
    assert "Firebase" in message


def test_a_jwks_url_and_a_public_key_are_not_both_accepted(rsa_public_pem: str) -> None:
    message = refused(
        {
            "QUESTLINE_JWT_JWKS_URL": AUTH0_JWKS,
            "QUESTLINE_JWT_ISSUER": AUTH0,
            "QUESTLINE_JWT_PUBLIC_KEY": rsa_public_pem,
        }
    )

    assert message.startswith("set QUESTLINE_JWT_PUBLIC_KEY or QUESTLINE_JWT_JWKS_URL, not both")


@pytest.mark.parametrize(
    "url",
    [
        "http://auth.example.com/.well-known/jwks.json",
        "ftp://auth.example.com/jwks.json",
        "auth.example.com/.well-known/jwks.json",
        "https://",
    ],
)
def test_keys_are_fetched_over_https_only(url: str) -> None:
    message = refused({"QUESTLINE_JWT_JWKS_URL": url, "QUESTLINE_JWT_ISSUER": AUTH0})

    assert message == (
        f"QUESTLINE_JWT_JWKS_URL must be an https:// URL (http:// only on localhost), got {url!r}"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("[{issuer: x}]", "QUESTLINE_JWT_ISSUERS is not valid JSON (Expecting property name"),
        ("{}", "QUESTLINE_JWT_ISSUERS must be a non-empty JSON list of providers, such as [{"),
        ("[]", "QUESTLINE_JWT_ISSUERS must be a non-empty JSON list"),
        ('["https://a/"]', "QUESTLINE_JWT_ISSUERS entry 1 of 1 must be an object with issuer, "),
        (
            issuers({"issuer": AUTH0, "jwksUrl": AUTH0_JWKS}),
            "QUESTLINE_JWT_ISSUERS entry 1 of 1 has unknown field(s) 'jwksUrl'; the fields are "
            "issuer, jwks_url, audience, player_claim",
        ),
        (
            issuers({"issuer": AUTH0, "jwks_url": AUTH0_JWKS}, {"jwks_url": FIREBASE_JWKS}),
            "QUESTLINE_JWT_ISSUERS entry 2 of 2 needs 'issuer', a non-empty string",
        ),
        (
            issuers({"issuer": AUTH0}),
            "QUESTLINE_JWT_ISSUERS entry 1 of 1 needs 'jwks_url', a non-empty string",
        ),
        (
            issuers({"issuer": AUTH0, "jwks_url": "http://auth0.example/jwks.json"}),
            f"QUESTLINE_JWT_ISSUERS entry 1 of 1 ({AUTH0}): jwks_url must be an https:// URL",
        ),
        (
            issuers({"issuer": AUTH0, "jwks_url": AUTH0_JWKS, "audience": ["api", 3]}),
            f"QUESTLINE_JWT_ISSUERS entry 1 of 1 ({AUTH0}): 'audience' must be a string or a "
            "list of strings, got ['api', 3]",
        ),
        (
            issuers({"issuer": AUTH0, "jwks_url": AUTH0_JWKS, "player_claim": ""}),
            f"QUESTLINE_JWT_ISSUERS entry 1 of 1 ({AUTH0}): 'player_claim' must name the claim",
        ),
        (
            issuers(
                {"issuer": AUTH0, "jwks_url": AUTH0_JWKS},
                {"issuer": AUTH0, "jwks_url": FIREBASE_JWKS},
            ),
            f"the issuer {AUTH0!r} is configured twice",
        ),
    ],
    ids=[
        "not json",
        "not a list",
        "empty",
        "not an object",
        "misspelt field",
        "no issuer",
        "no jwks_url",
        "plain http",
        "bad audience",
        "empty claim",
        "same issuer twice",
    ],
)
def test_a_bad_issuer_list_says_what_to_fix(value: str, expected: str) -> None:
    assert refused({"QUESTLINE_JWT_ISSUERS": value}).startswith(expected)


def test_a_provider_configured_twice_is_refused(rsa_public_pem: str) -> None:
    listed = issuers({"issuer": AUTH0, "jwks_url": AUTH0_JWKS})

    for environ in (
        {"QUESTLINE_JWT_JWKS_URL": AUTH0_JWKS, "QUESTLINE_JWT_ISSUER": AUTH0},
        {"QUESTLINE_JWT_PUBLIC_KEY": rsa_public_pem, "QUESTLINE_JWT_ISSUER": AUTH0},
    ):
        message = refused({**environ, "QUESTLINE_JWT_ISSUERS": listed})
        assert message.startswith(f"the issuer {AUTH0!r} is configured twice")


def test_the_leeway_is_a_duration_of_a_few_minutes_at_most() -> None:
    assert Settings.from_env({"QUESTLINE_JWT_LEEWAY": "0"}).jwt_leeway == timedelta(0)
    assert Settings.from_env({"QUESTLINE_JWT_LEEWAY": "5m"}).jwt_leeway == timedelta(minutes=5)

    assert refused({"QUESTLINE_JWT_LEEWAY": "1h"}) == (
        "QUESTLINE_JWT_LEEWAY must be at most 300 seconds, got '1h'"
    )


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.20", False),
        ("questline.internal", False),
    ],
)
def test_loopback_hosts_are_recognised(host: str, expected: bool) -> None:
    assert Settings(host=host).is_loopback is expected


def test_development_on_loopback_may_serve_without_credentials() -> None:
    check_serving(Settings())


def test_a_non_loopback_address_without_credentials_is_refused() -> None:
    with pytest.raises(ConfigurationError) as caught:
        check_serving(Settings(host="0.0.0.0"))

    message = str(caught.value)
    assert message.startswith("refusing to serve on 0.0.0.0")
    assert "QUESTLINE_API_KEYS" in message
    assert "never open by default on a non-loopback address" in message.lower()


@pytest.mark.parametrize(
    "settings",
    [
        Settings(host="0.0.0.0", api_keys=(API_KEY,)),
        Settings(host="0.0.0.0", jwt_secret=SECRET),
        Settings(host="0.0.0.0", jwt_issuers=(TokenIssuer(AUTH0, AUTH0_JWKS),)),
    ],
    ids=["an api key", "a jwt secret", "an identity provider"],
)
def test_a_non_loopback_address_with_credentials_may_serve(settings: Settings) -> None:
    check_serving(settings)


def test_production_without_api_keys_is_refused_even_on_loopback() -> None:
    settings = Settings(environment="production", jwt_secret=SECRET)

    with pytest.raises(ConfigurationError, match="QUESTLINE_ENV=production needs at least one key"):
        check_serving(settings)


def test_production_with_an_api_key_may_serve() -> None:
    check_serving(Settings(environment="production", host="0.0.0.0", api_keys=(API_KEY,)))


def test_several_workers_on_the_sqlite_store_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="QUESTLINE_WORKERS=2 needs the Redis store"):
        check_serving(Settings(workers=2))


def test_several_workers_on_the_redis_store_may_serve() -> None:
    check_serving(Settings(workers=2, store_url="redis://127.0.0.1:6380/0"))
