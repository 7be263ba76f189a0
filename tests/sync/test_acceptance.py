"""Issue 4 acceptance: seed 000 §13 end to end, B4, C4, D2, Retry-After, bad input.

Everything real below HTTP: the daemon's own function registry on the real engine
(dispatcher, and the scheduler where cron matters), the sandbox platforms over
loopback HTTP, envelope-encrypted credentials in the real Postgres. Time is trio's
MockClock: retries, backoff and Retry-After waits pass in virtual time, and every
timestamp the sync writes (sync_log, credentials, cache rows) is on that clock.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import uuid
from datetime import timedelta
from typing import Any

import pytest
import trio
import trio.testing

from deneva.clock import as_datetime
from deneva.credentials import CredentialRow, Keyring, SealedCredential, open_tokens
from deneva.db import Database
from deneva.sync.cache import CacheKey, read
from deneva.sync.cadence import CADENCES
from deneva.sync.model import REFRESH_EVENT, TOKEN_EVENT
from deneva.sync.tokens import expiring_tokens
from tests.adapters.conftest import ACCOUNTS, GOOGLE_REFRESH, META_TOKEN, SECRETS
from tests.sync.harness import KEYS, World, world

GOOGLE = ACCOUNTS["google"]


async def _credential(w: World, tenant: uuid.UUID, platform: str, account: str | None = None) -> Any:
    row = await w.db.fetchrow(
        "SELECT id, healthy, last_error_code, last_sync_failure_at, last_success_at, access_token_expires_at "
        "FROM platform_credentials WHERE tenant_id = $1 AND platform = $2 AND account_id = $3",
        tenant,
        platform,
        account or ACCOUNTS[platform],
    )
    assert row is not None
    return row


async def _stale(w: World, tenant: uuid.UUID, platform: str | None = None) -> dict[str, bool]:
    rows = await w.db.fetch(
        "SELECT platform, account_id, report_type, date_range, is_stale FROM metric_cache "
        "WHERE tenant_id = $1 AND ($2::text IS NULL OR platform = $2)",
        tenant,
        platform,
    )
    return {
        f"{r['platform']}/{r['account_id']}/{r['report_type']}/{r['date_range']}": r["is_stale"] for r in rows
    }


def _fan_out(processed: int) -> dict[str, Any]:
    """A fan-out's output (seed 002's batch summary) that enqueued `processed` and skipped nothing."""
    return {"processed": processed, "skipped": {}, "failed": 0, "errors": []}


def _assert_no_secrets(*texts: Any) -> None:
    shown = "\n".join(str(t) for t in texts)
    for secret in (*SECRETS, "globex-meta-token-0002"):
        assert secret not in shown


# -- §13 step 3: the functions ---------------------------------------------------------------


def test_the_daemon_lists_every_sync_function(tmp_path: Any) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DENEVA_")}
    listed = subprocess.run(
        [sys.executable, "-m", "deneva", "functions", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert listed.returncode == 0, listed.stderr
    by_id = {f["id"]: f for f in json.loads(listed.stdout)}
    fan_outs = {f"sync-{c.platform}-{c.report_type}" for c in CADENCES}
    assert len(fan_outs) == 13 and "sync-google-account_health" in fan_outs
    expected = {
        "refresh-tenant-report",
        "eager-cache-refresh",
        "eager-token-refresh",
        "refresh-one-token",
        "gdpr-purge-cache",
        "gdpr-purge-sync-log",
        "gdpr-archive-audit",
        "heartbeat",
    }
    assert expected | fan_outs <= set(by_id)
    assert by_id["refresh-tenant-report"]["triggers"] == [f"event {REFRESH_EVENT}"]
    assert by_id["refresh-tenant-report"]["retries"] == 3
    assert by_id["refresh-one-token"]["triggers"] == [f"event {TOKEN_EVENT}"]
    # The token-refresh actor asks for refreshes by deadline; the seed's fan-out is kept for operators.
    assert by_id["eager-token-refresh"]["triggers"] == ["invoke only"]
    assert by_id["eager-cache-refresh"]["triggers"] == ["cron * * * * *"]
    assert by_id["heartbeat"]["triggers"] == ["cron */5 * * * *", "event deneva/canary"]
    assert by_id["gdpr-purge-cache"]["triggers"] == ["janitor 0 2 * * *"]
    assert by_id["gdpr-archive-audit"]["triggers"] == ["janitor 30 2 * * *"]
    assert all(by_id[f]["triggers"][0].startswith("cron ") for f in fan_outs)
    assert {f["state"] for f in by_id.values()} == {"active"}


# -- §13 steps 4-7 and 11-12, on Meta as the seed does ---------------------------------------------


async def test_seed_000_smoke_revoked_meta_token_then_reconnect(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    async with world(db) as w:
        acme, globex = await w.tenant("acme"), await w.tenant("globex")
        await w.sandbox.register("meta", access_token="globex-meta-token-0002")
        await w.connect("acme", "meta")
        await w.connect("globex", "meta", "1002", access="globex-meta-token-0002")

        # 4. A manual invoke of the fan-out writes sync_log rows (tenant x date range).
        started = w.clock.now()
        fan_out = await w.wait(await w.engine.invoke("sync-meta-account_health"))
        assert fan_out.status == "succeeded" and fan_out.output == _fan_out(6)
        await w.settle()
        rows = await w.sync_log("tenant_id", "platform", "report_type", "outcome", "created_at")
        assert len(rows) == 6
        assert {(r[0], r[1], r[2], r[3]) for r in rows} == {
            (t, "meta", "account_health", "success") for t in (acme, globex)
        }
        # Stamped on the daemon's (virtual) clock.
        assert all(as_datetime(started) <= r[4] <= as_datetime(w.clock.now()) for r in rows)

        # 5. Revoke acme's token; the next sync exhausts at once (token_revoked is not retried).
        await w.sandbox.token_action("revoke", "meta", META_TOKEN)
        await trio.sleep(55 * 60)  # the rows are due at 80-90 % of their 1 h TTL
        refresh = await w.wait(await w.engine.invoke("eager-cache-refresh"))
        assert refresh.output == _fan_out(6)
        await w.settle()
        failed_at = await _credential(w, acme, "meta")
        assert failed_at["healthy"] is False and failed_at["last_error_code"] == "token_revoked"
        assert failed_at["last_sync_failure_at"] >= as_datetime(started + 55 * 60)
        assert set((await _stale(w, acme)).values()) == {True}
        assert set((await _stale(w, globex)).values()) == {False}  # the other tenant synced fine
        finals = await w.db.fetch(
            "SELECT tenant_id, attempt, error_code, error_message FROM sync_log "
            "WHERE outcome = 'failure_final'"
        )
        assert {(r["tenant_id"], r["attempt"], r["error_code"]) for r in finals} == {
            (acme, 1, "token_revoked")
        }
        assert len(finals) == 3
        _assert_no_secrets(*(r["error_message"] for r in finals))
        audit = await db.fetch(
            "SELECT tenant_id, outcome, details FROM audit_log WHERE event_type = 'sync.exhausted'"
        )
        assert audit and {(a["tenant_id"], a["outcome"]) for a in audit} == {(acme, "failure")}
        assert {a["details"]["error_code"] for a in audit} == {"token_revoked"}

        # 6. A read in the unhealthy window: the data, a hit, stale, and why.
        key = CacheKey(acme, "meta", ACCOUNTS["meta"], "account_health", "last_7_days")
        hit = await read(db, key, w.clock.now())
        assert hit is not None
        body = hit.envelope()
        assert body["data"]["report"] == "account_health"
        assert {k: body[k] for k in ("cache", "stale", "lastFailureCode")} == {
            "cache": "hit",
            "stale": True,
            "lastFailureCode": "token_revoked",
        }

        # 11. Restore the connection (the token works again, connected anew) and sync.
        await w.sandbox.token_action("restore", "meta", META_TOKEN)
        await w.connect("acme", "meta")
        assert (await w.refresh(acme, "meta")).status == "succeeded"
        healed = await _credential(w, acme, "meta")
        assert healed["healthy"] is True
        assert healed["last_error_code"] is None and healed["last_sync_failure_at"] is None
        assert healed["last_success_at"] > failed_at["last_sync_failure_at"]
        assert set((await _stale(w, acme)).values()) == {False}

        # 12. Fresh: no stale flag, no failure code.
        fresh = await read(db, key, w.clock.now())
        assert fresh is not None and fresh.fetched_at > hit.fetched_at
        assert "stale" not in fresh.envelope() and "lastFailureCode" not in fresh.envelope()

        # The reports whose refresh failed are tried again by the eager refresh (10 min on).
        await trio.sleep(10 * 60)
        again = await w.wait(await w.engine.invoke("eager-cache-refresh"))
        assert again.output == _fan_out(2)
        await w.settle()
        fetched = await db.fetch("SELECT fetched_at FROM metric_cache WHERE tenant_id = $1", acme)
        assert all(r["fetched_at"] > failed_at["last_sync_failure_at"] for r in fetched)


# -- B4: fan-out and the worker ---------------------------------------------------------------------


async def test_fan_out_summaries_say_what_was_skipped_and_why(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    """Seed 002's batch summary: processed, skipped (with why), failed to enqueue."""
    async with world(db) as w:
        await w.tenant("acme")
        await w.tenant("globex")
        await w.tenant("initech")
        await w.connect("acme", "google")
        await w.connect("globex", "google")
        await w.connect("initech", "google")
        await db.execute(
            "UPDATE platform_credentials SET healthy = false, last_error_code = 'token_revoked' "
            "WHERE tenant_id = (SELECT id FROM tenants WHERE name = 'globex')"
        )
        await db.execute(
            "UPDATE platform_credentials SET healthy = false, last_error_code = 'credential_unreadable' "
            "WHERE tenant_id = (SELECT id FROM tenants WHERE name = 'initech')"
        )
        # While the refresh function is paused, nothing is enqueued to pile up behind it.
        await w.engine.pause("refresh-tenant-report", by="test")
        held = await w.wait(await w.engine.invoke("sync-google-account_health"))
        assert held.output == {
            "processed": 0,
            "skipped": {"paused": 3, "revoked": 3, "unhealthy": 3},
            "failed": 0,
            "errors": [],
        }
        assert await db.fetchval("SELECT count(*) FROM engine_events WHERE name = $1", REFRESH_EVENT) == 0
        await w.engine.resume("refresh-tenant-report")
        run = await w.wait(await w.engine.invoke("sync-google-account_health"))
        assert run.output == {
            "processed": 3,
            "skipped": {"revoked": 3, "unhealthy": 3},
            "failed": 0,
            "errors": [],
        }
        shown = (await w.engine.get_run(run.id)).as_json()["output"]  # what `deneva runs show` prints
        assert shown["processed"] == 3 and shown["skipped"]["revoked"] == 3


