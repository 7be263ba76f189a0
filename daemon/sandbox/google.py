"""Google Ads API over REST: the OAuth token endpoint and GoogleAdsService search.

    POST /google/token                                   OAuth2 refresh_token grant
    POST /google/revoke                                  OAuth2 token revocation
    POST /google/{v}/customers/{id}/googleAds:searchStream   {"query": GAQL}
    POST /google/{v}/customers/{id}/googleAds:search         {"query", "pageToken"}

Reporting resources: customer, campaign, campaign_budget, ad_group, keyword_view,
search_term_view, asset_group; auction insights are `segments.auction_insight_domain`
with the `metrics.auction_insight_search_*` metrics on `campaign` (one row per
competitor domain plus "You"). As in the API, a row is one instance of the FROM
resource per combination of selected segments; metrics add up over the unselected
ones, and rows without impressions are left out. int64 values are JSON strings,
doubles are numbers. searchStream wraps errors in a JSON array, as Google's REST
transcoding of a stream does; the unary `search` answers a bare error object.

Versions: the shapes are v26's (the same as v23 to v25's for every field served here;
`segments.search_term_match_type` has the AI_MAX and PERFORMANCE_MAX values added in
v21). A version the sandbox does not serve (`SandboxConfig.google_versions`, by default
v23 to v26: v22 was sunset on 7 October 2026) answers HTTP 404 NOT_FOUND without a
Google Ads failure, as a path Google has no route for; the sandbox's choice, as Google
documents no body for it. The `developer-token` header is optional and ignored (Google
sunset developer tokens on 9 September 2026); `login-customer-id`, when sent, must be a
customer id. Access-level faults (`access_denied`, `quota_exhausted`; see faults.py)
answer as a Cloud project with too low an access level is answered.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping
from datetime import date, timedelta
from functools import partial
from typing import Any

import attrs

from deneva.sandbox import gaql
from deneva.sandbox.data import (
    ZERO,
    Account,
    Campaign,
    Measures,
    account_for,
    ad_group_days,
    asset_group_days,
    auction_day,
    campaign_day,
    keyword_days,
    search_term_days,
)
from deneva.sandbox.dates import DateRange, google_during, history, parse_iso_date
from deneva.sandbox.faults import AccessDeniedFault, FaultResponses, QuotaExhaustedFault, RateLimitFault
from deneva.sandbox.state import SandboxState
from deneva.sandbox.tokens import TokenStatus
from deneva.sandbox.wire import ApiResponse, Incoming, dumps, json_response

CUSTOMER_ID = re.compile(r"\d{10}")
BATCH_SIZE = 10_000
SCOPE = "https://www.googleapis.com/auth/adwords"

Value = str | int | float | bool | None

# -- fields ---------------------------------------------------------------------------


@attrs.frozen
class Field:
    name: str
    kind: str  # attribute | segment | metric
    type: str  # int64 | int32 | double | string | enum | bool | date
    enum_values: tuple[str, ...] = ()

    @property
    def prefix(self) -> str:
        return self.name.split(".", 1)[0]


_STATUS = ("ENABLED", "PAUSED", "REMOVED", "UNKNOWN", "UNSPECIFIED")
_CHANNELS = (
    "SEARCH", "DISPLAY", "SHOPPING", "HOTEL", "VIDEO", "MULTI_CHANNEL", "LOCAL", "SMART",
    "PERFORMANCE_MAX", "LOCAL_SERVICES", "TRAVEL", "DEMAND_GEN", "UNKNOWN", "UNSPECIFIED",
)  # fmt: skip
_QUALITY = ("BELOW_AVERAGE", "AVERAGE", "ABOVE_AVERAGE", "UNKNOWN", "UNSPECIFIED")
_MATCH = ("EXACT", "PHRASE", "BROAD", "UNKNOWN", "UNSPECIFIED")
_TERM_MATCH = (
    "BROAD", "EXACT", "PHRASE", "NEAR_EXACT", "NEAR_PHRASE", "AI_MAX", "PERFORMANCE_MAX", "UNKNOWN",
    "UNSPECIFIED",
)  # fmt: skip
_TERM_STATUS = ("ADDED", "EXCLUDED", "ADDED_EXCLUDED", "NONE", "UNKNOWN", "UNSPECIFIED")
_STRENGTH = ("PENDING", "NO_ADS", "POOR", "AVERAGE", "GOOD", "EXCELLENT", "UNKNOWN", "UNSPECIFIED")
_WEEKDAYS = ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY")


def _registry() -> dict[str, Field]:
    fields: dict[str, Field] = {}

    def add(kind: str, type_: str, names: str, enum_values: tuple[str, ...] = ()) -> None:
        for name in names.split():
            fields[name] = Field(name, kind, type_, enum_values)

    add("attribute", "string", "customer.resource_name customer.descriptive_name "
        "customer.currency_code customer.time_zone")  # fmt: skip
    add("attribute", "int64", "customer.id")
    add("attribute", "bool", "customer.manager customer.test_account")
    add("attribute", "enum", "customer.status", ("ENABLED", "CANCELED", "SUSPENDED", "CLOSED"))
    add("attribute", "string", "campaign.resource_name campaign.name campaign.campaign_budget")
    add("attribute", "int64", "campaign.id")
    add("attribute", "enum", "campaign.status", _STATUS)
    add("attribute", "enum", "campaign.advertising_channel_type", _CHANNELS)
    add("attribute", "enum", "campaign.bidding_strategy_type")
    add("attribute", "string", "campaign_budget.resource_name campaign_budget.name")
    add("attribute", "int64", "campaign_budget.id campaign_budget.amount_micros")
    add("attribute", "enum", "campaign_budget.status", _STATUS)
    add("attribute", "enum", "campaign_budget.delivery_method", ("STANDARD", "ACCELERATED"))
    add("attribute", "enum", "campaign_budget.period", ("DAILY", "CUSTOM_PERIOD"))
    add("attribute", "bool", "campaign_budget.explicitly_shared")
    add("attribute", "string", "ad_group.resource_name ad_group.name ad_group.campaign")
    add("attribute", "int64", "ad_group.id")
    add("attribute", "enum", "ad_group.status", _STATUS)
    add("attribute", "enum", "ad_group.type")
    add("attribute", "string", "ad_group_criterion.resource_name ad_group_criterion.ad_group "
        "ad_group_criterion.keyword.text")  # fmt: skip
    add("attribute", "int64", "ad_group_criterion.criterion_id")
    add("attribute", "enum", "ad_group_criterion.status", _STATUS)
    add("attribute", "enum", "ad_group_criterion.type")
    add("attribute", "bool", "ad_group_criterion.negative")
    add("attribute", "enum", "ad_group_criterion.keyword.match_type", _MATCH)
    add("attribute", "int32", "ad_group_criterion.quality_info.quality_score")
    add("attribute", "enum", "ad_group_criterion.quality_info.creative_quality_score "
        "ad_group_criterion.quality_info.post_click_quality_score "
        "ad_group_criterion.quality_info.search_predicted_ctr", _QUALITY)  # fmt: skip
    add("attribute", "string", "keyword_view.resource_name")
    add("attribute", "string", "search_term_view.resource_name search_term_view.search_term "
        "search_term_view.ad_group")  # fmt: skip
    add("attribute", "enum", "search_term_view.status", _TERM_STATUS)
    add("attribute", "string", "asset_group.resource_name asset_group.name asset_group.campaign")
    add("attribute", "int64", "asset_group.id")
    add("attribute", "enum", "asset_group.status", _STATUS)
    add("attribute", "enum", "asset_group.ad_strength", _STRENGTH)
    add("segment", "date", "segments.date segments.week segments.month")
    add("segment", "enum", "segments.day_of_week", _WEEKDAYS)
    add("segment", "enum", "segments.search_term_match_type", _TERM_MATCH)
    add("segment", "string", "segments.auction_insight_domain")
    add("metric", "int64", "metrics.impressions metrics.clicks metrics.cost_micros")
    add("metric", "double", " ".join(f"metrics.{m}" for m in (*_BASIC_DOUBLES, *_IS, *_AUCTION)))
    return fields


_BASIC_DOUBLES = (
    "conversions", "conversions_value", "ctr", "average_cpc", "average_cpm", "cost_per_conversion",
    "conversions_from_interactions_rate", "value_per_conversion",
)  # fmt: skip
_IS = (
    "search_impression_share",
    "search_budget_lost_impression_share",
    "search_rank_lost_impression_share",
)
_AUCTION = (
    "auction_insight_search_impression_share",
    "auction_insight_search_overlap_rate",
    "auction_insight_search_outranking_share",
    "auction_insight_search_position_above_rate",
    "auction_insight_search_top_impression_percentage",
    "auction_insight_search_absolute_top_impression_percentage",
)
# Shares the advertiser cannot have with itself: absent on the "You" row.
_NOT_FOR_SELF = {
    "metrics.auction_insight_search_overlap_rate",
    "metrics.auction_insight_search_outranking_share",
    "metrics.auction_insight_search_position_above_rate",
}
FIELDS = _registry()


def _ratio(numerator: float, denominator: float, digits: int = 6) -> float | None:
    return round(numerator / denominator, digits) if denominator > 0 else None


def _share(total: float, days: int) -> float | None:
    return round(total / days, 4) if days > 0 else None


METRICS: dict[str, Callable[[Measures], Value]] = {
    "metrics.impressions": lambda m: m.impressions,
    "metrics.clicks": lambda m: m.clicks,
    "metrics.cost_micros": lambda m: m.cost_micros,
    "metrics.conversions": lambda m: round(m.conversions, 2),
    "metrics.conversions_value": lambda m: round(m.conversions_value, 2),
    "metrics.ctr": lambda m: _ratio(m.clicks, m.impressions),
    "metrics.average_cpc": lambda m: _ratio(m.cost_micros, m.clicks, 2),
    "metrics.average_cpm": lambda m: _ratio(m.cost_micros * 1000, m.impressions, 2),
    "metrics.cost_per_conversion": lambda m: _ratio(m.cost_micros, m.conversions, 2),
    "metrics.conversions_from_interactions_rate": lambda m: _ratio(m.conversions, m.clicks),
    "metrics.value_per_conversion": lambda m: _ratio(m.conversions_value, m.conversions, 2),
    "metrics.search_impression_share": lambda m: _ratio(m.impressions, m.eligible, 4),
    "metrics.search_budget_lost_impression_share": lambda m: _ratio(m.budget_lost, m.eligible, 4),
    "metrics.search_rank_lost_impression_share": lambda m: _ratio(m.rank_lost, m.eligible, 4),
    "metrics.auction_insight_search_impression_share": lambda m: _share(m.ai_impression_share, m.ai_days),
    "metrics.auction_insight_search_overlap_rate": lambda m: _share(m.ai_overlap_rate, m.ai_days),
    "metrics.auction_insight_search_outranking_share": lambda m: _share(m.ai_outranking_share, m.ai_days),
    "metrics.auction_insight_search_position_above_rate": lambda m: _share(
        m.ai_position_above_rate, m.ai_days
    ),
    "metrics.auction_insight_search_top_impression_percentage": lambda m: _share(m.ai_top_rate, m.ai_days),
    "metrics.auction_insight_search_absolute_top_impression_percentage": lambda m: _share(
        m.ai_abs_top_rate, m.ai_days
    ),
}

# -- resources ------------------------------------------------------------------------


@attrs.frozen
class Entity:
    """One instance of the FROM resource: its attribute values and its daily metrics."""

    key: str
    values: Mapping[str, Value]
    daily: Callable[[date], Measures]
    segments: Mapping[str, Value] = attrs.field(factory=dict)


@attrs.frozen
class Resource:
    name: str
    prefixes: frozenset[str]
    segments: frozenset[str]
    metrics: frozenset[str]
    entities: Callable[[Account, bool], list[Entity]]


def _pick(days: Callable[[date], tuple[Measures, ...]], index: int) -> Callable[[date], Measures]:
    """One child's metrics out of a parent's split day."""
    return lambda day: days(day)[index]


def _customer_values(account: Account) -> dict[str, Value]:
    cid = account.account_id
    return {
        "customer.resource_name": f"customers/{cid}",
        "customer.id": int(cid),
        "customer.descriptive_name": account.name,
        "customer.currency_code": account.currency,
        "customer.time_zone": account.time_zone,
        "customer.manager": False,
        "customer.test_account": False,
        "customer.status": "ENABLED",
    }


def _campaign_values(account: Account, c: Campaign) -> dict[str, Value]:
    cid = account.account_id
    budget = f"customers/{cid}/campaignBudgets/{c.budget_id}"
    return {
        **_customer_values(account),
        "campaign.resource_name": f"customers/{cid}/campaigns/{c.id}",
        "campaign.id": int(c.id),
        "campaign.name": c.name,
        "campaign.status": c.status,
        "campaign.advertising_channel_type": c.channel,
        "campaign.bidding_strategy_type": c.bidding,
        "campaign.campaign_budget": budget,
        "campaign_budget.resource_name": budget,
        "campaign_budget.id": int(c.budget_id),
        "campaign_budget.name": f"{c.name} budget",
        "campaign_budget.amount_micros": round(c.daily_budget * 1_000_000),
        "campaign_budget.status": "REMOVED" if c.status == "REMOVED" else "ENABLED",
        "campaign_budget.delivery_method": "STANDARD",
        "campaign_budget.period": "DAILY",
        "campaign_budget.explicitly_shared": False,
    }


_AD_GROUP_TYPE = {
    "SEARCH": "SEARCH_STANDARD",
    "DISPLAY": "DISPLAY_STANDARD",
    "VIDEO": "VIDEO_TRUE_VIEW_IN_STREAM",
}


def _customer_entities(account: Account, auction: bool) -> list[Entity]:
    def daily(day: date) -> Measures:
        total = ZERO
        for c in account.campaigns:
            total = total + campaign_day(account, c, day)
        return total

    return [Entity(f"customers/{account.account_id}", _customer_values(account), daily)]


def _campaign_entities(account: Account, auction: bool) -> list[Entity]:
    entities = []
    for c in account.campaigns:
        values = _campaign_values(account, c)
        key = str(values["campaign.resource_name"])
        if not auction:
            entities.append(Entity(key, values, partial(campaign_day, account, c)))
            continue
        if c.channel != "SEARCH":
            continue
        rivals: list[int | None] = [None, *c.competitors]
        for rival in rivals:
            domain = "You" if rival is None else account.competitors[rival].domain
            entities.append(
                Entity(
                    f"{key}/{domain}",
                    values,
                    partial(auction_day, account, c, rival),
                    {"segments.auction_insight_domain": domain},
                )
            )
    return entities


def _budget_entities(account: Account, auction: bool) -> list[Entity]:
    return [
        Entity(
            f"customers/{account.account_id}/campaignBudgets/{c.budget_id}",
            {k: v for k, v in _campaign_values(account, c).items() if not k.startswith("campaign.")},
            partial(campaign_day, account, c),
        )
        for c in account.campaigns
    ]


def _ad_group_values(account: Account, c: Campaign, group: int) -> dict[str, Value]:
    g = c.ad_groups[group]
    rn = f"customers/{account.account_id}/adGroups/{g.id}"
    return {
        **_campaign_values(account, c),
        "ad_group.resource_name": rn,
        "ad_group.id": int(g.id),
        "ad_group.name": g.name,
        "ad_group.status": g.status,
        "ad_group.type": _AD_GROUP_TYPE.get(c.channel, "SEARCH_STANDARD"),
        "ad_group.campaign": f"customers/{account.account_id}/campaigns/{c.id}",
    }


def _ad_group_entities(account: Account, auction: bool) -> list[Entity]:
    return [
        Entity(
            f"customers/{account.account_id}/adGroups/{g.id}",
            _ad_group_values(account, c, n),
            _pick(partial(ad_group_days, account, c), n),
        )
        for c in account.campaigns
        for n, g in enumerate(c.ad_groups)
    ]


def _keyword_entities(account: Account, auction: bool) -> list[Entity]:
    entities = []
    cid = account.account_id
    for c in account.campaigns:
        for n, g in enumerate(c.ad_groups):
            group_values = _ad_group_values(account, c, n)
            for k_index, k in enumerate(g.keywords):
                scored = k.quality_score is not None
                values = {
                    **group_values,
                    "ad_group_criterion.resource_name": (f"customers/{cid}/adGroupCriteria/{g.id}~{k.id}"),
                    "ad_group_criterion.criterion_id": int(k.id),
                    "ad_group_criterion.ad_group": group_values["ad_group.resource_name"],
                    "ad_group_criterion.status": k.status,
                    "ad_group_criterion.type": "KEYWORD",
                    "ad_group_criterion.negative": False,
                    "ad_group_criterion.keyword.text": k.text,
                    "ad_group_criterion.keyword.match_type": k.match_type,
                    "ad_group_criterion.quality_info.quality_score": k.quality_score,
                    "ad_group_criterion.quality_info.creative_quality_score": (
                        k.creative_quality if scored else None
                    ),
                    "ad_group_criterion.quality_info.post_click_quality_score": (
                        k.landing_page_quality if scored else None
                    ),
                    "ad_group_criterion.quality_info.search_predicted_ctr": k.predicted_ctr
                    if scored
                    else None,
                    "keyword_view.resource_name": f"customers/{cid}/keywordViews/{g.id}~{k.id}",
                }
                entities.append(
                    Entity(
                        str(values["keyword_view.resource_name"]),
                        values,
                        _pick(partial(keyword_days, account, c, n), k_index),
                    )
                )
    return entities


def _search_term_entities(account: Account, auction: bool) -> list[Entity]:
    entities = []
    cid = account.account_id
    for c in account.campaigns:
        for n, g in enumerate(c.ad_groups):
            group_values = _ad_group_values(account, c, n)
            for t_index, t in enumerate(g.search_terms):
                encoded = base64.urlsafe_b64encode(t.text.encode()).decode().rstrip("=")
                rn = f"customers/{cid}/searchTermViews/{c.id}~{g.id}~{encoded}"
                values = {
                    **group_values,
                    "search_term_view.resource_name": rn,
                    "search_term_view.search_term": t.text,
                    "search_term_view.status": t.status,
                    "search_term_view.ad_group": group_values["ad_group.resource_name"],
                }
                entities.append(
                    Entity(
                        rn,
                        values,
                        _pick(partial(search_term_days, account, c, n), t_index),
                        {"segments.search_term_match_type": t.match_type},
                    )
                )
    return entities


def _asset_group_entities(account: Account, auction: bool) -> list[Entity]:
    entities = []
    cid = account.account_id
    for c in account.campaigns:
        campaign_values = _campaign_values(account, c)
        for n, a in enumerate(c.asset_groups):
            rn = f"customers/{cid}/assetGroups/{a.id}"
            values = {
                **campaign_values,
                "asset_group.resource_name": rn,
                "asset_group.id": int(a.id),
                "asset_group.name": a.name,
                "asset_group.status": a.status,
                "asset_group.ad_strength": a.ad_strength,
                "asset_group.campaign": campaign_values["campaign.resource_name"],
            }
            entities.append(Entity(rn, values, _pick(partial(asset_group_days, account, c), n)))
    return entities


_DATE_SEGMENTS = frozenset({"segments.date", "segments.week", "segments.month", "segments.day_of_week"})
_BASIC = frozenset({"metrics.impressions", "metrics.clicks", "metrics.cost_micros"}) | {
    f"metrics.{m}" for m in _BASIC_DOUBLES
}
_GROUP_IS = frozenset({"metrics.search_impression_share", "metrics.search_rank_lost_impression_share"})
_ALL_IS = frozenset(f"metrics.{m}" for m in _IS)
_AUCTION_METRICS = frozenset(f"metrics.{m}" for m in _AUCTION)
_AUCTION_SEGMENT = "segments.auction_insight_domain"

RESOURCES = {
    r.name: r
    for r in (
        Resource(
            "customer",
            frozenset({"customer"}),
            _DATE_SEGMENTS,
            _BASIC | _ALL_IS,
            _customer_entities,
        ),
        Resource(
            "campaign",
            frozenset({"customer", "campaign", "campaign_budget"}),
            _DATE_SEGMENTS | {_AUCTION_SEGMENT},
            _BASIC | _ALL_IS | _AUCTION_METRICS,
            _campaign_entities,
        ),
        Resource(
            "campaign_budget",
            frozenset({"customer", "campaign_budget"}),
            _DATE_SEGMENTS,
            _BASIC,
            _budget_entities,
        ),
        Resource(
            "ad_group",
            frozenset({"customer", "campaign", "campaign_budget", "ad_group"}),
            _DATE_SEGMENTS,
            _BASIC | _GROUP_IS,
            _ad_group_entities,
        ),
        Resource(
            "keyword_view",
            frozenset({"customer", "campaign", "ad_group", "ad_group_criterion", "keyword_view"}),
            _DATE_SEGMENTS,
            _BASIC | _GROUP_IS,
            _keyword_entities,
        ),
        Resource(
            "search_term_view",
            frozenset({"customer", "campaign", "ad_group", "search_term_view"}),
            _DATE_SEGMENTS | {"segments.search_term_match_type"},
            _BASIC,
            _search_term_entities,
        ),
        Resource(
            "asset_group",
            frozenset({"customer", "campaign", "asset_group"}),
            _DATE_SEGMENTS,
            _BASIC,
            _asset_group_entities,
        ),
    )
}

# -- query execution ------------------------------------------------------------------


class QueryFailure(Exception):
    """A query the API refuses: (error category, enum name, message)."""

    def __init__(self, category: str, code: str, message: str) -> None:
        super().__init__(message)
        self.category = category
        self.code = code
        self.message = message


def _query_error(code: str, message: str) -> QueryFailure:
    return QueryFailure("queryError", code, message)


def _check_field(resource: Resource, name: str, clause: str) -> Field:
    field = FIELDS.get(name)
    if field is None:
        raise _query_error("UNRECOGNIZED_FIELD", f"Error in {clause} clause: unrecognized field '{name}'.")
    if field.kind == "metric" and name not in resource.metrics:
        raise _query_error(
            "PROHIBITED_METRIC_IN_SELECT_OR_WHERE_CLAUSE",
            f"Error in {clause} clause: metric '{name}' is not available on '{resource.name}'.",
        )
    if field.kind == "segment" and name not in resource.segments:
        raise _query_error(
            "PROHIBITED_SEGMENT_IN_SELECT_OR_WHERE_CLAUSE",
            f"Error in {clause} clause: segment '{name}' is not available on '{resource.name}'.",
        )
    if field.kind == "attribute" and field.prefix not in resource.prefixes:
        raise _query_error(
            f"PROHIBITED_RESOURCE_TYPE_IN_{clause.replace(' ', '_')}_CLAUSE",
            f"Error in {clause} clause: '{name}' is not compatible with '{resource.name}'.",
        )
    return field


def _coerce(field: Field, literal: gaql.Literal) -> Value:
    """A WHERE literal as the field's type, or QueryFailure."""
    if field.type in ("int64", "int32"):
        if isinstance(literal, int) or (isinstance(literal, str) and literal.lstrip("-").isdigit()):
            return int(literal)
    elif field.type == "double":
        if isinstance(literal, int | float):
            return float(literal)
    elif field.type == "bool":
        if isinstance(literal, str) and literal.upper() in ("TRUE", "FALSE"):
            return literal.upper() == "TRUE"
    elif field.type == "date":
        if isinstance(literal, str) and (day := _parse_date(literal)) is not None:
            return day.isoformat()
    elif isinstance(literal, str):
        if field.type == "enum" and field.enum_values and literal not in field.enum_values:
            raise _query_error(
                "BAD_ENUM_CONSTANT",
                f"Error in WHERE clause: invalid enum value '{literal}' for {field.name}.",
            )
        return literal
    raise _query_error("BAD_VALUE", f"Error in WHERE clause: invalid value {literal!r} for {field.name}.")


