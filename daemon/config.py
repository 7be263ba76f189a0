"""Configuration: a TOML file overridden by DENEVA_* environment variables.

Everything is validated once here; the rest of the daemon trusts the frozen `Config`.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

from deneva.adapters.base import (
    GOOGLE_ADS_API,
    GOOGLE_AUTH_URL,
    GOOGLE_TOKEN_URL,
    META_DIALOG_URL,
    META_GRAPH_API,
    PLATFORMS,
    TIKTOK_AUTH_URL,
    TIKTOK_BUSINESS_API,
)
from deneva.engine.cron import CronError, parse_cron
from deneva.errors import ConfigError

DAY = 86_400.0
LOG_FORMATS = ("auto", "json", "text")
LOG_LEVELS = ("debug", "info", "warning", "error")
POOLING_MODES = ("session", "transaction")


@attrs.frozen
class Bind:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@attrs.frozen
class Config:
    env: str = "development"
    state_dir: Path = Path(".deneva")
    # The pool's login (row-level security binds it); absent: the embedded Postgres.
    database_url: str | None = None
    # The migrations' login (the schema's owner); absent: this process does not migrate.
    migrate_database_url: str | None = None
    # Behind a connection pooler: "session" (or none) or "transaction" (PgBouncer's
    # pool_mode = transaction). Transaction pooling needs `direct_database_url`: the same
    # database and login, not through the pooler, for LISTEN and the lease upkeep.
    database_pooling: str = "session"
    direct_database_url: str | None = None
    http_bind: Bind = Bind("127.0.0.1", 8787)
    workers: int = 256
    secrets_dir: Path | None = None
    log_format: str = "auto"
    log_level: str = "info"
    shutdown_grace_s: float = 10.0
    heartbeat_interval_s: float = 30.0
    pg_bin: Path | None = None
    pg_user: str | None = None
    # Host and Origin values /mcp accepts (DNS-rebinding protection); None: see http/mcp.py.
    mcp_allowed_hosts: tuple[str, ...] | None = None
    mcp_allowed_origins: tuple[str, ...] | None = None
    # MCP sessions, on /mcp and /mcp/ws together: at most this many per tenant; an HTTP
    # session expires once idle this long, a WebSocket closes once idle this long.
    mcp_sessions_per_tenant: int = 1_000
    mcp_session_idle: float = 30 * 60.0
    mcp_ws_idle: float = 30 * 60.0
    # The public base URL clients and operators' browsers reach this daemon at (https
    # behind a reverse proxy). Unset: MCP authorization (deneva.oauth) uses the request's
    # own scheme and Host, the browser connect http://HTTP_BIND.
    # MCP authorization: an external
    # identity provider's issuer (None: the built-in authorization server issues tokens),
    # its JWKS URL (None: from its discovery document), the claim naming the tenant and the
    # signing algorithms accepted; whether Client ID Metadata Documents may be fetched from
    # loopback addresses (tests only) and a CA bundle to verify their servers with.
    public_url: str | None = None
    oauth_issuer: str | None = None
    oauth_jwks_url: str | None = None
    oauth_tenant_claim: str = "deneva_tenant"
    oauth_algorithms: tuple[str, ...] = ("RS256", "ES256")
    oauth_cimd_allow_loopback: bool = False
    oauth_cimd_ca_file: Path | None = None
    # Ad platforms `deneva run` syncs (each also needs its secret files; see deneva.secrets)
    # and where their APIs are; API versions default to the adapters' (None, see
    # deneva.adapters.versions). The Google manager account every Google account is reached
    # through (the `login-customer-id` header), when they are a manager's clients.
    platforms: tuple[str, ...] = PLATFORMS
    google_ads_url: str = GOOGLE_ADS_API
    google_token_url: str = GOOGLE_TOKEN_URL
    meta_graph_url: str = META_GRAPH_API
    tiktok_api_url: str = TIKTOK_BUSINESS_API
    google_ads_api_version: str | None = None
    meta_api_version: str | None = None
    tiktok_api_version: str | None = None
    google_login_customer_id: str | None = None
    # Browser connect (docs/platforms.md): the platforms' consent pages. Its redirect URIs
    # are {public_url}/connect/{platform}/callback (public_url absent: http://HTTP_BIND).
    google_auth_url: str = GOOGLE_AUTH_URL
    meta_dialog_url: str = META_DIALOG_URL
    tiktok_auth_url: str = TIKTOK_AUTH_URL
    # The janitor (deneva.retention): when each pass runs, and how long things are kept.
    schedule_purge_cache: str = "0 2 * * *"
    schedule_purge_sync_log: str = "15 2 * * *"
    schedule_archive_audit: str = "30 2 * * *"
    schedule_prune_engine: str = "*/15 * * * *"
    schedule_prune_oauth: str = "45 2 * * *"
    retention_cache: float = 90 * DAY
    retention_cache_grace: float = 1 * DAY
    retention_sync_log: float = 30 * DAY
    retention_audit: float = 365 * DAY
    retention_runs_succeeded: float = 7 * DAY
    retention_runs_failed: float = 30 * DAY
    retention_events: float = 7 * DAY
    retention_cron_ticks: float = 7 * DAY
    retention_oauth: float = 7 * DAY
    janitor_batch: int = 10_000
    # Inbound webhooks (http/webhooks.py): the largest body accepted, and how long a
    # delivery's id is remembered (its sender's retries and replays store nothing twice).
    webhook_max_body: int = 1024 * 1024
    retention_webhook_deliveries: float = 7 * DAY
    # The operator console (/admin/): a session ends this long after sign-in, or once
    # unused for `console_session_idle` (0: no idle limit).
    console_session_ttl: float = 12 * 3600.0
    console_session_idle: float = 3600.0
    # Extra durable functions: a Python module whose `register(registry, db)` adds them
    # (deneva.functions.load_functions_module); the chaos suite's are tests/chaos/functions.py.
    functions_module: str | None = None
    # Seconds added to the wall clock the daemon schedules by (deneva.clock): the chaos
    # suite's replica whose clock runs ahead. Refused with env = "production".
    clock_offset_s: float = 0.0
    config_file: Path | None = None

    @property
    def embedded_database(self) -> bool:
        return self.database_url is None

    def public_base(self, bound: str | None = None) -> str:
        """Where browsers reach this daemon: `public_url`, else the HTTP address (`bound`,
        the one actually listened on, when known)."""
        if self.public_url is not None:
            return self.public_url
        return bound or f"http://{self.http_bind}"


def _parse_str(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{key}: expected a non-empty string, got {value!r}")
    return value.strip()


def _parse_env_name(key: str, value: Any) -> str:
    text = _parse_str(key, value)
    if not all(c.isalnum() or c in "-_." for c in text) or len(text) > 64:
        raise ConfigError(f"{key}: expected a short name of letters, digits, '-', '_' or '.', got {text!r}")
    return text


def _parse_path(key: str, value: Any) -> Path:
    return Path(_parse_str(key, value)).expanduser()


def _parse_database_url(key: str, value: Any) -> str:
    text = _parse_str(key, value)
    if not text.startswith(("postgres://", "postgresql://")):
        raise ConfigError(f"{key}: expected a postgresql:// URL")
    return text


def parse_bind(key: str, value: Any) -> Bind:
    text = _parse_str(key, value)
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise ConfigError(f"{key}: expected HOST:PORT, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(f"{key}: port must be a number, got {port_text!r}") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"{key}: port must be between 0 and 65535, got {port}")
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ConfigError(f"{key}: host must be an IP address or 'localhost', got {host!r}") from None
    return Bind(host, port)


def _parse_positive_int(key: str, value: Any) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{key}: expected a positive integer, got {value!r}")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}: expected a positive integer, got {value!r}") from None
    if number < 1 or number > 100_000 or (isinstance(value, float) and value != number):
        raise ConfigError(f"{key}: expected a positive integer up to 100000, got {value!r}")
    return number


def _parse_seconds(key: str, value: Any) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{key}: expected a number of seconds, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}: expected a number of seconds, got {value!r}") from None
    if not 0 < number <= 86_400:
        raise ConfigError(f"{key}: expected seconds between 0 and 86400, got {value!r}")
    return number


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": DAY, "w": 7 * DAY}
MAX_RETENTION_S = 10 * 365 * DAY


def _duration(minimum: float) -> Callable[[str, Any], float]:
    """A duration: "90d", "12h", "30m", "45s", "2w", or a number of seconds; at least
    `minimum` seconds and at most ten years."""

    def parse(key: str, value: Any) -> float:
        shown = repr(value) if not isinstance(value, str) or len(value) <= 40 else repr(value[:40] + "...")
        if isinstance(value, bool):
            raise ConfigError(
                f"{key}: expected a duration like '90d', '12h' or a number of seconds, got {shown}"
            )
        seconds: float | None = None
        if isinstance(value, int | float):
            seconds = float(value)
        elif isinstance(value, str):
            match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", value.lower())
            if match:
                seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
        if seconds is None or seconds != seconds:
            raise ConfigError(
                f"{key}: expected a duration like '90d', '12h' or a number of seconds, got {shown}"
            )
        if not minimum <= seconds <= MAX_RETENTION_S:
            least = "0" if minimum == 0 else f"{minimum:g} s"
            raise ConfigError(f"{key}: expected a duration from {least} to 3650d, got {shown}")
        return seconds

    return parse


def _parse_module(key: str, value: Any) -> str:
    """A dotted Python module name (imported at start, not here)."""
    text = _parse_str(key, value)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", text) or len(text) > 200:
        raise ConfigError(f"{key}: expected a dotted Python module name like 'mypkg.functions', got {text!r}")
    return text


def _parse_offset(key: str, value: Any) -> float:
    """Seconds, positive or negative, at most a year either way."""
    if isinstance(value, bool):
        raise ConfigError(f"{key}: expected a number of seconds, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}: expected a number of seconds, got {value!r}") from None
    if not -365 * DAY <= number <= 365 * DAY:  # also refuses NaN
        raise ConfigError(f"{key}: expected seconds between -31536000 and 31536000, got {value!r}")
    return number


def _parse_cron(key: str, value: Any) -> str:
    text = _parse_str(key, value)
    try:
        parse_cron(text)
    except CronError as exc:
        raise ConfigError(f"{key}: {exc}") from None
    return text


def _bounded_int(low: int, high: int) -> Callable[[str, Any], int]:
    def parse(key: str, value: Any) -> int:
        number = _parse_positive_int(key, value)
        if not low <= number <= high:
            raise ConfigError(f"{key}: expected a whole number from {low} to {high}, got {value!r}")
        return number

    return parse


def _parse_names(key: str, value: Any) -> tuple[str, ...]:
    """A TOML list of strings, or a comma-separated string (environment)."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise ConfigError(f"{key}: expected a list of names or a comma-separated string, got {value!r}")
    names = tuple(i.strip().lower() for i in items if i.strip())
    bad = [n for n in names if any(c.isspace() or c in "?#@" for c in n)]
    if bad:
        raise ConfigError(f"{key}: {bad[0]!r} is not a host name or origin")
    return names


