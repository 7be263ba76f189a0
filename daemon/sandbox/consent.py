"""The platforms' consent side: what a browser connect meets before deneva's callback.

    GET  /google/o/oauth2/v2/auth        Google's consent page (PKCE S256 when a challenge is sent)
    GET  /meta/www/{v}/dialog/oauth      Meta's login dialog
    GET  /tiktok/portal/auth             TikTok's advertiser authorization page
    POST the same path + /decide         the page's Allow / Deny buttons

Each checks what its platform checks (a client id, a redirect URI, Google's
response_type and challenge method) and then, per `ConsentSettings.mode`: `ask` (the
default) shows a page with Allow and Deny buttons, `approve` redirects at once with a
code, `deny` at once with the platform's "access denied" (Google and TikTok
`error=access_denied`, Meta also `error_reason=user_denied`). A code is single-use,
lives 10 minutes, and is bound to its client id, redirect URI and PKCE challenge; the
token endpoints (google.token, meta.token, tiktok.token) exchange it for tokens that
reach the consenting user's accounts:

    google  accessible customers (customers:listAccessibleCustomers), and under each
            manager its clients (GAQL on customer_client, a manager's whole hierarchy)
    meta    ad accounts (/me/adaccounts)
    tiktok  advertisers (oauth2/advertiser/get/)

Set through `PUT /_control/consent/{platform}` `{"mode", "accounts", "managers",
"reject_code"}` (`managers`: Google manager id -> its client ids, a client may be a
manager too; `reject_code`: the next exchanges answer as for a code the platform no
longer takes). `GET /_control/consent` shows them; `/_control/reset` restores them.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode

import attrs
import jinja2

from deneva.sandbox.wire import ApiResponse, Incoming

CODE_TTL_S: Final = 600.0
MODES: Final = ("ask", "approve", "deny")
# The sandbox user who consents, per platform.
DEFAULT_ACCOUNTS: Final[dict[str, tuple[str, ...]]] = {
    "google": ("1234567890", "5550000000"),
    "meta": ("1000000001", "1000000002"),
    "tiktok": ("7100000000001", "7100000000002"),
}
# Google: 5550000000 is a manager of two clients and of a sub-manager with a client of its own.
DEFAULT_MANAGERS: Final[dict[str, tuple[str, ...]]] = {
    "5550000000": ("5550000001", "5550000002", "5550000100"),
    "5550000100": ("5550000101",),
}
_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


@attrs.define
class ConsentSettings:
    mode: str = "ask"
    accounts: tuple[str, ...] = ()
    managers: dict[str, tuple[str, ...]] = attrs.Factory(dict)
    reject_code: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "accounts": list(self.accounts),
            "managers": {k: list(v) for k, v in self.managers.items()},
            "reject_code": self.reject_code,
        }


def default_settings(platform: str) -> ConsentSettings:
    managers = dict(DEFAULT_MANAGERS) if platform == "google" else {}
    return ConsentSettings("ask", DEFAULT_ACCOUNTS[platform], managers)


@attrs.frozen
class Reach:
    """What a consent reaches: the accounts, and for Google the manager hierarchy."""

    accounts: tuple[str, ...]
    managers: dict[str, tuple[str, ...]] = attrs.Factory(dict)

    def google_tree(self, customer: str) -> list[tuple[str, int, bool]] | None:
        """(id, level, manager) for `customer` and everything under it; None when the
        consenting user cannot reach it."""
        reachable = set(self.accounts)
        frontier = list(self.accounts)
        while frontier:
            for client in self.managers.get(frontier.pop(), ()):
                if client not in reachable:
                    reachable.add(client)
                    frontier.append(client)
        if customer not in reachable:
            return None
        out: list[tuple[str, int, bool]] = []
        level_of = [(customer, 0)]
        seen: set[str] = set()
        while level_of:
            node, level = level_of.pop(0)
            if node in seen:
                continue
            seen.add(node)
            out.append((node, level, node in self.managers))
            level_of.extend((client, level + 1) for client in self.managers.get(node, ()))
        return out


@attrs.define
class IssuedCode:
    platform: str
    client_id: str
    redirect_uri: str
    challenge: str | None
    reach: Reach
    expires_at: float
    used: bool = False


class ConsentBoard:
    def __init__(self) -> None:
        self.settings = {p: default_settings(p) for p in DEFAULT_ACCOUNTS}
        self.codes: dict[tuple[str, str], IssuedCode] = {}
        self.reach: dict[tuple[str, str], Reach] = {}  # (platform, token) -> what it reaches

    def clear(self) -> None:
        self.__init__()  # type: ignore[misc]

    def current_reach(self, platform: str) -> Reach:
        settings = self.settings[platform]
        return Reach(settings.accounts, dict(settings.managers))

    def issue_code(
        self, platform: str, client_id: str, redirect_uri: str, challenge: str | None, now: float
    ) -> str:
        code = f"sandbox-code-{secrets.token_urlsafe(16)}"
        reach = self.current_reach(platform)
        self.codes[(platform, code)] = IssuedCode(
            platform, client_id, redirect_uri, challenge, reach, now + CODE_TTL_S
        )
        return code

    def redeem(
        self,
        platform: str,
        code: str,
        client_id: str,
        redirect_uri: str | None,
        verifier: str | None,
        now: float,
    ) -> Reach | str:
        """The code's reach, once (it is used up); else why the platform refuses it."""
        issued = self.codes.get((platform, code))
        if self.settings[platform].reject_code:
            return "rejected"
        if issued is None:
            return "unknown"
        if issued.used:
            return "used"
        if now >= issued.expires_at:
            return "expired"
        if issued.client_id != client_id:
            return "client"
        if redirect_uri is not None and issued.redirect_uri != redirect_uri:
            return "redirect_uri"
        if issued.challenge is not None:
            if not verifier:
                return "verifier missing"
            digest = hashlib.sha256(verifier.encode()).digest()
            if base64.urlsafe_b64encode(digest).decode().rstrip("=") != issued.challenge:
                return "verifier"
        issued.used = True
        return issued.reach


