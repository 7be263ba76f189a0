"""Google Ads over REST: GAQL through `googleAds:searchStream`, tokens from the OAuth endpoint.

    POST {google_token_url}                           grant_type=refresh_token
    POST {google_base_url}/{v}/customers/{id}/googleAds:searchStream   {"query": GAQL}

Each report is one GAQL query over `segments.date BETWEEN start AND end` (never
`DURING`: there is no LAST_90_DAYS constant). Every field the queries select is still
there: checked against the v23 protos (metrics, including the allowlisted
auction_insight_search_* ones) and the v24 to v26 reference (search_term_view,
asset_group.ad_strength, the search-term match type, which gained AI_MAX and
PERFORMANCE_MAX values, read as plain text). Headers: the bearer
token; `login-customer-id` when the account is reached through a manager account (the
credential's, else `google_login_customer_id`); `developer-token` only when one is
configured (Google sunset developer tokens on 9 September 2026: API access belongs to
the Google Cloud project that owns the OAuth client). Access tokens are lazy: the stored
one is used while it has more than `token_refresh_margin_s` to live, else the refresh
token buys a new one; a 401 gets one more refresh and retry, and a second 401 is
`token_revoked`.

Errors: OAuth `invalid_grant` is `token_revoked`; 429, RESOURCE_EXHAUSTED and quota
errors are `rate_limited` (Retry-After header, else the quota error's retryDelay), the
message saying whether the Cloud project's daily operations were used up (its access
level's quota) or too many came at once; 5xx is `transient`; 404 and CUSTOMER_NOT_FOUND
/ USER_PERMISSION_DENIED / CUSTOMER_NOT_ENABLED are `not_found`; the access-level
errors (CLOUD_PROJECT_NOT_APPROVED_FOR_PRODUCTION and the developer-token errors it
superseded, ACCESS_PROHIBITED, CLOUD_PROJECT_NOT_UNDER_ORGANIZATION) and an API version
Google no longer serves (a 404 without a Google Ads failure) are `invalid_request` with
what to do; other 4xx are `invalid_request`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from typing import Any, Final

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
    array,
    build_rows,
    check_creds,
    check_fetch,
    content_type,
    duration_s,
    get,
    ident,
    integer,
    loose_text,
    number,
    obj,
    open_session,
    opt_integer,
    opt_number,
    opt_text,
    require_url,
    retry_after,
    text,
)

PLATFORM: Final = "google"
MICROS = 1_000_000

_MONEY = ("metrics.impressions", "metrics.clicks", "metrics.cost_micros", "metrics.conversions")

# Schema -> (FROM resource, SELECT fields).
QUERIES: Final[dict[str, tuple[str, tuple[str, ...]]]] = {
    "campaign_day": (
        "campaign",
        (
            "segments.date",
            "campaign.id",
            "campaign.name",
            "campaign.status",
            "campaign.advertising_channel_type",
            "campaign_budget.amount_micros",
            "campaign_budget.period",
            "customer.currency_code",
            *_MONEY,
            "metrics.conversions_value",
            "metrics.search_budget_lost_impression_share",
        ),
    ),
    "search_term": (
        "search_term_view",
        (
            "search_term_view.search_term",
            "search_term_view.status",
            "segments.search_term_match_type",
            "campaign.id",
            "campaign.name",
            "ad_group.id",
            "ad_group.name",
            "customer.currency_code",
            *_MONEY,
            "metrics.conversions_value",
        ),
    ),
    "keyword": (
        "keyword_view",
        (
            "ad_group_criterion.criterion_id",
            "ad_group_criterion.keyword.text",
            "ad_group_criterion.keyword.match_type",
            "ad_group_criterion.status",
            "ad_group_criterion.quality_info.quality_score",
            "ad_group_criterion.quality_info.search_predicted_ctr",
            "ad_group_criterion.quality_info.creative_quality_score",
            "ad_group_criterion.quality_info.post_click_quality_score",
            "campaign.id",
            "campaign.name",
            "ad_group.id",
            "ad_group.name",
            "customer.currency_code",
            *_MONEY,
        ),
    ),
    "auction": (
        "campaign",
        (
            "campaign.id",
            "campaign.name",
            "segments.auction_insight_domain",
            "metrics.auction_insight_search_impression_share",
            "metrics.auction_insight_search_overlap_rate",
            "metrics.auction_insight_search_outranking_share",
            "metrics.auction_insight_search_position_above_rate",
            "metrics.auction_insight_search_top_impression_percentage",
            "metrics.auction_insight_search_absolute_top_impression_percentage",
        ),
    ),
    "asset_group": (
        "asset_group",
        (
            "asset_group.id",
            "asset_group.name",
            "asset_group.status",
            "asset_group.ad_strength",
            "campaign.id",
            "campaign.name",
            "customer.currency_code",
            *_MONEY,
            "metrics.conversions_value",
        ),
    ),
}


def gaql(schema: str, start: date, end: date) -> str:
    resource, fields = QUERIES[schema]
    return (
        f"SELECT {', '.join(fields)} FROM {resource} "
        f"WHERE segments.date BETWEEN '{start.isoformat()}' AND '{end.isoformat()}'"
    )


def customer_id(account_id: str) -> str:
    """A customer id without its dashes ("123-456-7890" -> "1234567890")."""
    digits = account_id.replace("-", "").strip()
    if not digits.isdigit() or len(digits) > 20:
        raise PlatformError("invalid_request", PLATFORM, "google: customer ids are digits (dashes allowed)")
    return digits


class _AccessTokenRejected(Exception):
    def __init__(self, error: PlatformError) -> None:
        super().__init__(error.message)
        self.error = error


class GoogleAds:
    """The Google Ads adapter (REST, API version `config.google_api_version`)."""

    name: Final = PLATFORM

    def __init__(self, config: PlatformConfig, *, http: httpx.AsyncClient | None = None) -> None:
        self.config = config
        self.http = http

    @property
    def api_version(self) -> str:
        return self.config.google_api_version

    async def refresh_token(self, creds: Credentials) -> TokenGrant:
        """A new access token from the stored refresh token (`token_revoked` if Google refuses it)."""
        check_creds(PLATFORM, creds)
        async with open_session(self.config, self.http, PLATFORM, "token", creds.secrets()) as session:
            return await self._refresh(session, creds)

    async def fetch_report(
        self, creds: Credentials, request: ReportRequest, tokens: TokenSource | None = None
    ) -> ReportData:
        check_fetch(PLATFORM, creds, request)
        base = require_url(PLATFORM, self.config.google_base_url, "google_base_url")
        customer = customer_id(request.account_id)
        url = f"{base}/{self.config.google_api_version}/customers/{customer}/googleAds:searchStream"
        start, end = request.window
        query = gaql(request.schema, start, end)
        async with open_session(
            self.config, self.http, PLATFORM, request.report_type, creds.secrets()
        ) as session:
            grant: TokenGrant | None = None

            async def fresh_token(rejected: str | None) -> str:
                nonlocal creds, grant
                if tokens is not None:
                    creds = await tokens.refreshed(creds, rejected)
                    if not creds.access_token:
                        raise session.error("token_revoked", "token: no access token after a refresh")
                    session.add_secret(creds.access_token)
                    return creds.access_token
                grant = await self._refresh(session, creds)
                return grant.access_token

            token = self._usable_access_token(creds) or await fresh_token(None)
            try:
                batches = await self._search_stream(session, url, creds, token, query)
            except _AccessTokenRejected:
                token = await fresh_token(token)
                try:
                    batches = await self._search_stream(session, url, creds, token, query)
                except _AccessTokenRejected as again:
                    detail = f"searchStream: a freshly refreshed access token was rejected too ({again})"
                    raise session.error("token_revoked", detail, status=401) from None
            with session.reading("searchStream"):
                results = _results(batches)
                currency = _currency(results)
                normalised = _NORMALISERS[request.schema](results)
        return ReportData(
            platform=PLATFORM,
            account_id=request.account_id,
            report_type=request.report_type,
            date_range=request.date_range,
            rows=normalised,
            fetched_rows=len(results),
            api_calls=session.api_calls,
            start_date=start,
            end_date=end,
            currency=currency,
            refreshed=grant,
        )

    def _usable_access_token(self, creds: Credentials) -> str | None:
        if not creds.access_token:
            return None
        expires_at = creds.access_token_expires_at
        if expires_at is not None and expires_at - self.config.clock() <= self.config.token_refresh_margin_s:
            return None
        return creds.access_token

    async def _refresh(self, session: Session, creds: Credentials) -> TokenGrant:
        if not creds.refresh_token:
            raise session.error("token_revoked", "token: no refresh token stored; reconnect the account")
        token_url = require_url(PLATFORM, self.config.google_token_url, "google_token_url")
        if not self.config.google_client_id or not self.config.google_client_secret:
            raise session.error(
                "invalid_request", "token: google_client_id and google_client_secret are not configured"
            )
        form = {
            "grant_type": "refresh_token",
            "client_id": self.config.google_client_id,
            "client_secret": self.config.google_client_secret,
            "refresh_token": creds.refresh_token,
        }
        response = await session.send("token", "POST", token_url, data=form)
        payload = session.json("token", response)
        status = response.status_code
        if status == 200:
            with session.reading("token", status):
                body = obj(payload, "token response")
                access_token = text(body.get("access_token"), "access_token")
                session.add_secret(access_token)
                expires_in = opt_number(body.get("expires_in"), "expires_in")
                refresh_token = opt_text(body.get("refresh_token"), "refresh_token")
            expires_at = self.config.clock() + expires_in if expires_in is not None else None
            return TokenGrant(access_token, expires_at, refresh_token)
        error = get(payload, "error") if isinstance(payload, dict) else None
        description = get(payload, "error_description") if isinstance(payload, dict) else None
        what = f"{error}" if isinstance(error, str) else "no OAuth error code"
        if isinstance(description, str) and description:
            what += f" ({description})"
        if status == 429 or error == "rate_limit_exceeded":
            delay = retry_after(response, self.config.clock)
            raise session.error(
                "rate_limited", f"token: HTTP {status}, {what}", status=status, retry_after_s=delay
            )
        if status >= 500:
            raise session.error("transient", f"token: HTTP {status}, {what}", status=status)
        if error == "invalid_grant":
            raise session.error(
                "token_revoked", f"token: {what}: the refresh token is revoked or expired", status=status
            )
        if error in ("invalid_client", "unauthorized_client"):
            raise session.error(
                "invalid_request", f"token: {what}: check the OAuth client id and secret", status=status
            )
        if 400 <= status < 500:
            raise session.error("invalid_request", f"token: HTTP {status}, {what}", status=status)
        raise session.error("internal", f"token: unexpected HTTP {status}, {what}", status=status)

    async def _search_stream(
        self, session: Session, url: str, creds: Credentials, token: str, query: str
    ) -> list[Any]:
        session.add_secret(token)
        headers = {"authorization": f"Bearer {token}"}
        if self.config.google_developer_token:
            headers["developer-token"] = self.config.google_developer_token
        login = creds.login_customer_id or self.config.google_login_customer_id
        if login:
            headers["login-customer-id"] = customer_id(login)
        response = await session.send("searchStream", "POST", url, json={"query": query}, headers=headers)
        if response.status_code == 404 and "json" not in content_type(response):
            # Google's front end answers a path it has no route for (a version it no longer
            # serves) with an HTML 404 page.
            detail = f"searchStream: HTTP 404. {self._version_hint()}"
            raise session.error("invalid_request", detail, status=404)
        payload = session.json("searchStream", response)
        error = error_object(payload)
        if response.status_code == 200 and error is None:
            with session.reading("searchStream"):
                return array(payload, "searchStream response")
        error_, token_rejected = self.api_error(session, "searchStream", response, error)
        if token_rejected:
            raise _AccessTokenRejected(error_)
        raise error_

    def api_error(
        self, session: Session, endpoint: str, response: httpx.Response, error: dict[str, Any] | None
    ) -> tuple[PlatformError, bool]:
        """The PlatformError for a Google Ads error answer; True when a token refresh may cure it."""
        http_status = response.status_code
        if error is None:
            if http_status >= 500:
                return session.error(
                    "transient", f"{endpoint}: HTTP {http_status}", status=http_status
                ), False
            return (
                session.error(
                    "internal",
                    f"{endpoint}: HTTP {http_status} without a Google error object",
                    status=http_status,
                ),
                False,
            )
        code = error.get("code")
        status = code if isinstance(code, int) and not isinstance(code, bool) and code >= 400 else http_status
        grpc = loose_text(error.get("status"))
        failures = _failures(error)
        names = {name for _, name in failures}
        message = _describe(status, grpc, error, failures)
        hint = self._hint(status, names, failures, message)
        # The advice first: a long answer from Google is what the length cap cuts.
        detail = f"{endpoint}: {hint}. Google said: {message}" if hint else f"{endpoint}: {message}"
        if names & _ACCESS_LEVEL_ERRORS or any(name.startswith("DEVELOPER_TOKEN") for name in names):
            return session.error("invalid_request", detail, status=status), False
        if _version_not_served(status, failures, message):
            return session.error("invalid_request", detail, status=status), False
        if status == 429 or grpc == "RESOURCE_EXHAUSTED" or any(c == "quotaError" for c, _ in failures):
            delay = retry_after(response, self.config.clock)
            if delay is None:
                delay = _retry_delay(error)
            return session.error("rate_limited", detail, status=status, retry_after_s=delay), False
        if status >= 500:
            return session.error("transient", detail, status=status), False
        if status == 401 or grpc == "UNAUTHENTICATED":
            return session.error("token_revoked", detail, status=status), True
        if status == 404 or names & {"CUSTOMER_NOT_FOUND", "USER_PERMISSION_DENIED", "CUSTOMER_NOT_ENABLED"}:
            return session.error("not_found", detail, status=status), False
        if 400 <= status < 500:
            return session.error("invalid_request", detail, status=status), False
        return session.error("internal", f"{endpoint}: unexpected answer, {message}", status=status), False

    def _hint(self, status: int, names: set[str], failures: list[tuple[str, str]], message: str) -> str:
        """What the operator should do about a Google Ads error, when deneva knows."""
        if names & {"CLOUD_PROJECT_NOT_APPROVED_FOR_PRODUCTION", "DEVELOPER_TOKEN_NOT_APPROVED"}:
            return (
                "the Google Cloud project of the OAuth client (DENEVA_GOOGLE_CLIENT_ID) has Test access, "
                "for test accounts only: apply for Explorer, Basic or Standard access on its Google Ads "
                "API Overview page in the Cloud console"
            )
        if "CLOUD_PROJECT_NOT_UNDER_ORGANIZATION" in names:
            return (
                "the Google Cloud project of the OAuth client is not under the organization its access "
                "level requires: move it there, or use an OAuth client of a project that is"
            )
        if "ACCESS_PROHIBITED" in names:
            return (
                "the Google Cloud project of the OAuth client may not call the Google Ads API: check its "
                "access level on its Google Ads API Overview page in the Cloud console"
            )
        if any(name.startswith("DEVELOPER_TOKEN") for name in names):
            return (
                "Google sunset developer tokens on 9 September 2026: remove the "
                "DENEVA_GOOGLE_DEVELOPER_TOKEN secret file (access belongs to the Cloud project now)"
            )
        if _version_not_served(status, failures, message):
            return self._version_hint()
        if "RESOURCE_EXHAUSTED" in names:
            return (
                "the Google Cloud project's daily operations quota (its access level's: Explorer 2,880 "
                "a day on production accounts, Basic 15,000) is used up; syncs resume when it refills, "
                "or apply for a higher access level on its Google Ads API Overview page in the Cloud "
                "console"
            )
        if "RESOURCE_TEMPORARILY_EXHAUSTED" in names:
            return "too many requests in a short time; retrying after the delay Google asked for"
        if any(name.startswith("EXCESSIVE_") for name in names):
            return "Google throttles this query pattern as too expensive; retrying after its delay"
        if "USER_PERMISSION_DENIED" in names:
            return (
                "if the account is a client of a manager account, set google_login_customer_id to the "
                "manager's customer id"
            )
        if "INVALID_LOGIN_CUSTOMER_ID_SERVING_CUSTOMER_ID_COMBINATION" in names:
            return "the manager account in google_login_customer_id does not manage this account"
        return ""

    def _version_hint(self) -> str:
        return (
            f"Google Ads API {self.config.google_api_version} is not served (sunset or unknown): set "
            f"google_ads_api_version (DENEVA_GOOGLE_ADS_API_VERSION) to {CURRENT['google']}, or leave "
            "it unset"
        )


# Authorization errors that say the Cloud project's access level does not allow the call.
_ACCESS_LEVEL_ERRORS: Final = frozenset(
    {"CLOUD_PROJECT_NOT_APPROVED_FOR_PRODUCTION", "CLOUD_PROJECT_NOT_UNDER_ORGANIZATION", "ACCESS_PROHIBITED"}
)


def _version_not_served(status: int, failures: list[tuple[str, str]], message: str) -> bool:
    """Google's answer to a version it does not serve: a 404 with no Google Ads failure
    (no route), or a failure that names the version as unsupported."""
    if status == 404 and not failures:
        return True
    if any("VERSION" in name for _, name in failures):
        return True
    return bool(re.search(r"\bversion v\d+ is (deprecated|sunset|not supported)", message, re.IGNORECASE))


def error_object(payload: Any) -> dict[str, Any] | None:
    """The `error` of an error answer: a bare object, or inside searchStream's array."""
    candidates = payload if isinstance(payload, list) else [payload]
    for item in candidates:
        if isinstance(item, dict) and isinstance(item.get("error"), dict):
            error: dict[str, Any] = item["error"]
            return error
    return None


