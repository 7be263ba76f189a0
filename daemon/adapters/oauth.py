"""Browser connect, the platforms' side: consent URLs, the code exchange, and the accounts a
grant reaches. Speaks HTTP only (no database, no HTTP serving); deneva.connect drives it.

    google  consent  {google_auth_url}?response_type=code&access_type=offline&prompt=consent
                     &scope=.../auth/adwords&state&code_challenge (PKCE, S256)
            exchange POST {google_token_url}  grant_type=authorization_code, code_verifier
            accounts GET  {google_base_url}/{v}/customers:listAccessibleCustomers, then per
                     accessible customer GAQL on customer_client (its whole hierarchy): every
                     client account that is not a manager, reached through that manager
                     (its `login-customer-id`)
    meta     consent  {meta_dialog_url}/{v}/dialog/oauth?response_type=code&scope=ads_read&state
            exchange GET  {meta_base_url}/{v}/oauth/access_token?code, then at once
                     fb_exchange_token for a long-lived token (about 60 days)
            accounts GET  {meta_base_url}/{v}/me/adaccounts (cursor-paged)
    tiktok   consent  {tiktok_auth_url}?app_id&state&redirect_uri
            exchange POST {tiktok_base_url}/{v}/oauth2/access_token/  {app_id, secret, auth_code}
            accounts GET  {tiktok_base_url}/{v}/oauth2/advertiser/get/  (Access-Token header)

PKCE is Google's only: Meta documents it for its OpenID Connect login only (marked as
in testing) and TikTok's Business API not at all; both exchange the code with the app
secret, server to server, and `state` binds the flow. Every failure is a
`PlatformError` whose message names what went wrong and never carries a token, a code
or a secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Any, Final
from urllib.parse import urlencode

import attrs
import httpx

from deneva.adapters.base import PlatformConfig, TokenGrant, check_platform
from deneva.adapters.errors import PlatformError
from deneva.adapters.google import GoogleAds, customer_id, error_object
from deneva.adapters.meta import MetaAds
from deneva.adapters.tiktok import TikTokAds
from deneva.adapters.wire import (
    Session,
    array,
    get,
    ident,
    integer,
    loose_text,
    obj,
    open_session,
    opt_number,
    opt_text,
    require_url,
    text,
)

GOOGLE_SCOPE: Final = "https://www.googleapis.com/auth/adwords"
META_SCOPE: Final = "ads_read"
PKCE_PLATFORMS: Final = frozenset({"google"})
CUSTOMER_CLIENTS: Final = (
    "SELECT customer_client.id, customer_client.descriptive_name, customer_client.manager, "
    "customer_client.level, customer_client.status, customer_client.currency_code FROM customer_client"
)


def pkce_pair() -> tuple[str, str]:
    """A PKCE code verifier and its S256 challenge (RFC 7636)."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


