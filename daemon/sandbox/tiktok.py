"""TikTok Business (Marketing) API v1.3: synchronous reports, campaigns, auth-code exchange.

    GET  /tiktok/open_api/v1.3/report/integrated/get/    Access-Token header
    GET  /tiktok/open_api/v1.3/campaign/get/             Access-Token header
    POST /tiktok/open_api/v1.3/oauth2/access_token/      {"app_id", "secret", "auth_code"}

Every answer is HTTP 200 with `{"code", "message", "request_id", "data"}`; `code` 0 is
success. Errors: 40001 bad parameter (and unknown advertiser), 40100 rate limit, 40104
missing token, 40105 invalid or revoked token, 40110 bad auth code; injected 5xx faults
keep TikTok's body (code 50000) under the fault's HTTP status. Report metrics are
strings; rows without impressions are left out. Tokens do not expire. A version the
sandbox does not serve (`SandboxConfig.tiktok_versions`, by default v1.3 only: v1.2
ended on 15 August 2023) answers HTTP 404 with code 40400 in the envelope (the sandbox's
choice; TikTok documents no answer for a retired version).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from datetime import date
from typing import Any

import attrs

from deneva.sandbox.data import (
    ZERO,
    Account,
    Campaign,
    Measures,
    account_for,
    ad_days,
    ad_group_days,
    campaign_day,
)
from deneva.sandbox.dates import DateRange, history, parse_iso_date
from deneva.sandbox.faults import FaultResponses, RateLimitFault
from deneva.sandbox.state import SandboxState
from deneva.sandbox.tokens import TokenStatus
from deneva.sandbox.wire import ApiResponse, Incoming, json_response

ADVERTISER_ID = re.compile(r"\d{1,20}")
MAX_PAGE_SIZE = 1000
MAX_DAYS_BY_DAY = 30  # stat_time_day reports span at most 30 days
MAX_DAYS = 365

BAD_PARAM = 40001
RATE_LIMITED = 40100
TOKEN_EMPTY = 40104
TOKEN_INVALID = 40105
BAD_AUTH_CODE = 40110
SYSTEM_ERROR = 50000


def envelope(
    incoming: Incoming,
    code: int,
    message: str,
    data: Any = None,
    *,
    status: int = 200,
    headers: tuple[tuple[str, str], ...] = (),
) -> ApiResponse:
    body = {
        "code": code,
        "message": message,
        "request_id": incoming.hex_fingerprint(32),
        "data": data if data is not None else {},
    }
    return json_response(status, body, headers)


def _rate_limited(incoming: Incoming, fault: RateLimitFault, account: str | None) -> ApiResponse:
    return envelope(
        incoming,
        RATE_LIMITED,
        "Too many requests. Please retry in some time.",
        headers=(("Retry-After", str(fault.retry_after_s)),),
    )


FAULTS = FaultResponses(
    _rate_limited,
    lambda incoming, status: envelope(incoming, SYSTEM_ERROR, "System error", status=status),
    lambda incoming: envelope(incoming, SYSTEM_ERROR, "Request timed out. Please try again.", status=504),
)


def version_not_served(incoming: Incoming, version: str, served: tuple[str, ...]) -> ApiResponse:
    """A version TikTok does not serve: HTTP 404 in the usual envelope (the sandbox's
    choice: TikTok documents no answer for a retired version)."""
    current = ", ".join(served) or "none"
    return envelope(incoming, 40400, f"API version {version} is not available; served: {current}", status=404)


class _BadParam(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _authenticate(state: SandboxState, incoming: Incoming) -> ApiResponse | None:
    token = incoming.headers.get("access-token", "").strip()
    if not token:
        return envelope(incoming, TOKEN_EMPTY, "Access token is null, please check your request.")
    if state.tokens.status("tiktok", "access", token) is not TokenStatus.VALID:
        return envelope(incoming, TOKEN_INVALID, "The access token is invalid or has been revoked.")
    return None


def _json_list(args: dict[str, str], name: str, default: list[str] | None) -> list[str]:
    raw = args.get(name)
    if raw is None or raw == "":
        if default is None:
            raise _BadParam(f"{name}: Missing data for required field.")
        return default
    try:
        parsed = json.loads(raw)
    except ValueError:
        raise _BadParam(f"{name}: Not a valid list.") from None
    if not isinstance(parsed, list) or not all(isinstance(x, str) for x in parsed):
        raise _BadParam(f"{name}: Not a valid list.")
    return parsed


def _int_param(args: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = args.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise _BadParam(f"{name}: Must be greater than or equal to {low} and less than or equal to {high}.")
    return int(raw)


def _advertiser(state: SandboxState, incoming: Incoming) -> Account:
    advertiser_id = incoming.args.get("advertiser_id", "")
    if not advertiser_id:
        raise _BadParam("advertiser_id: Missing data for required field.")
    if not ADVERTISER_ID.fullmatch(advertiser_id):
        raise _BadParam(
            f"advertiser_id: No permission to operate advertiser {advertiser_id} (or it does not exist)."
        )
    return account_for("tiktok", advertiser_id, state.seed)


def _page_info(page: int, page_size: int, total: int) -> dict[str, int]:
    return {
        "page": page,
        "page_size": page_size,
        "total_number": total,
        "total_page": math.ceil(total / page_size) if total else 0,
    }


# -- reports --------------------------------------------------------------------------

DATA_LEVELS = {
    "AUCTION_ADVERTISER": "advertiser_id",
    "AUCTION_CAMPAIGN": "campaign_id",
    "AUCTION_ADGROUP": "adgroup_id",
    "AUCTION_AD": "ad_id",
}
_TIME_DIMENSIONS = ("stat_time_day",)
_ID_ORDER = ("advertiser_id", "campaign_id", "adgroup_id", "ad_id")
METRICS = (
    "spend", "impressions", "clicks", "ctr", "cpc", "cpm", "reach", "frequency", "conversion",
    "cost_per_conversion", "conversion_rate", "real_time_conversion", "total_purchase_value",
    "currency",
)  # fmt: skip
# Attribute metrics describe the row's entity; each needs its level's ID dimension.
ATTRIBUTES = {
    "campaign_name": "campaign_id",
    "objective_type": "campaign_id",
    "campaign_budget": "campaign_id",
    "adgroup_name": "adgroup_id",
    "ad_name": "ad_id",
}


@attrs.frozen
class _Entity:
    ids: dict[str, str]
    attributes: dict[str, str]
    daily: Callable[[date], Measures]


def _entities(account: Account, level_dimension: str) -> list[_Entity]:
    base = {"advertiser_id": account.account_id}
    if level_dimension == "advertiser_id":

        def total(day: date) -> Measures:
            out = ZERO
            for c in account.campaigns:
                out = out + campaign_day(account, c, day)
            return out

        return [_Entity(base, {}, total)]
    out: list[_Entity] = []
    for c in account.campaigns:
        ids = {**base, "campaign_id": c.id}
        attributes = {
            "campaign_name": c.name,
            "objective_type": c.objective,
            "campaign_budget": f"{c.daily_budget:.2f}",
        }
        if level_dimension == "campaign_id":
            out.append(_Entity(ids, attributes, _campaign_daily(account, c)))
            continue
        for n, g in enumerate(c.ad_groups):
            group_ids = {**ids, "adgroup_id": g.id}
            group_attributes = {**attributes, "adgroup_name": g.name}
            if level_dimension == "adgroup_id":
                out.append(_Entity(group_ids, group_attributes, _group_daily(account, c, n)))
                continue
            for k, ad in enumerate(g.ads):
                out.append(
                    _Entity(
                        {**group_ids, "ad_id": ad.id},
                        {**group_attributes, "ad_name": ad.name},
                        _ad_daily(account, c, n, k),
                    )
                )
    return out


def _campaign_daily(account: Account, campaign: Campaign) -> Callable[[date], Measures]:
    return lambda day: campaign_day(account, campaign, day)


def _group_daily(account: Account, campaign: Campaign, n: int) -> Callable[[date], Measures]:
    return lambda day: ad_group_days(account, campaign, day)[n]


def _ad_daily(account: Account, campaign: Campaign, n: int, k: int) -> Callable[[date], Measures]:
    return lambda day: ad_days(account, campaign, n, day)[k]


def _metric(name: str, m: Measures, reach: int, currency: str) -> str:
    spend = m.cost_micros / 1_000_000
    conversions = round(m.conversions)
    match name:
        case "spend":
            return f"{spend:.2f}"
        case "impressions":
            return str(m.impressions)
        case "clicks":
            return str(m.clicks)
        case "ctr":
            return f"{100 * m.clicks / m.impressions:.2f}" if m.impressions else "0.00"
        case "cpc":
            return f"{spend / m.clicks:.2f}" if m.clicks else "0.00"
        case "cpm":
            return f"{1000 * spend / m.impressions:.2f}" if m.impressions else "0.00"
        case "reach":
            return str(reach)
        case "frequency":
            return f"{m.impressions / reach:.2f}" if reach else "0.00"
        case "conversion" | "real_time_conversion":
            return str(conversions)
        case "cost_per_conversion":
            return f"{spend / conversions:.2f}" if conversions else "0.00"
        case "conversion_rate":
            return f"{100 * conversions / m.clicks:.2f}" if m.clicks else "0.00"
        case "total_purchase_value":
            return f"{m.conversions_value:.2f}"
        case "currency":
            return currency
    raise AssertionError(name)


@attrs.frozen
class ReportRequest:
    level_dimension: str
    id_dimension: str | None
    by_day: bool
    metrics: tuple[str, ...]
    window: DateRange | None  # None: lifetime
    page: int
    page_size: int
    order_field: str | None
    descending: bool


def _parse_report(args: dict[str, str], today: date) -> ReportRequest:
    report_type = args.get("report_type", "")
    if report_type != "BASIC":
        raise _BadParam(
            f"report_type: {report_type or 'Missing data for required field'} (the sandbox serves BASIC)."
        )
    data_level = args.get("data_level", "")
    if data_level not in DATA_LEVELS:
        raise _BadParam(f"data_level: Must be one of: {', '.join(DATA_LEVELS)}.")
    level_dimension = DATA_LEVELS[data_level]
    dimensions = _json_list(args, "dimensions", None)
    if not dimensions or len(set(dimensions)) != len(dimensions):
        raise _BadParam("dimensions: Must be a non-empty list without repeats.")
    id_dimension: str | None = None
    by_day = False
    for d in dimensions:
        if d in _TIME_DIMENSIONS:
            by_day = True
        elif d in _ID_ORDER:
            if d != level_dimension or id_dimension is not None:
                raise _BadParam(f"dimensions: {d} cannot be used with data_level {data_level}.")
            id_dimension = d
        else:
            raise _BadParam(f"dimensions: Invalid dimension {d}.")
    metrics = _json_list(args, "metrics", ["spend", "impressions"])
    for name in metrics:
        if name in ATTRIBUTES:
            needed = ATTRIBUTES[name]
            if id_dimension is None or _ID_ORDER.index(needed) > _ID_ORDER.index(id_dimension):
                raise _BadParam(f"metrics: {name} requires the {needed} dimension.")
        elif name not in METRICS:
            raise _BadParam(f"metrics: Invalid metric {name}.")
    lifetime = args.get("query_lifetime", "false").lower() == "true"
    window: DateRange | None = None
    if lifetime:
        if by_day:
            raise _BadParam("query_lifetime: stat_time_day cannot be used with query_lifetime.")
    else:
        start = parse_iso_date(args.get("start_date", ""))
        end = parse_iso_date(args.get("end_date", ""))
        if start is None or end is None:
            raise _BadParam("start_date, end_date: Required, in YYYY-MM-DD format.")
        if start > end:
            raise _BadParam("start_date: Must be on or before end_date.")
        limit = MAX_DAYS_BY_DAY if by_day else MAX_DAYS
        if (end - start).days + 1 > limit:
            raise _BadParam(f"end_date: The time span cannot exceed {limit} days for these dimensions.")
        window = DateRange(start, end)
    if args.get("filtering"):
        try:
            json.loads(args["filtering"])
        except ValueError:
            raise _BadParam("filtering: Not a valid JSON.") from None
    order_field = args.get("order_field") or None
    if order_field is not None and order_field not in metrics:
        raise _BadParam("order_field: Must be one of the requested metrics.")
    order_type = args.get("order_type", "DESC")
    if order_type not in ("ASC", "DESC"):
        raise _BadParam("order_type: Must be one of: ASC, DESC.")
    return ReportRequest(
        level_dimension=level_dimension,
        id_dimension=id_dimension,
        by_day=by_day,
        metrics=tuple(metrics),
        window=window,
        page=_int_param(args, "page", 1, 1, 1_000_000),
        page_size=_int_param(args, "page_size", 10, 1, MAX_PAGE_SIZE),
        order_field=order_field,
        descending=order_type == "DESC",
    )


def _report_rows(account: Account, request: ReportRequest, today: date) -> list[dict[str, Any]]:
    data_window = history(today)
    window = request.window.intersect(data_window) if request.window else data_window
    days = list(window) if window is not None else []
    # Without the level's ID dimension the rows add up over the level's entities.
    entities = _entities(account, request.id_dimension or "advertiser_id")
    groups: list[tuple[_Entity, date | None, Measures, int]] = []
    for entity in entities:
        if request.by_day:
            for day in days:
                m = entity.daily(day)
                if m.impressions:
                    groups.append((entity, day, m, m.reach))
        else:
            total, reach_max = ZERO, 0
            for day in days:
                m = entity.daily(day)
                total = total + m
                reach_max = max(reach_max, m.reach)
            if total.impressions:
                reach = max(1, round(reach_max + 0.35 * (total.reach - reach_max)))
                groups.append((entity, None, total, reach))
    if request.by_day:
        groups.sort(key=_day_of)
    rows = []
    for entity, row_day, m, reach in groups:
        dimensions: dict[str, str] = {}
        if request.id_dimension is not None:
            dimensions[request.id_dimension] = entity.ids[request.id_dimension]
        if row_day is not None:
            dimensions["stat_time_day"] = f"{row_day.isoformat()} 00:00:00"
        metrics = {
            name: entity.attributes[name] if name in ATTRIBUTES else _metric(name, m, reach, account.currency)
            for name in request.metrics
        }
        rows.append({"dimensions": dimensions, "metrics": metrics})
    if request.order_field is not None:
        field = request.order_field

        def order_key(row: dict[str, Any]) -> tuple[int, float | str]:
            value = row["metrics"][field]
            try:
                return (0, float(value))
            except ValueError:
                return (1, str(value))

        rows.sort(key=order_key, reverse=request.descending)
    return rows


def _day_of(group: tuple[_Entity, date | None, Measures, int]) -> date:
    return group[1] or date.min


def report(state: SandboxState, incoming: Incoming) -> ApiResponse:
    """GET report/integrated/get/: a synchronous BASIC report, paged."""
    denied = _authenticate(state, incoming)
    if denied is not None:
        return denied
    today = state.today()
    try:
        account = _advertiser(state, incoming)
        request = _parse_report(incoming.args, today)
    except _BadParam as exc:
        return envelope(incoming, BAD_PARAM, exc.message)
    rows = _report_rows(account, request, today)
    start = (request.page - 1) * request.page_size
    data = {
        "list": rows[start : start + request.page_size],
        "page_info": _page_info(request.page, request.page_size, len(rows)),
    }
    return envelope(incoming, 0, "OK", data)


# -- campaigns ------------------------------------------------------------------------

CAMPAIGN_FIELDS = (
    "advertiser_id", "campaign_id", "campaign_name", "objective_type", "budget", "budget_mode",
    "operation_status", "secondary_status",
)  # fmt: skip


def _campaign_record(account: Account, c: Campaign) -> dict[str, Any]:
    return {
        "advertiser_id": account.account_id,
        "campaign_id": c.id,
        "campaign_name": c.name,
        "objective_type": c.objective,
        "budget": round(c.daily_budget, 2),
        "budget_mode": "BUDGET_MODE_DAY",
        "operation_status": "ENABLE" if c.status == "ENABLED" else "DISABLE",
        "secondary_status": {
            "ENABLED": "CAMPAIGN_STATUS_ENABLE",
            "PAUSED": "CAMPAIGN_STATUS_DISABLE",
        }.get(c.status, "CAMPAIGN_STATUS_DELETE"),
    }


def campaigns(state: SandboxState, incoming: Incoming) -> ApiResponse:
    """GET campaign/get/: the advertiser's campaigns (deleted ones left out), paged."""
    denied = _authenticate(state, incoming)
    if denied is not None:
        return denied
    args = incoming.args
    try:
        account = _advertiser(state, incoming)
        fields = _json_list(args, "fields", list(CAMPAIGN_FIELDS))
        unknown = [f for f in fields if f not in CAMPAIGN_FIELDS]
        if unknown:
            raise _BadParam(f"fields: Invalid field {unknown[0]}.")
        page = _int_param(args, "page", 1, 1, 1_000_000)
        page_size = _int_param(args, "page_size", 10, 1, MAX_PAGE_SIZE)
    except _BadParam as exc:
        return envelope(incoming, BAD_PARAM, exc.message)
    records = [
        {f: r[f] for f in fields}
        for c in account.campaigns
        if c.status != "REMOVED"
        for r in (_campaign_record(account, c),)
    ]
    start = (page - 1) * page_size
    data = {
        "list": records[start : start + page_size],
        "page_info": _page_info(page, page_size, len(records)),
    }
    return envelope(incoming, 0, "OK", data)


