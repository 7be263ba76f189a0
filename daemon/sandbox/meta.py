"""Meta Marketing (Graph) API: ad-account insights and campaigns, long-lived token exchange.

    GET /meta/{v}/act_{id}/insights    level, fields, time_range | date_preset, time_increment,
                                       filtering, limit, after | before
    GET /meta/{v}/act_{id}/campaigns   fields, effective_status, limit, after | before
    GET /meta/oauth/access_token       grant_type=fb_exchange_token (also /meta/{v}/oauth/...)

Numbers are strings as Graph sends them; `actions`, `action_values`,
`cost_per_action_type` and `purchase_roas` are lists of {action_type, value}. Rows
without impressions are left out. Paging is cursor based: `paging.cursors.before/after`
and a `next` URL back into the sandbox while more rows remain. The access token comes
in the `access_token` parameter or an `Authorization: OAuth|Bearer` header.

Versions: the shapes are v27.0's (no field served here changed since v19.0). A version
the sandbox does not serve on the ads endpoints (`SandboxConfig.meta_versions`, by
default v25.0 to v27.0: v24.0 expired on 10 November 2026) answers HTTP 400, code 2635
"You are calling a deprecated version of the Ads API", as Graph does. The token
exchange takes any version of the usual shape (Graph API versions outlive the Ads
API's).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from datetime import date, timedelta
from functools import partial
from typing import Any
from urllib.parse import urlencode

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
from deneva.sandbox.dates import DateRange, history, meta_preset, parse_iso_date
from deneva.sandbox.faults import FaultResponses, RateLimitFault
from deneva.sandbox.state import SandboxState
from deneva.sandbox.tokens import TokenStatus
from deneva.sandbox.wire import ApiResponse, Incoming, json_response

ACCOUNT_NODE = re.compile(r"act_(\d{1,20})")
LEVELS = ("account", "campaign", "adset", "ad")
MAX_LIMIT = 5000
MAX_MONTHS_BACK = 37

# -- errors ---------------------------------------------------------------------------


def graph_error(
    incoming: Incoming,
    message: str,
    code: int,
    *,
    status: int = 400,
    type_: str = "OAuthException",
    subcode: int | None = None,
    transient: bool | None = None,
    headers: tuple[tuple[str, str], ...] = (),
) -> ApiResponse:
    error: dict[str, Any] = {"message": message, "type": type_, "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    if transient is not None:
        error["is_transient"] = transient
    error["fbtrace_id"] = incoming.fingerprint(23)
    return json_response(status, {"error": error}, headers)


def _param_error(incoming: Incoming, message: str) -> ApiResponse:
    return graph_error(incoming, f"(#100) {message}", 100)


_RATE_LIMIT_MESSAGES = {
    4: "Application request limit reached",
    17: "User request limit reached",
    613: "Calls to this api have exceeded the rate limit.",
    80000: "There have been too many calls from this ad-account. Wait a bit and try again.",
}


def _rate_limited(incoming: Incoming, fault: RateLimitFault, account: str | None) -> ApiResponse:
    code = fault.meta_code
    minutes = -(-fault.retry_after_s // 60)
    headers: list[tuple[str, str]] = [("Retry-After", str(fault.retry_after_s))]
    if account:
        usage = {
            account: [
                {
                    "type": "ads_insights",
                    "call_count": 100,
                    "total_cputime": 42,
                    "total_time": 57,
                    "estimated_time_to_regain_access": minutes,
                }
            ]
        }
        headers.append(("X-Business-Use-Case-Usage", json.dumps(usage, separators=(",", ":"))))
    return graph_error(
        incoming,
        _RATE_LIMIT_MESSAGES[code],
        code,
        subcode=2446079 if code in (17, 80000) else None,
        transient=True,
        headers=tuple(headers),
    )


def _server_error(incoming: Incoming, status: int) -> ApiResponse:
    if status == 500:
        return graph_error(incoming, "An unknown error occurred", 1, status=500, subcode=99, transient=False)
    return graph_error(
        incoming,
        "An unexpected error has occurred. Please retry your request later.",
        2,
        status=status,
        transient=True,
    )


def _deadline(incoming: Incoming) -> ApiResponse:
    return graph_error(
        incoming,
        "Please reduce the amount of data you're asking for, then retry your request",
        1,
        status=504,
        transient=True,
    )


FAULTS = FaultResponses(_rate_limited, _server_error, _deadline)


def version_not_served(incoming: Incoming, version: str, served: tuple[str, ...]) -> ApiResponse:
    """An expired (or unknown) version of the Ads API: Graph's error 2635."""
    latest = max(served, key=lambda v: tuple(int(n) for n in v[1:].split("."))) if served else "v27.0"
    return graph_error(
        incoming,
        f"(#2635) You are calling a deprecated version of the Ads API. Please update to the latest "
        f"version: {latest}.",
        2635,
    )