def _failures(error: dict[str, Any]) -> list[tuple[str, str]]:
    """(category, enum name) of each GoogleAdsFailure error, e.g. ("quotaError", "RESOURCE_...")."""
    out: list[tuple[str, str]] = []
    details = error.get("details")
    for detail in details if isinstance(details, list) else []:
        errors = detail.get("errors") if isinstance(detail, dict) else None
        for item in errors if isinstance(errors, list) else []:
            code = item.get("errorCode") if isinstance(item, dict) else None
            if isinstance(code, dict):
                out.extend((str(k), str(v)) for k, v in code.items())
    return out


def _failure_messages(error: dict[str, Any]) -> list[str]:
    messages: list[str] = []
    details = error.get("details")
    for detail in details if isinstance(details, list) else []:
        errors = detail.get("errors") if isinstance(detail, dict) else None
        for item in errors if isinstance(errors, list) else []:
            if isinstance(item, dict) and isinstance(item.get("message"), str):
                messages.append(item["message"])
    return messages


def _describe(status: int, grpc: str, error: dict[str, Any], failures: list[tuple[str, str]]) -> str:
    parts = [f"HTTP {status}"]
    if grpc:
        parts.append(grpc)
    if failures:
        parts.append(", ".join(f"{category}.{name}" for category, name in failures))
    messages = _failure_messages(error)
    if not messages and isinstance(error.get("message"), str):
        messages = [error["message"]]
    text_ = " ".join(parts)
    return f"{text_}: {'; '.join(messages)}" if messages else text_


