"""Settings read once from the environment into one typed, validated object."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from typing import Annotated

import msgspec

DEV_JWT_SECRET = "dev-only-insecure-jwt-secret-change-me"  # noqa: S105 - refused in production
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./liveshop.db"


class ConfigError(Exception):
    """A setting is missing or invalid; the message names the variable."""


class AppEnv(enum.StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


PositiveInt = Annotated[int, msgspec.Meta(ge=1)]


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=False):
    """Every knob of the service. Field names are the environment variables."""

    app_env: AppEnv = msgspec.field(default=AppEnv.DEVELOPMENT, name="APP_ENV")
    database_url: str = msgspec.field(default=DEFAULT_DATABASE_URL, name="DATABASE_URL")
    redis_url: str | None = msgspec.field(default=None, name="REDIS_URL")
    jwt_secret: str = msgspec.field(default=DEV_JWT_SECRET, name="JWT_SECRET")
    jwt_issuer: str | None = msgspec.field(default=None, name="JWT_ISSUER")
    jwt_audience: str | None = msgspec.field(default=None, name="JWT_AUDIENCE")
    live_shopping_enabled: bool = msgspec.field(default=False, name="FEATURE_LIVE_SHOPPING_ENABLED")
    heartbeat_ms: PositiveInt = msgspec.field(default=30000, name="LIVE_SHOPPING_HEARTBEAT_MS")
    max_cart_items: PositiveInt = msgspec.field(default=200, name="LIVE_SHOPPING_MAX_CART_ITEMS")
    session_timeout_mins: PositiveInt = msgspec.field(
        default=120, name="LIVE_SHOPPING_SESSION_TIMEOUT_MINS"
    )
    hold_warning_mins: PositiveInt = msgspec.field(
        default=10, name="LIVE_SHOPPING_HOLD_WARNING_MINS"
    )
    event_retention_days: PositiveInt = msgspec.field(
        default=30, name="LIVE_SHOPPING_EVENT_RETENTION_DAYS"
    )
    # Prefix of this deployment's Redis channels; unset: derived from the database identity,
    # so two deployments sharing one Redis never see each other's events.
    redis_channel_prefix: str | None = msgspec.field(default=None, name="REDIS_CHANNEL_PREFIX")
    rpc_body_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=3600)] = msgspec.field(
        default=10.0, name="RPC_BODY_TIMEOUT_S"
    )
    rpc_max_body_bytes: PositiveInt = msgspec.field(default=1_048_576, name="RPC_MAX_BODY_BYTES")
    rpc_max_batch: PositiveInt = msgspec.field(default=50, name="RPC_MAX_BATCH")
    # Browser origins (scheme://host[:port]) that may call /rpc, /trpc and open the streams
    # (DESIGN.md 2.3); given comma-separated, none by default.
    cors_allowed_origins: tuple[str, ...] = msgspec.field(default=(), name="CORS_ALLOWED_ORIGINS")
    host: str = msgspec.field(default="127.0.0.1", name="HOST")
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = msgspec.field(default=8000, name="PORT")

    @property
    def is_production(self) -> bool:
        return self.app_env is AppEnv.PRODUCTION


_ENV_NAMES = frozenset(f.encode_name for f in msgspec.structs.fields(Settings))


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Parse and validate the service settings; raise ConfigError naming the bad variable."""
    # Empty values count as unset, as a shell `export X=` usually means "no value".
    present = {k: v for k, v in environ.items() if k in _ENV_NAMES and v != ""}
    if "CORS_ALLOWED_ORIGINS" in present:
        present["CORS_ALLOWED_ORIGINS"] = _parse_origins(present["CORS_ALLOWED_ORIGINS"])  # type: ignore[assignment]
    if "FEATURE_LIVE_SHOPPING_ENABLED" in present:
        present["FEATURE_LIVE_SHOPPING_ENABLED"] = _parse_flag(
            "FEATURE_LIVE_SHOPPING_ENABLED", present["FEATURE_LIVE_SHOPPING_ENABLED"]
        )  # type: ignore[assignment]
    try:
        settings = msgspec.convert(present, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    _check_secret(settings)
    if not settings.database_url.startswith(("sqlite+aiosqlite://", "mysql+aiomysql://")):
        raise ConfigError(
            "DATABASE_URL must start with sqlite+aiosqlite:// or mysql+aiomysql://, "
            f"got {settings.database_url.split(':', 1)[0]!r}"
        )
    if settings.redis_url is not None and not settings.redis_url.startswith(
        ("redis://", "rediss://", "unix://")
    ):
        raise ConfigError(
            "REDIS_URL must start with redis://, rediss:// or unix://, "
            f"got {settings.redis_url.split(':', 1)[0]!r}"
        )
    return settings


def _parse_flag(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"true", "1", "yes", "on"}:
        return True
    if lowered in {"false", "0", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be true or false, got {value!r}")


# An origin as a browser sends it in the Origin header: scheme, host (a DNS name in ASCII,
# punycode for others, an IPv4 or a bracketed IPv6 address) and a port unless it is the
# scheme's default; no path, no trailing slash, no user info.
_ORIGIN = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.-]*)://"
    r"(?P<host>\[[0-9a-f:.]+\]|[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*)"
    r"(?::(?P<port>[1-9][0-9]{0,4}))?",
    re.IGNORECASE,
)
_DEFAULT_PORTS = {"http": "80", "https": "443"}


def _parse_origins(value: str) -> list[str]:
    """CORS_ALLOWED_ORIGINS, comma-separated, as the Origin header will spell each one.

    A wildcard is refused, not supported: DESIGN.md 2.3 opens the API to named origins, and a
    `*` (which litestar would also read inside an origin, `https://*.example.com`) would open it
    to every site on the web. An entry that no browser would ever send is refused too, since
    it would silently match nothing.
    """
    origins: list[str] = []
    for entry in value.split(","):
        origin = entry.strip()
        if not origin:
            continue  # a trailing comma
        if "*" in origin:
            raise ConfigError(
                f"CORS_ALLOWED_ORIGINS: wildcards are not accepted, got {origin!r}; "
                "list each origin, e.g. https://console.example.com"
            )
        match = _ORIGIN.fullmatch(origin)
        if match is None or int(match["port"] or 1) > 65535:
            raise ConfigError(
                f"CORS_ALLOWED_ORIGINS: {origin!r} is not an origin; expected scheme://host[:port] "
                "with no path or trailing slash, e.g. https://console.example.com"
            )
        scheme = match["scheme"].lower()
        if match["port"] is not None and _DEFAULT_PORTS.get(scheme) == match["port"]:
            raise ConfigError(
                f"CORS_ALLOWED_ORIGINS: {origin!r} names the default port, which browsers leave "
                f"out of the Origin header; write {scheme}://{match['host'].lower()}"
            )
        # Browsers send the scheme and host in lower case.
        origins.append(origin.lower())
    return origins


def _check_secret(settings: Settings) -> None:
    if not settings.is_production:
        return
    if settings.jwt_secret == DEV_JWT_SECRET:
        raise ConfigError("JWT_SECRET must be set to a private value when APP_ENV=production")
    if len(settings.jwt_secret) < 32:
        raise ConfigError("JWT_SECRET must be at least 32 characters when APP_ENV=production")


def _describe(exc: msgspec.ValidationError) -> str:
    # msgspec reports "Expected `int` >= 1, got `str` - at `$.LIVE_SHOPPING_MAX_CART_ITEMS`".
    text = str(exc)
    message, _, where = text.partition(" - at `$.")
    name = where.rstrip("`") or "environment"
    return f"{name}: {message}"