_WWW_AUTH = 'OAuth "Facebook Platform" "invalid_token" "{}"'


def _token_error(incoming: Incoming, status: TokenStatus) -> ApiResponse:
    if status is TokenStatus.REVOKED:
        message = (
            "Error validating access token: The session has been invalidated because the user "
            "changed their password or Facebook has changed the session for security reasons."
        )
        subcode: int | None = 460
    elif status is TokenStatus.EXPIRED:
        message = "Error validating access token: Session has expired."
        subcode = 463
    else:
        message = "Invalid OAuth access token - Cannot parse access token"
        subcode = None
    return graph_error(
        incoming,
        message,
        190,
        subcode=subcode,
        headers=(("WWW-Authenticate", _WWW_AUTH.format(message)),),
    )


def _access_token(incoming: Incoming) -> str:
    token = incoming.args.get("access_token", "")
    if token:
        return token
    scheme, _, value = incoming.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() in ("oauth", "bearer") else ""


def _authenticate(state: SandboxState, incoming: Incoming) -> ApiResponse | None:
    token = _access_token(incoming)
    if not token:
        return graph_error(incoming, "An access token is required to request this resource.", 104)
    status = state.tokens.status("meta", "access", token)
    if status is TokenStatus.VALID:
        return None
    return _token_error(incoming, status)


def _unsupported_node(incoming: Incoming, node: str) -> ApiResponse:
    return graph_error(
        incoming,
        f"Unsupported get request. Object with ID '{node}' does not exist, cannot be loaded due to "
        "missing permissions, or does not support this operation. Please read the Graph API "
        "documentation at https://developers.facebook.com/docs/graph-api",
        100,
        type_="GraphMethodException",
        subcode=33,
    )


# -- token exchange -------------------------------------------------------------------


def token(state: SandboxState, incoming: Incoming) -> ApiResponse:
    """GET /meta/oauth/access_token?grant_type=fb_exchange_token: a long-lived user token."""
    params = {**incoming.form(), **incoming.args} if incoming.method == "POST" else incoming.args
    if not params.get("client_id"):
        return graph_error(incoming, "Missing client_id parameter.", 101)
    if not params.get("client_secret"):
        return graph_error(incoming, "Missing client_secret parameter.", 1)
    grant = params.get("grant_type", "")
    if not grant and params.get("code"):
        return _code_grant(state, incoming, params)
    if grant != "fb_exchange_token":
        return _param_error(incoming, f"Unsupported grant_type '{grant}'; the sandbox only exchanges tokens")
    short = params.get("fb_exchange_token", "")
    if not short:
        return _param_error(incoming, "Missing fb_exchange_token parameter")
    status = state.tokens.status("meta", "access", short)
    if status is not TokenStatus.VALID:
        return _token_error(incoming, status)
    ttl = state.config.meta_long_lived_ttl_s
    issued = state.tokens.issue("meta", "access", short, ttl)
    return json_response(200, {"access_token": issued.token, "token_type": "bearer", "expires_in": ttl})


SHORT_LIVED_TTL_S = 7200


