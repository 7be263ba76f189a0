"""Meta Marketing (Graph) API: campaign insights by day, campaigns, long-lived tokens.

    GET {meta_base_url}/{v}/act_{id}/insights     level=campaign, time_range, time_increment=1
    GET {meta_base_url}/{v}/act_{id}/campaigns    status and daily budget per campaign
    GET {meta_base_url}/{v}/oauth/access_token    grant_type=fb_exchange_token

The access token goes in the `access_token` parameter (with `appsecret_proof` when
the app secret is configured); no message ever carries a URL. Listings follow
`paging.cursors.after` while `paging.next` is present (the `next` URL itself is not
followed: it repeats the token and could point anywhere). Errors: code 190 (any
subcode) and 102 are `token_revoked`, as are permission errors (10, 200-299: the user
must reconnect); 4, 17, 32, 613 and 80000-80099 are `rate_limited`, the delay from
Retry-After or X-Business-Use-Case-Usage's estimated_time_to_regain_access; 5xx,
codes 1 and 2 and `is_transient` are `transient`; 100/33 (no such object) and 803
are `not_found`; 2635 (a version of the Ads API Meta no longer serves) is
`invalid_request` naming the key to change; other 4xx are `invalid_request`.

The fields and parameters are checked against the v27.0 reference: none of them was
renamed or removed since v19.0 (the 7- and 28-day view attribution windows Meta dropped
in January 2026 are not asked for; the default attribution is used).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any, Final

import attrs
import httpx

from deneva.adapters import rows
from deneva.adapters.base import (
    Credentials,
    PlatformConfig,
    ReportData,
    ReportRequest,
    TokenGrant,
    TokenSource,
)
from deneva.adapters.errors import PlatformError
from deneva.adapters.versions import CURRENT
from deneva.adapters.wire import (
    Session,
    ShapeError,
    array,
    build_rows,
    check_creds,
    check_fetch,
    ident,
    integer,
    loose_text,
    number,
    obj,
    open_session,
    opt_number,
    opt_text,
    path_id,
    require_url,
    retry_after,
    text,
)

PLATFORM: Final = "meta"
RATE_LIMIT_CODES: Final = frozenset({4, 17, 32, 613})
TOKEN_CODES: Final = frozenset({190, 102})
VERSION_GONE: Final = 2635  # "You are calling a deprecated version of the Ads API"
INSIGHT_FIELDS: Final = (
    "campaign_id",
    "campaign_name",
    "objective",
    "account_currency",
    "impressions",
    "clicks",
    "spend",
    "actions",
    "action_values",
)
CAMPAIGN_FIELDS: Final = ("id", "name", "objective", "effective_status", "daily_budget")
# The first action type present in each group counts (the later ones are its subsets).
PURCHASE_ACTIONS: Final = ("omni_purchase", "purchase", "offsite_conversion.fb_pixel_purchase")
LEAD_ACTIONS: Final = ("lead", "onsite_conversion.lead_grouped", "offsite_conversion.fb_pixel_lead")
# Budgets come in the currency's minor unit; these currencies have none.
ZERO_DECIMAL_CURRENCIES: Final = frozenset({"CLP", "ISK", "JPY", "KRW", "PYG", "VND"})
_STATUS: Final = {
    "ACTIVE": "ENABLED",
    "IN_PROCESS": "ENABLED",
    "WITH_ISSUES": "ENABLED",
    "PAUSED": "PAUSED",
    "CAMPAIGN_PAUSED": "PAUSED",
    "ARCHIVED": "REMOVED",
    "DELETED": "REMOVED",
}


@attrs.frozen
class _Campaign:
    status: str
    objective: str | None
    daily_budget_minor: int | None


def account_node(account_id: str) -> str:
    """The Graph node of an ad account: "act_<id>" (given with or without the prefix)."""
    node = account_id if account_id.startswith("act_") else f"act_{account_id}"
    return path_id(PLATFORM, node, "ad account id")


class MetaAds:
    """The Meta adapter (Graph API version `config.meta_api_version`)."""

    name: Final = PLATFORM

    def __init__(self, config: PlatformConfig, *, http: httpx.AsyncClient | None = None) -> None:
        self.config = config
        self.http = http

    @property
    def api_version(self) -> str:
        return self.config.meta_api_version

    def api_root(self) -> str:
        base = require_url(PLATFORM, self.config.meta_base_url, "meta_base_url")
        return f"{base}/{self.config.meta_api_version}"

    async def exchange_long_lived(self, short_token: str) -> TokenGrant:
        """A long-lived user token (about 60 days) for a short-lived one."""
        if not self.config.meta_app_id or not self.config.meta_app_secret:
            raise PlatformError(
                "invalid_request", PLATFORM, "meta: meta_app_id and meta_app_secret are not configured"
            )
        if not short_token:
            raise PlatformError(
                "token_revoked", PLATFORM, "meta: no access token to exchange; reconnect the account"
            )
        url = f"{self.api_root()}/oauth/access_token"
        params = {
            "grant_type": "fb_exchange_token",
            "client_id": self.config.meta_app_id,
            "client_secret": self.config.meta_app_secret,
            "fb_exchange_token": short_token,
        }
        async with open_session(self.config, self.http, PLATFORM, "token exchange", [short_token]) as session:
            response = await session.send("token", "GET", url, params=params)
            payload = session.json("token", response)
            if response.status_code != 200 or (isinstance(payload, dict) and "error" in payload):
                raise self.graph_error(session, "token", response, payload)
            with session.reading("token"):
                body = obj(payload, "token response")
                access_token = text(body.get("access_token"), "access_token")
                session.add_secret(access_token)
                expires_in = opt_number(body.get("expires_in"), "expires_in")
        expires_at = self.config.clock() + expires_in if expires_in is not None else None
        return TokenGrant(access_token, expires_at, None)

    async def refresh_token(self, creds: Credentials) -> TokenGrant:
        """Meta has no refresh tokens: a still-valid token is exchanged for a fresh long-lived one."""
        check_creds(PLATFORM, creds)
        return await self.exchange_long_lived(creds.access_token or "")

    async def fetch_report(
        self, creds: Credentials, request: ReportRequest, tokens: TokenSource | None = None
    ) -> ReportData:
        """`tokens` is not needed: this platform's token is the credential itself (refreshed
        only by `refresh_token`, ahead of its expiry)."""
        check_fetch(PLATFORM, creds, request)
        if not creds.access_token:
            raise PlatformError(
                "token_revoked", PLATFORM, "meta: no access token stored; reconnect the account"
            )
        node = account_node(request.account_id)
        root = self.api_root()
        start, end = request.window
        auth = {"access_token": creds.access_token}
        if self.config.meta_app_secret:
            proof = hmac.new(
                self.config.meta_app_secret.encode(), creds.access_token.encode(), hashlib.sha256
            ).hexdigest()
            auth["appsecret_proof"] = proof
        insights_params = {
            **auth,
            "level": "campaign",
            "fields": ",".join(INSIGHT_FIELDS),
            "time_range": json.dumps(
                {"since": start.isoformat(), "until": end.isoformat()}, separators=(",", ":")
            ),
            "time_increment": "1",
            "limit": str(self.config.meta_page_size),
        }
        campaign_params = {
            **auth,
            "fields": ",".join(CAMPAIGN_FIELDS),
            "limit": str(self.config.meta_page_size),
        }
        secrets = [*creds.secrets(), auth.get("appsecret_proof")]
        async with open_session(self.config, self.http, PLATFORM, request.report_type, secrets) as session:
            insights = await self.paged(session, "insights", f"{root}/{node}/insights", insights_params)
            listed = await self.paged(session, "campaigns", f"{root}/{node}/campaigns", campaign_params)
            with session.reading("campaigns"):
                campaigns = dict(build_rows(listed, _campaign))
            with session.reading("insights"):
                currency = _currency(insights)
                normalised = build_rows(insights, lambda row: _campaign_day(row, campaigns, currency))
        normalised.sort(key=lambda r: (r["date"], r["campaign_id"]))
        return ReportData(
            platform=PLATFORM,
            account_id=request.account_id,
            report_type=request.report_type,
            date_range=request.date_range,
            rows=normalised,
            fetched_rows=len(insights),
            api_calls=session.api_calls,
            start_date=start,
            end_date=end,
            currency=currency,
        )

    async def paged(
        self, session: Session, endpoint: str, url: str, params: dict[str, str]
    ) -> list[dict[str, Any]]:
        """Every item of a cursor-paged Graph listing."""
        items: list[dict[str, Any]] = []
        seen: set[str] = set()
        after: str | None = None
        for _ in range(self.config.max_pages):
            query = params if after is None else {**params, "after": after}
            response = await session.send(endpoint, "GET", url, params=query)
            payload = session.json(endpoint, response)
            if response.status_code != 200 or (isinstance(payload, dict) and "error" in payload):
                raise self.graph_error(session, endpoint, response, payload)
            with session.reading(endpoint):
                body = obj(payload, "response")
                data = array(body.get("data"), "data")
                items.extend(obj(item, f"data[{n}]") for n, item in enumerate(data))
                paging = body.get("paging")
                if not data or not isinstance(paging, dict) or not paging.get("next"):
                    return items
                cursors = obj(paging.get("cursors"), "paging.cursors")
                after = text(cursors.get("after"), "paging.cursors.after")
                if after in seen:
                    raise ShapeError("paging.cursors.after repeats a cursor already followed")
                seen.add(after)
        raise session.error("internal", f"{endpoint}: more than {self.config.max_pages} pages")

    def graph_error(
        self, session: Session, endpoint: str, response: httpx.Response, payload: Any
    ) -> PlatformError:
        status = response.status_code
        error = payload.get("error") if isinstance(payload, dict) else None
        if not isinstance(error, dict):
            if status >= 500:
                return session.error("transient", f"{endpoint}: HTTP {status}", status=status)
            return session.error(
                "internal", f"{endpoint}: HTTP {status} without a Graph error object", status=status
            )
        try:
            code = integer(error.get("code"), "error.code")
        except ShapeError as exc:
            return session.error("internal", f"{endpoint}: HTTP {status}, {exc}", status=status)
        subcode = error.get("error_subcode")
        message = loose_text(error.get("message"))
        kind = loose_text(error.get("type")) or "error"
        label = f"{code}/{subcode}" if isinstance(subcode, int) else f"{code}"
        detail = f"{endpoint}: HTTP {status}, {kind} code {label}: {message}"
        if code in TOKEN_CODES:
            return session.error("token_revoked", detail, status=status)
        if code == VERSION_GONE:
            hint = (
                f"Marketing API {self.config.meta_api_version} is not served: set meta_api_version "
                f"(DENEVA_META_API_VERSION) to {CURRENT['meta']}, or leave it unset"
            )
            return session.error("invalid_request", f"{detail}. {hint}", status=status)
        if code in RATE_LIMIT_CODES or 80000 <= code <= 80099:
            delay = retry_after(response, self.config.clock)
            if delay is None:
                delay = _regain_access_s(response)
            return session.error("rate_limited", detail, status=status, retry_after_s=delay)
        if code == 10 or 200 <= code <= 299:
            return session.error("token_revoked", f"{detail} (a permission is missing)", status=status)
        if status >= 500 or code in (1, 2) or error.get("is_transient") is True:
            return session.error("transient", detail, status=status)
        if (code == 100 and subcode == 33) or code == 803:
            return session.error("not_found", detail, status=status)
        if 400 <= status < 500:
            return session.error("invalid_request", detail, status=status)
        return session.error("internal", f"{endpoint}: unexpected answer, {detail}", status=status)


def _regain_access_s(response: httpx.Response) -> float | None:
    """The longest estimated_time_to_regain_access (minutes) in X-Business-Use-Case-Usage, in seconds."""
    raw = response.headers.get("x-business-use-case-usage")
    if not raw:
        return None
    try:
        usage = json.loads(raw)
    except ValueError:
        return None
    minutes = [
        entry.get("estimated_time_to_regain_access")
        for entries in (usage.values() if isinstance(usage, dict) else [])
        if isinstance(entries, list)
        for entry in entries
        if isinstance(entry, dict)
    ]
    values = [float(m) for m in minutes if isinstance(m, int | float) and not isinstance(m, bool) and m > 0]
    return max(values) * 60 if values else None


def _campaign(item: dict[str, Any]) -> tuple[str, _Campaign]:
    raw_status = opt_text(item.get("effective_status"), "effective_status")
    budget = item.get("daily_budget")
    minor = integer(budget, "daily_budget") if budget not in (None, "", "0", 0) else None
    return ident(item.get("id"), "id"), _Campaign(
        status=_STATUS.get(raw_status or "", "UNKNOWN"),
        objective=opt_text(item.get("objective"), "objective"),
        daily_budget_minor=minor,
    )


def _currency(insights: list[dict[str, Any]]) -> str | None:
    for row in insights:
        value = row.get("account_currency")
        if value is not None:
            return text(value, "account_currency")
    return None


def _action_total(value: Any, name: str, groups: tuple[tuple[str, ...], ...]) -> float:
    """The sum over `groups` of the first action type of each group that is present."""
    if value is None:
        return 0.0
    found: dict[str, float] = {}
    for n, item in enumerate(array(value, name)):
        entry = obj(item, f"{name}[{n}]")
        kind = text(entry.get("action_type"), f"{name}[{n}].action_type")
        found[kind] = number(entry.get("value"), f"{name}[{n}].value")
    total = 0.0
    for group in groups:
        first = next((kind for kind in group if kind in found), None)
        if first is not None:
            total += found[first]
    return total


def _campaign_day(
    row: dict[str, Any], campaigns: dict[str, _Campaign], currency: str | None
) -> dict[str, Any]:
    campaign_id = ident(row.get("campaign_id"), "campaign_id")
    info = campaigns.get(campaign_id)
    budget: float | None = None
    if info is not None and info.daily_budget_minor is not None:
        divisor = 1 if currency in ZERO_DECIMAL_CURRENCIES else 100
        budget = info.daily_budget_minor / divisor
    objective = opt_text(row.get("objective"), "objective")
    return rows.campaign_day(
        date=text(row.get("date_start"), "date_start"),
        campaign_id=campaign_id,
        campaign_name=text(row.get("campaign_name"), "campaign_name"),
        campaign_type=objective or (info.objective if info else None),
        status=info.status if info else "UNKNOWN",
        impressions=integer(row.get("impressions"), "impressions", missing=0),
        clicks=integer(row.get("clicks"), "clicks", missing=0),
        cost=number(row.get("spend"), "spend", missing=0.0),
        conversions=_action_total(row.get("actions"), "actions", (PURCHASE_ACTIONS, LEAD_ACTIONS)),
        conversion_value=_action_total(row.get("action_values"), "action_values", (PURCHASE_ACTIONS,)),
        daily_budget=budget,
        budget_lost_share=None,
    )