def _parse_platforms(key: str, value: Any) -> tuple[str, ...]:
    """A TOML list of platform names, or a comma-separated string (environment); `[]` or
    "none" syncs none."""
    if isinstance(value, str) and value.strip().lower() == "none":
        return ()
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise ConfigError(f"{key}: expected a list of platforms or a comma-separated string, got {value!r}")
    names = tuple(dict.fromkeys(i.strip().lower() for i in items if i.strip()))
    unknown = [n for n in names if n not in PLATFORMS]
    if unknown:
        raise ConfigError(f"{key}: unknown platform {unknown[0]!r}; expected some of {', '.join(PLATFORMS)}")
    return names


def _parse_url(key: str, value: Any) -> str:
    """An http(s) API root without query or fragment (a trailing slash is dropped)."""
    text = _parse_str(key, value)
    if not re.fullmatch(r"https?://[^\s/?#@]+(/[^\s?#]*)?", text):
        raise ConfigError(
            f"{key}: expected an http:// or https:// URL without query or fragment, got {text!r}"
        )
    return text.rstrip("/")


def _parse_issuer(key: str, value: Any) -> str:
    """An OAuth issuer identifier: https (http only on loopback), no query or fragment, kept
    exactly as written (issuers are compared as strings)."""
    text = _parse_str(key, value)
    if not re.fullmatch(r"https://[^\s/?#@]+(/[^\s?#]*)?", text) and not re.fullmatch(
        r"http://(127\.0\.0\.1|localhost|\[::1\])(:\d+)?(/[^\s?#]*)?", text
    ):
        raise ConfigError(f"{key}: expected an https:// issuer URL without query or fragment, got {text!r}")
    return text