def _code_grant(state: SandboxState, incoming: Incoming, params: dict[str, str]) -> ApiResponse:
    """The login dialog's code for a short-lived user token (about 2 hours)."""
    if not params.get("redirect_uri"):
        return _param_error(incoming, "Missing redirect_uri parameter.")
    reach = state.consent.redeem(
        "meta", params["code"], params["client_id"], params["redirect_uri"], None, state.config.clock()
    )
    if isinstance(reach, str):
        messages = {
            "used": ("This authorization code has been used.", 36009),
            "expired": ("This authorization code has expired.", 36007),
            "redirect_uri": ("Error validating verification code. Please make sure your redirect_uri "
                             "is identical to the one you used in the OAuth dialog request", 36008),
        }  # fmt: skip
        message, subcode = messages.get(reach, ("Invalid verification code format.", 36000))
        return graph_error(incoming, message, 100, subcode=subcode)
    issued = state.tokens.issue("meta", "access", params["code"], SHORT_LIVED_TTL_S)
    state.consent.reach[("meta", issued.token)] = reach
    return json_response(
        200, {"access_token": issued.token, "token_type": "bearer", "expires_in": SHORT_LIVED_TTL_S}
    )


def ad_accounts(state: SandboxState, incoming: Incoming) -> ApiResponse:
    """GET /meta/{v}/me/adaccounts: the ad accounts the token's user reaches."""
    token = incoming.args.get("access_token", "")
    status = state.tokens.status("meta", "access", token)
    if status is not TokenStatus.VALID:
        return _token_error(incoming, status)
    reach = state.reach_of("meta", token)
    data = [
        {
            "account_id": account,
            "id": f"act_{account}",
            "name": f"Sandbox ad account {account}",
            "currency": "USD",
            "account_status": 1,
        }
        for account in reach.accounts
    ]
    return json_response(200, {"data": data, "paging": {"cursors": {"before": "MA", "after": "MQ"}}})


# -- insights -------------------------------------------------------------------------

_ID_FIELDS = {
    "account_id": "account",
    "account_name": "account",
    "account_currency": "account",
    "campaign_id": "campaign",
    "campaign_name": "campaign",
    "objective": "campaign",
    "adset_id": "adset",
    "adset_name": "adset",
    "ad_id": "ad",
    "ad_name": "ad",
}
_METRIC_FIELDS = (
    "impressions", "clicks", "spend", "reach", "frequency", "ctr", "cpc", "cpm", "cpp",
    "inline_link_clicks", "inline_link_click_ctr", "cost_per_inline_link_click", "actions",
    "action_values", "cost_per_action_type", "purchase_roas", "buying_type",
)  # fmt: skip
INSIGHT_FIELDS = (*_ID_FIELDS, *_METRIC_FIELDS, "date_start", "date_stop")
DEFAULT_INSIGHT_FIELDS = ("impressions", "spend")

_LEAD_ACTIONS = ("lead", "offsite_conversion.fb_pixel_lead")
_PURCHASE_ACTIONS = ("purchase", "offsite_conversion.fb_pixel_purchase", "omni_purchase")


def _actions(m: Measures, objective: str) -> dict[str, int]:
    link_clicks = round(m.clicks * 0.82)
    conversions = round(m.conversions)
    out = {
        "link_click": link_clicks,
        "landing_page_view": round(link_clicks * 0.74),
        "page_engagement": m.clicks + round(m.impressions * 0.003),
        "post_engagement": m.clicks + round(m.impressions * 0.003),
    }
    if objective == "OUTCOME_LEADS":
        for name in _LEAD_ACTIONS:
            out[name] = conversions
    else:
        out["add_to_cart"] = round(conversions * 2.9)
        out["initiate_checkout"] = round(conversions * 1.7)
        for name in _PURCHASE_ACTIONS:
            out[name] = conversions
    return out


def _action_values(m: Measures, objective: str) -> dict[str, float]:
    if objective == "OUTCOME_LEADS":
        return {}
    return {name: m.conversions_value for name in _PURCHASE_ACTIONS}


def _money(value: float) -> str:
    return f"{value:.2f}"