def _redirect(location: str) -> ApiResponse:
    return ApiResponse(302, b"", "text/plain; charset=utf-8", (("Location", location),))


def _with_query(uri: str, params: dict[str, str]) -> str:
    return f"{uri}{'&' if '?' in uri else '?'}{urlencode(params)}"


def _page(status: int, title: str, message: str) -> ApiResponse:
    body = _TEMPLATES.from_string(
        "<!doctype html><title>{{ title }}</title><h1>{{ title }}</h1><p>{{ message }}</p>"
    ).render(title=title, message=message)
    return ApiResponse(status, body.encode(), "text/html; charset=utf-8")


_SPEC: Final = {
    # platform: (client id parameter, what the page asks for, the page's title)
    "google": ("client_id", "manage your Google Ads campaigns", "Sign in with Google (sandbox)"),
    "meta": ("client_id", "read your ad accounts' insights (ads_read)", "Log in with Facebook (sandbox)"),
    "tiktok": ("app_id", "read your advertisers' reports", "TikTok For Business (sandbox)"),
}


def consent(board: ConsentBoard, platform: str, incoming: Incoming, now: float) -> ApiResponse:
    """The consent page (GET), or its buttons (POST .../decide)."""
    params = incoming.args if incoming.method == "GET" else incoming.form()
    client_param, purpose, title = _SPEC[platform]
    client_id = params.get(client_param, "")
    redirect_uri = params.get("redirect_uri", "")
    if not client_id:
        return _page(400, "Error 400: invalid_request", f"Missing required parameter: {client_param}")
    if not redirect_uri.startswith(("http://", "https://")):
        return _page(400, "Error 400: redirect_uri_mismatch", "Missing or invalid redirect_uri")
    challenge = None
    if platform in ("google", "meta") and params.get("response_type") != "code":
        return _page(400, "Error 400: invalid_request", "response_type must be code")
    if platform == "google":
        challenge = params.get("code_challenge") or None
        if challenge is not None and params.get("code_challenge_method") != "S256":
            return _page(400, "Error 400: invalid_request", "code_challenge_method must be S256")
    state = params.get("state", "")
    mode = board.settings[platform].mode
    decision = params.get("decision") if incoming.method == "POST" else None
    if decision is None and mode == "ask":
        kept = {k: v for k, v in params.items() if k != "decision"}
        body = _TEMPLATES.get_template("consent.html").render(
            title=title,
            client_id=client_id,
            purpose=purpose,
            accounts=board.current_reach(platform).accounts,
            action=f"{incoming.path.removesuffix('/decide')}/decide",
            params=kept,
        )
        return ApiResponse(200, body.encode(), "text/html; charset=utf-8")
    allowed = decision == "allow" if decision is not None else mode == "approve"
    if not allowed:
        denied = {"error": "access_denied", "state": state}
        if platform == "meta":
            denied.update(error_reason="user_denied", error_description="Permissions error")
        return _redirect(_with_query(redirect_uri, denied))
    code = board.issue_code(platform, client_id, redirect_uri, challenge, now)
    granted = {"code": code, "state": state}
    if platform == "tiktok":
        granted = {"auth_code": code, "code": code, "state": state}
    if platform == "google":
        granted["scope"] = "https://www.googleapis.com/auth/adwords"
    return _redirect(_with_query(redirect_uri, granted))
