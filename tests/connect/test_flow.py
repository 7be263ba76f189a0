"""Browser connect over HTTP, per platform and for every bad input of issue 12: a real
daemon, the sandbox's consent pages and token endpoints, a cookie jar as the browser."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from deneva.credentials import load_credential, open_tokens
from tests.connect.flows import (
    app_db,
    connect_daemon,
    consent,
    credentials,
    flow_row,
    follow,
    form_of,
    invite,
    listed_accounts,
    pick,
)


async def test_google_connect_lists_the_manager_hierarchy_and_stores_the_accounts_picked(
    tmp_path: Path, database_url: str
) -> None:
    async with connect_daemon(tmp_path, database_url) as running:
        globex_before = await credentials(running, "globex")
        await consent(running, "google", mode="approve")
        invitation, url = await invite(running, "google")
        async with httpx.AsyncClient(timeout=10) as browser:
            page = await follow(browser, url)
            assert page.status_code == 200, page.text
            # Managers are not offered (they have no campaigns); their clients are, at any depth.
            assert listed_accounts(page.text) == ["1234567890", "5550000001", "5550000002", "5550000101"]
            assert "5550000000" in page.text  # shown as what the clients are reached through
            done = await pick(browser, running, "google", page.text, ["1234567890", "5550000101"])
        assert done.status_code == 200, done.text
        assert "Connected Google Ads for acme" in done.text
        stored = await credentials(running, "acme")
        assert set(stored) == {("google", "1234567890"), ("google", "5550000101")}
        assert stored[("google", "1234567890")]["login_customer_id"] is None
        assert stored[("google", "5550000101")]["login_customer_id"] == "5550000000"
        # The refresh token the sandbox issued for this consent, sealed: it opens.
        tenant_id = await app_db(running).fetchval("SELECT id FROM tenants WHERE name = 'acme'")
        loaded = await app_db(running).run(lambda c: load_credential(c, tenant_id, "google", "5550000101"))
        assert loaded is not None
        tokens = open_tokens(running.daemon.secrets.keyring(), loaded.row, loaded.sealed)
        assert tokens.refresh_token in await running.sandbox.issued("google")
        assert tokens.refresh_token not in done.text and tokens.refresh_token not in page.text
        flow = await flow_row(running, invitation)
        assert flow["status"] == "connected" and flow["grant_ct"] is None and flow["wrapped_key"] is None
        assert await credentials(running, "globex") == globex_before


async def test_meta_connect_stores_a_long_lived_token_at_once(tmp_path: Path, database_url: str) -> None:
    async with connect_daemon(tmp_path, database_url) as running:
        await consent(running, "meta", mode="approve")
        _, url = await invite(running, "meta", ["act_1000000002"])  # pre-selected: no pick page
        async with httpx.AsyncClient(timeout=10) as browser:
            done = await follow(browser, url)
        assert done.status_code == 200, done.text
        assert "Connected Meta for acme" in done.text
        [row] = (await credentials(running, "acme")).values()
        assert row["account_id"] == "1000000002"
        # The short-lived code token (2 hours) was exchanged for a long-lived one (60 days).
        assert row["access_token_expires_at"].timestamp() - time.time() > 50 * 86400
        assert await running.sandbox.calls("meta", "token") == 2  # code, then fb_exchange_token


async def test_tiktok_connect_lists_the_advertisers_the_grant_authorised(
    tmp_path: Path, database_url: str
) -> None:
    async with connect_daemon(tmp_path, database_url) as running:
        await consent(running, "tiktok", mode="approve")
        _, url = await invite(running, "tiktok")
        async with httpx.AsyncClient(timeout=10) as browser:
            page = await follow(browser, url)
            assert listed_accounts(page.text) == ["7100000000001", "7100000000002"]
            done = await pick(browser, running, "tiktok", page.text, ["7100000000002"])
        assert done.status_code == 200, done.text
        assert set(await credentials(running, "acme")) == {("tiktok", "7100000000002")}


async def test_a_callback_without_a_state_or_with_an_unknown_one_is_refused(
    tmp_path: Path, database_url: str
) -> None:
    async with connect_daemon(tmp_path, database_url) as running, httpx.AsyncClient(timeout=10) as browser:
        missing = await browser.get(f"{running.base}/connect/google/callback?code=x")
        assert missing.status_code == 400 and "No connect state" in missing.text
        unknown = await browser.get(f"{running.base}/connect/google/callback?code=x&state=forged")
        assert unknown.status_code == 400 and "Unknown connect link" in unknown.text
        assert unknown.headers["content-type"].startswith("text/html")
        assert unknown.headers["cache-control"] == "no-store"
        nowhere = await browser.get(f"{running.base}/connect/myspace/start?state=x")
        assert nowhere.status_code == 404 and "No such platform" in nowhere.text
        assert await credentials(running, "acme") == {}


async def test_a_state_works_once(tmp_path: Path, database_url: str) -> None:
    async with connect_daemon(tmp_path, database_url) as running:
        await consent(running, "tiktok", mode="approve")
        _, url = await invite(running, "tiktok", ["7100000000001"])
        async with httpx.AsyncClient(timeout=10) as browser:
            first = await browser.get(url)
            callback = (await browser.get(first.headers["location"])).headers["location"]
            done = await browser.get(callback)
            assert done.status_code == 200, done.text
            before = await credentials(running, "acme")
            again = await browser.get(callback)
            assert again.status_code == 409 and "works once" in again.text
            reopened = await browser.get(url)
            assert reopened.status_code == 409
        assert await credentials(running, "acme") == before


async def test_an_expired_state_is_refused(tmp_path: Path, database_url: str) -> None:
    async with connect_daemon(tmp_path, database_url) as running:
        _, url = await invite(running, "google", now=time.time() - 601)
        async with httpx.AsyncClient(timeout=10) as browser:
            page = await browser.get(url)
        assert page.status_code == 410 and "expire after 10 minutes" in page.text
        assert await credentials(running, "acme") == {}


async def test_a_foreign_state_is_refused(tmp_path: Path, database_url: str) -> None:
    """Another platform's state, and a callback from a browser that did not open the link."""
    async with connect_daemon(tmp_path, database_url) as running:
        await consent(running, "google", mode="approve")
        meta_invitation, _ = await invite(running, "meta")
        async with httpx.AsyncClient(timeout=10) as browser:
            other = await browser.get(
                f"{running.base}/connect/google/callback?code=x&state={meta_invitation.state}"
            )
            assert other.status_code == 400 and "connects meta, not google" in other.text
            invitation, url = await invite(running, "google")
            consent_page = (await browser.get(url)).headers["location"]
            callback = (await browser.get(consent_page)).headers["location"]
        async with httpx.AsyncClient(timeout=10) as stranger:  # no cookie: not the operator's browser
            stolen = await stranger.get(callback)
        assert stolen.status_code == 403 and "browser that opened the link" in stolen.text
        assert (await flow_row(running, invitation))["status"] == "started"  # the operator may go on
        assert await credentials(running, "acme") == {}