def _rate(value: float) -> str:
    return f"{value:.6f}"


@attrs.frozen
class _Entity:
    ids: dict[str, str]
    # (objective, daily metrics) per campaign inside: one for every level but `account`.
    parts: tuple[tuple[str, Callable[[date], Measures]], ...]


def _entities(account: Account, level: str) -> list[_Entity]:
    base = {
        "account_id": account.account_id,
        "account_name": account.name,
        "account_currency": account.currency,
    }
    if level == "account":
        parts = tuple((c.objective, partial(campaign_day, account, c)) for c in account.campaigns)
        return [_Entity(base, parts)]
    out: list[_Entity] = []
    for c in account.campaigns:
        ids = {**base, "campaign_id": c.id, "campaign_name": c.name, "objective": c.objective}
        if level == "campaign":
            out.append(_Entity(ids, ((c.objective, partial(campaign_day, account, c)),)))
            continue
        for n, g in enumerate(c.ad_groups):
            group_ids = {**ids, "adset_id": g.id, "adset_name": g.name}
            if level == "adset":
                daily = _group_daily(account, c, n)
                out.append(_Entity(group_ids, ((c.objective, daily),)))
                continue
            for k, ad in enumerate(g.ads):
                ad_ids = {**group_ids, "ad_id": ad.id, "ad_name": ad.name}
                out.append(_Entity(ad_ids, ((c.objective, _ad_daily(account, c, n, k)),)))
    return out


def _group_daily(account: Account, campaign: Campaign, n: int) -> Callable[[date], Measures]:
    return lambda day: ad_group_days(account, campaign, day)[n]


def _ad_daily(account: Account, campaign: Campaign, n: int, k: int) -> Callable[[date], Measures]:
    return lambda day: ad_days(account, campaign, n, day)[k]


def _status_of(campaign: Campaign) -> str:
    return {"ENABLED": "ACTIVE", "PAUSED": "PAUSED"}.get(campaign.status, "ARCHIVED")


def _buckets(window: DateRange, increment: str) -> list[DateRange]:
    if increment == "all_days":
        return [window]
    if increment == "monthly":
        buckets = []
        start = window.start
        while start <= window.end:
            next_month = (start.replace(day=1) + timedelta(days=32)).replace(day=1)
            buckets.append(DateRange(start, min(window.end, next_month - timedelta(days=1))))
            start = next_month
        return buckets
    step = int(increment)
    buckets = []
    start = window.start
    while start <= window.end:
        buckets.append(DateRange(start, min(window.end, start + timedelta(days=step - 1))))
        start += timedelta(days=step)
    return buckets