def _parse_bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{key}: expected true or false, got {value!r}")


JWT_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")


def _parse_algorithms(key: str, value: Any) -> tuple[str, ...]:
    """Asymmetric JWS algorithms only: `none` and the HMAC ones (a public key as a shared
    secret) are refused."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise ConfigError(f"{key}: expected a list of algorithms or a comma-separated string, got {value!r}")
    names = tuple(i.strip() for i in items if i.strip())
    bad = [n for n in names if n not in JWT_ALGORITHMS]
    if bad or not names:
        raise ConfigError(
            f"{key}: {bad[0] if bad else 'nothing'!r} is not an accepted algorithm "
            f"(one or more of {', '.join(JWT_ALGORITHMS)})"
        )
    return names


def _version(pattern: str, example: str) -> Callable[[str, Any], str]:
    def parse(key: str, value: Any) -> str:
        text = _parse_str(key, value)
        if not re.fullmatch(pattern, text):
            raise ConfigError(f"{key}: expected an API version like {example!r}, got {text!r}")
        return text

    return parse


def _parse_customer_id(key: str, value: Any) -> str:
    """A Google Ads customer id: ten digits, dashes allowed ("123-456-7890")."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # TOML: an unquoted number
    text = _parse_str(key, value)
    digits = text.replace("-", "")
    if not re.fullmatch(r"\d{10}", digits):
        raise ConfigError(
            f"{key}: expected a Google Ads customer id of 10 digits like '123-456-7890', got {text!r}"
        )
    return digits


