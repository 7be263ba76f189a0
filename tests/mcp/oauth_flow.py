"""Helpers for driving deneva's authorization server over real HTTP in tests: the consent
page scripted as a person would fill it, the official SDK's OAuth client with an in-memory
store, PKCE pairs."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs
import httpx
from mcp.client.auth import OAuthClientProvider
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)

REDIRECT_URI = "http://127.0.0.1:48123/callback"  # never contacted: the test reads the redirect


class _Forms(HTMLParser):
    """Each <form>'s hidden and named fields."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: dict[str, dict[str, str]] = {}
        self._current: dict[str, str] | None = None

    def handle_starttag(self, tag: str, attrs_list: list[tuple[str, str | None]]) -> None:
        attrs_ = {k: v or "" for k, v in attrs_list}
        if tag == "form":
            self._current = self.forms.setdefault(attrs_.get("id", ""), {})
        elif tag == "input" and self._current is not None and attrs_.get("type") == "hidden":
            self._current[attrs_["name"]] = attrs_.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None


def page_forms(html: str) -> dict[str, dict[str, str]]:
    parser = _Forms()
    parser.feed(html)
    return parser.forms


@attrs.frozen
class Redirect:
    location: str
    params: dict[str, str]


def redirect_of(response: httpx.Response) -> Redirect:
    assert response.status_code == 302, (response.status_code, response.text[:500])
    location = response.headers["location"]
    params = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    return Redirect(location, params)


async def consent(
    http: httpx.AsyncClient, authorize_url: str, *, connect_code: str | None = None, action: str = "approve"
) -> httpx.Response:
    """Open the authorize page and submit its consent form, as a person would; the answer."""
    page = await http.get(authorize_url)
    assert page.status_code == 200, (page.status_code, page.text[:500])
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    fields = page_forms(page.text)["consent"]
    form = {**fields, "action": action}
    if connect_code is not None:
        form["connect_code"] = connect_code
    base = f"{urlsplit(authorize_url).scheme}://{urlsplit(authorize_url).netloc}"
    return await http.post(f"{base}/authorize", data=form)


class MemoryStorage:
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None
        self.history: list[OAuthToken] = []

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens
        self.history.append(tokens)

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


class ScriptedConsent:
    """The SDK's redirect and callback handlers: the consent page filled in over HTTP with
    a connect code the test made (a new one for each authorization)."""

    def __init__(self, codes: list[str]) -> None:
        self.codes = codes
        self.result: AuthorizationCodeResult | None = None
        self.authorizations = 0

    async def redirect(self, url: str) -> None:
        self.authorizations += 1
        async with httpx.AsyncClient(timeout=10) as http:
            answer = redirect_of(await consent(http, url, connect_code=self.codes.pop(0)))
        assert answer.location.startswith(REDIRECT_URI)
        self.result = AuthorizationCodeResult(
            code=answer.params["code"], state=answer.params.get("state"), iss=answer.params.get("iss")
        )

    async def callback(self) -> AuthorizationCodeResult:
        assert self.result is not None
        result, self.result = self.result, None
        return result


def sdk_provider(
    server_url: str,
    consent_script: ScriptedConsent,
    storage: MemoryStorage,
    *,
    client_metadata_url: str | None = None,
    scope: str = "reports:read reports:refresh",
) -> OAuthClientProvider:
    metadata = OAuthClientMetadata(
        client_name="SDK test client",
        redirect_uris=[REDIRECT_URI],  # type: ignore[list-item]
        grant_types=["authorization_code", "refresh_token"],
        response_types=["code"],
        scope=scope,
        token_endpoint_auth_method="none" if client_metadata_url else None,
    )
    return OAuthClientProvider(
        server_url,
        metadata,
        storage,
        redirect_handler=consent_script.redirect,
        callback_handler=consent_script.callback,
        client_metadata_url=client_metadata_url,
    )


def pkce() -> tuple[str, str]:
    """(verifier, S256 challenge)."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def secrets_in(text: str) -> list[str]:
    """deneva-issued secrets (tokens, codes, client secrets) found in a text."""
    return re.findall(r"dnv_(?:at|rt|ac|cs)_[0-9a-f]{16}_[A-Za-z0-9_-]{43}", text)


def form_of(**values: Any) -> dict[str, str]:
    return {k: str(v) for k, v in values.items() if v is not None}


async def issue_tokens(
    http: httpx.AsyncClient, base: str, connect_code: str, scope: str = "reports:read reports:refresh"
) -> dict[str, Any]:
    """A public client registered, authorized on the consent page with `connect_code`, and
    its code exchanged: the token response (plus `client_id`)."""
    from urllib.parse import urlencode

    registered = await http.post(
        f"{base}/register",
        json={"client_name": "test", "redirect_uris": [REDIRECT_URI], "token_endpoint_auth_method": "none"},
    )
    assert registered.status_code == 201, registered.text
    client_id = registered.json()["client_id"]
    verifier, challenge = pkce()
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT_URI,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "scope": scope,
        "state": "s",
    }
    answer = redirect_of(
        await consent(http, f"{base}/authorize?{urlencode(query)}", connect_code=connect_code)
    )
    issued = await http.post(
        f"{base}/token",
        data={
            "grant_type": "authorization_code",
            "code": answer.params["code"],
            "code_verifier": verifier,
            "client_id": client_id,
        },
    )
    assert issued.status_code == 200, issued.text
    return {**issued.json(), "client_id": client_id}