def _row(
    entity: _Entity,
    bucket: DateRange,
    data_days: DateRange | None,
    fields: list[str],
    level: str,
) -> dict[str, Any] | None:
    total = ZERO
    reach_max = 0
    actions: dict[str, int] = {}
    values: dict[str, float] = {}
    for objective, daily in entity.parts:
        part = ZERO
        if data_days is not None:
            for day in data_days:
                m = daily(day)
                part = part + m
                reach_max = max(reach_max, m.reach)
        for name, count in _actions(part, objective).items():
            actions[name] = actions.get(name, 0) + count
        for name, amount in _action_values(part, objective).items():
            values[name] = values.get(name, 0.0) + amount
        total = total + part
    if total.impressions == 0:
        return None
    spend = total.cost_micros / 1_000_000
    # People overlap across days: unique reach grows slower than the daily sum.
    reach = max(1, round(reach_max + 0.35 * (total.reach - reach_max)))
    link_clicks = actions.get("link_click", 0)
    row: dict[str, Any] = {}
    for field in fields:
        owner = _ID_FIELDS.get(field)
        if owner is not None:
            if LEVELS.index(owner) <= LEVELS.index(level) and field in entity.ids:
                row[field] = entity.ids[field]
            continue
        match field:
            case "impressions":
                row[field] = str(total.impressions)
            case "clicks":
                row[field] = str(total.clicks)
            case "spend":
                row[field] = _money(spend)
            case "reach":
                row[field] = str(reach)
            case "frequency":
                row[field] = _rate(total.impressions / reach)
            case "ctr":
                row[field] = _rate(100 * total.clicks / total.impressions)
            case "cpm":
                row[field] = _rate(1000 * spend / total.impressions)
            case "cpp":
                row[field] = _rate(1000 * spend / reach)
            case "cpc":
                if total.clicks:
                    row[field] = _rate(spend / total.clicks)
            case "inline_link_clicks":
                row[field] = str(link_clicks)
            case "inline_link_click_ctr":
                row[field] = _rate(100 * link_clicks / total.impressions)
            case "cost_per_inline_link_click":
                if link_clicks:
                    row[field] = _rate(spend / link_clicks)
            case "buying_type":
                row[field] = "AUCTION"
            case "actions":
                listed = [{"action_type": k, "value": str(v)} for k, v in actions.items() if v > 0]
                if listed:
                    row[field] = listed
            case "action_values":
                listed = [{"action_type": k, "value": _money(v)} for k, v in values.items() if v > 0]
                if listed:
                    row[field] = listed
            case "cost_per_action_type":
                listed = [{"action_type": k, "value": _rate(spend / v)} for k, v in actions.items() if v > 0]
                if listed:
                    row[field] = listed
            case "purchase_roas":
                if values.get("omni_purchase", 0) > 0 and spend > 0:
                    row[field] = [
                        {
                            "action_type": "omni_purchase",
                            "value": _rate(values["omni_purchase"] / spend),
                        }
                    ]
    row["date_start"] = bucket.start.isoformat()
    row["date_stop"] = bucket.end.isoformat()
    return row


class _BadParam(Exception):
    def __init__(self, message: str, code: int = 100) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def _date_window(args: dict[str, str], today: date) -> DateRange:
    raw_range = args.get("time_range")
    if raw_range:
        try:
            parsed = json.loads(raw_range)
        except ValueError:
            raise _BadParam("Param time_range must be a JSON object with since and until") from None
        if not isinstance(parsed, dict) or not all(
            isinstance(parsed.get(k), str) for k in ("since", "until")
        ):
            raise _BadParam("Param time_range must be a JSON object with since and until")
        since, until = parse_iso_date(parsed["since"]), parse_iso_date(parsed["until"])
        if since is None or until is None:
            raise _BadParam("Param time_range[since] and [until] must be dates in YYYY-MM-DD format")
        if since > until:
            raise _BadParam("Param time_range: since must be on or before until")
        oldest = today.replace(day=1) - timedelta(days=MAX_MONTHS_BACK * 31)
        if since < oldest:
            raise _BadParam(
                f"(#3018) The start date of the time range cannot be beyond {MAX_MONTHS_BACK} "
                "months from the current date",
                3018,
            )
        return DateRange(since, min(until, today))
    preset = args.get("date_preset", "last_30d")
    window = meta_preset(preset, today)
    if window is None:
        raise _BadParam(f"date_preset must be one of the following values: {', '.join(_PRESET_NAMES)}")
    return window


def _fields(args: dict[str, str], allowed: tuple[str, ...], default: tuple[str, ...]) -> list[str]:
    raw = args.get("fields", "")
    fields = [f.strip() for f in raw.split(",") if f.strip()] if raw else list(default)
    for i, name in enumerate(fields):
        if name not in allowed:
            raise _BadParam(f"fields[{i}] '{name}' is not a valid field; valid: {', '.join(allowed)}")
    return list(dict.fromkeys(fields))


def _limit(args: dict[str, str], default: int) -> int:
    raw = args.get("limit")
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise _BadParam(f"Param limit must be an integer between 1 and {MAX_LIMIT}")
    return int(raw)


_FILTER_FIELDS = {
    "campaign.id": "campaign_id",
    "adset.id": "adset_id",
    "ad.id": "ad_id",
    "campaign.name": "campaign_name",
    "adset.name": "adset_name",
    "ad.name": "ad_name",
    "campaign.effective_status": "campaign_status",
}
_FILTER_OPERATORS = ("EQUAL", "NOT_EQUAL", "IN", "NOT_IN", "CONTAIN", "NOT_CONTAIN")


