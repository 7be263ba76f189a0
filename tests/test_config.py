"""Configuration and secrets: TOML + DENEVA_* env, every bad value named."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from deneva.config import Bind, Config, load_config, parse_bind
from deneva.credentials import kek_id
from deneva.errors import ConfigError, SecretError
from deneva.secrets import REQUIRED, Secret, init_secrets, load_secrets, secrets_directory


def _toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "deneva.toml"
    path.write_text(text)
    return path


def test_defaults_without_file_or_environment() -> None:
    config = load_config(None, environ={})
    assert config == Config()
    assert config.http_bind == Bind("127.0.0.1", 8787)
    assert config.embedded_database


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = _toml(tmp_path, 'workers = 4\nhttp_bind = "127.0.0.1:9000"\nenv = "staging"\n')
    config = load_config(path, environ={"DENEVA_WORKERS": "8"})
    assert config.workers == 8
    assert config.http_bind == Bind("127.0.0.1", 9000)
    assert config.env == "staging"


def test_systemd_state_directory_is_the_default_state_dir() -> None:
    config = load_config(None, environ={"STATE_DIRECTORY": "/var/lib/deneva"})
    assert config.state_dir == Path("/var/lib/deneva")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("workers = ", "invalid TOML"),
        ("wokers = 3", "unknown key 'wokers'"),
        ('http_bind = "localhost"', "http_bind .*expected HOST:PORT"),
        ('http_bind = "127.0.0.1:99999"', "port must be between 0 and 65535"),
        ('http_bind = "example.com:80"', "host must be an IP address"),
        ("workers = 0", "workers .*positive integer"),
        ('workers = "many"', "workers .*positive integer"),
        ("workers = true", "workers .*positive integer"),
        ('log_format = "xml"', "log_format .*expected one of auto, json, text"),
        ('database_url = "mysql://x"', "database_url .*postgresql://"),
        ("shutdown_grace_s = -1", "shutdown_grace_s .*between 0 and 86400"),
        ('env = "prod uction"', "env .*short name"),
    ],
)
def test_bad_file_values_are_named(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(_toml(tmp_path, text), environ={})


def test_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="DENEVA_HTTP_BIND: port must be a number"):
        load_config(None, environ={"DENEVA_HTTP_BIND": "127.0.0.1:http"})


def test_unreadable_or_non_utf8_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml", environ={})
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b'env = "caf\xe9"\n')
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(bad, environ={})


def test_ipv6_bind_is_accepted() -> None:
    assert parse_bind("x", "[::1]:8787") == Bind("::1", 8787)
    assert str(Bind("::1", 8787)) == "[::1]:8787"


# -- secrets --------------------------------------------------------------------------


def test_secrets_init_creates_private_files_and_never_overwrites(tmp_path: Path) -> None:
    directory = tmp_path / "secrets"
    assert init_secrets(directory) == list(REQUIRED)
    for name in REQUIRED:
        mode = stat.S_IMODE((directory / name).stat().st_mode)
        assert mode == 0o600, name
    before = {name: (directory / name).read_text() for name in REQUIRED}
    (directory / "DENEVA_EVENT_KEY").unlink()
    assert init_secrets(directory) == ["DENEVA_EVENT_KEY"]
    after = {name: (directory / name).read_text() for name in REQUIRED}
    assert {k: v for k, v in after.items() if k != "DENEVA_EVENT_KEY"} == {
        k: v for k, v in before.items() if k != "DENEVA_EVENT_KEY"
    }
    secrets = load_secrets(directory)
    assert len(secrets.keyring().current) == 32


@pytest.mark.parametrize("missing", REQUIRED)
def test_each_missing_secret_is_named(tmp_path: Path, missing: str) -> None:
    init_secrets(tmp_path)
    (tmp_path / missing).unlink()
    with pytest.raises(SecretError, match=f"^{missing}: missing"):
        load_secrets(tmp_path)


def test_malformed_secrets_are_named_without_their_value(tmp_path: Path) -> None:
    init_secrets(tmp_path)
    (tmp_path / "DENEVA_KEK").write_text("not-base64-at-all!!")
    with pytest.raises(SecretError, match="DENEVA_KEK: .*32 bytes in base64") as err:
        load_secrets(tmp_path)
    assert "not-base64-at-all" not in str(err.value)
    (tmp_path / "DENEVA_KEK").write_text(base64.b64encode(b"short").decode())
    with pytest.raises(SecretError, match="got 5 bytes"):
        load_secrets(tmp_path)
    init_secrets(tmp_path / "again")
    (tmp_path / "again" / "DENEVA_ADMIN_TOKEN").write_text("short")
    with pytest.raises(SecretError, match="DENEVA_ADMIN_TOKEN: .*at least 16 characters"):
        load_secrets(tmp_path / "again")
    (tmp_path / "again" / "DENEVA_ADMIN_TOKEN").write_text("")
    with pytest.raises(SecretError, match="DENEVA_ADMIN_TOKEN: .*empty"):
        load_secrets(tmp_path / "again")


def test_unreadable_secret_is_named(tmp_path: Path) -> None:
    init_secrets(tmp_path)
    (tmp_path / "DENEVA_SIGNING_KEY").unlink()
    (tmp_path / "DENEVA_SIGNING_KEY").mkdir()  # unreadable as a file, even for root
    with pytest.raises(SecretError, match="DENEVA_SIGNING_KEY: cannot read"):
        load_secrets(tmp_path)


def test_credentials_directory_wins_over_the_configured_one(tmp_path: Path) -> None:
    assert secrets_directory(tmp_path / "a", {"CREDENTIALS_DIRECTORY": str(tmp_path / "b")}) == tmp_path / "b"
    assert secrets_directory(tmp_path / "a", {}) == tmp_path / "a"
    with pytest.raises(SecretError, match="DENEVA_KEK: no secrets directory"):
        secrets_directory(None, {})


def test_secret_repr_hides_the_value() -> None:
    secret = Secret("DENEVA_ADMIN_TOKEN", "super-secret-value-123")
    assert "super-secret" not in repr(secret)
    assert "super-secret" not in str(secret)
    assert "super-secret" not in f"{[secret]}"
    assert secret.reveal() == "super-secret-value-123"
    assert os.environ.get("DENEVA_ADMIN_TOKEN") != "super-secret-value-123"


def test_mcp_session_limit_and_idle_timeouts_are_read_and_validated_naming_the_key() -> None:
    defaults = load_config(environ={})
    assert (defaults.mcp_sessions_per_tenant, defaults.mcp_session_idle, defaults.mcp_ws_idle) == (
        1000,
        1800,
        1800,
    )
    good = load_config(
        environ={
            "DENEVA_MCP_SESSIONS_PER_TENANT": "20",
            "DENEVA_MCP_SESSION_IDLE": "2h",
            "DENEVA_MCP_WS_IDLE": "90",
        }
    )
    assert (good.mcp_sessions_per_tenant, good.mcp_session_idle, good.mcp_ws_idle) == (20, 7200, 90)
    bad = {
        "DENEVA_MCP_SESSIONS_PER_TENANT": (
            "0",
            "DENEVA_MCP_SESSIONS_PER_TENANT: expected a positive integer",
        ),
        "DENEVA_MCP_SESSION_IDLE": ("soon", "DENEVA_MCP_SESSION_IDLE: expected a duration"),
        "DENEVA_MCP_WS_IDLE": ("0", "DENEVA_MCP_WS_IDLE: expected a duration from 1 s"),
    }
    for key, (value, message) in bad.items():
        with pytest.raises(ConfigError) as caught:
            load_config(environ={key: value})
        assert str(caught.value).startswith(message), str(caught.value)


def test_janitor_schedules_and_retentions_are_validated_naming_the_key(tmp_path: Path) -> None:
    good = load_config(
        environ={
            "DENEVA_SCHEDULE_PURGE_CACHE": "0 3 * * *",
            "DENEVA_RETENTION_CACHE": "45d",
            "DENEVA_RETENTION_CACHE_GRACE": "0",
            "DENEVA_RETENTION_RUNS_SUCCEEDED": "36h",
            "DENEVA_JANITOR_BATCH": "500",
        }
    )
    assert good.schedule_purge_cache == "0 3 * * *" and good.retention_cache == 45 * 86400
    assert good.retention_cache_grace == 0 and good.retention_runs_succeeded == 36 * 3600
    assert good.janitor_batch == 500
    assert load_config(environ={}).retention_runs_failed == 30 * 86400
    bad = {
        "DENEVA_SCHEDULE_PRUNE_ENGINE": ("*/61 * * * *", "DENEVA_SCHEDULE_PRUNE_ENGINE: cron"),
        "DENEVA_SCHEDULE_ARCHIVE_AUDIT": ("nightly", "DENEVA_SCHEDULE_ARCHIVE_AUDIT: cron"),
        "DENEVA_RETENTION_AUDIT": ("a year", "DENEVA_RETENTION_AUDIT: expected a duration"),
        "DENEVA_RETENTION_EVENTS": ("0", "DENEVA_RETENTION_EVENTS: expected a duration from 60 s"),
        "DENEVA_RETENTION_SYNC_LOG": ("9999d", "DENEVA_RETENTION_SYNC_LOG: expected a duration"),
        "DENEVA_JANITOR_BATCH": ("10001", "DENEVA_JANITOR_BATCH: expected a whole number from 1 to 10000"),
    }
    for key, (value, message) in bad.items():
        with pytest.raises(ConfigError) as caught:
            load_config(environ={key: value})
        assert str(caught.value).startswith(message), str(caught.value)
    toml = tmp_path / "deneva.toml"
    toml.write_text("retention_cache = true\n")
    with pytest.raises(ConfigError, match=r"retention_cache \(in .*deneva.toml\): expected a duration"):
        load_config(toml, environ={})


def test_the_previous_kek_is_optional_checked_and_kept_out_of_logs(tmp_path: Path) -> None:
    init_secrets(tmp_path)
    assert load_secrets(tmp_path).kek_previous is None
    (tmp_path / "DENEVA_KEK_PREVIOUS").write_text("not-a-key")
    with pytest.raises(SecretError, match="DENEVA_KEK_PREVIOUS: .*32 bytes in base64"):
        load_secrets(tmp_path)
    previous = os.urandom(32)
    (tmp_path / "DENEVA_KEK_PREVIOUS").write_text(base64.b64encode(previous).decode() + "\n")
    loaded = load_secrets(tmp_path)
    # Every loaded secret is registered with the log redactor (runtime.Daemon): this one too.
    assert base64.b64encode(previous).decode() in [s.reveal() for s in loaded.all()]
    keys = loaded.keyring()
    assert keys.previous == (previous,) and keys.by_id(kek_id(previous)) == previous


def test_the_migrations_url_comes_with_the_pools_url() -> None:
    owner = "postgresql://owner@db/deneva"
    with pytest.raises(ConfigError, match="DENEVA_MIGRATE_DATABASE_URL: set only with DENEVA_DATABASE_URL"):
        load_config(None, {"DENEVA_MIGRATE_DATABASE_URL": owner})
    both = load_config(
        None, {"DENEVA_MIGRATE_DATABASE_URL": owner, "DENEVA_DATABASE_URL": "postgresql://app@db/deneva"}
    )
    assert (both.database_url, both.migrate_database_url) == ("postgresql://app@db/deneva", owner)


def test_oauth_settings_are_parsed_and_bad_ones_named() -> None:
    config = load_config(
        None,
        environ={
            "DENEVA_PUBLIC_URL": "https://mcp.example.com/",
            "DENEVA_OAUTH_ISSUER": "https://login.example.com/realms/ads/",
            "DENEVA_OAUTH_ALGORITHMS": "RS256, ES384",
            "DENEVA_OAUTH_CIMD_ALLOW_LOOPBACK": "true",
        },
    )
    assert config.public_url == "https://mcp.example.com"
    assert (
        config.oauth_issuer == "https://login.example.com/realms/ads/"
    )  # kept exactly: compared as a string
    assert config.oauth_algorithms == ("RS256", "ES384") and config.oauth_cimd_allow_loopback is True
    assert load_config(None, environ={}).oauth_algorithms == ("RS256", "ES256")
    for name, value, message in [
        ("DENEVA_OAUTH_ALGORITHMS", "HS256", "'HS256' is not an accepted algorithm"),
        ("DENEVA_OAUTH_ALGORITHMS", "none", "'none' is not an accepted algorithm"),
        ("DENEVA_OAUTH_ALGORITHMS", "RS256,HS512", "'HS512'"),
        ("DENEVA_OAUTH_ISSUER", "http://login.example.com", "https:// issuer"),
        ("DENEVA_OAUTH_ISSUER", "https://login.example.com/?x=1", "https:// issuer"),
        ("DENEVA_OAUTH_CIMD_ALLOW_LOOPBACK", "maybe", "true or false"),
        ("DENEVA_PUBLIC_URL", "ftp://x", "http:// or https://"),
    ]:
        with pytest.raises(ConfigError, match=name) as caught:
            load_config(None, environ={name: value})
        assert message in str(caught.value), (name, value, str(caught.value))


def test_the_consoles_read_only_token_is_optional_checked_and_never_the_admin_token(tmp_path: Path) -> None:
    init_secrets(tmp_path)
    assert load_secrets(tmp_path).admin_readonly_token is None
    (tmp_path / "DENEVA_ADMIN_READONLY_TOKEN").write_text("short\n")
    with pytest.raises(SecretError, match="DENEVA_ADMIN_READONLY_TOKEN: .*at least 16 characters"):
        load_secrets(tmp_path)
    admin = (tmp_path / "DENEVA_ADMIN_TOKEN").read_text()
    (tmp_path / "DENEVA_ADMIN_READONLY_TOKEN").write_text(admin)
    with pytest.raises(SecretError, match="DENEVA_ADMIN_READONLY_TOKEN: .*must be another value"):
        load_secrets(tmp_path)
    (tmp_path / "DENEVA_ADMIN_READONLY_TOKEN").write_text("look-but-do-not-touch-0123456789\n")
    loaded = load_secrets(tmp_path)
    assert loaded.admin_readonly_token is not None
    assert "look-but-do-not-touch-0123456789" in [s.reveal() for s in loaded.all()]  # kept out of logs
    assert "look-but" not in repr(loaded)


def test_console_sessions_last_as_configured_naming_the_key() -> None:
    default = load_config(environ={})
    assert (default.console_session_ttl, default.console_session_idle) == (12 * 3600, 3600)
    chosen = load_config(environ={"DENEVA_CONSOLE_SESSION_TTL": "8h", "DENEVA_CONSOLE_SESSION_IDLE": "0"})
    assert (chosen.console_session_ttl, chosen.console_session_idle) == (8 * 3600, 0)
    with pytest.raises(ConfigError, match="DENEVA_CONSOLE_SESSION_TTL: expected a duration from 60 s"):
        load_config(environ={"DENEVA_CONSOLE_SESSION_TTL": "10s"})
    with pytest.raises(ConfigError, match="DENEVA_CONSOLE_SESSION_IDLE: expected a duration"):
        load_config(environ={"DENEVA_CONSOLE_SESSION_IDLE": "forever"})


def test_a_skewed_clock_is_for_tests_and_refused_in_production() -> None:
    assert load_config(None, environ={"DENEVA_CLOCK_OFFSET_S": "60"}).clock_offset_s == 60.0
    assert load_config(None, environ={"DENEVA_CLOCK_OFFSET_S": "-3.5"}).clock_offset_s == -3.5
    with pytest.raises(ConfigError, match="DENEVA_CLOCK_OFFSET_S: a skewed clock is for tests"):
        load_config(None, environ={"DENEVA_CLOCK_OFFSET_S": "60", "DENEVA_ENV": "production"})
    for bad in ("soon", "nan", "1e9"):
        with pytest.raises(ConfigError, match="DENEVA_CLOCK_OFFSET_S"):
            load_config(None, environ={"DENEVA_CLOCK_OFFSET_S": bad})
    from deneva.clock import SystemClock

    ahead, now = SystemClock(60.0), SystemClock()
    assert 59.9 < ahead.now() - now.now() < 60.1


def test_transaction_pooling_needs_a_direct_url_for_listen() -> None:
    pooled = {
        "DENEVA_DATABASE_URL": "postgresql://app@pooler/deneva",
        "DENEVA_DATABASE_POOLING": "transaction",
    }
    with pytest.raises(
        ConfigError, match="DENEVA_DIRECT_DATABASE_URL: not set; with transaction pooling, LISTEN"
    ):
        load_config(None, environ=pooled)
    config = load_config(None, environ={**pooled, "DENEVA_DIRECT_DATABASE_URL": "postgresql://app@db/deneva"})
    assert (config.database_pooling, config.direct_database_url) == (
        "transaction",
        "postgresql://app@db/deneva",
    )
    with pytest.raises(ConfigError, match="DENEVA_DATABASE_POOLING: transaction pooling"):
        load_config(None, environ={"DENEVA_DATABASE_POOLING": "transaction"})
    with pytest.raises(ConfigError, match="DENEVA_DATABASE_POOLING: expected one of session, transaction"):
        load_config(None, environ={**pooled, "DENEVA_DATABASE_POOLING": "statement"})
    with pytest.raises(ConfigError, match="DENEVA_DIRECT_DATABASE_URL: set only with"):
        load_config(None, environ={"DENEVA_DIRECT_DATABASE_URL": "postgresql://app@db/deneva"})


def test_a_functions_module_adds_functions_and_a_bad_one_is_named() -> None:
    from deneva.functions import app_registry

    functions = app_registry("tests.chaos.functions")
    assert functions.registry.get("chaos-effect").id == "chaos-effect"
    assert load_config(None, environ={"DENEVA_FUNCTIONS_MODULE": "tests.chaos.functions"}).functions_module
    with pytest.raises(ConfigError, match="DENEVA_FUNCTIONS_MODULE: expected a dotted Python module name"):
        load_config(None, environ={"DENEVA_FUNCTIONS_MODULE": "../evil.py"})
    with pytest.raises(ConfigError, match="DENEVA_FUNCTIONS_MODULE: cannot import 'no_such_module_here'"):
        app_registry("no_such_module_here")
    with pytest.raises(ConfigError, match="has no register"):
        app_registry("json")
