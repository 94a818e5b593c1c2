"""Service settings: one typed object read from `QUESTLINE_*` environment variables.

Every value is checked once, when the settings are read, so a bad variable stops
`questline serve` with a message naming it instead of surfacing as a confusing
failure on the first request. There is no module-level instance: the app factory
receives a `Settings`, and tests build their own. `Settings()` holds the
development defaults; `Settings.from_env()` is the only reader of the environment,
and a command-line override goes through it too
(`Settings.from_env({**os.environ, "QUESTLINE_PORT": "9000"})`) so it is validated
the same way.

Database and store URLs are kept as given: their backends (`make_engine`,
`store_from_url`) know which schemes they support and say so.

Player tokens come from identity providers. The `QUESTLINE_JWT_*` variables
describe one issuer: Questline's own HS256 secret, a fixed RS256 public key, or
a provider's JWKS URL. `QUESTLINE_JWT_ISSUERS` (a JSON list) adds providers,
each with its own JWKS URL, audience and player claim; a token is matched to
its provider by its `iss` claim.
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from engine.durations import EXAMPLES, parse_duration
from engine.engine import EngineSettings
from engine.errors import ConfigurationError

Environment = Literal["development", "production"]

MIN_API_KEY_LENGTH = 16
MIN_JWT_SECRET_LENGTH = 32
_KEY_ADVICE = "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
# Values copied from a tutorial or a .env template. Refused even when long enough,
# because they are the first thing an attacker tries.
_PLACEHOLDER_MARKERS = (
    "changeme",
    "change-me",
    "change_me",
    "changethis",
    "replaceme",
    "replace-me",
    "replace_me",
    "placeholder",
    "your-secret",
    "your_secret",
    "yoursecret",
)
_PLACEHOLDERS = frozenset({"secret", "password", "jwt-secret", "jwt_secret"})
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
# Beyond a few minutes a leeway stops being clock skew and starts keeping expired
# tokens alive.
MAX_JWT_LEEWAY = timedelta(minutes=5)
_ISSUER_FIELDS = ("issuer", "jwks_url", "audience", "player_claim")
_ISSUERS_EXAMPLE = (
    '[{"issuer": "https://example.eu.auth0.com/", '
    '"jwks_url": "https://example.eu.auth0.com/.well-known/jwks.json", '
    '"audience": "https://api.example.com", "player_claim": "sub"}]'
)


@dataclass(frozen=True)
class TokenIssuer:
    """An identity provider whose player tokens are verified with the keys it
    publishes at `jwks_url`; tokens are matched to it by their `iss` claim.

    An empty `audience` means the `aud` claim is not checked; otherwise the
    token must be meant for one of them.
    """

    issuer: str
    jwks_url: str
    audience: tuple[str, ...] = ()
    player_claim: str = "sub"


@dataclass(frozen=True)
class Settings:
    store_url: str = "sqlite:///./questline.db"
    database_url: str = "sqlite:///./questline-history.db"
    seed_path: Path = Path("./seed")
    environment: Environment = "development"
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    # Secrets stay out of repr() so logging the settings never leaks them.
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    jwt_secret: str | None = field(default=None, repr=False)
    jwt_public_key: str | None = None
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    jwt_player_claim: str = "sub"
    jwt_leeway: timedelta = timedelta(seconds=30)
    jwt_issuers: tuple[TokenIssuer, ...] = ()
    default_timezone: str = "UTC"
    late_event_tolerance: timedelta = timedelta(days=7)
    future_event_tolerance: timedelta = timedelta(minutes=5)
    #: How long accepted events stay in the journal (by when they occurred).
    journal_retention: timedelta = timedelta(days=400)
    max_batch: int = 1000
    max_body_bytes: int = 1024 * 1024
    # The standard introspection query (GraphiQL, code generators) is 15 deep.
    max_query_depth: int = 15
    max_query_tokens: int = 2000
    max_subscriptions_per_connection: int = 10
    migrate_on_start: bool = True
    console_session_ttl: timedelta = timedelta(hours=8)
    #: Whether anyone may introspect the schema; otherwise only API keys (production).
    open_introspection: bool = True
    #: Deadline of each call to the counter store and to the history database.
    store_timeout: timedelta = timedelta(seconds=2)
    database_timeout: timedelta = timedelta(seconds=2)
    #: Unlocks a subscriber may fall behind before its socket is closed (4429).
    subscriber_backlog: int = 1000
    #: Time a client has to send a request's headers before its connection is closed.
    header_timeout: timedelta = timedelta(seconds=10)
    #: Journal events one `simulateProgram` call replays at most.
    simulate_max_events: int = 100_000
    #: Hosts webhook URLs may name although they resolve to a loopback, link-local
    #: or private address (outside development every such URL is refused).
    webhook_allow_hosts: tuple[str, ...] = ()
    #: The longest one delivery attempt may take, connecting included.
    webhook_timeout: timedelta = timedelta(seconds=10)
    #: Deliveries in flight at once to one endpoint, per process.
    webhook_concurrency: int = 8
    webhook_first_backoff: timedelta = timedelta(seconds=10)
    webhook_max_backoff: timedelta = timedelta(hours=1)
    #: How long a delivery is retried before it is failed (a dead letter).
    webhook_retry_for: timedelta = timedelta(hours=24)
    #: An endpoint whose every attempt failed for this long is disabled.
    webhook_disable_after: timedelta = timedelta(hours=24)
    #: How long the old secret still signs after `rotateWebhookSecret`, unless it says.
    webhook_secret_grace: timedelta = timedelta(hours=24)
    #: How often an idle sender looks for due deliveries.
    webhook_poll_interval: timedelta = timedelta(seconds=1)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        """Read and validate every `QUESTLINE_*` variable; unset or empty means default."""
        env = _Reader(environ)
        environment = env.environment("QUESTLINE_ENV")
        jwt_public_key = env.public_key("QUESTLINE_JWT_PUBLIC_KEY")
        jwt_audience = env.text("QUESTLINE_JWT_AUDIENCE")
        jwt_issuer = env.text("QUESTLINE_JWT_ISSUER")
        jwt_player_claim = env.text("QUESTLINE_JWT_PLAYER_CLAIM") or cls.jwt_player_claim
        jwt_issuers = env.token_issuers("QUESTLINE_JWT_ISSUERS", jwt_player_claim)
        jwks_url = env.jwks_url("QUESTLINE_JWT_JWKS_URL")
        if jwks_url is not None:
            if jwt_public_key is not None:
                raise ConfigurationError(
                    "set QUESTLINE_JWT_PUBLIC_KEY or QUESTLINE_JWT_JWKS_URL, not both: the JWKS "
                    "URL already publishes the provider's public keys"
                )
            if jwt_issuer is None:
                raise ConfigurationError(
                    "QUESTLINE_JWT_JWKS_URL needs QUESTLINE_JWT_ISSUER, the provider's `iss` "
                    "claim: a key set can sign tokens for other tenants too (Firebase's is "
                    "shared by every project), and the issuer is what says a token is yours"
                )
            single = TokenIssuer(
                issuer=jwt_issuer,
                jwks_url=jwks_url,
                audience=() if jwt_audience is None else (jwt_audience,),
                player_claim=jwt_player_claim,
            )
            jwt_issuers = (single, *jwt_issuers)
        _check_distinct_issuers(jwt_issuers, jwt_issuer if jwt_public_key is not None else None)
        return cls(
            store_url=env.text("QUESTLINE_STORE_URL") or cls.store_url,
            database_url=env.text("QUESTLINE_DATABASE_URL") or cls.database_url,
            seed_path=Path(env.text("QUESTLINE_SEED_PATH") or cls.seed_path),
            environment=environment,
            host=env.text("QUESTLINE_HOST") or cls.host,
            port=env.integer("QUESTLINE_PORT", cls.port, maximum=65535),
            workers=env.integer("QUESTLINE_WORKERS", cls.workers),
            api_keys=env.api_keys("QUESTLINE_API_KEYS"),
            jwt_secret=env.jwt_secret("QUESTLINE_JWT_SECRET"),
            jwt_public_key=jwt_public_key,
            jwt_audience=jwt_audience,
            jwt_issuer=jwt_issuer,
            jwt_player_claim=jwt_player_claim,
            jwt_leeway=env.duration("QUESTLINE_JWT_LEEWAY", cls.jwt_leeway, maximum=MAX_JWT_LEEWAY),
            jwt_issuers=jwt_issuers,
            default_timezone=env.timezone("QUESTLINE_DEFAULT_TIMEZONE", cls.default_timezone),
            late_event_tolerance=env.duration(
                "QUESTLINE_LATE_EVENT_TOLERANCE", cls.late_event_tolerance
            ),
            future_event_tolerance=env.duration(
                "QUESTLINE_FUTURE_EVENT_TOLERANCE", cls.future_event_tolerance
            ),
            journal_retention=env.duration("QUESTLINE_JOURNAL_RETENTION", cls.journal_retention),
            max_batch=env.integer("QUESTLINE_MAX_BATCH", cls.max_batch),
            max_body_bytes=env.integer("QUESTLINE_MAX_BODY_BYTES", cls.max_body_bytes),
            max_query_depth=env.integer("QUESTLINE_MAX_QUERY_DEPTH", cls.max_query_depth),
            max_query_tokens=env.integer("QUESTLINE_MAX_QUERY_TOKENS", cls.max_query_tokens),
            max_subscriptions_per_connection=env.integer(
                "QUESTLINE_MAX_SUBSCRIPTIONS_PER_CONNECTION", cls.max_subscriptions_per_connection
            ),
            # Migrating on start is a convenience for a laptop; in production the
            # operator runs `questline db upgrade` once, before the workers start.
            migrate_on_start=env.boolean(
                "QUESTLINE_MIGRATE_ON_START", environment == "development"
            ),
            console_session_ttl=env.duration(
                "QUESTLINE_CONSOLE_SESSION_TTL", cls.console_session_ttl
            ),
            # The committed schema.graphql is what clients generate code from;
            # introspection only helps an attacker map the API.
            open_introspection=env.boolean(
                "QUESTLINE_OPEN_INTROSPECTION", environment == "development"
            ),
            store_timeout=env.duration("QUESTLINE_STORE_TIMEOUT", cls.store_timeout),
            database_timeout=env.duration("QUESTLINE_DATABASE_TIMEOUT", cls.database_timeout),
            subscriber_backlog=env.integer("QUESTLINE_SUBSCRIBER_BACKLOG", cls.subscriber_backlog),
            header_timeout=env.duration("QUESTLINE_HEADER_TIMEOUT", cls.header_timeout),
            simulate_max_events=env.integer(
                "QUESTLINE_SIMULATE_MAX_EVENTS", cls.simulate_max_events
            ),
            webhook_allow_hosts=env.hosts("QUESTLINE_WEBHOOK_ALLOW_HOSTS"),
            webhook_timeout=env.duration("QUESTLINE_WEBHOOK_TIMEOUT", cls.webhook_timeout),
            webhook_concurrency=env.integer(
                "QUESTLINE_WEBHOOK_CONCURRENCY", cls.webhook_concurrency
            ),
            webhook_first_backoff=env.duration(
                "QUESTLINE_WEBHOOK_FIRST_BACKOFF", cls.webhook_first_backoff
            ),
            webhook_max_backoff=env.duration(
                "QUESTLINE_WEBHOOK_MAX_BACKOFF", cls.webhook_max_backoff
            ),
            webhook_retry_for=env.duration("QUESTLINE_WEBHOOK_RETRY_FOR", cls.webhook_retry_for),
            webhook_disable_after=env.duration(
                "QUESTLINE_WEBHOOK_DISABLE_AFTER", cls.webhook_disable_after
            ),
            webhook_secret_grace=env.duration(
                "QUESTLINE_WEBHOOK_SECRET_GRACE", cls.webhook_secret_grace
            ),
            webhook_poll_interval=env.duration(
                "QUESTLINE_WEBHOOK_POLL_INTERVAL", cls.webhook_poll_interval
            ),
        )

    def engine_settings(self) -> EngineSettings:
        """What the rules engine needs of these settings."""
        return EngineSettings(
            default_timezone=self.default_timezone,
            late_tolerance=self.late_event_tolerance,
            future_tolerance=self.future_event_tolerance,
            max_batch=self.max_batch,
        )

    @property
    def is_development(self) -> bool:
        return self.environment == "development"

    @property
    def is_loopback(self) -> bool:
        """Whether only this machine can reach the server."""
        return _is_loopback(self.host)

    @property
    def accepts_player_tokens(self) -> bool:
        return (
            self.jwt_secret is not None or self.jwt_public_key is not None or bool(self.jwt_issuers)
        )


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _check_distinct_issuers(
    issuers: tuple[TokenIssuer, ...], public_key_issuer: str | None
) -> None:
    """Each `iss` names one provider, so a token can be matched to its keys."""
    seen = set() if public_key_issuer is None else {public_key_issuer}
    for issuer in issuers:
        if issuer.issuer in seen:
            raise ConfigurationError(
                f"the issuer {issuer.issuer!r} is configured twice (QUESTLINE_JWT_ISSUER with "
                "QUESTLINE_JWT_PUBLIC_KEY or QUESTLINE_JWT_JWKS_URL, and QUESTLINE_JWT_ISSUERS); "
                "describe each provider once"
            )
        seen.add(issuer.issuer)


def check_serving(settings: Settings) -> None:
    """Refuse settings under which `questline serve` would be unsafe or cannot work.

    Separate from `from_env` because the same settings are fine for commands that
    do not listen (`questline db upgrade`, `questline validate`).
    """
    if not settings.is_loopback and not settings.api_keys and not settings.accepts_player_tokens:
        raise ConfigurationError(
            f"refusing to serve on {settings.host}: with no credentials configured anyone who "
            "can reach this address could use the server. Set QUESTLINE_API_KEYS (and "
            "QUESTLINE_JWT_JWKS_URL, QUESTLINE_JWT_ISSUERS, QUESTLINE_JWT_SECRET or "
            "QUESTLINE_JWT_PUBLIC_KEY for player tokens), or serve on "
            f"127.0.0.1. Never open by default on a non-loopback address; {_KEY_ADVICE}"
        )
    if settings.environment == "production" and not settings.api_keys:
        raise ConfigurationError(
            "QUESTLINE_ENV=production needs at least one key in QUESTLINE_API_KEYS: the admin "
            f"key that development mode generates is never used in production; {_KEY_ADVICE}"
        )
    if settings.workers > 1 and settings.store_url.startswith("sqlite:"):
        raise ConfigurationError(
            f"QUESTLINE_WORKERS={settings.workers} needs the Redis store: the embedded SQLite "
            f"store ({settings.store_url}) serves a single process. Set "
            "QUESTLINE_STORE_URL=redis://... or run one worker"
        )


class _Reader:
    """Parses one variable at a time, raising errors that name the variable."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def text(self, name: str) -> str | None:
        value = self._environ.get(name, "").strip()
        return value or None

    def environment(self, name: str) -> Environment:
        value = (self.text(name) or "development").lower()
        if value == "development":
            return "development"
        if value == "production":
            return "production"
        raise ConfigurationError(f"{name} must be 'development' or 'production', got {value!r}")

    def integer(self, name: str, default: int, minimum: int = 1, maximum: int | None = None) -> int:
        value = self.text(name)
        if value is None:
            return default
        accepted = (
            f"an integer between {minimum} and {maximum}"
            if maximum is not None
            else f"an integer of at least {minimum}"
        )
        try:
            number = int(value)
        except ValueError:
            number = None
        if number is None or number < minimum or (maximum is not None and number > maximum):
            raise ConfigurationError(f"{name} must be {accepted}, got {value!r}")
        return number

    def boolean(self, name: str, default: bool) -> bool:
        value = self.text(name)
        if value is None:
            return default
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise ConfigurationError(
            f"{name} must be true or false (also accepted: 1/0, yes/no, on/off), got {value!r}"
        )

    def duration(
        self, name: str, default: timedelta, maximum: timedelta | None = None
    ) -> timedelta:
        value = self.text(name)
        if value is None:
            return default
        try:
            duration = timedelta(seconds=int(value)) if value.isdigit() else parse_duration(value)
        except ValueError:
            raise ConfigurationError(
                f"{name} must be {EXAMPLES} (a bare number is seconds), got {value!r}"
            ) from None
        if maximum is not None and duration > maximum:
            limit = int(maximum.total_seconds())
            raise ConfigurationError(f"{name} must be at most {limit} seconds, got {value!r}")
        return duration

    def hosts(self, name: str) -> tuple[str, ...]:
        """Comma-separated host names or IP addresses, compared without case."""
        value = self.text(name)
        if value is None:
            return ()
        hosts = tuple(host.strip().lower().strip("[]") for host in value.split(","))
        for host in hosts:
            if not host or any(c in host for c in "/@ ") or (":" in host and not _is_ip(host)):
                raise ConfigurationError(
                    f"{name} must list host names or IP addresses separated by commas, such as "
                    f"hooks.internal,10.0.0.5 (no scheme, port or path), got {host!r}"
                )
        return hosts

    def timezone(self, name: str, default: str) -> str:
        value = self.text(name)
        if value is None:
            return default
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigurationError(
                f"{name} must be an IANA time zone such as UTC or Europe/Paris, got {value!r}"
            ) from None
        return value

    def api_keys(self, name: str) -> tuple[str, ...]:
        keys = tuple(key.strip() for key in (self.text(name) or "").split(",") if key.strip())
        for position, key in enumerate(keys, start=1):
            # The key itself never appears in the message: it is a secret.
            if len(key) < MIN_API_KEY_LENGTH:
                raise ConfigurationError(
                    f"{name}: key {position} of {len(keys)} has {len(key)} characters; every "
                    f"key must have at least {MIN_API_KEY_LENGTH}; {_KEY_ADVICE}"
                )
        return keys

    def jwt_secret(self, name: str) -> str | None:
        secret = self.text(name)
        if secret is None:
            return None
        lowered = secret.lower()
        if lowered in _PLACEHOLDERS or any(marker in lowered for marker in _PLACEHOLDER_MARKERS):
            raise ConfigurationError(
                f"{name} is a placeholder value; set a random secret of at least "
                f"{MIN_JWT_SECRET_LENGTH} characters; {_KEY_ADVICE}"
            )
        if len(secret) < MIN_JWT_SECRET_LENGTH:
            raise ConfigurationError(
                f"{name} has {len(secret)} characters; an HS256 secret needs at least "
                f"{MIN_JWT_SECRET_LENGTH}; {_KEY_ADVICE}"
            )
        if len(set(secret)) < 8:
            raise ConfigurationError(
                f"{name} repeats a handful of characters; use a random secret; {_KEY_ADVICE}"
            )
        return secret

    def public_key(self, name: str) -> str | None:
        """The RS256 public key PEM, given inline or as `<name>_FILE`, checked to load."""
        file_name = f"{name}_FILE"
        inline, path = self.text(name), self.text(file_name)
        if inline is not None and path is not None:
            raise ConfigurationError(f"set {name} or {file_name}, not both")
        if path is not None:
            try:
                pem = Path(path).read_text()
            except OSError as error:
                raise ConfigurationError(
                    f"{file_name} cannot be read: {error.strerror} ({path!r})"
                ) from None
            source = file_name
        elif inline is not None:
            # .env files and container orchestrators often flatten newlines to "\n".
            pem = inline.replace("\\n", "\n")
            source = name
        else:
            return None
        try:
            key = load_pem_public_key(pem.encode())
        except (ValueError, UnsupportedAlgorithm):
            key = None
        if not isinstance(key, RSAPublicKey):
            raise ConfigurationError(
                f"{source} must be a PEM-encoded RSA public key "
                "(a block starting with -----BEGIN PUBLIC KEY-----)"
            )
        return pem

    def jwks_url(self, name: str) -> str | None:
        url = self.text(name)
        if url is not None:
            _check_jwks_url(name, url)
        return url

    def token_issuers(self, name: str, default_claim: str) -> tuple[TokenIssuer, ...]:
        """The providers of `name`, a JSON list of objects (see `_ISSUERS_EXAMPLE`)."""
        value = self.text(name)
        if value is None:
            return ()
        try:
            entries = json.loads(value)
        except json.JSONDecodeError as error:
            raise ConfigurationError(
                f"{name} is not valid JSON ({error.msg} at character {error.pos}); "
                f"write a list such as {_ISSUERS_EXAMPLE}"
            ) from None
        if not isinstance(entries, list) or not entries:
            raise ConfigurationError(
                f"{name} must be a non-empty JSON list of providers, such as {_ISSUERS_EXAMPLE}"
            )
        return tuple(
            _token_issuer(f"{name} entry {number} of {len(entries)}", entry, default_claim)
            for number, entry in enumerate(entries, start=1)
        )


