"""Issue 12's acceptance, end to end in a real headless Chromium against the sandbox:
`deneva connect` prints a link, the browser consents on the platform's page and picks
accounts on deneva's, the first sync lands and a tool call hits; and seed 000 §13 steps
5, 11 and 12 with the reconnect done in the browser."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from deneva.credentials import load_credential, open_tokens
from tests.conftest import TEST_ENV, as_app_login
from tests.connect.browser import connect_cli, require_chromium
from tests.connect.flows import app_db, connect_daemon, credentials
from tests.mcp.daemon_fixture import RunningDaemon
from tests.test_metrics_daemon import call_tool


@pytest.fixture(autouse=True)
def chromium() -> None:
    require_chromium()


def cli_env(running: RunningDaemon, database_url: str, tmp_path: Path) -> dict[str, str]:
    """`deneva connect` on the operator's machine: the same database, the daemon's public address."""
    return {
        "DENEVA_DATABASE_URL": as_app_login(database_url),
        "DENEVA_ENV": TEST_ENV,
        "DENEVA_PUBLIC_URL": running.base,
        "DENEVA_STATE_DIR": str(tmp_path / "cli-state"),
    }


async def sync_now(running: RunningDaemon, platform: str) -> None:
    """The seed's `invoke sync-{platform}-account_health`, waited for."""
    run_id = await running.engine.invoke(f"sync-{platform}-account_health")
    record = await running.engine.wait_for_run(run_id, 60)
    assert record.status == "succeeded", record.last_error
    await running.settle_refreshes()


async def refresh(http: httpx.AsyncClient, running: RunningDaemon, platform: str, account: str) -> Any:
    """A sync of one report now (the cache is fresh: the fan-outs would leave it alone)."""
    result = await call_tool(
        http,
        running,
        "refresh_report",
        platform=platform,
        reportType="account_health",
        dateRange="last_7_days",
        accountId=account,
        wait=True,
        timeoutS=60,
    )
    return result["structuredContent"]


async def health(http: httpx.AsyncClient, running: RunningDaemon, platform: str, account: str) -> Any:
    result = await call_tool(
        http, running, "get_account_health", platform=platform, dateRange="last_7_days", accountId=account
    )
    assert not result.get("isError"), result
    return result["structuredContent"]


async def test_connect_each_platform_in_chromium_then_the_first_sync_lands_and_a_tool_call_hits(
    tmp_path: Path, database_url: str
) -> None:
    async with connect_daemon(tmp_path, database_url) as running, httpx.AsyncClient(timeout=30) as http:
        env = cli_env(running, database_url, tmp_path)
        picks = {"google": ["5550000002"], "meta": ["1000000001"], "tiktok": ["7100000000002"]}
        for platform, accounts in picks.items():
            cli, seen = await connect_cli(env, platform, "acme", (), pick=accounts)
            assert cli.returncode == 0, (cli.stdout, cli.stderr)
            assert f"connected {platform} account {accounts[0]} for acme" in cli.stdout
            assert seen.title.startswith("Connected")
            assert len(seen.pages) == 3  # the platform's consent, deneva's pick, the result
            assert "/connect/" in seen.pages[-1]
        assert set(await credentials(running, "acme")) == {(p, a[0]) for p, a in picks.items()}
        for platform, accounts in picks.items():
            await sync_now(running, platform)
            answer = await health(http, running, platform, accounts[0])
            assert answer["cache"] == "hit", answer
            assert "stale" not in answer
        google = (await credentials(running, "acme"))[("google", "5550000002")]
        assert google["login_customer_id"] == "5550000000"  # a client of the sandbox's manager