def _parse_date(text: str) -> date | None:
    if len(text) == 8 and text.isdigit():
        text = f"{text[:4]}-{text[4:6]}-{text[6:]}"
    return parse_iso_date(text)


@attrs.frozen
class Predicate:
    field: Field
    operator: str
    values: tuple[Value, ...]
    pattern: re.Pattern[str] | None = None

    def __call__(self, value: Value) -> bool:
        op = self.operator
        if op == "IS NULL":
            return value is None
        if op == "IS NOT NULL":
            return value is not None
        if value is None:
            return False
        if self.pattern is not None:
            found = self.pattern.fullmatch(str(value)) is not None
            return not found if op.startswith("NOT") else found
        first = self.values[0] if self.values else None
        match op:
            case "=":
                return value == first
            case "!=":
                return value != first
            case "IN":
                return value in self.values
            case "NOT IN":
                return value not in self.values
            case "BETWEEN":
                return _le(self.values[0], value) and _le(value, self.values[1])
            case "<":
                return _le(value, first) and value != first
            case "<=":
                return _le(value, first)
            case ">":
                return _le(first, value) and value != first
            case ">=":
                return _le(first, value)
        return False


def _le(a: Value, b: Value) -> bool:
    try:
        return bool(a <= b)  # type: ignore[operator]
    except TypeError:
        return False


