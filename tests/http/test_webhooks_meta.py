"""`/webhooks/meta` on a running daemon (issue 15): Meta's verification handshake, the
`X-Hub-Signature-256` check, and change notifications, sent by the sandbox (our Meta
stand-in, a real HTTP POST signed with the app secret), that enqueue refreshes of the
notified account's cached reports for the tenant that connected it, and no other."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from deneva.engine.model import RunRecord
from deneva.sync.webhooks import FUNCTION_ID
from deneva.webhooks import meta_signature
from tests.mcp.daemon_fixture import (
    SANDBOX_SECRETS,
    RunningDaemon,
    TenantSpec,
    cached_reports,
    running_daemon,
)

VERIFY_TOKEN = "meta-verify-token-0123456789"
APP_SECRET = SANDBOX_SECRETS["DENEVA_META_APP_SECRET"]
ACME, GLOBEX = "4105550401", "4105550402"
SPECS = [TenantSpec("acme", (("meta", ACME),)), TenantSpec("globex", (("meta", GLOBEX),))]


@pytest.fixture
async def daemon(tmp_path: Path, database_url: str) -> AsyncIterator[RunningDaemon]:
    async with running_daemon(
        tmp_path, database_url, SPECS, secret_files={"DENEVA_META_VERIFY_TOKEN": VERIFY_TOKEN}
    ) as running:
        yield running


async def fan_outs(daemon: RunningDaemon, count: int) -> list[RunRecord]:
    """The first `count` meta-webhook-refresh runs, once finished (polled, bounded)."""
    with trio.fail_after(30):
        while True:
            runs = await daemon.engine.list_runs(function_id=FUNCTION_ID)
            if len(runs) >= count:
                break
            await trio.sleep(0.05)
        return [await daemon.engine.wait_for_run(run.id, 30) for run in runs]


async def webhook_refreshes(daemon: RunningDaemon) -> dict[str, int]:
    """Refresh runs a Meta notification enqueued, by tenant id."""
    rows = await daemon.db.fetch(
        "SELECT event->'data'->>'tenant_id' AS tenant, count(*) AS n FROM engine_runs "
        "WHERE function_id = 'refresh-tenant-report' AND event->>'id' LIKE 'meta-webhook:%' GROUP BY 1"
    )
    return {r["tenant"]: int(r["n"]) for r in rows}


async def send_from_sandbox(
    daemon: RunningDaemon, changes: list[dict[str, Any]], times: int = 1
) -> list[dict[str, Any]]:
    """The sandbox sends one signed notification `times` times; the daemon's answers."""
    response = await daemon.sandbox.control.post(
        "/_control/meta/webhook",
        json={
            "url": f"{daemon.base}/webhooks/meta",
            "app_secret": APP_SECRET,
            "changes": changes,
            "times": times,
        },
    )
    assert response.status_code == 200, response.text
    sent = response.json()
    assert sent["statuses"] == [200] * times, sent
    return [json.loads(answer) for answer in sent["answers"]]