async def test_seed_000_steps_5_11_12_a_revoked_meta_token_reconnected_in_the_browser(
    tmp_path: Path, database_url: str
) -> None:
    async with connect_daemon(tmp_path, database_url) as running, httpx.AsyncClient(timeout=30) as http:
        env = cli_env(running, database_url, tmp_path)
        cli, _ = await connect_cli(env, "meta", "acme", ["act_1000000001"])
        assert cli.returncode == 0, (cli.stdout, cli.stderr)
        await sync_now(running, "meta")
        assert (await health(http, running, "meta", "1000000001"))["cache"] == "hit"
        before = (await credentials(running, "acme"))[("meta", "1000000001")]

        # Step 5: the token is revoked on the platform; the sync marks the credential.
        db = app_db(running)
        tenant_id = await db.fetchval("SELECT id FROM tenants WHERE name = 'acme'")
        stored = await db.run(lambda c: load_credential(c, tenant_id, "meta", "1000000001"))
        assert stored is not None
        token = open_tokens(running.daemon.secrets.keyring(), stored.row, stored.sealed).access_token
        assert token is not None
        await running.sandbox.token_action("revoke", "meta", token)
        failed = await refresh(http, running, "meta", "1000000001")
        assert failed["status"] == "failed" and failed["errorCode"] == "token_revoked", failed
        row = (await credentials(running, "acme"))[("meta", "1000000001")]
        assert row["last_error_code"] == "token_revoked"
        # Step 6: stale data, with why.
        answer = await health(http, running, "meta", "1000000001")
        assert answer["stale"] is True and answer["lastFailureCode"] == "token_revoked"
        # Issue 12 item 4: reconnect needed, with the command, in get_sync_status and the metrics.
        status = await call_tool(http, running, "get_sync_status", platform="meta")
        [account] = status["structuredContent"]["accounts"]
        command = "deneva connect meta --tenant acme --account 1000000001"
        assert account["status"] == "reconnect needed"
        assert account["reconnect"]["command"] == command
        admin = await http.get(
            f"{running.base}/admin/metrics/sync",
            headers={"x-admin-token": running.daemon.secrets.admin_token.reveal()},
        )
        acme = [c for c in admin.json()["credentials"] if c["tenant"] == "acme"]
        assert [(c["status"], c["reconnect"]["command"]) for c in acme] == [("reconnect needed", command)]
        globex = [c for c in admin.json()["credentials"] if c["tenant"] == "globex"]
        assert {c["status"] for c in globex} == {"healthy"}

        # Step 11: complete OAuth again (the command get_sync_status gave), then sync.
        cli, seen = await connect_cli(env, "meta", "acme", command.split("--account ")[1:])
        assert cli.returncode == 0, (cli.stdout, cli.stderr)
        assert "replaced the credential" in seen.text
        after = (await credentials(running, "acme"))[("meta", "1000000001")]
        assert after["token_version"] > before["token_version"]  # the same row, replaced in place
        assert len(await credentials(running, "acme")) == 1
        healed = await refresh(http, running, "meta", "1000000001")
        assert healed["status"] == "completed", healed
        healthy = await db.fetchrow(
            "SELECT last_sync_failure_at, last_error_code, healthy FROM platform_credentials p "
            "JOIN tenants t ON t.id = p.tenant_id WHERE t.name = 'acme' AND platform = 'meta'"
        )
        assert healthy is not None
        assert healthy["last_sync_failure_at"] is None and healthy["last_error_code"] is None
        assert healthy["healthy"]
        # Step 12: fresh, no stale flag.
        answer = await health(http, running, "meta", "1000000001")
        assert "stale" not in answer and answer["cache"] == "hit"
        status = await call_tool(http, running, "get_sync_status", platform="meta")
        assert status["structuredContent"]["accounts"][0]["status"] == "healthy"


async def test_the_cli_says_why_when_the_grant_does_not_reach_the_account(
    tmp_path: Path, database_url: str
) -> None:
    async with connect_daemon(tmp_path, database_url) as running:
        env = cli_env(running, database_url, tmp_path)
        cli, seen = await connect_cli(env, "tiktok", "acme", ["7999999999999"])
        assert cli.returncode == 1
        assert "does not reach tiktok account 7999999999999" in cli.stderr
        assert "7100000000001" in cli.stderr  # what it does reach
        assert seen.title == "Account not reachable"
        assert await credentials(running, "acme") == {}