def _like_pattern(text: str) -> re.Pattern[str]:
    out = []
    for ch in text:
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
    return re.compile("".join(out), re.DOTALL)


def _predicate(field: Field, condition: gaql.Condition) -> Predicate:
    op = condition.operator
    if op.startswith("CONTAINS"):
        raise _query_error(
            "OPERATOR_FIELD_MISMATCH",
            f"Error in WHERE clause: {op} needs a repeated field, not {field.name}.",
        )
    if op == "DURING":
        raise _query_error(
            "OPERATOR_FIELD_MISMATCH",
            f"Error in WHERE clause: DURING is for dates, not {field.name}.",
        )
    if op in ("LIKE", "NOT LIKE", "REGEXP_MATCH", "NOT REGEXP_MATCH"):
        if field.type not in ("string", "enum", "date"):
            raise _query_error(
                "OPERATOR_FIELD_MISMATCH", f"Error in WHERE clause: {op} needs a string field."
            )
        text = str(condition.values[0])
        try:
            pattern = _like_pattern(text) if "LIKE" in op else re.compile(text)
        except re.error:
            raise _query_error(
                "BAD_VALUE", f"Error in WHERE clause: invalid regular expression {text!r}."
            ) from None
        return Predicate(field, op, (), pattern)
    return Predicate(field, op, tuple(_coerce(field, v) for v in condition.values))


