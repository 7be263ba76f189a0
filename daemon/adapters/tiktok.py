"""TikTok Business API: synchronous campaign reports by day, and the campaign list.

    GET {tiktok_base_url}/{v}/report/integrated/get/   BASIC, AUCTION_CAMPAIGN,
                                                       [campaign_id, stat_time_day]
    GET {tiktok_base_url}/{v}/campaign/get/            status and budget per campaign

The token goes in the `Access-Token` header; TikTok tokens do not expire, so
`refresh_token` hands back the stored one. Daily reports may span at most 30 days,
so a longer range is fetched in consecutive slices of `tiktok_max_days`; each
listing is read page by page up to `page_info.total_page`. Every answer is an
envelope `{code, message, data}`, usually under HTTP 200: code 40100 is
`rate_limited` (Retry-After when sent), 40101-40109 (missing, expired, invalid or
revoked token) are `token_revoked`, 40001 "no permission to operate advertiser" is
`not_found`, other 4xxxx are `invalid_request`, 5xxxx and HTTP 5xx are `transient`; an
HTTP 404 (a path the API does not serve: an API version it no longer serves) is
`invalid_request` naming the key to change.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
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
    get,
    ident,
    integer,
    loose_text,
    number,
    obj,
    open_session,
    opt_text,
    path_id,
    require_url,
    retry_after,
    text,
)

PLATFORM: Final = "tiktok"
RATE_LIMITED: Final = 40100
TOKEN_CODES: Final = range(40101, 40110)
REPORT_METRICS: Final = (
    "campaign_name",
    "spend",
    "impressions",
    "clicks",
    "conversion",
    "total_purchase_value",
    "currency",
)
CAMPAIGN_FIELDS: Final = (
    "campaign_id",
    "campaign_name",
    "objective_type",
    "budget",
    "budget_mode",
    "operation_status",
    "secondary_status",
)
DAILY_BUDGET_MODES: Final = frozenset({"BUDGET_MODE_DAY", "BUDGET_MODE_DYNAMIC_DAILY_BUDGET"})


@attrs.frozen
class _Campaign:
    status: str
    objective: str | None
    daily_budget: float | None


def slices(start: date, end: date, max_days: int) -> list[tuple[date, date]]:
    """[start, end] cut into consecutive inclusive slices of at most `max_days` days."""
    out: list[tuple[date, date]] = []
    cursor = start
    while cursor <= end:
        last = min(end, cursor + timedelta(days=max_days - 1))
        out.append((cursor, last))
        cursor = last + timedelta(days=1)
    return out


class TikTokAds:
    """The TikTok adapter (Business API version `config.tiktok_api_version`)."""

    name: Final = PLATFORM

    def __init__(self, config: PlatformConfig, *, http: httpx.AsyncClient | None = None) -> None:
        self.config = config
        self.http = http

    @property
    def api_version(self) -> str:
        return self.config.tiktok_api_version

    async def refresh_token(self, creds: Credentials) -> TokenGrant:
        """TikTok tokens do not expire: the stored token, unchanged."""
        check_creds(PLATFORM, creds)
        if not creds.access_token:
            raise PlatformError(
                "token_revoked", PLATFORM, "tiktok: no access token stored; reconnect the account"
            )
        return TokenGrant(creds.access_token, None, creds.refresh_token)

    async def fetch_report(
        self, creds: Credentials, request: ReportRequest, tokens: TokenSource | None = None
    ) -> ReportData:
        """`tokens` is not needed: this platform's token is the credential itself (refreshed
        only by `refresh_token`, ahead of its expiry)."""
        check_fetch(PLATFORM, creds, request)
        if not creds.access_token:
            raise PlatformError(
                "token_revoked", PLATFORM, "tiktok: no access token stored; reconnect the account"
            )
        base = require_url(PLATFORM, self.config.tiktok_base_url, "tiktok_base_url")
        root = f"{base}/{self.config.tiktok_api_version}"
        advertiser = path_id(PLATFORM, request.account_id, "advertiser id")
        headers = {"Access-Token": creds.access_token}
        start, end = request.window
        async with open_session(
            self.config, self.http, PLATFORM, request.report_type, creds.secrets()
        ) as session:
            report: list[dict[str, Any]] = []
            for first, last in slices(start, end, self.config.tiktok_max_days):
                params = {
                    "advertiser_id": advertiser,
                    "report_type": "BASIC",
                    "data_level": "AUCTION_CAMPAIGN",
                    "dimensions": json.dumps(["campaign_id", "stat_time_day"]),
                    "metrics": json.dumps(list(REPORT_METRICS)),
                    "start_date": first.isoformat(),
                    "end_date": last.isoformat(),
                }
                report += await self._pages(
                    session, "report", f"{root}/report/integrated/get/", params, headers
                )
            campaign_params = {"advertiser_id": advertiser, "fields": json.dumps(list(CAMPAIGN_FIELDS))}
            listed = await self._pages(
                session, "campaigns", f"{root}/campaign/get/", campaign_params, headers
            )
            with session.reading("campaigns"):
                campaigns = dict(build_rows(listed, _campaign))
            with session.reading("report"):
                currency = _currency(report)
                normalised = build_rows(report, lambda item: _campaign_day(item, campaigns))
        normalised.sort(key=lambda r: (r["date"], r["campaign_id"]))
        return ReportData(
            platform=PLATFORM,
            account_id=request.account_id,
            report_type=request.report_type,
            date_range=request.date_range,
            rows=normalised,
            fetched_rows=len(report),
            api_calls=session.api_calls,
            start_date=start,
            end_date=end,
            currency=currency,
        )

    async def _pages(
        self, session: Session, endpoint: str, url: str, params: dict[str, str], headers: dict[str, str]
    ) -> list[dict[str, Any]]:
        """Every item of a page-numbered listing (`data.list`, `data.page_info.total_page`)."""
        items: list[dict[str, Any]] = []
        size = str(self.config.tiktok_page_size)
        for page in range(1, self.config.max_pages + 1):
            query = {**params, "page": str(page), "page_size": size}
            response = await session.send(endpoint, "GET", url, params=query, headers=headers)
            if response.status_code == 404:
                hint = (
                    f"TikTok Business API {self.config.tiktok_api_version} is not served at this path: set "
                    f"tiktok_api_version (DENEVA_TIKTOK_API_VERSION) to {CURRENT['tiktok']}, or leave it "
                    "unset"
                )
                raise session.error("invalid_request", f"{endpoint}: HTTP 404. {hint}", status=404)
            payload = session.json(endpoint, response)
            data = self.envelope_data(session, endpoint, response, payload)
            with session.reading(endpoint):
                listed = data.get("list")
                batch = [] if listed is None else array(listed, "data.list")
                items.extend(obj(item, f"data.list[{n}]") for n, item in enumerate(batch))
                total_pages = integer(
                    get(data, "page_info.total_page"), "data.page_info.total_page", missing=0
                )
            if page >= total_pages or not batch:
                return items
        raise session.error("internal", f"{endpoint}: more than {self.config.max_pages} pages")

    def envelope_data(
        self, session: Session, endpoint: str, response: httpx.Response, payload: Any
    ) -> dict[str, Any]:
        """The envelope's `data` on success; the typed error otherwise."""
        status = response.status_code
        if not isinstance(payload, dict) or "code" not in payload:
            if status >= 500:
                raise session.error("transient", f"{endpoint}: HTTP {status}", status=status)
            raise session.error(
                "internal", f"{endpoint}: HTTP {status}, the body is not a TikTok envelope", status=status
            )
        with session.reading(endpoint, status):
            code = integer(payload.get("code"), "code")
        message = loose_text(payload.get("message"))
        if code == 0 and status == 200:
            with session.reading(endpoint, status):
                return obj(payload.get("data"), "data")
        detail = f"{endpoint}: code {code}: {message}" + ("" if status == 200 else f" (HTTP {status})")
        if code == RATE_LIMITED:
            delay = retry_after(response, self.config.clock)
            raise session.error("rate_limited", detail, status=status, retry_after_s=delay)
        if code in TOKEN_CODES:
            raise session.error("token_revoked", detail, status=status)
        if status >= 500 or 50000 <= code <= 59999:
            raise session.error("transient", detail, status=status)
        lowered = message.lower()
        if code == 40001 and (
            "no permission to operate advertiser" in lowered or "does not exist" in lowered
        ):
            raise session.error("not_found", detail, status=status)
        if 40000 <= code <= 49999 or 400 <= status < 500:
            raise session.error("invalid_request", detail, status=status)
        raise session.error("internal", f"{endpoint}: unexpected answer, {detail}", status=status)


