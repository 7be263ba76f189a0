"""The sandbox's consent pages and code grants (issue 12 item 5): PKCE is checked, codes
are single-use and bound to their client and redirect URI, the knobs do what they say."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import trio

from tests.adapters.conftest import Sandbox, start_sandbox

REDIRECT = "http://127.0.0.1:1/connect/google/callback"
CLIENT = "deneva-sandbox.apps.googleusercontent.com"


@pytest.fixture
async def box(nursery: trio.Nursery) -> AsyncIterator[Sandbox]:
    server = await start_sandbox(nursery)
    assert server.base_url is not None
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as control:
        yield Sandbox(server, server.base_url, control)


def challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")


async def google_code(sandbox: Sandbox, verifier: str) -> str:
    await sandbox.control.put("/_control/consent/google", json={"mode": "approve"})
    response = await sandbox.control.get(
        "/google/o/oauth2/v2/auth",
        params={
            "client_id": CLIENT,
            "redirect_uri": REDIRECT,
            "response_type": "code",
            "state": "s1",
            "code_challenge": challenge(verifier),
            "code_challenge_method": "S256",
        },
    )
    assert response.status_code == 302, response.text
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert query["state"] == ["s1"]
    return query["code"][0]


async def exchange(sandbox: Sandbox, code: str, verifier: str) -> httpx.Response:
    return await sandbox.control.post(
        "/google/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "client_id": CLIENT,
            "client_secret": "sandbox-client-secret",
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        },
    )


async def test_a_google_code_needs_its_pkce_verifier_and_works_once(box: Sandbox) -> None:
    verifier = "v" * 50
    code = await google_code(box, verifier)
    wrong = await exchange(box, code, "w" * 50)
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    right = await exchange(box, code, verifier)
    assert right.status_code == 200, right.text
    assert right.json()["refresh_token"] in await box.issued("google")
    again = await exchange(box, code, verifier)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


async def test_the_ask_page_offers_allow_and_deny_and_deny_redirects_with_access_denied(box: Sandbox) -> None:
    params = {"app_id": "7000000000000000001", "redirect_uri": REDIRECT, "state": "<s>"}
    page = await box.control.get("/tiktok/portal/auth", params=params)
    assert page.status_code == 200 and 'id="allow"' in page.text and 'id="deny"' in page.text
    assert "&lt;s&gt;" in page.text and "<s>" not in page.text  # escaped
    denied = await box.control.post("/tiktok/portal/auth/decide", data={**params, "decision": "deny"})
    assert denied.status_code == 302
    assert parse_qs(urlsplit(denied.headers["location"]).query)["error"] == ["access_denied"]


async def test_the_consent_knobs_are_checked(box: Sandbox) -> None:
    bad = await box.control.put("/_control/consent/google", json={"mode": "maybe"})
    assert bad.status_code == 400
    nowhere = await box.control.put("/_control/consent/myspace", json={"mode": "approve"})
    assert nowhere.status_code == 400
    set_ = await box.control.put("/_control/consent/meta", json={"accounts": ["42"], "reject_code": True})
    assert set_.json() == {"mode": "ask", "accounts": ["42"], "managers": {}, "reject_code": True}
    await box.control.post("/_control/reset")
    assert (await box.control.get("/_control/consent")).json()["meta"]["accounts"] == [
        "1000000001",
        "1000000002",
    ]
