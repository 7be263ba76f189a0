"""`deneva run`'s ad platforms: config keys for the API roots (real defaults), optional
secret files for the OAuth clients and app secret (and Google's developer token, no longer
needed), which platforms are synced and why not, and the sync skipping a platform it has no
adapter for."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest
import trio
import trio.testing

from deneva.adapters import ReportRequest
from deneva.adapters.base import GOOGLE_ADS_API, GOOGLE_TOKEN_URL, META_GRAPH_API, TIKTOK_BUSINESS_API
from deneva.config import Config, load_config
from deneva.db import Database
from deneva.errors import ConfigError, SecretError
from deneva.runtime import Daemon
from deneva.sdnotify import Notifier
from deneva.secrets import OPTIONAL, PLATFORM_SECRETS, init_secrets, load_secrets
from deneva.sync.model import SyncRuntime
from deneva.sync.platforms import platform_setup
from tests.adapters.conftest import ACCOUNTS, TODAY, creds, start_sandbox
from tests.sync.harness import world

# Values the sandbox accepts (PlatformConfig.for_sandbox); here they come from secret files.
SANDBOX_SECRETS = {
    "DENEVA_GOOGLE_CLIENT_ID": "deneva-sandbox.apps.googleusercontent.com",
    "DENEVA_GOOGLE_CLIENT_SECRET": "sandbox-client-secret",
    "DENEVA_GOOGLE_DEVELOPER_TOKEN": "sandbox-developer-token",
    "DENEVA_META_APP_ID": "100000000000001",
    "DENEVA_META_APP_SECRET": "sandbox-app-secret",
}


def _secrets_dir(tmp_path: Path, *names: str) -> Path:
    directory = tmp_path / "secrets"
    init_secrets(directory)
    for name in names:
        (directory / name).write_text(SANDBOX_SECRETS[name] + "\n")
    return directory


def test_platform_urls_default_to_the_real_apis() -> None:
    config = load_config(None, environ={})
    assert config.platforms == ("google", "meta", "tiktok")
    assert (config.google_ads_url, config.google_token_url) == (GOOGLE_ADS_API, GOOGLE_TOKEN_URL)
    assert config.google_ads_url == "https://googleads.googleapis.com"
    assert config.google_token_url == "https://oauth2.googleapis.com/token"
    assert config.meta_graph_url == META_GRAPH_API == "https://graph.facebook.com"
    assert config.tiktok_api_url == TIKTOK_BUSINESS_API == "https://business-api.tiktok.com/open_api"
    assert config.google_ads_api_version is None  # the adapters' own


def test_platform_keys_from_the_file_and_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "deneva.toml"
    path.write_text(
        'platforms = ["google", "tiktok"]\n'
        'google_ads_url = "https://ads.example.test/"\n'
        'meta_api_version = "v21.0"\n'
        'google_login_customer_id = "123-456-7890"\n'
    )
    config = load_config(path, environ={"DENEVA_TIKTOK_API_URL": "http://127.0.0.1:8790/tiktok/open_api"})
    assert config.platforms == ("google", "tiktok")
    assert config.google_ads_url == "https://ads.example.test"
    assert config.meta_api_version == "v21.0"
    assert config.google_login_customer_id == "1234567890"
    assert load_config(None, environ={}).google_login_customer_id is None
    number = tmp_path / "number.toml"
    number.write_text("google_login_customer_id = 1112223333\n")
    assert load_config(number, environ={}).google_login_customer_id == "1112223333"
    assert config.tiktok_api_url == "http://127.0.0.1:8790/tiktok/open_api"
    assert load_config(None, environ={"DENEVA_PLATFORMS": "none"}).platforms == ()
    assert load_config(None, environ={"DENEVA_PLATFORMS": "Meta, meta"}).platforms == ("meta",)
    empty = tmp_path / "none.toml"
    empty.write_text("platforms = []\n")
    assert load_config(empty, environ={}).platforms == ()


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DENEVA_PLATFORMS", "google,bing", "DENEVA_PLATFORMS: unknown platform 'bing'"),
        ("DENEVA_GOOGLE_ADS_URL", "googleads.googleapis.com", "DENEVA_GOOGLE_ADS_URL: expected an http"),
        ("DENEVA_GOOGLE_TOKEN_URL", "https://oauth2.googleapis.com/token?x=1", "without query"),
        ("DENEVA_META_GRAPH_URL", "https://user:pw@graph.facebook.com", "DENEVA_META_GRAPH_URL: expected"),
        ("DENEVA_TIKTOK_API_URL", "ftp://business-api.tiktok.com", "DENEVA_TIKTOK_API_URL: expected"),
        ("DENEVA_GOOGLE_ADS_API_VERSION", "26", "like 'v26'"),
        ("DENEVA_META_API_VERSION", "v27", "like 'v27.0'"),
        ("DENEVA_TIKTOK_API_VERSION", "v1.3/../x", "like 'v1.3'"),
        ("DENEVA_GOOGLE_LOGIN_CUSTOMER_ID", "123-456", "DENEVA_GOOGLE_LOGIN_CUSTOMER_ID: expected a Google"),
        ("DENEVA_GOOGLE_LOGIN_CUSTOMER_ID", "12345678901", "customer id of 10 digits"),
    ],
)
def test_bad_platform_settings_are_named(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("?", r"\?")):
        load_config(None, environ={name: value})


def test_platform_secret_files_are_optional_and_checked_when_present(tmp_path: Path) -> None:
    directory = _secrets_dir(tmp_path)
    bare = load_secrets(directory)
    assert bare.optional == {} and len(bare.all()) == 4
    for name in PLATFORM_SECRETS["google"]:
        (directory / name).write_text(SANDBOX_SECRETS[name] + "\n")
    loaded = load_secrets(directory)
    google_secret = loaded.get("DENEVA_GOOGLE_CLIENT_SECRET")
    assert google_secret is not None and google_secret.reveal() == "sandbox-client-secret"
    assert len(loaded.all()) == 6  # registered with the log redactor with the others
    assert "sandbox-client-secret" not in repr(loaded)
    assert set(OPTIONAL) == {name for names in PLATFORM_SECRETS.values() for name in names} | {
        "DENEVA_GOOGLE_DEVELOPER_TOKEN",
        "DENEVA_TIKTOK_APP_ID",  # the browser connect's, not the sync's
        "DENEVA_TIKTOK_APP_SECRET",
        "DENEVA_META_VERIFY_TOKEN",  # Meta's webhook handshake (/webhooks/meta)
    }
    (directory / "DENEVA_GOOGLE_DEVELOPER_TOKEN").write_text("sandbox-developer-token\n")
    with_token = load_secrets(directory)
    assert len(with_token.all()) == 7 and "sandbox-developer-token" not in repr(with_token)
    (directory / "DENEVA_GOOGLE_DEVELOPER_TOKEN").write_text("two words\n")
    with pytest.raises(SecretError, match="^DENEVA_GOOGLE_DEVELOPER_TOKEN: .*one value on one line"):
        load_secrets(directory)
    (directory / "DENEVA_GOOGLE_DEVELOPER_TOKEN").unlink()

    (directory / "DENEVA_META_APP_SECRET").write_text("")
    with pytest.raises(SecretError, match="^DENEVA_META_APP_SECRET: .* is empty"):
        load_secrets(directory)
    (directory / "DENEVA_META_APP_SECRET").write_text("two words\n")
    with pytest.raises(SecretError, match="^DENEVA_META_APP_SECRET: .*one value on one line") as info:
        load_secrets(directory)
    assert "two words" not in str(info.value)
    (directory / "DENEVA_META_APP_SECRET").unlink()
    (directory / "DENEVA_META_APP_SECRET").mkdir()
    with pytest.raises(SecretError, match="^DENEVA_META_APP_SECRET: cannot read"):
        load_secrets(directory)


def test_a_platform_is_synced_when_listed_and_all_its_secrets_are_there(tmp_path: Path) -> None:
    directory = _secrets_dir(tmp_path, *PLATFORM_SECRETS["google"], "DENEVA_META_APP_ID")
    secrets = load_secrets(directory)
    setup = platform_setup(Config(), secrets)
    assert setup.synced == ("google", "tiktok")
    assert setup.not_synced == {"meta": "missing secret files: DENEVA_META_APP_SECRET"}
    assert set(setup.adapters()) == {"google", "tiktok"}
    assert setup.config.google_base_url == GOOGLE_ADS_API
    assert setup.config.google_client_secret == "sandbox-client-secret"
    assert setup.config.meta_app_id == "100000000000001" and setup.config.meta_app_secret is None
    assert "sandbox-client-secret" not in repr(setup) and "sandbox-developer-token" not in repr(setup)

    only = platform_setup(Config(platforms=("meta",), meta_api_version="v21.0"), secrets)
    assert only.synced == ()
    assert only.not_synced == {
        "google": "not in the `platforms` setting",
        "meta": "missing secret files: DENEVA_META_APP_SECRET",
        "tiktok": "not in the `platforms` setting",
    }
    assert only.config.meta_api_version == "v21.0"


def test_google_is_synced_with_its_oauth_client_alone(tmp_path: Path) -> None:
    """No developer token: Google sunset them on 9 September 2026."""
    secrets = load_secrets(_secrets_dir(tmp_path, "DENEVA_GOOGLE_CLIENT_ID", "DENEVA_GOOGLE_CLIENT_SECRET"))
    setup = platform_setup(Config(google_login_customer_id="1112223333"), secrets)
    assert "google" in setup.synced and "google" not in setup.not_synced
    assert setup.config.google_developer_token is None
    assert setup.config.google_login_customer_id == "1112223333"
    with_token = load_secrets(_secrets_dir(tmp_path, "DENEVA_GOOGLE_DEVELOPER_TOKEN"))
    assert platform_setup(Config(), with_token).config.google_developer_token == "sandbox-developer-token"


async def test_deneva_run_binds_the_configured_platforms_and_says_so_once(
    tmp_path: Path, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    secrets = load_secrets(_secrets_dir(tmp_path, *PLATFORM_SECRETS["google"]))
    daemon = Daemon(Config(state_dir=tmp_path / "state"), secrets, notifier=Notifier(None))
    runtime = daemon.sync_runtime
    assert runtime is not None and runtime.services is None
    with caplog.at_level(logging.INFO, logger="deneva.daemon"):
        daemon._bind_platforms(runtime, db, "test")
    services = runtime.get()
    assert set(services.adapters) == {"google", "tiktok"} and services.db is db
    [record] = [r for r in caplog.records if r.getMessage() == "ad-platform sync"]
    assert record.synced == ["google", "tiktok"]  # type: ignore[attr-defined]
    assert record.not_synced == {  # type: ignore[attr-defined]
        "meta": "missing secret files: DENEVA_META_APP_ID, DENEVA_META_APP_SECRET"
    }
    shown = caplog.text + repr(record.__dict__)
    for value in SANDBOX_SECRETS.values():
        assert value not in shown

    nothing = SyncRuntime()
    Daemon(Config(platforms=()), secrets, notifier=Notifier(None))._bind_platforms(nothing, db, "test")
    assert nothing.services is None  # no platform: the sync stays unbound, its runs say so


@pytest.mark.parametrize("developer_token", [False, True])
async def test_the_production_configuration_pointed_at_the_sandbox_fetches(
    tmp_path: Path, nursery: trio.Nursery, developer_token: bool
) -> None:
    """The keys and files map onto the adapters as the real APIs need: pointed at the
    sandbox (which speaks those APIs), each platform fetches a report, Google with or
    without a developer token."""
    server = await start_sandbox(nursery)
    base = server.base_url
    files = [n for n in SANDBOX_SECRETS if developer_token or n != "DENEVA_GOOGLE_DEVELOPER_TOKEN"]
    secrets = load_secrets(_secrets_dir(tmp_path, *files))
    config = Config(
        google_ads_url=f"{base}/google",
        google_token_url=f"{base}/google/token",
        meta_graph_url=f"{base}/meta",
        tiktok_api_url=f"{base}/tiktok/open_api",
    )
    for platform, field in (
        ("google", "refresh_token"),
        ("meta", "access_token"),
        ("tiktok", "access_token"),
    ):
        token = creds(platform).refresh_token or creds(platform).access_token
        server.state.tokens.register(
            platform, "refresh" if field == "refresh_token" else "access", token or ""
        )
    setup = platform_setup(config, secrets)
    assert setup.synced == ("google", "meta", "tiktok")
    sent: list[httpx.Headers] = []

    async def record(req: httpx.Request) -> None:
        if req.url.path.startswith("/google/v26/"):
            sent.append(req.headers)

    async with httpx.AsyncClient(event_hooks={"request": [record]}) as http:
        for platform, adapter in setup.adapters(http).items():
            request = ReportRequest(platform, ACCOUNTS[platform], "account_health", "last_7_days", TODAY)
            data = await adapter.fetch_report(creds(platform), request)
            assert data.rows, platform
    [google] = sent
    assert google.get("developer-token") == ("sandbox-developer-token" if developer_token else None)


async def test_the_sync_skips_a_platform_it_does_not_sync(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    async with world(db, platforms=("google",)) as w:
        acme = await w.tenant("acme")
        await w.connect("acme", "google")
        await w.connect("acme", "meta", expires_at=w.clock.now() + 600)
        fan_out = await w.wait(await w.engine.invoke("sync-meta-account_health"))
        assert fan_out.output == {"processed": 0, "skipped": {"not_synced": 1}, "failed": 0, "errors": []}
        tokens = await w.wait(await w.engine.invoke("eager-token-refresh"))
        # The meta token expires in 10 minutes, but meta is not synced here: nothing to refresh.
        assert tokens.output == {"processed": 0, "skipped": {}, "failed": 0, "errors": []}

        asked = await w.refresh(acme, "meta")
        assert asked.status == "failed" and asked.attempt == 1
        assert "meta is not synced by this daemon" in (asked.last_error or "")
        assert await w.sync_log("platform", "outcome", "error_code") == [
            ("meta", "failure_final", "invalid_request")
        ]
        assert await db.fetchval("SELECT healthy FROM platform_credentials WHERE platform = 'meta'") is True
        assert (await w.refresh(acme, "google")).status == "succeeded"  # the synced one is untouched
        assert await w.sandbox.calls("meta", "insights") == 0