def _retry_delay(error: dict[str, Any]) -> float | None:
    """retryDelay from a quota error's details, or from a google.rpc.RetryInfo detail."""
    details = error.get("details")
    for detail in details if isinstance(details, list) else []:
        if not isinstance(detail, dict):
            continue
        delay = duration_s(detail.get("retryDelay"))
        if delay is not None:
            return delay
        errors = detail.get("errors")
        for item in errors if isinstance(errors, list) else []:
            if isinstance(item, dict):
                found = duration_s(get(item.get("details"), "quotaErrorDetails.retryDelay"))
                if found is not None:
                    return found
    return None


# -- normalisation ----------------------------------------------------------------------


def _results(batches: list[Any]) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    for n, batch in enumerate(batches):
        batch_ = obj(batch, f"batch {n}")
        items = batch_.get("results")
        if items is None:
            continue
        for m, item in enumerate(array(items, f"batch {n}.results")):
            results.append(obj(item, f"batch {n}.results[{m}]"))
    return results


def _currency(results: list[dict[str, Any]]) -> str | None:
    for row in results:
        value = get(row, "customer.currencyCode")
        if value is not None:
            return text(value, "customer.currencyCode")
    return None


def _cost(row: dict[str, Any]) -> float:
    return integer(get(row, "metrics.costMicros"), "metrics.costMicros", missing=0) / MICROS