_UNBOUNDED_START = date.min
_UNBOUNDED_END = date.max


def _date_bounds(conditions: list[gaql.Condition], today: date) -> tuple[date, date]:
    """The [start, end] the segments.date conditions allow (date.min / date.max if open)."""
    start, end = _UNBOUNDED_START, _UNBOUNDED_END
    for c in conditions:
        if c.operator == "DURING":
            constant = str(c.values[0])
            window = google_during(constant, today)
            if window is None:
                raise _query_error(
                    "INVALID_VALUE_WITH_DURING_OPERATOR",
                    f"Error in WHERE clause: invalid date range constant '{constant}'.",
                )
            start, end = max(start, window.start), min(end, window.end)
            continue
        days: list[date] = []
        for literal in c.values:
            day = _parse_date(literal) if isinstance(literal, str) else None
            if day is None:
                raise _query_error(
                    "INVALID_VALUE_WITH_BETWEEN_OPERATOR" if c.operator == "BETWEEN" else "BAD_VALUE",
                    f"Error in WHERE clause: invalid date {literal!r} (expected 'YYYY-MM-DD').",
                )
            days.append(day)
        match c.operator:
            case "BETWEEN":
                start, end = max(start, days[0]), min(end, days[1])
            case "=":
                start, end = max(start, days[0]), min(end, days[0])
            case ">=":
                start = max(start, days[0])
            case ">":
                start = max(start, days[0] + timedelta(days=1))
            case "<=":
                end = min(end, days[0])
            case "<":
                end = min(end, days[0] - timedelta(days=1))
            case "IN":
                start, end = max(start, min(days)), min(end, max(days))
            case _:
                raise _query_error(
                    "OPERATOR_FIELD_MISMATCH",
                    f"Error in WHERE clause: {c.operator} cannot filter segments.date.",
                )
    return start, end