def _campaign(item: dict[str, Any]) -> tuple[str, _Campaign]:
    operation = opt_text(item.get("operation_status"), "operation_status")
    secondary = opt_text(item.get("secondary_status"), "secondary_status") or ""
    if "DELETE" in secondary:
        status = "REMOVED"
    else:
        status = {"ENABLE": "ENABLED", "DISABLE": "PAUSED"}.get(operation or "", "UNKNOWN")
    mode = opt_text(item.get("budget_mode"), "budget_mode")
    budget = item.get("budget")
    daily = number(budget, "budget") if mode in DAILY_BUDGET_MODES and budget is not None else None
    return ident(item.get("campaign_id"), "campaign_id"), _Campaign(
        status=status,
        objective=opt_text(item.get("objective_type"), "objective_type"),
        daily_budget=daily,
    )


def _currency(report: list[dict[str, Any]]) -> str | None:
    for item in report:
        value = get(item, "metrics.currency")
        if value is not None:
            return text(value, "metrics.currency")
    return None


def _day(value: Any) -> str:
    """ "2024-05-25 00:00:00" -> "2024-05-25"."""
    day = text(value, "dimensions.stat_time_day")[:10]
    try:
        date.fromisoformat(day)
    except ValueError:
        raise ShapeError(f"dimensions.stat_time_day is {value!r}, expected 'YYYY-MM-DD hh:mm:ss'") from None
    return day


def _campaign_day(item: dict[str, Any], campaigns: dict[str, _Campaign]) -> dict[str, Any]:
    dimensions = obj(item.get("dimensions"), "dimensions")
    metrics = obj(item.get("metrics"), "metrics")
    campaign_id = ident(dimensions.get("campaign_id"), "dimensions.campaign_id")
    info = campaigns.get(campaign_id)
    return rows.campaign_day(
        date=_day(dimensions.get("stat_time_day")),
        campaign_id=campaign_id,
        campaign_name=text(metrics.get("campaign_name"), "metrics.campaign_name"),
        campaign_type=info.objective if info else None,
        # campaign/get leaves deleted campaigns out.
        status=info.status if info else "REMOVED",
        impressions=integer(metrics.get("impressions"), "metrics.impressions", missing=0),
        clicks=integer(metrics.get("clicks"), "metrics.clicks", missing=0),
        cost=number(metrics.get("spend"), "metrics.spend", missing=0.0),
        conversions=number(metrics.get("conversion"), "metrics.conversion", missing=0.0),
        conversion_value=number(
            metrics.get("total_purchase_value"), "metrics.total_purchase_value", missing=0.0
        ),
        daily_budget=info.daily_budget if info else None,
        budget_lost_share=None,
    )