def _count(row: dict[str, Any], path: str) -> int:
    return integer(get(row, path), path, missing=0)


def _amount(row: dict[str, Any], path: str) -> float:
    return number(get(row, path), path, missing=0.0)


def _campaign(row: dict[str, Any]) -> tuple[str, str]:
    return ident(get(row, "campaign.id"), "campaign.id"), text(get(row, "campaign.name"), "campaign.name")


def _campaign_day(row: dict[str, Any]) -> dict[str, Any]:
    campaign_id, campaign_name = _campaign(row)
    amount = opt_integer(get(row, "campaignBudget.amountMicros"), "campaignBudget.amountMicros")
    period = opt_text(get(row, "campaignBudget.period"), "campaignBudget.period")
    daily = amount / MICROS if amount is not None and period in (None, "DAILY") else None
    return rows.campaign_day(
        date=text(get(row, "segments.date"), "segments.date"),
        campaign_id=campaign_id,
        campaign_name=campaign_name,
        campaign_type=opt_text(
            get(row, "campaign.advertisingChannelType"), "campaign.advertisingChannelType"
        ),
        status=text(get(row, "campaign.status"), "campaign.status"),
        impressions=_count(row, "metrics.impressions"),
        clicks=_count(row, "metrics.clicks"),
        cost=_cost(row),
        conversions=_amount(row, "metrics.conversions"),
        conversion_value=_amount(row, "metrics.conversionsValue"),
        daily_budget=daily,
        budget_lost_share=opt_number(
            get(row, "metrics.searchBudgetLostImpressionShare"), "metrics.searchBudgetLostImpressionShare"
        ),
    )