async def test_fan_out_enqueues_one_refresh_per_connected_account_and_range(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    async with world(db) as w:
        acme, globex, initech = await w.tenant("acme"), await w.tenant("globex"), await w.tenant("initech")
        await w.connect("acme", "google")
        await w.connect("globex", "google")
        await w.connect("globex", "google", "2222222222")
        await w.connect("initech", "meta")  # no Google account: not in the Google fan-out
        run = await w.wait(await w.engine.invoke("sync-google-account_health"))
        assert run.status == "succeeded" and run.output == _fan_out(9)
        events = await db.fetch("SELECT data FROM engine_events WHERE name = $1", REFRESH_EVENT)
        ranges = ("last_7_days", "last_30_days", "last_90_days")
        assert sorted(
            (e["data"]["tenant_id"], e["data"]["account_id"], e["data"]["date_range"]) for e in events
        ) == sorted(
            [(str(acme), GOOGLE, r) for r in ranges]
            + [(str(globex), GOOGLE, r) for r in ranges]
            + [(str(globex), "2222222222", r) for r in ranges]
        )
        assert {e["data"]["report_type"] for e in events} == {"account_health"}
        assert str(initech) not in {e["data"]["tenant_id"] for e in events}
        await w.settle()

        # Each worker wrote its cache row and a success row, on the daemon's clock.
        cached = await db.fetch("SELECT * FROM metric_cache ORDER BY tenant_id, account_id, date_range")
        assert len(cached) == 9
        for row in cached:
            assert row["payload"]["report"] == "account_health" and not row["is_stale"]
            ttl = (row["expires_at"] - row["fetched_at"]).total_seconds()
            assert ttl == 3600
            assert 0.8 * ttl <= (row["refresh_at"] - row["fetched_at"]).total_seconds() <= 0.9 * ttl
        log = await w.sync_log("tenant_id", "account_id", "date_range", "attempt", "outcome", "error_code")
        assert sorted(log) == sorted(
            (
                uuid.UUID(e["data"]["tenant_id"]),
                e["data"]["account_id"],
                e["data"]["date_range"],
                1,
                "success",
                None,
            )
            for e in events
        )
        # A second invoke finds nothing missing: the cache is warm.
        again = await w.wait(await w.engine.invoke("sync-google-account_health"))
        assert again.output == _fan_out(0)


async def test_worker_failing_once_retries_and_failing_always_ends_in_failure_final(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    async with world(db) as w:
        acme = await w.tenant("acme")
        await w.connect("acme", "google")
        await w.sandbox.faults(
            "google", {"server_error": {"next": 1, "status": 503}, "endpoints": ["searchStream"]}
        )
        once = await w.refresh(acme)
        assert once.status == "succeeded" and once.attempt == 2
        await w.sandbox.faults(
            "google", {"server_error": {"probability": 1.0}, "endpoints": ["searchStream"]}
        )
        always = await w.refresh(acme, date_range="last_30_days")
        assert always.status == "failed" and always.attempt == 4
        assert "google searchStream: HTTP 503" in (always.last_error or "")
        log = await w.sync_log("date_range", "attempt", "outcome", "error_code", "created_at")
    assert [row[:4] for row in log] == [
        ("last_7_days", 1, "failure_retry", "transient"),
        ("last_7_days", 2, "success", None),
        ("last_30_days", 1, "failure_retry", "transient"),
        ("last_30_days", 2, "failure_retry", "transient"),
        ("last_30_days", 3, "failure_retry", "transient"),
        ("last_30_days", 4, "failure_final", "transient"),
    ]
    # Exponential backoff between attempts (30 s, 60 s, 120 s, +-25 %), in virtual time.
    gaps = [(b[4] - a[4]).total_seconds() for a, b in itertools.pairwise(log[2:])]
    assert [round(g / base, 1) >= 0.75 for g, base in zip(gaps, (30, 60, 120), strict=True)] == [True] * 3


# -- C4: exhaustion, stale rows, recovery ------------------------------------------------------------


async def test_exhaustion_marks_the_account_stale_and_a_later_success_clears_it(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    async with world(db) as w:
        acme, globex = await w.tenant("acme"), await w.tenant("globex")
        await w.connect("acme", "google")
        await w.connect("acme", "meta")
        await w.connect("globex", "google")
        for date_range in ("last_7_days", "last_30_days", "last_90_days"):
            assert (await w.refresh(acme, date_range=date_range)).status == "succeeded"
        assert (await w.refresh(acme, report_type="budget_optimizer")).status == "succeeded"
        assert (await w.refresh(acme, "meta")).status == "succeeded"
        assert (await w.refresh(globex)).status == "succeeded"

        await w.sandbox.faults(
            "google", {"server_error": {"probability": 1.0}, "endpoints": ["searchStream"]}
        )
        failed = await w.refresh(acme, date_range="last_30_days")
        await w.sandbox.faults("google", {})
        assert failed.status == "failed" and failed.attempt == 4
        final_row = await db.fetchrow("SELECT created_at FROM sync_log WHERE outcome = 'failure_final'")
        assert final_row is not None
        credential = await _credential(w, acme, "google")
        assert credential["healthy"] is False and credential["last_error_code"] == "transient"
        assert credential["last_sync_failure_at"] == final_row["created_at"]
        assert await _stale(w, acme, "google") == {
            f"google/{GOOGLE}/account_health/last_7_days": True,
            f"google/{GOOGLE}/account_health/last_30_days": True,
            f"google/{GOOGLE}/account_health/last_90_days": True,
            f"google/{GOOGLE}/budget_optimizer/last_7_days": True,
        }
        assert set((await _stale(w, acme, "meta")).values()) == {False}  # another platform
        assert set((await _stale(w, globex)).values()) == {False}  # another tenant
        assert (await _credential(w, globex, "google"))["healthy"] is True
        exhausted = await db.fetchrow(
            "SELECT tenant_id, details FROM audit_log WHERE event_type = 'sync.exhausted'"
        )
        assert exhausted is not None and exhausted["tenant_id"] == acme
        assert exhausted["details"]["error_code"] == "transient" and exhausted["details"]["stale_rows"] == 4

        # A read in the unhealthy window never blocks: the data, a hit, stale, and why.
        key = CacheKey(acme, "google", GOOGLE, "budget_optimizer", "last_7_days")
        hit = await read(db, key, w.clock.now())
        assert hit is not None
        body = hit.envelope()
        assert body["cache"] == "hit" and body["stale"] is True and body["lastFailureCode"] == "transient"
        assert body["data"]["report"] == "budget_optimizer"

        # The next success (any report of the account) clears the flags and un-stales its rows.
        assert (await w.refresh(acme, date_range="last_90_days")).status == "succeeded"
        healed = await _credential(w, acme, "google")
        assert healed["healthy"] is True and healed["last_error_code"] is None
        assert healed["last_sync_failure_at"] is None
        assert set((await _stale(w, acme)).values()) == {False}
        fresh = await read(db, key, w.clock.now())
        assert (
            fresh is not None
            and "stale" not in fresh.envelope()
            and "lastFailureCode" not in fresh.envelope()
        )


async def test_an_exhausted_key_is_refreshed_again_by_the_eager_refresh(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    """A refresh that exhausted its retries is not forgotten: the eager refresh tries the
    key again later (a new event, not a duplicate of the one that failed)."""
    async with world(db, scheduler=True) as w:
        acme = await w.tenant("acme")
        await w.connect("acme", "tiktok")
        await trio.sleep(11 * 60)  # the 00:10 fan-out fills the cache
        await w.settle()
        assert set((await _stale(w, acme)).values()) == {False} and len(await _stale(w, acme)) == 6
        await w.sandbox.faults("tiktok", {"server_error": {"probability": 1.0}, "endpoints": ["report"]})
        await trio.sleep(2 * 3600 * 0.9)  # every row came due once (2 h TTL) and exhausted its retries
        await w.settle()
        assert (await _credential(w, acme, "tiktok"))["last_error_code"] == "transient"
        assert set((await _stale(w, acme)).values()) == {True}
        await w.sandbox.faults("tiktok", {})
        await trio.sleep(20 * 60)
        await w.settle()
        assert (await _credential(w, acme, "tiktok"))["healthy"] is True
        assert set((await _stale(w, acme)).values()) == {False}
        fetched = await db.fetch("SELECT fetched_at FROM metric_cache")
        assert all(r["fetched_at"] > as_datetime(w.clock.now() - 20 * 60) for r in fetched)


# -- D2: eager token refresh -------------------------------------------------------------------------


async def test_eager_token_refresh_takes_tokens_expiring_within_the_hour_only(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    async with world(db) as w:
        acme, globex = await w.tenant("acme"), await w.tenant("globex")
        now = w.clock.now()
        await w.connect("acme", "google", expires_at=now + 30 * 60, access="old-google-access")
        await w.connect("globex", "google", expires_at=now + 24 * 3600, access="globex-google-access")
        soon = await _credential(w, acme, "google")
        later = await _credential(w, globex, "google")
        fan_out, skipped = await db.run(lambda c: expiring_tokens(c, now))  # the fan-out's own query
        assert [e["data"]["credential_id"] for e in fan_out] == [str(soon["id"])] and skipped == {}

        run = await w.wait(await w.engine.invoke("eager-token-refresh"))
        assert run.status == "succeeded"
        assert run.output == _fan_out(1)
        await w.settle()
        refreshed = await db.fetch(
            "SELECT status, event FROM engine_runs WHERE function_id = 'refresh-one-token'"
        )
        assert [(r["status"], r["event"]["data"]["credential_id"]) for r in refreshed] == [
            ("succeeded", str(soon["id"]))
        ]
        after = await _credential(w, acme, "google")
        assert after["access_token_expires_at"] == as_datetime(w.clock.now() + 3599) or (
            after["access_token_expires_at"] > soon["access_token_expires_at"] + timedelta(minutes=29)
        )
        untouched = await _credential(w, globex, "google")
        assert untouched["access_token_expires_at"] == later["access_token_expires_at"]
        row = await db.fetchrow("SELECT * FROM platform_credentials WHERE id = $1", soon["id"])
        assert row is not None
        tokens = open_tokens(KEYS, CredentialRow.from_row(row), SealedCredential.from_row(row))
        assert tokens.access_token not in (None, "old-google-access")
        assert tokens.refresh_token == GOOGLE_REFRESH
        # Refreshed: the next fan-out names its new expiry (Google tokens last an hour), still not globex's.
        later_now = w.clock.now()
        following, _ = await db.run(lambda c: expiring_tokens(c, later_now))
        assert [e["data"]["credential_id"] for e in following] == [str(soon["id"])]
        assert following[0]["id"] != fan_out[0]["id"]


# -- Retry-After -------------------------------------------------------------------------------------


@pytest.mark.parametrize("platform", ["google", "meta", "tiktok"])
async def test_a_429_with_retry_after_delays_the_next_attempt_at_least_that_long(
    db: Database, autojump_clock: trio.testing.MockClock, platform: str
) -> None:
    endpoint = {"google": "searchStream", "meta": "insights", "tiktok": "report"}[platform]
    async with world(db) as w:
        acme = await w.tenant("acme")
        await w.connect("acme", platform)
        await w.sandbox.faults(
            platform, {"rate_limit": {"next": 1, "retry_after_s": 900}, "endpoints": [endpoint]}
        )
        run_id = await w.send_refresh(acme, platform)
        with trio.fail_after(600):
            while True:
                record = await w.engine.get_run(run_id)
                if record.status == "queued" and record.attempt == 1:
                    break
                await trio.sleep(0.5)
        first = await db.fetchrow("SELECT outcome, error_code, created_at FROM sync_log")
        assert first is not None and (first["outcome"], first["error_code"]) == (
            "failure_retry",
            "rate_limited",
        )
        # The next attempt is scheduled no sooner than the platform asked (backoff alone: 30 s).
        assert (record.run_at - first["created_at"]).total_seconds() >= 900
        done = await w.wait(run_id)
        assert done.status == "succeeded" and done.attempt == 2
        log = await w.sync_log("outcome", "created_at")
    assert [r[0] for r in log] == ["failure_retry", "success"]
    assert (log[1][1] - log[0][1]).total_seconds() >= 900


# -- Bad input ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"platform": "bing"}, "unknown platform 'bing'; one of google, meta, tiktok"),
        ({"report_type": "ctr_report"}, "google has no report type 'ctr_report'"),
        ({"platform": "meta", "report_type": "search_term_waste"}, "the Meta API has no search terms"),
        ({"date_range": "last_8_days"}, "unknown date range 'last_8_days'"),
    ],
)
async def test_a_bad_refresh_request_fails_cleanly_and_is_logged(
    db: Database, autojump_clock: trio.testing.MockClock, fields: dict[str, str], message: str
) -> None:
    async with world(db) as w:
        acme, globex = await w.tenant("acme"), await w.tenant("globex")
        await w.connect("acme", "google")
        await w.connect("globex", "google")
        request: dict[str, Any] = {
            "platform": "google",
            "report_type": "account_health",
            "date_range": "last_7_days",
        }
        request.update(fields)
        bad = await w.send_refresh(acme, **request)
        good = await w.send_refresh(globex)
        bad_run, good_run = await w.wait(bad), await w.wait(good)
        assert bad_run.status == "failed" and bad_run.attempt == 1  # not retried
        assert message in (bad_run.last_error or "")
        assert good_run.status == "succeeded"  # another tenant's sync is untouched
        rows = await db.fetch("SELECT * FROM sync_log WHERE tenant_id = $1", acme)
        assert [(r["outcome"], r["error_code"], r["platform"]) for r in rows] == [
            ("failure_final", "invalid_request", request["platform"])
        ]
        assert message in rows[0]["error_message"]
        assert (await _credential(w, acme, "google"))[
            "healthy"
        ] is True  # a bad request is not the account's fault


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"tenant_id": "not-a-uuid", "platform": "google", "account_id": GOOGLE},
            "refresh request: missing or bad field",
        ),
        (
            {"tenant_id": str(uuid.UUID(int=7)), "platform": "google", "account_id": GOOGLE},
            f"no google credential for account {GOOGLE}",
        ),
        ({"tenant_id": str(uuid.UUID(int=7)), "platform": "bing"}, "unknown platform 'bing'"),
    ],
    ids=["bad-tenant-id", "unknown-tenant", "unknown-tenant-and-platform"],
)
async def test_a_refresh_request_without_a_known_tenant_fails_cleanly(
    db: Database, autojump_clock: trio.testing.MockClock, data: dict[str, Any], message: str
) -> None:
    async with world(db) as w:
        request = {"account_id": "1", "report_type": "account_health", "date_range": "last_7_days", **data}
        sent = await w.engine.send({"name": REFRESH_EVENT, "data": request})
        record = await w.wait(sent.run_ids[0])
        assert record.status == "failed" and record.attempt == 1
        assert record.last_error and message in record.last_error
        assert await db.fetchval("SELECT count(*) FROM sync_log") == 0  # no tenant to log it under