def _token_issuer(where: str, entry: Any, default_claim: str) -> TokenIssuer:
    if not isinstance(entry, dict):
        raise ConfigurationError(
            f"{where} must be an object with {', '.join(_ISSUER_FIELDS)}, got {entry!r}"
        )
    unknown = sorted(set(entry) - set(_ISSUER_FIELDS))
    if unknown:
        raise ConfigurationError(
            f"{where} has unknown field(s) {', '.join(map(repr, unknown))}; the fields are "
            f"{', '.join(_ISSUER_FIELDS)}"
        )
    for required in ("issuer", "jwks_url"):
        if not isinstance(entry.get(required), str) or not entry[required].strip():
            raise ConfigurationError(f"{where} needs {required!r}, a non-empty string")
    issuer = entry["issuer"].strip()
    where = f"{where} ({issuer})"
    jwks_url = entry["jwks_url"].strip()
    _check_jwks_url(f"{where}: jwks_url", jwks_url)
    audience = entry.get("audience", [])
    if isinstance(audience, str):
        audience = [audience]
    if not isinstance(audience, list) or not all(
        isinstance(item, str) and item.strip() for item in audience
    ):
        raise ConfigurationError(
            f"{where}: 'audience' must be a string or a list of strings, got {audience!r}"
        )
    claim = entry.get("player_claim", default_claim)
    if not isinstance(claim, str) or not claim.strip():
        raise ConfigurationError(
            f"{where}: 'player_claim' must name the claim that holds the player id, "
            f"such as 'sub', got {claim!r}"
        )
    return TokenIssuer(
        issuer=issuer,
        jwks_url=jwks_url,
        audience=tuple(item.strip() for item in audience),
        player_claim=claim.strip(),
    )


def _check_jwks_url(name: str, url: str) -> None:
    """Keys fetched over plain HTTP could be swapped on the way: HTTPS, except on loopback."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if not host or not (parts.scheme == "https" or (parts.scheme == "http" and _is_loopback(host))):
        raise ConfigurationError(
            f"{name} must be an https:// URL (http:// only on localhost), got {url!r}"
        )