def _search_term(row: dict[str, Any]) -> dict[str, Any]:
    campaign_id, campaign_name = _campaign(row)
    return rows.search_term(
        search_term=text(get(row, "searchTermView.searchTerm"), "searchTermView.searchTerm"),
        match_type=opt_text(get(row, "segments.searchTermMatchType"), "segments.searchTermMatchType"),
        status=opt_text(get(row, "searchTermView.status"), "searchTermView.status"),
        campaign_id=campaign_id,
        campaign_name=campaign_name,
        ad_group_id=ident(get(row, "adGroup.id"), "adGroup.id"),
        ad_group_name=text(get(row, "adGroup.name"), "adGroup.name"),
        impressions=_count(row, "metrics.impressions"),
        clicks=_count(row, "metrics.clicks"),
        cost=_cost(row),
        conversions=_amount(row, "metrics.conversions"),
        conversion_value=_amount(row, "metrics.conversionsValue"),
    )


def _keyword(row: dict[str, Any]) -> dict[str, Any]:
    campaign_id, campaign_name = _campaign(row)
    info = "adGroupCriterion.qualityInfo"
    return rows.keyword(
        keyword_id=ident(get(row, "adGroupCriterion.criterionId"), "adGroupCriterion.criterionId"),
        keyword=text(get(row, "adGroupCriterion.keyword.text"), "adGroupCriterion.keyword.text"),
        match_type=text(get(row, "adGroupCriterion.keyword.matchType"), "adGroupCriterion.keyword.matchType"),
        status=text(get(row, "adGroupCriterion.status"), "adGroupCriterion.status"),
        quality_score=opt_integer(get(row, f"{info}.qualityScore"), f"{info}.qualityScore"),
        expected_ctr=opt_text(get(row, f"{info}.searchPredictedCtr"), f"{info}.searchPredictedCtr"),
        ad_relevance=opt_text(get(row, f"{info}.creativeQualityScore"), f"{info}.creativeQualityScore"),
        landing_page_experience=opt_text(
            get(row, f"{info}.postClickQualityScore"), f"{info}.postClickQualityScore"
        ),
        campaign_id=campaign_id,
        campaign_name=campaign_name,
        ad_group_id=ident(get(row, "adGroup.id"), "adGroup.id"),
        ad_group_name=text(get(row, "adGroup.name"), "adGroup.name"),
        impressions=_count(row, "metrics.impressions"),
        clicks=_count(row, "metrics.clicks"),
        cost=_cost(row),
        conversions=_amount(row, "metrics.conversions"),
    )