def _segment_values(entity: Entity, day: date) -> dict[str, Value]:
    values: dict[str, Value] = dict(entity.segments)
    values["segments.date"] = day.isoformat()
    values["segments.day_of_week"] = _WEEKDAYS[day.weekday()]
    values["segments.week"] = (day - timedelta(days=day.weekday())).isoformat()
    values["segments.month"] = day.replace(day=1).isoformat()
    return values


@attrs.define
class _Group:
    entity: Entity
    segments: dict[str, Value]
    measures: Measures


@attrs.frozen
class QueryResult:
    rows: list[dict[str, Any]]
    field_mask: str


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _json_path(name: str) -> list[str]:
    return [_camel(part) for part in name.split(".")]


def _encode(field: Field, value: Value) -> Any:
    if field.type == "int64":
        return str(value)
    return value


def _sort_key(lookup: Callable[[_Group, str], Value], name: str, group: _Group) -> Any:
    return lookup(group, name)


def execute(query: gaql.Query, account: Account, today: date) -> QueryResult:
    resource = RESOURCES.get(query.resource)
    if resource is None:
        raise _query_error(
            "BAD_RESOURCE_TYPE_IN_FROM_CLAUSE",
            f"Error in FROM clause: invalid resource name '{query.resource}' (sandbox knows "
            f"{', '.join(sorted(RESOURCES))}).",
        )
    selected = [_check_field(resource, name, "SELECT") for name in query.fields]
    where = [(_check_field(resource, c.field, "WHERE"), c) for c in query.conditions]
    orderings = [(_check_field(resource, o.field, "ORDER BY"), o.descending) for o in query.order_by]
    parameters = dict(query.parameters)

    used = {f.name for f in selected} | {f.name for f, _ in where}
    auction = _AUCTION_SEGMENT in used
    metric_names = {name for name in used if name.startswith("metrics.")}
    if auction and metric_names - _AUCTION_METRICS:
        raise _query_error(
            "PROHIBITED_FIELD_COMBINATION_IN_SELECT_CLAUSE",
            "Error in SELECT clause: auction insight segments need auction insight metrics.",
        )
    if not auction and metric_names & _AUCTION_METRICS:
        raise _query_error(
            "EXPECTED_REFERENCED_FIELD_IN_SELECT_CLAUSE",
            f"Error in SELECT clause: auction insight metrics need '{_AUCTION_SEGMENT}'.",
        )

    date_conditions = [c for f, c in where if f.name == "segments.date"]
    start, end = _date_bounds(date_conditions, today)
    bounded = start != _UNBOUNDED_START and end != _UNBOUNDED_END
    if not bounded and any(f.name in ("segments.date", "segments.week", "segments.month") for f in selected):
        raise _query_error(
            "EXPECTED_FILTERS_ON_DATE_RANGE",
            "Error in WHERE clause: a date segment needs a finite range on segments.date.",
        )
    attribute_filters = [(f, _predicate(f, c)) for f, c in where if f.kind == "attribute"]
    segment_filters = [
        (f, _predicate(f, c)) for f, c in where if f.kind == "segment" and f.name != "segments.date"
    ]
    metric_filters = [(f, _predicate(f, c)) for f, c in where if f.kind == "metric"]

    entities = [
        e
        for e in resource.entities(account, auction)
        if all(p(e.values.get(f.name, e.segments.get(f.name))) for f, p in attribute_filters)
    ]
    selected_segments = [f.name for f in selected if f.kind == "segment"]
    with_metrics = bool(metric_names) or bool(selected_segments) or bool(date_conditions) or auction

    groups: dict[tuple[Any, ...], _Group] = {}
    if not with_metrics:
        for e in entities:
            groups[(e.key,)] = _Group(e, dict(e.segments), ZERO)
    else:
        window = history(today)
        start, end = max(start, window.start), min(end, window.end)
        days = list(DateRange(start, end)) if start <= end else []
        for e in entities:
            for day in days:
                m = e.daily(day)
                if m.impressions == 0 and m.ai_days == 0:
                    continue
                segments = _segment_values(e, day)
                if not all(p(segments.get(f.name)) for f, p in segment_filters):
                    continue
                key = (e.key, *(segments[name] for name in selected_segments))
                group = groups.get(key)
                if group is None:
                    groups[key] = _Group(e, segments, m)
                else:
                    group.measures = group.measures + m

    def lookup(group: _Group, name: str) -> Value:
        if name.startswith("metrics."):
            if name in _NOT_FOR_SELF and group.segments.get(_AUCTION_SEGMENT) == "You":
                return None
            return METRICS[name](group.measures)
        if name.startswith("segments."):
            return group.segments.get(name)
        return group.entity.values.get(name)

    results = [g for g in groups.values() if all(p(lookup(g, f.name)) for f, p in metric_filters)]
    for field, descending in reversed(orderings):
        present = [g for g in results if lookup(g, field.name) is not None]
        absent = [g for g in results if lookup(g, field.name) is None]
        present.sort(key=partial(_sort_key, lookup, field.name), reverse=descending)
        results = present + absent
    if query.limit is not None:
        results = results[: query.limit]

    omit_names = parameters.get("omit_unselected_resource_names", "false").lower() == "true"
    prefixes = [p for p in dict.fromkeys(f.prefix for f in selected) if p not in ("metrics", "segments")]
    if not omit_names and resource.name not in prefixes:
        prefixes.insert(0, resource.name)
    rows = []
    for group in results:
        row: dict[str, Any] = {}
        for prefix in prefixes:
            name = group.entity.values.get(f"{prefix}.resource_name")
            row[_camel(prefix)] = {"resourceName": name} if name is not None and not omit_names else {}
        for field in selected:
            value = lookup(group, field.name)
            if value is None:
                continue
            path = _json_path(field.name)
            node = row
            for part in path[:-1]:
                node = node.setdefault(part, {})
            node[path[-1]] = _encode(field, value)
        rows.append(row)
    mask = ",".join(".".join(_json_path(f.name)) for f in selected)
    return QueryResult(rows, mask)