# -- auth -----------------------------------------------------------------------------


def token(state: SandboxState, incoming: Incoming) -> ApiResponse:
    """POST oauth2/access_token/: exchange a (registered, single-use) auth code."""
    form = incoming.form()
    for name in ("app_id", "secret", "auth_code"):
        if not form.get(name):
            return envelope(incoming, BAD_PARAM, f"{name}: Missing data for required field.")
    auth_code = form["auth_code"]
    if ("tiktok", auth_code) in state.consent.codes or state.consent.settings["tiktok"].reject_code:
        reach = state.consent.redeem("tiktok", auth_code, form["app_id"], None, None, state.config.clock())
        if isinstance(reach, str):
            return envelope(incoming, BAD_AUTH_CODE, "Auth_code is invalid or expired.")
        issued = state.tokens.issue("tiktok", "access", auth_code, None)
        state.consent.reach[("tiktok", issued.token)] = reach
        data = {"access_token": issued.token, "scope": [1, 2, 3, 4], "advertiser_ids": list(reach.accounts)}
        return envelope(incoming, 0, "OK", data)
    if state.tokens.status("tiktok", "auth_code", auth_code) is not TokenStatus.VALID:
        return envelope(incoming, BAD_AUTH_CODE, "Auth_code is invalid or expired.")
    record = state.tokens.get("tiktok", auth_code)
    assert record is not None
    record.used = True
    issued = state.tokens.issue("tiktok", "access", auth_code, None)
    data = {"access_token": issued.token, "scope": [1, 2, 3, 4], "advertiser_ids": []}
    return envelope(incoming, 0, "OK", data)


def advertisers(state: SandboxState, incoming: Incoming) -> ApiResponse:
    """GET oauth2/advertiser/get/: the advertisers the token authorized (app_id and secret required)."""
    for name in ("app_id", "secret"):
        if not incoming.args.get(name):
            return envelope(incoming, BAD_PARAM, f"{name}: Missing data for required field.")
    denied = _authenticate(state, incoming)
    if denied is not None:
        return denied
    token = incoming.headers.get("access-token", "").strip()
    reach = state.reach_of("tiktok", token)
    listed = [{"advertiser_id": a, "advertiser_name": f"Sandbox advertiser {a}"} for a in reach.accounts]
    return envelope(incoming, 0, "OK", {"list": listed})