async def test_meta_handshake_answers_the_challenge_and_unsigned_or_forged_posts_are_refused(
    daemon: RunningDaemon,
) -> None:
    url = f"{daemon.base}/webhooks/meta"
    handshake = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"}
    async with httpx.AsyncClient() as http:
        ok = await http.get(url, params=handshake)
        assert ok.status_code == 200 and ok.text == "1158201444"
        assert ok.headers["content-type"].startswith("text/plain")
        wrong = await http.get(url, params={**handshake, "hub.verify_token": "not-it"})
        assert wrong.status_code == 403 and "hub.verify_token" in wrong.json()["error"]
        not_subscribe = await http.get(url, params={**handshake, "hub.mode": "unsubscribe"})
        assert not_subscribe.status_code == 400 and "hub.mode" in not_subscribe.json()["error"]
        no_challenge = await http.get(
            url, params={k: v for k, v in handshake.items() if k != "hub.challenge"}
        )
        assert no_challenge.status_code == 400 and "hub.challenge" in no_challenge.json()["error"]

        body = json.dumps({"object": "ad_account", "entry": [{"id": ACME, "changes": []}]}).encode()
        cases = [
            ({}, 400, "missing header X-Hub-Signature-256"),
            ({"X-Hub-Signature-256": "sha1=" + "0" * 40}, 400, "expected 'sha256='"),
            ({"X-Hub-Signature-256": "sha256=xyz"}, 400, "expected 'sha256='"),
            ({"X-Hub-Signature-256": meta_signature("another-app-secret", body)}, 401, "does not match"),
            ({"X-Hub-Signature-256": meta_signature(APP_SECRET, body + b" ")}, 401, "does not match"),
        ]
        for headers, status, message in cases:
            response = await http.post(url, content=body, headers=headers)
            assert response.status_code == status, (headers, response.text)
            assert message in response.json()["error"]
            assert APP_SECRET not in response.text
        for bad, message in (
            (b"[1, 2]", "expected a JSON object"),
            (b'{"object": "ad_account"}', "entry: expected a list"),
            (b'{"object": "ad_account", "entry": [{"changes": []}]}', "entry[0].id"),
            (b"{not json", "not valid JSON"),
        ):
            response = await http.post(
                url, content=bad, headers={"X-Hub-Signature-256": meta_signature(APP_SECRET, bad)}
            )
            assert response.status_code == 400 and message in response.json()["error"], response.text
    stored = await daemon.db.fetchval(
        "SELECT count(*) FROM engine_events WHERE name = 'meta/webhook.received'"
    )
    assert stored == 0 and await daemon.db.fetchval("SELECT count(*) FROM webhook_deliveries") == 0


async def test_a_meta_change_notification_refreshes_the_connected_tenants_cached_reports_only(
    daemon: RunningDaemon, caplog: pytest.LogCaptureFixture
) -> None:
    acme, globex = daemon.tenant("acme"), daemon.tenant("globex")
    # Sent by the sandbox as Meta sends it (the account named as its Graph node), and sent
    # again, as Meta retries: stored once, one fan-out.
    first, retry = await send_from_sandbox(daemon, [{"account_id": f"act_{ACME}"}], times=2)
    assert first["runs"] == 1 and "duplicate" not in first
    assert retry["duplicate"] is True and retry["runs"] == 0
    [fan_out] = await fan_outs(daemon, 1)
    assert fan_out.status == "succeeded", fan_out.last_error
    assert fan_out.output is not None
    reports = len(cached_reports("meta"))
    assert fan_out.output["processed"] == reports and fan_out.output["accounts"] == [ACME]
    await daemon.settle_refreshes()
    assert await webhook_refreshes(daemon) == {acme.id: reports}  # none for globex's account
    assert globex.id not in json.dumps(fan_out.output)

    # An account no tenant connected: accepted (Meta must get its 200), logged, nothing
    # enqueued; a change that moves no cached figure (creative fatigue) refreshes nothing.
    unknown = "4105559999"
    with caplog.at_level(logging.WARNING, logger="deneva.sync"):
        [answer] = await send_from_sandbox(
            daemon,
            [
                {"account_id": unknown},
                {"account_id": GLOBEX, "field": "creative_fatigue", "value": {"ad_id": "1"}},
            ],
        )
        assert answer["runs"] == 1
        runs = await fan_outs(daemon, 2)
    [second] = [r for r in runs if r.id != fan_out.id]
    assert second.status == "succeeded" and second.output is not None
    assert second.output["accounts"] == [unknown] and second.output["processed"] == 0
    assert second.output["unknownAccounts"] == [unknown]
    assert second.output["ignoredFields"] == {"creative_fatigue": 1}
    assert [r.accounts for r in caplog.records if hasattr(r, "accounts")] == [[unknown]]
    assert await webhook_refreshes(daemon) == {acme.id: reports}
