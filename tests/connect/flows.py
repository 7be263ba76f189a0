"""Driving a browser connect over plain HTTP (a cookie jar, redirects followed by hand, as
a browser follows them), against a real daemon and the sandbox."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from deneva.connect import Invitation, begin_flow, start_url
from deneva.db import Database
from tests.mcp.daemon_fixture import RunningDaemon, TenantSpec, running_daemon

# "acme" connects in the tests; "globex" is the other tenant, connected with token files,
# whose rows nothing the tests do to acme may touch.
SPECS = (
    TenantSpec("acme", ()),
    TenantSpec("globex", (("google", "1234567890"), ("meta", "1001"), ("tiktok", "7000000000000000001"))),
)


@asynccontextmanager
async def connect_daemon(tmp_path: Path, database_url: str) -> AsyncIterator[RunningDaemon]:
    async with running_daemon(tmp_path, database_url, SPECS) as running:
        yield running


def app_db(running: RunningDaemon) -> Database:
    """The daemon's own pool (its login sees connect_flows; the tables' owner does not)."""
    db = running.daemon.health.db
    assert db is not None
    return db


async def invite(
    running: RunningDaemon,
    platform: str,
    accounts: Sequence[str] = (),
    *,
    tenant: str = "acme",
    now: float | None = None,
) -> tuple[Invitation, str]:
    """What `deneva connect PLATFORM --tenant acme` does first: the flow and its link."""
    at = time.time() if now is None else now
    invitation = await app_db(running).transaction(
        lambda c: begin_flow(c, tenant, platform, "tester", accounts, at)
    )
    return invitation, start_url(running.base, platform, invitation.state)


async def consent(running: RunningDaemon, platform: str, **settings: Any) -> None:
    response = await running.sandbox.control.put(f"/_control/consent/{platform}", json=settings)
    assert response.status_code == 200, response.text


async def follow(client: httpx.AsyncClient, url: str, limit: int = 5) -> httpx.Response:
    """GET `url` and follow its redirects (across the daemon and the sandbox), as a browser does."""
    response = await client.get(url)
    for _ in range(limit):
        if response.status_code not in (301, 302, 303):
            return response
        response = await client.get(response.headers["location"])
    raise AssertionError(f"more than {limit} redirects from {url}")


def form_of(page: str) -> dict[str, str]:
    """The hidden fields of the account-pick form."""
    return dict(re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)">', page))


def listed_accounts(page: str) -> list[str]:
    return re.findall(r'name="account" value="([^"]+)"', page)


async def pick(
    client: httpx.AsyncClient, running: RunningDaemon, platform: str, page: str, accounts: Sequence[str]
) -> httpx.Response:
    fields = form_of(page)
    data: dict[str, Any] = {"state": fields["state"], "form_token": fields["form_token"]}
    if accounts:
        data["account"] = list(accounts)
    return await client.post(f"{running.base}/connect/{platform}/accounts", data=data)


async def credentials(running: RunningDaemon, tenant: str) -> dict[tuple[str, str], dict[str, Any]]:
    """A tenant's credential rows, as the daemon's login reads them."""
    rows = await app_db(running).fetch(
        "SELECT p.platform, p.account_id, p.login_customer_id, p.healthy, p.last_error_code, "
        "p.token_version, p.access_token_expires_at, p.updated_at FROM platform_credentials p "
        "JOIN tenants t ON t.id = p.tenant_id WHERE t.name = $1",
        tenant,
    )
    return {(r["platform"], r["account_id"]): dict(r) for r in rows}


async def flow_row(running: RunningDaemon, invitation: Invitation) -> dict[str, Any]:
    row = await app_db(running).fetchrow(
        "SELECT status, outcome, connected, grant_ct, wrapped_key, form_hash FROM connect_flows "
        "WHERE id = $1",
        invitation.flow_id,
    )
    assert row is not None
    return dict(row)