async def test_denied_consent_stores_nothing_and_says_so(tmp_path: Path, database_url: str) -> None:
    async with connect_daemon(tmp_path, database_url) as running:
        await consent(running, "meta", mode="deny")
        invitation, url = await invite(running, "meta")
        async with httpx.AsyncClient(timeout=10) as browser:
            page = await follow(browser, url)
        assert page.status_code == 400 and "consent was denied" in page.text
        flow = await flow_row(running, invitation)
        assert flow["status"] == "failed" and "consent was denied" in flow["outcome"]
        assert await credentials(running, "acme") == {}


async def test_an_error_from_the_token_endpoint_stores_nothing(tmp_path: Path, database_url: str) -> None:
    async with connect_daemon(tmp_path, database_url) as running:
        await consent(running, "google", mode="approve", reject_code=True)
        invitation, url = await invite(running, "google")
        async with httpx.AsyncClient(timeout=10) as browser:
            page = await follow(browser, url)
        assert page.status_code == 400 and "refused the authorization" in page.text
        assert "invalid_grant" in page.text
        assert (await flow_row(running, invitation))["status"] == "failed"
        assert await credentials(running, "acme") == {}


async def test_an_account_the_grant_does_not_reach_is_refused(tmp_path: Path, database_url: str) -> None:
    async with connect_daemon(tmp_path, database_url) as running:
        await consent(running, "google", mode="approve")
        # Pre-selected on the command line:
        invitation, url = await invite(running, "google", ["999-999-9999"])
        async with httpx.AsyncClient(timeout=10) as browser:
            page = await follow(browser, url)
        assert page.status_code == 400 and "does not reach google account 9999999999" in page.text
        assert (await flow_row(running, invitation))["status"] == "failed"
        # Or slipped into the pick form (globex's account is reachable but not this one):
        invitation, url = await invite(running, "google")
        async with httpx.AsyncClient(timeout=10) as browser:
            form = await follow(browser, url)
            forged = await pick(browser, running, "google", form.text, ["1234567890", "<b>4242424242</b>"])
        assert forged.status_code == 400 and "&lt;b&gt;4242424242&lt;/b&gt;" in forged.text
        assert "<b>" not in forged.text
        assert await credentials(running, "acme") == {}