@attrs.frozen
class ReachableAccount:
    """An ad account a grant reaches: its id as deneva stores it, a name to show, and for a
    Google client account the manager it is reached through."""

    account_id: str
    name: str
    login_customer_id: str | None = None
    currency: str | None = None

    def as_json(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> ReachableAccount:
        return cls(**value)


@attrs.frozen
class Consent:
    """What a code exchange gives: the tokens (long-lived for Meta) and the accounts they reach."""

    grant: TokenGrant
    accounts: tuple[ReachableAccount, ...]


def _missing(platform: str, *names: str) -> PlatformError:
    return PlatformError(
        "invalid_request",
        platform,
        f"{platform}: {' and '.join(names)} not configured (see docs/platforms.md)",
    )


def authorize_url(
    config: PlatformConfig, platform: str, redirect_uri: str, state: str, code_challenge: str | None
) -> str:
    """The platform's consent page for this flow."""
    check_platform(platform)
    if platform == "google":
        if not config.google_client_id:
            raise _missing(platform, "DENEVA_GOOGLE_CLIENT_ID")
        params = {
            "client_id": config.google_client_id,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "scope": GOOGLE_SCOPE,
            "access_type": "offline",  # a refresh token
            "prompt": "consent",  # a refresh token again on a reconnect
            "include_granted_scopes": "true",
            "state": state,
        }
        if code_challenge is not None:
            params.update(code_challenge=code_challenge, code_challenge_method="S256")
        return f"{require_url(platform, config.google_auth_url, 'google_auth_url')}?{urlencode(params)}"
    if platform == "meta":
        if not config.meta_app_id:
            raise _missing(platform, "DENEVA_META_APP_ID")
        root = require_url(platform, config.meta_dialog_url, "meta_dialog_url")
        params = {
            "client_id": config.meta_app_id,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "scope": META_SCOPE,
            "state": state,
        }
        return f"{root}/{config.meta_api_version}/dialog/oauth?{urlencode(params)}"
    if not config.tiktok_app_id:
        raise _missing(platform, "DENEVA_TIKTOK_APP_ID")
    params = {"app_id": config.tiktok_app_id, "state": state, "redirect_uri": redirect_uri}
    return f"{require_url(platform, config.tiktok_auth_url, 'tiktok_auth_url')}?{urlencode(params)}"


class ConsentClient:
    """The code exchange and account discovery of every platform, on one HTTP client."""

    def __init__(self, config: PlatformConfig, *, http: httpx.AsyncClient | None = None) -> None:
        self.config = config
        self.http = http

    async def complete(
        self, platform: str, code: str, redirect_uri: str, code_verifier: str | None
    ) -> Consent:
        """Exchange the authorization code and list the accounts the grant reaches."""
        check_platform(platform)
        if platform == "google":
            return await self._google(code, redirect_uri, code_verifier)
        if platform == "meta":
            return await self._meta(code, redirect_uri)
        return await self._tiktok(code)

    # -- Google

    async def _google(self, code: str, redirect_uri: str, code_verifier: str | None) -> Consent:
        config = self.config
        if not config.google_client_id or not config.google_client_secret:
            raise _missing("google", "DENEVA_GOOGLE_CLIENT_ID", "DENEVA_GOOGLE_CLIENT_SECRET")
        token_url = require_url("google", config.google_token_url, "google_token_url")
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "client_id": config.google_client_id,
            "client_secret": config.google_client_secret,
            "redirect_uri": redirect_uri,
        }
        if code_verifier is not None:
            form["code_verifier"] = code_verifier
        async with open_session(config, self.http, "google", "connect", [code, code_verifier]) as session:
            response = await session.send("token", "POST", token_url, data=form)
            payload = session.json("token", response)
            if response.status_code != 200:
                raise _oauth_error(session, response.status_code, payload)
            with session.reading("token"):
                body = obj(payload, "token response")
                access_token = text(body.get("access_token"), "access_token")
                session.add_secret(access_token)
                refresh_token = opt_text(body.get("refresh_token"), "refresh_token")
                session.add_secret(refresh_token)
                expires_in = opt_number(body.get("expires_in"), "expires_in")
            if not refresh_token:
                raise session.error(
                    "invalid_request",
                    "token: Google sent no refresh token (the consent was not for offline access); "
                    "connect again",
                )
            expires_at = None if expires_in is None else config.clock() + expires_in
            grant = TokenGrant(access_token, expires_at, refresh_token)
            accounts = await self._google_accounts(session, access_token)
        return Consent(grant, accounts)

    def _google_headers(self, token: str, login: str | None = None) -> dict[str, str]:
        headers = {"authorization": f"Bearer {token}"}
        if self.config.google_developer_token:
            headers["developer-token"] = self.config.google_developer_token
        if login:
            headers["login-customer-id"] = login
        return headers

    async def _google_accounts(self, session: Session, token: str) -> tuple[ReachableAccount, ...]:
        base = require_url("google", self.config.google_base_url, "google_base_url")
        root = f"{base}/{self.config.google_api_version}"
        ads = GoogleAds(self.config, http=self.http)
        url = f"{root}/customers:listAccessibleCustomers"
        response = await session.send(
            "listAccessibleCustomers", "GET", url, headers=self._google_headers(token)
        )
        payload = session.json("listAccessibleCustomers", response)
        if response.status_code != 200:
            error, _ = ads.api_error(session, "listAccessibleCustomers", response, error_object(payload))
            raise error
        with session.reading("listAccessibleCustomers"):
            names = array(obj(payload, "response").get("resourceNames") or [], "resourceNames")
            accessible = [text(n, "resourceNames[]").removeprefix("customers/") for n in names]
        found: dict[str, ReachableAccount] = {}
        for customer in accessible:
            cid = customer_id(customer)
            url = f"{root}/customers/{cid}/googleAds:searchStream"
            headers = self._google_headers(token, cid)
            response = await session.send(
                "customer_client", "POST", url, json={"query": CUSTOMER_CLIENTS}, headers=headers
            )
            payload = session.json("customer_client", response)
            error_body = error_object(payload)
            if response.status_code != 200 or error_body is not None:
                error, _ = ads.api_error(session, "customer_client", response, error_body)
                raise error
            with session.reading("customer_client"):
                rows = [
                    obj(item, "results[]")
                    for batch in array(payload, "searchStream response")
                    for item in array(obj(batch, "batch").get("results") or [], "results")
                ]
                clients = [obj(row.get("customerClient"), "customerClient") for row in rows]
                manager = any(
                    c.get("manager") is True and integer(c.get("level"), "level", missing=0) == 0
                    for c in clients
                )
                for client in clients:
                    if client.get("manager") is True:
                        continue  # a manager account has no campaigns of its own to report
                    if loose_text(client.get("status")) not in ("", "ENABLED"):
                        continue
                    account = ident(client.get("id"), "customerClient.id")
                    direct = integer(client.get("level"), "level", missing=0) == 0
                    reach = ReachableAccount(
                        account,
                        loose_text(client.get("descriptiveName")) or account,
                        None if direct or not manager else cid,
                        opt_text(client.get("currencyCode"), "currencyCode"),
                    )
                    if account not in found or reach.login_customer_id is None:
                        found[account] = reach  # reached directly beats through a manager
        return tuple(sorted(found.values(), key=lambda a: a.account_id))

    # -- Meta

    async def _meta(self, code: str, redirect_uri: str) -> Consent:
        config = self.config
        if not config.meta_app_id or not config.meta_app_secret:
            raise _missing("meta", "DENEVA_META_APP_ID", "DENEVA_META_APP_SECRET")
        meta = MetaAds(config, http=self.http)
        url = f"{meta.api_root()}/oauth/access_token"
        params = {
            "client_id": config.meta_app_id,
            "client_secret": config.meta_app_secret,
            "redirect_uri": redirect_uri,
            "code": code,
        }
        async with open_session(config, self.http, "meta", "connect", [code]) as session:
            response = await session.send("token", "GET", url, params=params)
            payload = session.json("token", response)
            if response.status_code != 200 or (isinstance(payload, dict) and "error" in payload):
                raise meta.graph_error(session, "token", response, payload)
            with session.reading("token"):
                short = text(obj(payload, "token response").get("access_token"), "access_token")
        # The short-lived token (about 2 hours) is exchanged at once for a long-lived one.
        grant = await meta.exchange_long_lived(short)
        async with open_session(config, self.http, "meta", "connect", [short, grant.access_token]) as session:
            proof = hmac.new(
                config.meta_app_secret.encode(), grant.access_token.encode(), hashlib.sha256
            ).hexdigest()
            session.add_secret(proof)
            listed = await meta.paged(
                session,
                "adaccounts",
                f"{meta.api_root()}/me/adaccounts",
                {
                    "access_token": grant.access_token,
                    "appsecret_proof": proof,
                    "fields": "account_id,name,currency,account_status",
                    "limit": str(config.meta_page_size),
                },
            )
            with session.reading("adaccounts"):
                accounts = tuple(
                    ReachableAccount(
                        ident(item.get("account_id"), "account_id"),
                        loose_text(item.get("name")) or ident(item.get("account_id"), "account_id"),
                        None,
                        opt_text(item.get("currency"), "currency"),
                    )
                    for item in listed
                )
        return Consent(grant, tuple(sorted(accounts, key=lambda a: a.account_id)))

    # -- TikTok

    async def _tiktok(self, code: str) -> Consent:
        config = self.config
        if not config.tiktok_app_id or not config.tiktok_app_secret:
            raise _missing("tiktok", "DENEVA_TIKTOK_APP_ID", "DENEVA_TIKTOK_APP_SECRET")
        tiktok = TikTokAds(config, http=self.http)
        base = require_url("tiktok", config.tiktok_base_url, "tiktok_base_url")
        root = f"{base}/{config.tiktok_api_version}"
        body = {"app_id": config.tiktok_app_id, "secret": config.tiktok_app_secret, "auth_code": code}
        async with open_session(config, self.http, "tiktok", "connect", [code]) as session:
            response = await session.send("token", "POST", f"{root}/oauth2/access_token/", json=body)
            data = tiktok.envelope_data(session, "token", response, session.json("token", response))
            with session.reading("token"):
                access_token = text(data.get("access_token"), "data.access_token")
                session.add_secret(access_token)
            params = {"app_id": config.tiktok_app_id, "secret": config.tiktok_app_secret}
            response = await session.send(
                "advertisers",
                "GET",
                f"{root}/oauth2/advertiser/get/",
                params=params,
                headers={"Access-Token": access_token},
            )
            data = tiktok.envelope_data(
                session, "advertisers", response, session.json("advertisers", response)
            )
            with session.reading("advertisers"):
                accounts = tuple(
                    ReachableAccount(
                        ident(item.get("advertiser_id"), "advertiser_id"),
                        loose_text(item.get("advertiser_name")) or ident(item.get("advertiser_id"), "id"),
                    )
                    for item in (obj(i, "data.list[]") for i in array(data.get("list") or [], "data.list"))
                )
        return Consent(
            TokenGrant(access_token, None, None), tuple(sorted(accounts, key=lambda a: a.account_id))
        )


def _oauth_error(session: Session, status: int, payload: Any) -> PlatformError:
    """Google's token endpoint refused the code exchange."""
    error = get(payload, "error") if isinstance(payload, dict) else None
    description = get(payload, "error_description") if isinstance(payload, dict) else None
    what = error if isinstance(error, str) else f"HTTP {status}"
    if isinstance(description, str) and description:
        what += f" ({description})"
    if status >= 500:
        return session.error("transient", f"token: {what}; try again", status=status)
    if error == "invalid_grant":
        detail = f"token: {what}: the authorization code is invalid, expired or used already; connect again"
        return session.error("invalid_request", detail, status=status)
    if error in ("invalid_client", "unauthorized_client"):
        detail = f"token: {what}: check DENEVA_GOOGLE_CLIENT_ID and DENEVA_GOOGLE_CLIENT_SECRET"
        return session.error("invalid_request", detail, status=status)
    return session.error("invalid_request", f"token: {what}", status=status)


__all__ = ["Consent", "ConsentClient", "ReachableAccount", "authorize_url", "pkce_pair"]