# -- HTTP handlers --------------------------------------------------------------------

_INVALID_ARGUMENT = "Request contains an invalid argument."
_UNAUTHENTICATED_MISSING = (
    "Request is missing required authentication credential. Expected OAuth 2 access token, login "
    "cookie or other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project."
)
_UNAUTHENTICATED_INVALID = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie "
    "or other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project."
)
_GRPC_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


@attrs.frozen
class AdsError:
    category: str  # e.g. "queryError", "authenticationError"
    code: str
    message: str
    details: Mapping[str, Any] | None = None


_TYPE_PREFIX = "type.googleapis.com/google.ads.googleads"
_BODY_FIELDS = frozenset(
    {
        "query",
        "pageToken",
        "pageSize",
        "validateOnly",
        "returnTotalResultsCount",
        "summaryRowSetting",
    }
)


def _error_body(
    http: int, message: str, errors: list[AdsError], request_id: str, version: str
) -> dict[str, Any]:
    error: dict[str, Any] = {
        "code": http,
        "message": message,
        "status": _GRPC_STATUS.get(http, "UNKNOWN"),
    }
    if errors:
        items = []
        for e in errors:
            item: dict[str, Any] = {"errorCode": {e.category: e.code}, "message": e.message}
            if e.details:
                item["details"] = dict(e.details)
            items.append(item)
        error["details"] = [
            {
                "@type": f"{_TYPE_PREFIX}.{version}.errors.GoogleAdsFailure",
                "errors": items,
                "requestId": request_id,
            }
        ]
    return {"error": error}


def _version_of(incoming: Incoming) -> str:
    parts = incoming.path.split("/")
    return parts[2] if len(parts) > 2 and re.fullmatch(r"v\d+", parts[2]) else "v26"


def ads_error(
    incoming: Incoming,
    http: int,
    message: str,
    errors: list[AdsError],
    *,
    stream: bool,
    headers: tuple[tuple[str, str], ...] = (),
) -> ApiResponse:
    body = _error_body(http, message, errors, incoming.fingerprint(), _version_of(incoming))
    return json_response(http, [body] if stream else body, headers)


def _ads_faults(stream: bool) -> FaultResponses:
    def rate_limited(incoming: Incoming, fault: RateLimitFault, account: str | None) -> ApiResponse:
        delay = fault.retry_after_s
        error = AdsError(
            "quotaError",
            "RESOURCE_TEMPORARILY_EXHAUSTED",
            f"Too many requests. Retry in {delay} seconds.",
            {
                "quotaErrorDetails": {
                    "rateScope": "ACCOUNT",
                    "rateName": "Number of operations for basic access",
                    "retryDelay": f"{delay}s",
                }
            },
        )
        return ads_error(
            incoming,
            429,
            "Resource has been exhausted (e.g. check quota).",
            [error],
            stream=stream,
            headers=(("Retry-After", str(delay)),),
        )

    def server_error(incoming: Incoming, status: int) -> ApiResponse:
        if status == 500:
            errors = [AdsError("internalError", "INTERNAL_ERROR", "An internal error has occurred.")]
            return ads_error(incoming, 500, "Internal error encountered.", errors, stream=stream)
        return ads_error(incoming, status, "The service is currently unavailable.", [], stream=stream)

    def deadline_exceeded(incoming: Incoming) -> ApiResponse:
        errors = [AdsError("internalError", "DEADLINE_EXCEEDED", "The request took too long to respond.")]
        return ads_error(
            incoming,
            504,
            "Deadline expired before operation could complete.",
            errors,
            stream=stream,
        )

    def quota_exhausted(incoming: Incoming, fault: QuotaExhaustedFault) -> ApiResponse:
        delay = fault.retry_after_s
        error = AdsError(
            "quotaError",
            "RESOURCE_EXHAUSTED",
            f"Too many requests. Retry in {delay} seconds.",
            {
                "quotaErrorDetails": {
                    "rateScope": "DEVELOPER",
                    "rateName": f"Number of operations for {fault.access_level} access",
                    "retryDelay": f"{delay}s",
                }
            },
        )
        return ads_error(
            incoming, 429, "Resource has been exhausted (e.g. check quota).", [error], stream=stream
        )

    def access_denied(incoming: Incoming, fault: AccessDeniedFault) -> ApiResponse:
        error = AdsError("authorizationError", fault.reason, _ACCESS_MESSAGES[fault.reason])
        return ads_error(incoming, 403, "The caller does not have permission", [error], stream=stream)

    return FaultResponses(rate_limited, server_error, deadline_exceeded, quota_exhausted, access_denied)


_ACCESS_MESSAGES = {
    "CLOUD_PROJECT_NOT_APPROVED_FOR_PRODUCTION": (
        "The Google Cloud project is only approved for use with test accounts. To access non-test "
        "accounts, apply for Explorer, Basic or Standard access."
    ),
    "CLOUD_PROJECT_NOT_UNDER_ORGANIZATION": (
        "The Google Cloud project is not under the required organization."
    ),
}