async def test_the_pick_form_is_bound_to_its_browser_and_its_one_time_token(
    tmp_path: Path, database_url: str
) -> None:
    async with connect_daemon(tmp_path, database_url) as running:
        await consent(running, "tiktok", mode="approve")
        _, url = await invite(running, "tiktok")
        async with httpx.AsyncClient(timeout=10) as browser:
            page = await follow(browser, url)
            fields = form_of(page.text)
            target = f"{running.base}/connect/tiktok/accounts"
            wrong_token = await browser.post(
                target, data={"state": fields["state"], "form_token": "guess", "account": "7100000000001"}
            )
            assert wrong_token.status_code == 403
            no_token = await browser.post(target, data={"state": fields["state"], "account": "7100000000001"})
            assert no_token.status_code == 400 and "one-time token" in no_token.text
            async with httpx.AsyncClient(timeout=10) as other:  # a cross-site post carries no cookie
                csrf = await other.post(target, data={**fields, "account": "7100000000001"})
            assert csrf.status_code == 403
            assert await credentials(running, "acme") == {}
            empty = await pick(browser, running, "tiktok", page.text, [])
            assert empty.status_code == 400 and "Pick at least one account" in empty.text
            done = await pick(browser, running, "tiktok", page.text, ["7100000000001"])
            assert done.status_code == 200, done.text
        assert set(await credentials(running, "acme")) == {("tiktok", "7100000000001")}


async def test_no_token_code_verifier_or_secret_reaches_a_page_or_a_log(
    tmp_path: Path, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with connect_daemon(tmp_path, database_url) as running:
        await consent(running, "google", mode="approve")
        invitation, url = await invite(running, "google")
        verifier = await app_db(running).fetchval(
            "SELECT code_verifier FROM connect_flows WHERE id = $1", invitation.flow_id
        )
        pages = []
        async with httpx.AsyncClient(timeout=10) as browser:
            start = await browser.get(url)
            pages.append(start)
            to_deneva = await browser.get(start.headers["location"])
            code = parse_qs(urlsplit(to_deneva.headers["location"]).query)["code"][0]
            pick_page = await follow(browser, to_deneva.headers["location"])
            pages += [to_deneva, pick_page]
            pages.append(await pick(browser, running, "google", pick_page.text, ["1234567890"]))
            # A code used twice and a failing exchange: their pages and logs too.
            pages.append(await browser.get(to_deneva.headers["location"]))
        assert pages[-2].status_code == 200 and pages[-1].status_code == 409
        secrets = [code, verifier, "sandbox-client-secret", *await running.sandbox.issued("google")]
        assert len(secrets) >= 5  # the code, the verifier, the secret, a refresh and an access token
        ours_pages = [p for p in pages if str(p.url).startswith(running.base)]  # not the platform's
        assert len(ours_pages) == 4
        for page in ours_pages:
            shown = page.text + str(page.headers)
            for secret in secrets:
                assert secret not in shown, (page.url, secret[:6])
        ours = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
        logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in ours)
        for secret in [*secrets, invitation.state]:
            assert secret not in logged, secret[:6]