def _choice(options: tuple[str, ...]) -> Callable[[str, Any], str]:
    def parse(key: str, value: Any) -> str:
        text = _parse_str(key, value).lower()
        if text not in options:
            raise ConfigError(f"{key}: expected one of {', '.join(options)}, got {value!r}")
        return text

    return parse


_PARSERS: dict[str, Callable[[str, Any], Any]] = {
    "env": _parse_env_name,
    "state_dir": _parse_path,
    "database_url": _parse_database_url,
    "migrate_database_url": _parse_database_url,
    "database_pooling": _choice(POOLING_MODES),
    "direct_database_url": _parse_database_url,
    "http_bind": parse_bind,
    "workers": _parse_positive_int,
    "secrets_dir": _parse_path,
    "log_format": _choice(LOG_FORMATS),
    "log_level": _choice(LOG_LEVELS),
    "shutdown_grace_s": _parse_seconds,
    "heartbeat_interval_s": _parse_seconds,
    "pg_bin": _parse_path,
    "pg_user": _parse_str,
    "mcp_allowed_hosts": _parse_names,
    "mcp_allowed_origins": _parse_names,
    "mcp_sessions_per_tenant": _bounded_int(1, 10_000),
    "mcp_session_idle": _duration(1.0),
    "mcp_ws_idle": _duration(1.0),
    "public_url": _parse_url,
    "oauth_issuer": _parse_issuer,
    "oauth_jwks_url": _parse_url,
    "oauth_tenant_claim": _parse_str,
    "oauth_algorithms": _parse_algorithms,
    "oauth_cimd_allow_loopback": _parse_bool,
    "oauth_cimd_ca_file": _parse_path,
    "platforms": _parse_platforms,
    "google_ads_url": _parse_url,
    "google_token_url": _parse_url,
    "meta_graph_url": _parse_url,
    "tiktok_api_url": _parse_url,
    "google_ads_api_version": _version(r"v\d{1,3}", "v26"),
    "meta_api_version": _version(r"v\d{1,3}\.\d{1,3}", "v27.0"),
    "tiktok_api_version": _version(r"v\d{1,3}\.\d{1,3}", "v1.3"),
    "google_login_customer_id": _parse_customer_id,
    "google_auth_url": _parse_url,
    "meta_dialog_url": _parse_url,
    "tiktok_auth_url": _parse_url,
    "schedule_purge_cache": _parse_cron,
    "schedule_purge_sync_log": _parse_cron,
    "schedule_archive_audit": _parse_cron,
    "schedule_prune_engine": _parse_cron,
    "schedule_prune_oauth": _parse_cron,
    "retention_cache": _duration(3600.0),
    "retention_cache_grace": _duration(0.0),
    "retention_sync_log": _duration(3600.0),
    "retention_audit": _duration(DAY),
    "retention_runs_succeeded": _duration(60.0),
    "retention_runs_failed": _duration(60.0),
    "retention_events": _duration(60.0),
    "retention_cron_ticks": _duration(60.0),
    "retention_oauth": _duration(3600.0),
    "janitor_batch": _bounded_int(1, 10_000),
    # At most the app's own limit on any request body (http/app.py, MAX_BODY_BYTES).
    "webhook_max_body": _bounded_int(1024, 1024 * 1024),
    # At least twice the signatures' 5-minute tolerance: a replay within it is known.
    "retention_webhook_deliveries": _duration(600.0),
    "console_session_ttl": _duration(60.0),
    "console_session_idle": _duration(0.0),
    "functions_module": _parse_module,
    "clock_offset_s": _parse_offset,
}

