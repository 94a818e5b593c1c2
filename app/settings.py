"""Service settings: one typed object read from `QUESTLINE_*` environment variables.

`Settings` is a pydantic-settings model: each field is read from the variable
named `QUESTLINE_` and the field's name in capitals, and checked by the
validator its type carries, once, when the settings are read, so a bad
variable stops `questline serve` with a message naming it instead of surfacing
as a confusing failure on the first request. There is no module-level
instance: the app factory receives a `Settings`, and tests build their own.
`Settings()` holds the development defaults and never reads the environment;
`Settings.from_env()` is the only reader of it, and a command-line override
goes through it too (`Settings.from_env({**os.environ, "QUESTLINE_PORT": "9000"})`)
so it is validated the same way. Durations follow `engine.durations` (a bare
number is seconds).

Database and store URLs are kept as given: their backends (`make_database`,
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
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from pydantic import (
    AliasChoices,
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
)
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from engine.durations import EXAMPLES, parse_duration
from engine.engine import EngineSettings
from engine.errors import ConfigurationError

Environment = Literal["development", "production"]

PREFIX = "QUESTLINE_"
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
#: The variables not named after a field.
_ENV = f"{PREFIX}ENV"
_PUBLIC_KEY_FILE = f"{PREFIX}JWT_PUBLIC_KEY_FILE"
_JWKS_URL = f"{PREFIX}JWT_JWKS_URL"


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


# Validators of values read from variables. Each takes the text as written
# (values given in Python pass through to pydantic's own checks, bounds aside)
# and raises ValueError with the whole message, naming the variable.


def _variable(info: ValidationInfo) -> str:
    """The variable a value was read from: the field's, unless `from_env` says
    it came from another one (`QUESTLINE_JWT_PUBLIC_KEY_FILE`)."""
    field = info.field_name or ""
    origins: Mapping[str, str] = info.context or {}
    return origins.get(field, PREFIX + field.upper())


def _environment(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    if value.lower() not in ("development", "production"):
        raise ValueError(f"{_ENV} must be 'development' or 'production', got {value.lower()!r}")
    return value.lower()


def _integer(maximum: int | None = None) -> BeforeValidator:
    """A whole number from 1 (to `maximum`)."""

    def check(value: Any, info: ValidationInfo) -> Any:
        try:
            number = int(value) if isinstance(value, str) else value
        except ValueError:
            number = None
        if isinstance(number, int) and number >= 1 and (maximum is None or number <= maximum):
            return number
        accepted = (
            f"an integer between 1 and {maximum}"
            if maximum is not None
            else "an integer of at least 1"
        )
        raise ValueError(f"{_variable(info)} must be {accepted}, got {value!r}")

    return BeforeValidator(check)


def _boolean(value: Any, info: ValidationInfo) -> Any:
    if not isinstance(value, str):
        return value
    if value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE
    raise ValueError(
        f"{_variable(info)} must be true or false (also accepted: 1/0, yes/no, on/off), "
        f"got {value!r}"
    )


def _duration(maximum: timedelta | None = None) -> BeforeValidator:
    """A duration in `engine.durations`' grammar, or a bare number of seconds."""

    def check(value: Any, info: ValidationInfo) -> Any:
        duration = value
        if isinstance(value, str):
            try:
                duration = (
                    timedelta(seconds=int(value)) if value.isdigit() else parse_duration(value)
                )
            except ValueError:
                raise ValueError(
                    f"{_variable(info)} must be {EXAMPLES} (a bare number is seconds), "
                    f"got {value!r}"
                ) from None
        if maximum is not None and isinstance(duration, timedelta) and duration > maximum:
            limit = int(maximum.total_seconds())
            raise ValueError(f"{_variable(info)} must be at most {limit} seconds, got {value!r}")
        return duration

    return BeforeValidator(check)


