"""The authorize page in a real headless Chromium (Debian's `chromium`, driven by
Playwright): a person reads the client's name and scopes, types a connect code (or signs
in as the operator and picks the tenant), clicks Allow, and the browser lands on the
client's redirect URI with a code that exchanges for a working token. The page refuses
to be framed by another site.

Never skipped: without /usr/bin/chromium the test fails, saying why (`make test`
installs it). Playwright's sync API runs in a worker thread (it brings its own event
loop); the daemon side runs in the test's trio loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import trio

from deneva.db import Database
from tests.browser import chromium
from tests.http.oauth_fixtures import ADMIN_TOKEN, OAuthTestServer, oauth_test_server
from tests.http.test_oauth import authorize_url, call, register
from tests.http.tls_docs import Answer, tls_server
from tests.mcp.oauth_flow import pkce


@pytest.fixture
async def srv(db: Database) -> AsyncIterator[OAuthTestServer]:
    async with oauth_test_server(db) as running:
        yield running


def browse(url: str, fill: dict[str, str], steps: list[str]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    try:
        _browse(url, fill, steps, seen)
    except Exception as exc:
        raise AssertionError(f"the browser failed: {exc} (saw {seen})") from exc
    return seen


def _browse(url: str, fill: dict[str, str], steps: list[str], seen: dict[str, Any]) -> None:
    """Open `url`, fill the fields, click the buttons in `steps`; what the browser saw."""
    with chromium() as browser:
        page = browser.new_page()
        page.goto(url)
        seen["title"] = page.title()
        seen["client"] = page.inner_text("#client-name")
        seen["redirect_host"] = page.inner_text("#redirect-host")
        seen["scopes"] = page.inner_text("#scopes")
        for step in steps:
            if step.startswith("fill:"):
                field = step.removeprefix("fill:")
                page.fill(f"#{field}", fill[field])
            elif step.startswith("select:"):
                field = step.removeprefix("select:")
                seen["options"] = page.eval_on_selector_all(
                    f"#{field} option", "els => els.map(e => e.value)"
                )
                page.select_option(f"#{field}", fill[field])
            else:
                with page.expect_navigation():
                    page.click(f"#{step}")
        seen["landed"] = page.url
        seen["final_text"] = page.inner_text("body")

        # Another site framing the authorize page gets nothing of it.
        framer = browser.new_page()
        framer.route(
            "http://framer.test/",
            lambda route: route.fulfill(
                status=200, content_type="text/html", body=f'<iframe id="f" src="{url}"></iframe>'
            ),
        )
        framer.goto("http://framer.test/")
        framer.wait_for_load_state("load")
        frames = [f for f in framer.frames if f != framer.main_frame]
        seen["framed_urls"] = [f.url for f in frames]
        seen["framed_has_form"] = any(_has_form(f) for f in frames)


def _has_form(frame: Any) -> bool:
    try:
        return bool(frame.query_selector("#consent"))
    except Exception:  # a blocked frame is an error page Playwright may not read
        return False


def _code_of(landed: str, callback: str) -> dict[str, str]:
    assert landed.startswith(callback + "?"), landed
    return {k: v[0] for k, v in parse_qs(urlsplit(landed).query).items()}


@pytest.fixture
async def callback(tmp_path: Path) -> AsyncIterator[str]:
    """A native client's loopback callback page (plain HTTP on 127.0.0.1), its URL."""
    async with tls_server(tmp_path, tls=False) as server:
        server.routes["/callback"] = Answer(200, b"<p>back at the client</p>", {"content-type": "text/html"})
        yield server.url("/callback")


async def exchange(
    http: httpx.AsyncClient, srv: OAuthTestServer, client_id: str, code: str, verifier: str
) -> str:
    issued = await http.post(
        f"{srv.base}/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": verifier,
            "client_id": client_id,
        },
    )
    assert issued.status_code == 200, issued.text
    token: str = issued.json()["access_token"]
    return token


async def test_a_person_grants_with_a_connect_code_in_chromium(srv: OAuthTestServer, callback: str) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        client = await register(http, srv, redirect_uris=[callback])
        verifier, challenge = pkce()
        url = authorize_url(srv, client["client_id"], challenge, redirect_uri=callback)
        code, _ = await srv.server.create_connect_code("acme")
        seen = await trio.to_thread.run_sync(
            browse, url, {"connect_code": code}, ["fill:connect_code", "approve"]
        )
        assert seen["client"] == "Test <b>client</b>"  # shown as text, not markup
        assert seen["redirect_host"] == urlsplit(callback).netloc
        assert "back at the client" in seen["final_text"]
        assert "reports:read" in seen["scopes"] and "reports:refresh" in seen["scopes"]
        params = _code_of(seen["landed"], callback)
        assert params["state"] == "state-123" and params["iss"] == srv.base + "/"
        token = await exchange(http, srv, client["client_id"], params["code"], verifier)
        answer = await call(http, srv.url, token)
        assert answer.json()["result"]["structuredContent"] == {"tenant": srv.tenant_a}
        # Framed by another site, the page does not render (X-Frame-Options, frame-ancestors).
        # Chromium blocked the frame: it shows its own error page in it instead.
        assert seen["framed_urls"] == ["chrome-error://chromewebdata/"]
        assert seen["framed_has_form"] is False


async def test_the_operator_signs_in_and_picks_the_tenant_in_chromium(
    srv: OAuthTestServer, callback: str
) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        client = await register(http, srv, redirect_uris=[callback])
        verifier, challenge = pkce()
        url = authorize_url(srv, client["client_id"], challenge, scope="reports:read", redirect_uri=callback)
        seen = await trio.to_thread.run_sync(
            browse,
            url,
            {"admin_token": ADMIN_TOKEN, "tenant": "globex"},
            ["fill:admin_token", "sign-in", "select:tenant", "approve"],
        )
        assert seen["options"] == ["acme", "globex"]
        assert "reports:refresh" not in seen["scopes"]
        token = await exchange(
            http, srv, client["client_id"], _code_of(seen["landed"], callback)["code"], verifier
        )
        answer = await call(http, srv.url, token)
        assert answer.json()["result"]["structuredContent"] == {"tenant": srv.tenant_b}