KEYS = tuple(_PARSERS)


def env_name(key: str) -> str:
    return f"DENEVA_{key.upper()}"


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"config file {path}: cannot read it ({exc.strerror})") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: invalid TOML: {exc}") from None
    unknown = sorted(set(data) - set(_PARSERS))
    if unknown:
        raise ConfigError(f"config file {path}: unknown key {unknown[0]!r} (known keys: {', '.join(KEYS)})")
    return data


def load_config(config_file: Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Build the Config from an optional TOML file and the environment (which wins)."""
    environ = os.environ if environ is None else environ
    if config_file is None and environ.get("DENEVA_CONFIG"):
        config_file = Path(environ["DENEVA_CONFIG"])
    values: dict[str, Any] = {}
    if config_file is not None:
        for key, raw in _read_toml(config_file).items():
            values[key] = _PARSERS[key](f"{key} (in {config_file})", raw)
    for key, parse in _PARSERS.items():
        name = env_name(key)
        if name in environ and environ[name] != "":
            values[key] = parse(name, environ[name])
    if "state_dir" not in values and environ.get("STATE_DIRECTORY"):
        # systemd's StateDirectory= (the first entry when several are listed).
        values["state_dir"] = Path(environ["STATE_DIRECTORY"].split(":")[0])
    if values.get("migrate_database_url") and not values.get("database_url"):
        raise ConfigError(
            f"{env_name('migrate_database_url')}: set only with {env_name('database_url')} (the pool's "
            "login); with neither, the embedded Postgres is used"
        )
    if values.get("database_pooling") == "transaction":
        if not values.get("database_url"):
            raise ConfigError(
                f"{env_name('database_pooling')}: transaction pooling is a pooler in front of an external "
                f"Postgres; set {env_name('database_url')} to the pooler's URL"
            )
        if not values.get("direct_database_url"):
            raise ConfigError(
                f"{env_name('direct_database_url')}: not set; with transaction pooling, LISTEN/NOTIFY "
                "and the lease upkeep need a connection of their own that bypasses the pooler (the same "
                "database and login, straight to Postgres; see docs/deploy-systemd.md, Behind PgBouncer)"
            )
    elif values.get("direct_database_url") and not values.get("database_url"):
        raise ConfigError(
            f"{env_name('direct_database_url')}: set only with {env_name('database_url')} (and "
            f"{env_name('database_pooling')} = transaction)"
        )
    if values.get("clock_offset_s") and values.get("env") == "production":
        raise ConfigError(
            f"{env_name('clock_offset_s')}: a skewed clock is for tests (the chaos suite); "
            "it is refused with DENEVA_ENV=production"
        )
    return Config(config_file=config_file, **values)