@attrs.frozen
class _Filter:
    key: str
    operator: str
    values: tuple[str, ...]

    def __call__(self, ids: dict[str, str]) -> bool:
        value = ids.get(self.key)
        if value is None:
            return True  # a filter on a level the row is above does not apply
        match self.operator:
            case "EQUAL" | "IN":
                return value in self.values
            case "NOT_EQUAL" | "NOT_IN":
                return value not in self.values
            case "CONTAIN":
                return any(v.lower() in value.lower() for v in self.values)
            case _:
                return not any(v.lower() in value.lower() for v in self.values)


def _filters(args: dict[str, str]) -> list[_Filter]:
    raw = args.get("filtering")
    if not raw:
        return []
    try:
        parsed = json.loads(raw)
    except ValueError:
        raise _BadParam("Param filtering must be a JSON array of {field, operator, value}") from None
    if not isinstance(parsed, list):
        raise _BadParam("Param filtering must be a JSON array of {field, operator, value}")
    filters = []
    for item in parsed:
        if not isinstance(item, dict) or not {"field", "operator", "value"} <= set(item):
            raise _BadParam("Each filtering entry needs field, operator and value")
        field, operator, value = item["field"], item["operator"], item["value"]
        if field not in _FILTER_FIELDS:
            raise _BadParam(
                f"Filtering field {field} is invalid (sandbox supports {', '.join(_FILTER_FIELDS)})"
            )
        if operator not in _FILTER_OPERATORS:
            raise _BadParam(f"Filtering operator {operator} is invalid")
        values = value if isinstance(value, list) else [value]
        filters.append(_Filter(_FILTER_FIELDS[field], str(operator), tuple(str(v) for v in values)))
    return filters


def _cursor(index: int) -> str:
    return base64.urlsafe_b64encode(f"sandbox:{index}".encode()).decode().rstrip("=")