def version_not_served(incoming: Incoming, version: str, served: tuple[str, ...]) -> ApiResponse:
    """A version Google does not serve: no route, HTTP 404, no Google Ads failure."""
    body = {"error": {"code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND"}}
    return json_response(404, body)


STREAM_FAULTS = _ads_faults(stream=True)
SEARCH_FAULTS = _ads_faults(stream=False)


def _oauth_error(
    status: int, error: str, description: str, headers: tuple[tuple[str, str], ...] = ()
) -> ApiResponse:
    return json_response(status, {"error": error, "error_description": description}, headers)


TOKEN_FAULTS = FaultResponses(
    rate_limited=lambda incoming, fault, account: _oauth_error(
        429,
        "rate_limit_exceeded",
        "Rate limit exceeded. Try again later.",
        (("Retry-After", str(fault.retry_after_s)),),
    ),
    server_error=lambda incoming, status: _oauth_error(status, "internal_failure", "Backend Error"),
    deadline_exceeded=lambda incoming: _oauth_error(504, "internal_failure", "Deadline exceeded"),
)


def token(state: SandboxState, incoming: Incoming) -> ApiResponse:
    """POST /google/token: the OAuth 2.0 refresh_token grant."""
    form = incoming.form()
    grant = form.get("grant_type", "")
    if not grant:
        return _oauth_error(400, "invalid_request", "Missing required parameter: grant_type")
    if grant == "authorization_code":
        return _code_grant(state, form)
    if grant != "refresh_token":
        return _oauth_error(400, "unsupported_grant_type", f"Invalid grant_type: {grant}")
    if not form.get("client_id"):
        return _oauth_error(400, "invalid_request", "Could not determine client ID from request.")
    if not form.get("client_secret"):
        return _oauth_error(401, "invalid_client", "Unauthorized")
    refresh_token = form.get("refresh_token", "")
    if not refresh_token:
        return _oauth_error(400, "invalid_request", "Missing required parameter: refresh_token")
    status = state.tokens.status("google", "refresh", refresh_token)
    if status is TokenStatus.UNKNOWN:
        return _oauth_error(400, "invalid_grant", "Bad Request")
    if status is not TokenStatus.VALID:
        return _oauth_error(400, "invalid_grant", "Token has been expired or revoked.")
    ttl = state.config.google_access_token_ttl_s
    issued = state.tokens.issue("google", "access", refresh_token, ttl)
    return json_response(
        200,
        {"access_token": issued.token, "expires_in": ttl, "scope": SCOPE, "token_type": "Bearer"},
    )


def _code_grant(state: SandboxState, form: dict[str, str]) -> ApiResponse:
    """The authorization_code grant of a browser connect (PKCE checked when the consent had a
    challenge): a refresh token and an access token that reach the consenting user's accounts."""
    if not form.get("client_id"):
        return _oauth_error(400, "invalid_request", "Could not determine client ID from request.")
    if not form.get("client_secret"):
        return _oauth_error(401, "invalid_client", "Unauthorized")
    code = form.get("code", "")
    if not code:
        return _oauth_error(400, "invalid_request", "Missing required parameter: code")
    reach = state.consent.redeem(
        "google", code, form["client_id"], form.get("redirect_uri", ""), form.get("code_verifier"),
        state.config.clock(),
    )  # fmt: skip
    if isinstance(reach, str):
        if reach == "redirect_uri":
            return _oauth_error(400, "redirect_uri_mismatch", "Bad Request")
        if reach.startswith("verifier"):
            return _oauth_error(400, "invalid_grant", "Invalid code verifier.")
        return _oauth_error(
            400, "invalid_grant", "Malformed auth code." if reach == "unknown" else "Bad Request"
        )
    refresh = state.tokens.issue("google", "refresh", code, None)
    state.consent.reach[("google", refresh.token)] = reach
    ttl = state.config.google_access_token_ttl_s
    access = state.tokens.issue("google", "access", refresh.token, ttl)
    body = {
        "access_token": access.token,
        "expires_in": ttl,
        "refresh_token": refresh.token,
        "scope": SCOPE,
        "token_type": "Bearer",
    }
    return json_response(200, body)


def list_accessible_customers(state: SandboxState, incoming: Incoming) -> ApiResponse:
    """GET /google/{v}/customers:listAccessibleCustomers: the customers the token's user reaches
    directly (not their managers' clients)."""
    denied = _authenticate(state, incoming, stream=False)
    if denied is not None:
        return denied
    token = incoming.headers.get("authorization", "").partition(" ")[2].strip()
    reach = state.reach_of("google", token)
    return json_response(200, {"resourceNames": [f"customers/{c}" for c in reach.accounts]})


def _customer_clients(
    state: SandboxState, incoming: Incoming, customer_id: str, query: gaql.Query
) -> ApiResponse:
    """GAQL on customer_client: the customer itself (level 0) and its whole hierarchy when it
    is a manager; USER_PERMISSION_DENIED when the token's user cannot reach it."""
    token = incoming.headers.get("authorization", "").partition(" ")[2].strip()
    tree = state.reach_of("google", token).google_tree(customer_id)
    if tree is None:
        errors = [
            AdsError(
                "authorizationError",
                "USER_PERMISSION_DENIED",
                "User doesn't have permission to access customer. Note: If you're accessing a client "
                "customer, the manager's customer id must be set in the 'login-customer-id' header.",
            )
        ]
        return ads_error(incoming, 403, "The caller does not have permission", errors, stream=True)
    allowed = {"id", "descriptive_name", "manager", "level", "status", "currency_code", "client_customer"}
    for name in query.fields:
        prefix, _, field = name.partition(".")
        if prefix != "customer_client" or field not in allowed:
            errors = [
                AdsError("queryError", "UNRECOGNIZED_FIELD", f"Unrecognized field in the query: '{name}'.")
            ]
            return ads_error(incoming, 400, _INVALID_ARGUMENT, errors, stream=True)
    rows = []
    for client, level, manager in tree:
        account = account_for("google", client, state.seed)
        values = {
            "id": client,
            "descriptive_name": f"Sandbox {'manager' if manager else 'account'} {client}",
            "manager": manager,
            "level": str(level),
            "status": "ENABLED",
            "currency_code": _customer_values(account).get("customer.currency_code"),
            "client_customer": f"customers/{client}",
        }
        item: dict[str, Any] = {"resourceName": f"customers/{customer_id}/customerClients/{client}"}
        for name in query.fields:
            field = name.partition(".")[2]
            item[_camel(field)] = values[field]
        rows.append({"customerClient": item})
    batch: dict[str, Any] = {"results": rows} if rows else {}
    batch["fieldMask"] = ",".join(".".join(_json_path(n)) for n in query.fields)
    batch["requestId"] = incoming.fingerprint()
    return ApiResponse(200, dumps([batch]))