def _hosts(value: Any, info: ValidationInfo) -> Any:
    """Comma-separated host names or IP addresses, compared without case."""
    if not isinstance(value, str):
        return value
    hosts = tuple(host.strip().lower().strip("[]") for host in value.split(","))
    for host in hosts:
        if not host or any(c in host for c in "/@ ") or (":" in host and not _is_ip(host)):
            raise ValueError(
                f"{_variable(info)} must list host names or IP addresses separated by commas, "
                f"such as hooks.internal,10.0.0.5 (no scheme, port or path), got {host!r}"
            )
    return hosts


def _timezone(value: Any, info: ValidationInfo) -> Any:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(
            f"{_variable(info)} must be an IANA time zone such as UTC or Europe/Paris, "
            f"got {value!r}"
        ) from None
    return value


def _api_keys(value: Any, info: ValidationInfo) -> Any:
    if not isinstance(value, str):
        return value
    keys = tuple(key.strip() for key in value.split(",") if key.strip())
    for position, key in enumerate(keys, start=1):
        # The key itself never appears in the message: it is a secret.
        if len(key) < MIN_API_KEY_LENGTH:
            raise ValueError(
                f"{_variable(info)}: key {position} of {len(keys)} has {len(key)} characters; "
                f"every key must have at least {MIN_API_KEY_LENGTH}; {_KEY_ADVICE}"
            )
    return keys


def _jwt_secret(value: Any, info: ValidationInfo) -> Any:
    if not isinstance(value, str):
        return value
    name, lowered = _variable(info), value.lower()
    if lowered in _PLACEHOLDERS or any(marker in lowered for marker in _PLACEHOLDER_MARKERS):
        raise ValueError(
            f"{name} is a placeholder value; set a random secret of at least "
            f"{MIN_JWT_SECRET_LENGTH} characters; {_KEY_ADVICE}"
        )
    if len(value) < MIN_JWT_SECRET_LENGTH:
        raise ValueError(
            f"{name} has {len(value)} characters; an HS256 secret needs at least "
            f"{MIN_JWT_SECRET_LENGTH}; {_KEY_ADVICE}"
        )
    if len(set(value)) < 8:
        raise ValueError(
            f"{name} repeats a handful of characters; use a random secret; {_KEY_ADVICE}"
        )
    return value


def _public_key(value: Any, info: ValidationInfo) -> Any:
    """An RS256 public key PEM, checked to load."""
    if not isinstance(value, str):
        return value
    # .env files and container orchestrators often flatten newlines to "\n".
    pem = value.replace("\\n", "\n")
    try:
        key = load_pem_public_key(pem.encode())
    except (ValueError, UnsupportedAlgorithm):
        key = None
    if not isinstance(key, RSAPublicKey):
        raise ValueError(
            f"{_variable(info)} must be a PEM-encoded RSA public key "
            "(a block starting with -----BEGIN PUBLIC KEY-----)"
        )
    return pem


def _token_issuers(value: Any, info: ValidationInfo) -> Any:
    """The providers of a JSON list of objects (see `_ISSUERS_EXAMPLE`), whose
    player claim is QUESTLINE_JWT_PLAYER_CLAIM's unless they say."""
    if not isinstance(value, str):
        return value
    name = _variable(info)
    try:
        entries = json.loads(value)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{name} is not valid JSON ({error.msg} at character {error.pos}); "
            f"write a list such as {_ISSUERS_EXAMPLE}"
        ) from None
    if not isinstance(entries, list) or not entries:
        raise ValueError(
            f"{name} must be a non-empty JSON list of providers, such as {_ISSUERS_EXAMPLE}"
        )
    default_claim = info.data.get("jwt_player_claim", "sub")
    return tuple(
        _token_issuer(f"{name} entry {number} of {len(entries)}", entry, default_claim)
        for number, entry in enumerate(entries, start=1)
    )


Count = Annotated[int, _integer()]
Duration = Annotated[timedelta, _duration()]