def _auction(row: dict[str, Any]) -> dict[str, Any] | None:
    campaign_id, campaign_name = _campaign(row)
    domain = text(get(row, "segments.auctionInsightDomain"), "segments.auctionInsightDomain")

    def share(name: str) -> float | None:
        return opt_number(
            get(row, f"metrics.auctionInsightSearch{name}"), f"metrics.auctionInsightSearch{name}"
        )

    impression_share = share("ImpressionShare")
    if impression_share is None:
        return None
    return rows.auction(
        campaign_id=campaign_id,
        campaign_name=campaign_name,
        domain=domain,
        is_self=domain.strip().casefold() == "you",
        impression_share=impression_share,
        overlap_rate=share("OverlapRate"),
        outranking_share=share("OutrankingShare"),
        position_above_rate=share("PositionAboveRate"),
        top_of_page_rate=share("TopImpressionPercentage"),
        abs_top_of_page_rate=share("AbsoluteTopImpressionPercentage"),
    )


def _asset_group(row: dict[str, Any]) -> dict[str, Any]:
    campaign_id, campaign_name = _campaign(row)
    return rows.asset_group(
        asset_group_id=ident(get(row, "assetGroup.id"), "assetGroup.id"),
        asset_group_name=text(get(row, "assetGroup.name"), "assetGroup.name"),
        status=text(get(row, "assetGroup.status"), "assetGroup.status"),
        ad_strength=opt_text(get(row, "assetGroup.adStrength"), "assetGroup.adStrength"),
        campaign_id=campaign_id,
        campaign_name=campaign_name,
        impressions=_count(row, "metrics.impressions"),
        clicks=_count(row, "metrics.clicks"),
        cost=_cost(row),
        conversions=_amount(row, "metrics.conversions"),
        conversion_value=_amount(row, "metrics.conversionsValue"),
    )


def _sorted(
    build: Callable[[dict[str, Any]], dict[str, Any] | None], key: Callable[[dict[str, Any]], Any]
) -> Callable[[list[dict[str, Any]]], list[dict[str, Any]]]:
    def normalise(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
        built = build_rows(results, build)
        return sorted((row for row in built if row is not None), key=key)

    return normalise


_NORMALISERS: Final[dict[str, Callable[[list[dict[str, Any]]], list[dict[str, Any]]]]] = {
    "campaign_day": _sorted(_campaign_day, lambda r: (r["date"], r["campaign_id"])),
    "search_term": _sorted(_search_term, lambda r: (-r["cost"], r["search_term"], r["ad_group_id"])),
    "keyword": _sorted(_keyword, lambda r: (r["campaign_id"], r["ad_group_id"], r["keyword_id"])),
    "auction": _sorted(_auction, lambda r: (r["campaign_id"], not r["is_self"], -r["impression_share"])),
    "asset_group": _sorted(_asset_group, lambda r: (r["campaign_id"], r["asset_group_id"])),
}