def revoke(state: SandboxState, incoming: Incoming) -> ApiResponse:
    """POST /google/revoke: revoke a refresh or access token (and what was minted from it)."""
    token_value = incoming.args.get("token") or incoming.form().get("token", "")
    if state.tokens.get("google", token_value) is None:
        return _oauth_error(400, "invalid_token", "Token expired or revoked")
    state.tokens.set_revoked("google", token_value, True)
    return json_response(200, {})


def _authenticate(state: SandboxState, incoming: Incoming, stream: bool) -> ApiResponse | None:
    header = incoming.headers.get("authorization", "")
    if not header:
        return ads_error(incoming, 401, _UNAUTHENTICATED_MISSING, [], stream=stream)
    scheme, _, access_token = header.partition(" ")
    access_token = access_token.strip()
    if scheme.lower() != "bearer" or not access_token:
        errors = [
            AdsError(
                "authenticationError",
                "OAUTH_TOKEN_HEADER_INVALID",
                "Oauth token HTTP header is malformed.",
            )
        ]
        return ads_error(incoming, 401, _UNAUTHENTICATED_INVALID, errors, stream=stream)
    status = state.tokens.status("google", "access", access_token)
    if status is not TokenStatus.VALID:
        code, text = {
            TokenStatus.EXPIRED: ("OAUTH_TOKEN_EXPIRED", "Oauth token is expired."),
            TokenStatus.REVOKED: ("OAUTH_TOKEN_REVOKED", "Oauth token is revoked."),
        }.get(status, ("OAUTH_TOKEN_INVALID", "Oauth token is invalid."))
        return ads_error(
            incoming,
            401,
            _UNAUTHENTICATED_INVALID,
            [AdsError("authenticationError", code, text)],
            stream=stream,
        )
    login = incoming.headers.get("login-customer-id")
    if login is not None and not CUSTOMER_ID.fullmatch(login):
        errors = [
            AdsError(
                "authenticationError",
                "CUSTOMER_NOT_FOUND",
                "No customer found for the provided customer id.",
            )
        ]
        return ads_error(incoming, 400, _INVALID_ARGUMENT, errors, stream=stream)
    return None


def _page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"sandbox:{offset}".encode()).decode()


def _page_offset(page_token: str) -> int | None:
    try:
        text = base64.urlsafe_b64decode(page_token.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    head, _, tail = text.partition(":")
    return int(tail) if head == "sandbox" and tail.isdigit() else None


def search(state: SandboxState, incoming: Incoming, customer_id: str, *, stream: bool) -> ApiResponse:
    """googleAds:searchStream (stream=True) and googleAds:search."""
    denied = _authenticate(state, incoming, stream)
    if denied is not None:
        return denied
    if not customer_id.isdigit():
        errors = [AdsError("requestError", "INVALID_CUSTOMER_ID", f"Invalid customer ID '{customer_id}'.")]
        return ads_error(incoming, 400, _INVALID_ARGUMENT, errors, stream=stream)
    if not CUSTOMER_ID.fullmatch(customer_id):
        errors = [AdsError("requestError", "CUSTOMER_NOT_FOUND", "Customer not found.")]
        return ads_error(incoming, 404, "Requested entity was not found.", errors, stream=stream)
    try:
        body = json.loads(incoming.body or b"{}")
    except ValueError:
        return ads_error(incoming, 400, "Invalid JSON payload received. Unexpected token.", [], stream=stream)
    if not isinstance(body, dict):
        return ads_error(
            incoming, 400, "Invalid JSON payload received. Expected an object.", [], stream=stream
        )
    unknown = set(body) - _BODY_FIELDS
    if unknown:
        message = f'Invalid JSON payload received. Unknown name "{min(unknown)}": Cannot find field.'
        return ads_error(incoming, 400, message, [], stream=stream)
    text = body.get("query")
    if not isinstance(text, str) or not text.strip():
        errors = [AdsError("requestError", "REQUIRED_FIELD_MISSING", "Required field was not specified.")]
        return ads_error(incoming, 400, _INVALID_ARGUMENT, errors, stream=stream)
    if not stream and "pageSize" in body:
        errors = [
            AdsError("requestError", "PAGE_SIZE_NOT_SUPPORTED", "Setting the page size is not supported.")
        ]
        return ads_error(incoming, 400, _INVALID_ARGUMENT, errors, stream=stream)
    account = account_for("google", customer_id, state.seed)
    try:
        parsed = gaql.parse(text)
        if parsed.resource == "customer_client" and stream:
            return _customer_clients(state, incoming, customer_id, parsed)
        result = execute(parsed, account, state.today())
    except gaql.GaqlError as exc:
        errors = [AdsError("queryError", exc.code, exc.message)]
        return ads_error(incoming, 400, _INVALID_ARGUMENT, errors, stream=stream)
    except QueryFailure as exc:
        errors = [AdsError(exc.category, exc.code, exc.message)]
        return ads_error(incoming, 400, _INVALID_ARGUMENT, errors, stream=stream)
    request_id = incoming.fingerprint()
    if stream:
        batches: list[dict[str, Any]] = []
        for start in range(0, max(1, len(result.rows)), BATCH_SIZE):
            batch: dict[str, Any] = {}
            if result.rows:
                batch["results"] = result.rows[start : start + BATCH_SIZE]
            batch["fieldMask"] = result.field_mask
            batch["requestId"] = request_id
            batches.append(batch)
        return ApiResponse(200, dumps(batches))
    offset = 0
    page_token = body.get("pageToken")
    if page_token:
        decoded = _page_offset(str(page_token))
        if decoded is None:
            errors = [AdsError("requestError", "INVALID_PAGE_TOKEN", "Page token is invalid.")]
            return ads_error(incoming, 400, _INVALID_ARGUMENT, errors, stream=stream)
        offset = decoded
    page = result.rows[offset : offset + BATCH_SIZE]
    payload: dict[str, Any] = {}
    if page:
        payload["results"] = page
    if offset + BATCH_SIZE < len(result.rows):
        payload["nextPageToken"] = _page_token(offset + BATCH_SIZE)
    if body.get("returnTotalResultsCount") is True:
        payload["totalResultsCount"] = str(len(result.rows))
    payload["fieldMask"] = result.field_mask
    payload["requestId"] = request_id
    return ApiResponse(200, dumps(payload))