def _cursor_index(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        text = ""
    head, _, tail = text.partition(":")
    if head != "sandbox" or not tail.isdigit():
        raise _BadParam("The cursor is invalid")
    return int(tail)


def _page(incoming: Incoming, rows: list[dict[str, Any]], limit: int) -> dict[str, Any]:
    args = incoming.args
    start = 0
    if args.get("after"):
        start = _cursor_index(args["after"]) + 1
    elif args.get("before"):
        start = max(0, _cursor_index(args["before"]) - limit)
    data = rows[start : start + limit]
    if not data:
        return {"data": []}
    first, last = start, start + len(data) - 1
    paging: dict[str, Any] = {"cursors": {"before": _cursor(first), "after": _cursor(last)}}
    kept = [(k, v) for k, v in args.items() if k not in ("after", "before")]
    base = f"{incoming.host_url.rstrip('/')}{incoming.path}?"
    if start > 0:
        paging["previous"] = base + urlencode([*kept, ("before", _cursor(first))])
    if last + 1 < len(rows):
        paging["next"] = base + urlencode([*kept, ("after", _cursor(last))])
    return {"data": data, "paging": paging}


_PRESET_NAMES = (
    "today", "yesterday", "this_month", "last_month", "this_quarter", "last_quarter", "this_year",
    "last_year", "this_week_mon_today", "this_week_sun_today", "last_week_mon_sun",
    "last_week_sun_sat", "last_3d", "last_7d", "last_14d", "last_28d", "last_30d", "last_90d",
    "maximum", "data_maximum",
)  # fmt: skip


def _account(state: SandboxState, incoming: Incoming, node: str) -> Account | ApiResponse:
    denied = _authenticate(state, incoming)
    if denied is not None:
        return denied
    match = ACCOUNT_NODE.fullmatch(node)
    if match is None:
        return _unsupported_node(incoming, node)
    return account_for("meta", match.group(1), state.seed)


def insights(state: SandboxState, incoming: Incoming, node: str) -> ApiResponse:
    account = _account(state, incoming, node)
    if isinstance(account, ApiResponse):
        return account
    args = incoming.args
    today = state.today()
    try:
        level = args.get("level", "account")
        if level not in LEVELS:
            raise _BadParam(f"Param level must be one of {{{', '.join(LEVELS)}}}")
        if args.get("breakdowns", "").strip("[] "):
            raise _BadParam("breakdowns are not supported by the sandbox")
        fields = _fields(args, INSIGHT_FIELDS, DEFAULT_INSIGHT_FIELDS)
        fields = [f for f in fields if f not in ("date_start", "date_stop")]
        window = _date_window(args, today)
        increment = args.get("time_increment", "all_days")
        if increment not in ("all_days", "monthly") and not (
            increment.isdigit() and 1 <= int(increment) <= 90
        ):
            raise _BadParam("Param time_increment must be an integer between 1 and 90, monthly or all_days")
        filters = _filters(args)
        limit = _limit(args, state.config.meta_page_size)
        data_window = history(today)
        rows = []
        entities = [e for e in _entities(account, level) if all(f(_filter_ids(e, account)) for f in filters)]
        for bucket in _buckets(window, increment):
            data_days = bucket.intersect(data_window)
            for entity in entities:
                row = _row(entity, bucket, data_days, fields, level)
                if row is not None:
                    rows.append(row)
        body = _page(incoming, rows, limit)
    except _BadParam as exc:
        message = exc.message if exc.message.startswith("(#") else f"(#{exc.code}) {exc.message}"
        return graph_error(incoming, message, exc.code)
    return json_response(200, body, _throttle_headers())


def _filter_ids(entity: _Entity, account: Account) -> dict[str, str]:
    ids = dict(entity.ids)
    campaign_id = ids.get("campaign_id")
    if campaign_id is not None:
        campaign = next(c for c in account.campaigns if c.id == campaign_id)
        ids["campaign_status"] = _status_of(campaign)
    return ids


def _throttle_headers() -> tuple[tuple[str, str], ...]:
    return (("x-fb-ads-insights-throttle", '{"app_id_util_pct":0,"acc_id_util_pct":0}'),)


# -- campaigns ------------------------------------------------------------------------

CAMPAIGN_FIELDS = (
    "id", "account_id", "name", "status", "effective_status", "configured_status", "objective",
    "daily_budget", "lifetime_budget", "budget_remaining", "buying_type", "bid_strategy",
)  # fmt: skip


def campaigns(state: SandboxState, incoming: Incoming, node: str) -> ApiResponse:
    account = _account(state, incoming, node)
    if isinstance(account, ApiResponse):
        return account
    args = incoming.args
    try:
        fields = _fields(args, CAMPAIGN_FIELDS, ("id",))
        statuses: list[str] | None = None
        if args.get("effective_status"):
            try:
                parsed = json.loads(args["effective_status"])
            except ValueError:
                parsed = None
            if not isinstance(parsed, list) or not all(isinstance(s, str) for s in parsed):
                raise _BadParam("Param effective_status must be a JSON array of statuses")
            statuses = parsed
        limit = _limit(args, state.config.meta_page_size)
        rows = []
        for c in account.campaigns:
            status = _status_of(c)
            if statuses is not None and status not in statuses:
                continue
            budget = str(round(c.daily_budget * 100))
            values = {
                "id": c.id,
                "account_id": account.account_id,
                "name": c.name,
                "status": status,
                "effective_status": status,
                "configured_status": status,
                "objective": c.objective,
                "daily_budget": budget,
                "lifetime_budget": "0",
                "budget_remaining": budget,
                "buying_type": "AUCTION",
                "bid_strategy": "LOWEST_COST_WITHOUT_CAP",
            }
            rows.append({f: values[f] for f in fields})
        body = _page(incoming, rows, limit)
    except _BadParam as exc:
        return graph_error(incoming, f"(#{exc.code}) {exc.message}", exc.code)
    return json_response(200, body)