async def test_a_refresh_request_missing_its_keys_starts_no_run(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    async with world(db) as w:
        sent = await w.engine.send({"name": REFRESH_EVENT, "data": {"platform": "google"}})
        assert sent.run_ids == () and len(sent.errors) == 1
        assert "tenant_id" in sent.errors[0]


@pytest.mark.parametrize(
    ("platform", "plan", "code", "message"),
    [
        (
            "google",
            {"kind": "truncated"},
            "internal",
            "google searchStream: response is truncated or invalid JSON",
        ),
        (
            "meta",
            {"kind": "html", "status": 200},
            "internal",
            "meta insights: response is not JSON (text/html",
        ),
        (
            "tiktok",
            {"kind": "html", "status": 502},
            "transient",
            "tiktok report: HTTP 502, response is not JSON",
        ),
        ("google", {"kind": "wrong_types"}, "internal", "google searchStream: row 0: metrics."),
        ("meta", {"kind": "wrong_types"}, "internal", "meta insights: row 0: "),
        ("tiktok", {"kind": "wrong_types"}, "internal", "tiktok report: row 0: metrics."),
    ],
    ids=["truncated", "html-200", "html-502", "google-types", "meta-types", "tiktok-types"],
)
async def test_malformed_platform_answers_are_typed_failures_in_sync_log(
    db: Database,
    autojump_clock: trio.testing.MockClock,
    platform: str,
    plan: dict[str, Any],
    code: str,
    message: str,
) -> None:
    endpoint = {"google": "searchStream", "meta": "insights", "tiktok": "report"}[platform]
    other = "google" if platform != "google" else "meta"
    async with world(db) as w:
        acme, globex = await w.tenant("acme"), await w.tenant("globex")
        await w.connect("acme", platform)
        await w.connect("globex", other)
        malformed = {"probability": 1.0, **plan}
        await w.sandbox.faults(platform, {"malformed": malformed, "endpoints": [endpoint]})
        bad = await w.send_refresh(acme, platform)
        good = await w.send_refresh(globex, other)
        bad_run, good_run = await w.wait(bad), await w.wait(good)
        assert good_run.status == "succeeded"
        assert bad_run.status == "failed" and bad_run.attempt == 4
        rows = await db.fetch("SELECT * FROM sync_log WHERE tenant_id = $1 ORDER BY id", acme)
        assert [(r["outcome"], r["error_code"]) for r in rows] == [("failure_retry", code)] * 3 + [
            ("failure_final", code)
        ]
        assert all(r["error_message"].startswith(message) for r in rows), rows[0]["error_message"]
        _assert_no_secrets(*(r["error_message"] for r in rows), bad_run.last_error)
        credential = await _credential(w, acme, platform)
        assert credential["healthy"] is False and credential["last_error_code"] == code
        # The platform answers properly again: the engine and the account recover.
        await w.sandbox.faults(platform, {})
        assert (await w.refresh(acme, platform)).status == "succeeded"
        assert (await _credential(w, acme, platform))["healthy"] is True


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (
            "set_byte",
            "google credential for account 1234567890: cannot decrypt (wrong DENEVA_KEK or corrupted data)",
        ),
        ("truncate", "google credential for account 1234567890: ciphertext is truncated"),
    ],
)
async def test_corrupted_ciphertext_is_a_typed_failure_and_other_tenants_sync(
    db: Database, autojump_clock: trio.testing.MockClock, corrupt: str, message: str
) -> None:
    async with world(db) as w:
        acme, globex = await w.tenant("acme"), await w.tenant("globex")
        await w.connect("acme", "google")
        await w.connect("globex", "google")
        sql = (
            "UPDATE platform_credentials SET refresh_token_ct = set_byte(refresh_token_ct, 20, "
            "get_byte(refresh_token_ct, 20) # 1) WHERE tenant_id = $1"
            if corrupt == "set_byte"
            else "UPDATE platform_credentials SET refresh_token_ct = "
            "substring(refresh_token_ct FROM 1 FOR 9) WHERE tenant_id = $1"
        )
        await db.execute(sql, acme)
        bad = await w.send_refresh(acme)
        good = await w.send_refresh(globex)
        bad_run, good_run = await w.wait(bad), await w.wait(good)
        assert good_run.status == "succeeded"
        assert bad_run.status == "failed" and bad_run.attempt == 1  # retrying cannot help
        assert message in (bad_run.last_error or "")
        rows = await db.fetch("SELECT * FROM sync_log WHERE tenant_id = $1", acme)
        assert [(r["outcome"], r["error_code"], r["error_message"]) for r in rows] == [
            ("failure_final", "credential_unreadable", message)
        ]
        credential = await _credential(w, acme, "google")
        assert credential["healthy"] is False and credential["last_error_code"] == "credential_unreadable"
        assert await w.sandbox.calls("google", "token") == 1  # only globex reached the platform