class Settings(BaseSettings):
    """Frozen, so the settings a worker started with are the ones it keeps;
    derive others with `model_copy(update=...)`."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, frozen=True, enable_decoding=False)

    store_url: str = "sqlite:///./questline.db"
    database_url: str = "sqlite:///./questline-history.db"
    seed_path: Path = Path("./seed")
    environment: Annotated[Environment, BeforeValidator(_environment)] = Field(
        default="development", validation_alias=AliasChoices("environment", _ENV)
    )
    host: str = "127.0.0.1"
    port: Annotated[int, _integer(maximum=65535)] = 8000
    workers: Count = 1
    # Secrets are SecretStr: repr(), logs and error messages never show them.
    api_keys: Annotated[tuple[SecretStr, ...], BeforeValidator(_api_keys)] = ()
    jwt_secret: Annotated[SecretStr | None, BeforeValidator(_jwt_secret)] = None
    jwt_public_key: Annotated[str | None, BeforeValidator(_public_key)] = None
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    jwt_player_claim: str = "sub"
    jwt_leeway: Annotated[timedelta, _duration(maximum=MAX_JWT_LEEWAY)] = timedelta(seconds=30)
    jwt_issuers: Annotated[tuple[TokenIssuer, ...], BeforeValidator(_token_issuers)] = ()
    default_timezone: Annotated[str, BeforeValidator(_timezone)] = "UTC"
    late_event_tolerance: Duration = timedelta(days=7)
    future_event_tolerance: Duration = timedelta(minutes=5)
    #: How long accepted events stay in the journal (by when they occurred).
    journal_retention: Duration = timedelta(days=400)
    max_batch: Count = 1000
    max_body_bytes: Count = 1024 * 1024
    # The standard introspection query (GraphiQL, code generators) is 15 deep.
    max_query_depth: Count = 15
    max_query_tokens: Count = 2000
    max_subscriptions_per_connection: Count = 10
    #: Read from the environment, defaults to on in development only (see `from_env`).
    migrate_on_start: Annotated[bool, BeforeValidator(_boolean)] = True
    console_session_ttl: Duration = timedelta(hours=8)
    #: Whether anyone may introspect the schema; otherwise only API keys (production).
    #: Read from the environment, defaults to on in development only (see `from_env`).
    open_introspection: Annotated[bool, BeforeValidator(_boolean)] = True
    #: Deadline of each call to the counter store and to the history database.
    store_timeout: Duration = timedelta(seconds=2)
    database_timeout: Duration = timedelta(seconds=2)
    #: Unlocks a subscriber may fall behind before its socket is closed (4429).
    subscriber_backlog: Count = 1000
    #: Time a client has to send a request's headers before its connection is closed.
    header_timeout: Duration = timedelta(seconds=10)
    #: Journal events one `simulateProgram` call replays at most.
    simulate_max_events: Count = 100_000
    #: Hosts webhook URLs may name although they resolve to a loopback, link-local
    #: or private address (outside development every such URL is refused).
    webhook_allow_hosts: Annotated[tuple[str, ...], BeforeValidator(_hosts)] = ()
    #: The longest one delivery attempt may take, connecting included.
    webhook_timeout: Duration = timedelta(seconds=10)
    #: Deliveries in flight at once to one endpoint, per process.
    webhook_concurrency: Count = 8
    webhook_first_backoff: Duration = timedelta(seconds=10)
    webhook_max_backoff: Duration = timedelta(hours=1)
    #: How long a delivery is retried before it is failed (a dead letter).
    webhook_retry_for: Duration = timedelta(hours=24)
    #: An endpoint whose every attempt failed for this long is disabled.
    webhook_disable_after: Duration = timedelta(hours=24)
    #: How long the old secret still signs after `rotateWebhookSecret`, unless it says.
    webhook_secret_grace: Duration = timedelta(hours=24)
    #: How often an idle sender looks for due deliveries.
    webhook_poll_interval: Duration = timedelta(seconds=1)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """`Settings(...)` is what it is given: only `from_env` reads variables,
        so no test or tool picks up the shell's `QUESTLINE_*` by accident."""
        return (init_settings,)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        """Read and validate every `QUESTLINE_*` variable; unset or blank means default."""
        values = _Variables(cls, environ)()
        origins: dict[str, str] = {}
        key_file = _text(environ, _PUBLIC_KEY_FILE)
        if key_file is not None:
            if "jwt_public_key" in values:
                raise ConfigurationError(
                    f"set {PREFIX}JWT_PUBLIC_KEY or {_PUBLIC_KEY_FILE}, not both"
                )
            try:
                values["jwt_public_key"] = Path(key_file).read_text()
            except OSError as error:
                raise ConfigurationError(
                    f"{_PUBLIC_KEY_FILE} cannot be read: {error.strerror} ({key_file!r})"
                ) from None
            origins["jwt_public_key"] = _PUBLIC_KEY_FILE
        # Migrating on start is a convenience for a laptop; in production the
        # operator runs `questline db upgrade` once, before the workers start.
        # The committed schema.graphql is what clients generate code from;
        # introspection only helps an attacker map the API.
        development = values.get("environment", "development").lower() == "development"
        values.setdefault("migrate_on_start", development)
        values.setdefault("open_introspection", development)
        try:
            settings = cls.model_validate(values, context=origins)
        except ValidationError as error:
            raise ConfigurationError(_first_message(error)) from None
        jwks_url = _text(environ, _JWKS_URL)
        if jwks_url is not None:
            settings = settings.model_copy(
                update={"jwt_issuers": (settings._single_provider(jwks_url), *settings.jwt_issuers)}
            )
        _check_distinct_issuers(
            settings.jwt_issuers,
            settings.jwt_issuer if settings.jwt_public_key is not None else None,
        )
        return settings

    def _single_provider(self, jwks_url: str) -> TokenIssuer:
        """The provider the single `QUESTLINE_JWT_*` variables describe with a JWKS URL."""
        _check_jwks_url(_JWKS_URL, jwks_url)
        if self.jwt_public_key is not None:
            raise ConfigurationError(
                f"set {PREFIX}JWT_PUBLIC_KEY or {_JWKS_URL}, not both: the JWKS "
                "URL already publishes the provider's public keys"
            )
        if self.jwt_issuer is None:
            raise ConfigurationError(
                f"{_JWKS_URL} needs {PREFIX}JWT_ISSUER, the provider's `iss` "
                "claim: a key set can sign tokens for other tenants too (Firebase's is "
                "shared by every project), and the issuer is what says a token is yours"
            )
        return TokenIssuer(
            issuer=self.jwt_issuer,
            jwks_url=jwks_url,
            audience=() if self.jwt_audience is None else (self.jwt_audience,),
            player_claim=self.jwt_player_claim,
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


class _Variables(EnvSettingsSource):
    """The settings' variables in `environ` as text, blank ones counting as
    unset: pydantic-settings' own source, on the mapping `from_env` is given
    instead of `os.environ` (so overrides and tests never touch the process's)."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        # Variables are named in capitals, as they always were: `questline_port`
        # is somebody else's variable, not a second spelling of QUESTLINE_PORT.
        return {
            name.lower(): value.strip()
            for name, value in self._environ.items()
            if name.isupper() and value.strip()
        }


def _text(environ: Mapping[str, str], name: str) -> str | None:
    """A variable that is not a field of its own, read the way `_Variables` reads."""
    value = environ.get(name, "").strip()
    return value or None


def _first_message(error: ValidationError) -> str:
    """The message of the validator that refused a value (they name the variable)."""
    refusal = error.errors()[0].get("ctx", {}).get("error")
    return str(refusal) if refusal is not None else str(error)


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