async def test_a_wrong_kek_is_a_typed_failure_and_the_daemon_keeps_running(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    async with world(db, services_keys=Keyring(os.urandom(32))) as w:
        acme = await w.tenant("acme")
        await w.connect("acme", "google")
        await w.connect("acme", "meta")
        google, meta = await w.refresh(acme), await w.refresh(acme, "meta")
        for record, platform, account in ((google, "google", GOOGLE), (meta, "meta", ACCOUNTS["meta"])):
            assert record.status == "failed" and record.attempt == 1
            expected = (
                f"{platform} credential for account {account}: "
                "cannot decrypt: sealed under key-encryption key"
            )
            assert expected in (record.last_error or "")
        log = await w.sync_log("platform", "outcome", "error_code")
        assert log == [
            ("google", "failure_final", "credential_unreadable"),
            ("meta", "failure_final", "credential_unreadable"),
        ]
        messages = [r["error_message"] for r in await db.fetch("SELECT error_message FROM sync_log")]
        _assert_no_secrets(*messages)
        assert await w.sandbox.calls("google", "token") == 0
        # The engine is unharmed: other functions still run.
        noop = await w.engine.send({"name": "deneva/noop", "data": {}})
        assert (await w.wait(noop.run_ids[0])).status == "succeeded"


@pytest.mark.parametrize("platform", ["google", "meta", "tiktok"])
async def test_platform_text_postgres_cannot_store_is_cached_escaped(
    db: Database, autojump_clock: trio.testing.MockClock, platform: str
) -> None:
    """A NUL and a lone surrogate in every name in a platform's answer (both rejected by
    Postgres in jsonb): the sync caches the answer with U+FFFD in their place; it does not
    fail on every pass."""
    endpoints = {
        "google": ["searchStream"],
        "meta": ["insights", "campaigns"],
        "tiktok": ["report", "campaigns"],
    }
    async with world(db) as w:
        acme = await w.tenant("acme")
        await w.connect("acme", platform)
        plan = {
            "malformed": {"probability": 1.0, "kind": "unstorable_text"},
            "endpoints": endpoints[platform],
        }
        await w.sandbox.faults(platform, plan)
        run = await w.refresh(acme, platform)
        assert run.status == "succeeded", run.last_error
        rows = await db.fetch(
            "SELECT payload::text AS data FROM metric_cache WHERE tenant_id = $1 AND platform = $2",
            acme,
            platform,
        )
        assert rows and all("\\u0000" not in r["data"] for r in rows)
        assert any("\ufffd" in r["data"] for r in rows)  # the names were kept, marked
