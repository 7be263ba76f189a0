"""Fault plans per platform, the seeded decisions they make, and the request log.

A plan is set per platform through the control API. Each fault kind fires on the next
N eligible requests (`next`), and after those with a seeded `probability`; the random
stream restarts whenever a plan is set, so a given plan and request sequence always
produce the same faults. Kinds are tried in a fixed order (timeout, server_error,
rate_limit, quota_exhausted, access_denied, malformed) and at most one fires per
request; `latency_ms` applies to every eligible request. Eligible means the request's
endpoint is in the plan's `endpoints`, by default every endpoint of the platform except
its token endpoint. `quota_exhausted` and `access_denied` are Google's (the Cloud
project's access level: its daily operations used up, or a project approved for test
accounts only).
"""

from __future__ import annotations

import collections
import json
import random
from collections.abc import Callable
from typing import Any, Literal

import attrs
import cattrs

from deneva.sandbox.data import stable_hash
from deneva.sandbox.wire import ApiResponse, Incoming, dumps

ENDPOINTS: dict[str, tuple[str, ...]] = {
    "google": ("token", "revoke", "searchStream", "search"),
    "meta": ("token", "insights", "campaigns"),
    "tiktok": ("token", "report", "campaigns"),
}
TOKEN_ENDPOINTS = frozenset({"token", "revoke"})
META_RATE_LIMIT_CODES = (4, 17, 613, 80000)


def _probability(_: Any, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name} must be between 0 and 1")


_count = attrs.validators.ge(0)


@attrs.frozen
class RateLimitFault:
    probability: float = attrs.field(default=0.0, validator=_probability)
    next: int = attrs.field(default=0, validator=_count)
    retry_after_s: int = attrs.field(default=30, validator=attrs.validators.ge(0))
    # Meta words a rate limit with one of several codes; Google and TikTok ignore this.
    meta_code: int = attrs.field(default=17, validator=attrs.validators.in_(META_RATE_LIMIT_CODES))


@attrs.frozen
class ServerErrorFault:
    probability: float = attrs.field(default=0.0, validator=_probability)
    next: int = attrs.field(default=0, validator=_count)
    status: int = attrs.field(default=503, validator=[attrs.validators.ge(500), attrs.validators.le(599)])


@attrs.frozen
class TimeoutFault:
    """Hang for `hang_s`, then answer the platform's deadline-exceeded error (HTTP 504)."""

    probability: float = attrs.field(default=0.0, validator=_probability)
    next: int = attrs.field(default=0, validator=_count)
    hang_s: float = attrs.field(default=30.0, validator=[attrs.validators.ge(0), attrs.validators.le(3600)])


@attrs.frozen
class QuotaExhaustedFault:
    """Google: the Cloud project's daily operations quota is used up (HTTP 429,
    quotaError.RESOURCE_EXHAUSTED, a retryDelay until it refills)."""

    probability: float = attrs.field(default=0.0, validator=_probability)
    next: int = attrs.field(default=0, validator=_count)
    retry_after_s: int = attrs.field(default=3600, validator=attrs.validators.ge(0))
    access_level: Literal["explorer", "basic"] = "explorer"


@attrs.frozen
class AccessDeniedFault:
    """Google: the Cloud project's access level does not reach the account (HTTP 403,
    authorizationError.<reason>)."""

    probability: float = attrs.field(default=0.0, validator=_probability)
    next: int = attrs.field(default=0, validator=_count)
    reason: Literal["CLOUD_PROJECT_NOT_APPROVED_FOR_PRODUCTION", "CLOUD_PROJECT_NOT_UNDER_ORGANIZATION"] = (
        "CLOUD_PROJECT_NOT_APPROVED_FOR_PRODUCTION"
    )


@attrs.frozen
class MalformedFault:
    """`truncated`: the real body cut in half; `html`: a proxy's HTML error page;
    `wrong_types`: the real JSON with every metric value (`WRONG_TYPE_FIELDS`) wrapped in
    an object, `{"value": ...}` (a body without metrics is left as it is);
    `unstorable_text`: the real JSON with a NUL and a lone surrogate (`\\u0000\\ud800`)
    appended to every name (a string under a key ending in "name": campaign and ad group
    names), which Postgres cannot store as they are."""

    probability: float = attrs.field(default=0.0, validator=_probability)
    next: int = attrs.field(default=0, validator=_count)
    kind: Literal["truncated", "html", "wrong_types", "unstorable_text"] = "truncated"
    status: int = attrs.field(default=502, validator=[attrs.validators.ge(200), attrs.validators.le(599)])


Fault = (
    TimeoutFault
    | ServerErrorFault
    | RateLimitFault
    | QuotaExhaustedFault
    | AccessDeniedFault
    | MalformedFault
)
_KINDS = ("timeout", "server_error", "rate_limit", "quota_exhausted", "access_denied", "malformed")
# Kinds only one platform words.
_PLATFORM_KINDS = {"quota_exhausted": "google", "access_denied": "google"}


@attrs.frozen
class FaultPlan:
    latency_ms: int = attrs.field(default=0, validator=[attrs.validators.ge(0), attrs.validators.le(600_000)])
    endpoints: tuple[str, ...] | None = None
    timeout: TimeoutFault | None = None
    server_error: ServerErrorFault | None = None
    rate_limit: RateLimitFault | None = None
    quota_exhausted: QuotaExhaustedFault | None = None
    access_denied: AccessDeniedFault | None = None
    malformed: MalformedFault | None = None

    def covers(self, endpoint: str) -> bool:
        if self.endpoints is None:
            return endpoint not in TOKEN_ENDPOINTS
        return endpoint in self.endpoints

    def fault(self, kind: str) -> Fault | None:
        value: Fault | None = getattr(self, kind)
        return value


_converter = cattrs.Converter(forbid_extra_keys=True)


class PlanError(ValueError):
    pass


def parse_plan(platform: str, payload: Any) -> FaultPlan:
    """A plan from control-API JSON; PlanError with a readable reason otherwise."""
    if not isinstance(payload, dict):
        raise PlanError("a fault plan is a JSON object")
    try:
        plan = _converter.structure(payload, FaultPlan)
    except (cattrs.BaseValidationError, ValueError, TypeError) as exc:
        reasons = cattrs.transform_error(exc) if isinstance(exc, cattrs.BaseValidationError) else [str(exc)]
        raise PlanError("; ".join(reasons)) from None
    for kind, owner in _PLATFORM_KINDS.items():
        if plan.fault(kind) is not None and platform != owner:
            raise PlanError(f"{kind} is a {owner} fault; {platform} has no such answer")
    unknown = set(plan.endpoints or ()) - set(ENDPOINTS[platform])
    if unknown:
        raise PlanError(f"unknown {platform} endpoints {sorted(unknown)}; known: {list(ENDPOINTS[platform])}")
    return plan


def unstructure_plan(plan: FaultPlan) -> dict[str, Any]:
    data: dict[str, Any] = _converter.unstructure(plan)
    return data


@attrs.frozen
class FaultDecision:
    latency_s: float
    fault: Fault | None

    @property
    def name(self) -> str | None:
        match self.fault:
            case TimeoutFault():
                return "timeout"
            case ServerErrorFault():
                return "server_error"
            case RateLimitFault():
                return "rate_limit"
            case QuotaExhaustedFault():
                return "quota_exhausted"
            case AccessDeniedFault():
                return "access_denied"
            case MalformedFault():
                return f"malformed_{self.fault.kind}"
        return None


NO_FAULT = FaultDecision(0.0, None)


class FaultBoard:
    """The current plan per platform and its remaining `next` counts."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.plans: dict[str, FaultPlan] = {}
        self.remaining: dict[tuple[str, str], int] = {}
        self.rngs: dict[str, random.Random] = {}

    def set(self, platform: str, plan: FaultPlan) -> None:
        self.plans[platform] = plan
        self.rngs[platform] = random.Random(stable_hash("faults", platform, self.seed))
        for kind in _KINDS:
            fault = plan.fault(kind)
            self.remaining[(platform, kind)] = fault.next if fault is not None else 0

    def clear(self, platform: str | None = None) -> None:
        for name in [platform] if platform else list(self.plans):
            self.plans.pop(name, None)
            self.rngs.pop(name, None)
            for kind in _KINDS:
                self.remaining.pop((name, kind), None)

    def describe(self) -> dict[str, Any]:
        return {
            platform: {
                "plan": unstructure_plan(plan),
                "remaining": {kind: self.remaining.get((platform, kind), 0) for kind in _KINDS},
            }
            for platform, plan in sorted(self.plans.items())
        }

    def decide(self, platform: str, endpoint: str) -> FaultDecision:
        plan = self.plans.get(platform)
        if plan is None or not plan.covers(endpoint):
            return NO_FAULT
        rng = self.rngs[platform]
        chosen: Fault | None = None
        for kind in _KINDS:
            fault = plan.fault(kind)
            if fault is None:
                continue
            left = self.remaining[(platform, kind)]
            if left > 0:
                self.remaining[(platform, kind)] = left - 1
                chosen = fault
                break
            # Draw only for kinds with a probability, so adding a kind with p = 0
            # does not shift the random stream of the others.
            if fault.probability > 0 and rng.random() < fault.probability:
                chosen = fault
                break
        return FaultDecision(plan.latency_ms / 1000.0, chosen)


@attrs.frozen
class FaultResponses:
    """How one platform words the faults the sandbox injects."""

    rate_limited: Callable[[Incoming, RateLimitFault, str | None], ApiResponse]
    server_error: Callable[[Incoming, int], ApiResponse]
    deadline_exceeded: Callable[[Incoming], ApiResponse]
    # Google's access-level answers (parse_plan refuses these kinds for the others).
    quota_exhausted: Callable[[Incoming, QuotaExhaustedFault], ApiResponse] | None = None
    access_denied: Callable[[Incoming, AccessDeniedFault], ApiResponse] | None = None


HTML_ERROR_PAGE = (
    "<!DOCTYPE html>\n<html lang=en><meta charset=utf-8>"
    "<title>Error {status} (Server Error)!!1</title>"
    "<p><b>{status}.</b> <ins>That's an error.</ins>"
    "<p>The server encountered a temporary error and could not complete your request."
    "<p>Please try again in 30 seconds. <ins>That's all we know.</ins>\n"
)


# The metric fields of the three platforms' report rows (Google's under `metrics`).
WRONG_TYPE_FIELDS = frozenset({"impressions", "clicks", "spend", "costMicros", "conversions"})


def _wrong_types(node: Any) -> Any:
    if isinstance(node, list):
        return [_wrong_types(item) for item in node]
    if isinstance(node, dict):
        return {
            key: {"value": value} if key in WRONG_TYPE_FIELDS else _wrong_types(value)
            for key, value in node.items()
        }
    return node


def _unstorable_text(node: Any) -> Any:
    if isinstance(node, list):
        return [_unstorable_text(item) for item in node]
    if isinstance(node, dict):
        return {
            key: value + "\x00\ud800"
            if isinstance(value, str) and key.lower().endswith("name")
            else _unstorable_text(value)
            for key, value in node.items()
        }
    return node


def malform(response: ApiResponse, fault: MalformedFault) -> ApiResponse:
    if fault.kind == "html":
        page = HTML_ERROR_PAGE.format(status=fault.status).encode()
        return ApiResponse(fault.status, page, "text/html; charset=UTF-8")
    if fault.kind == "wrong_types":
        try:
            document = json.loads(response.body)
        except ValueError:
            return response
        body = dumps(_wrong_types(document))
        return ApiResponse(response.status, body, response.content_type, response.headers)
    if fault.kind == "unstorable_text":
        try:
            document = json.loads(response.body)
        except ValueError:
            return response
        # ASCII JSON: the escapes as a platform sends them (a lone surrogate has no UTF-8).
        body = json.dumps(_unstorable_text(document), separators=(",", ":")).encode()
        return ApiResponse(response.status, body, response.content_type, response.headers)
    cut = response.body[: max(1, len(response.body) // 2)]
    return ApiResponse(response.status, cut, response.content_type, response.headers)


# -- request log ----------------------------------------------------------------------


@attrs.define
class RequestRecord:
    seq: int
    platform: str
    endpoint: str
    method: str
    path: str
    account: str | None
    status: int | None = None  # None while in flight (or if the client went away)
    fault: str | None = None

    def as_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


class RequestLog:
    """Every platform call, newest last; counts survive the log's size bound."""

    def __init__(self, size: int) -> None:
        self.records: collections.deque[RequestRecord] = collections.deque(maxlen=size)
        self.counts: collections.Counter[tuple[str, str, str | None]] = collections.Counter()
        self.total = 0

    def start(
        self, platform: str, endpoint: str, method: str, path: str, account: str | None
    ) -> RequestRecord:
        self.total += 1
        record = RequestRecord(self.total, platform, endpoint, method, path, account)
        self.records.append(record)
        self.counts[(platform, endpoint, account)] += 1
        return record

    def clear(self) -> None:
        self.records.clear()
        self.counts.clear()
        self.total = 0

    def summary(
        self, platform: str | None = None, endpoint: str | None = None, account: str | None = None
    ) -> dict[str, Any]:
        def wanted(p: str, e: str, a: str | None) -> bool:
            return (
                (platform is None or p == platform)
                and (endpoint is None or e == endpoint)
                and (account is None or a == account)
            )

        counts: dict[str, dict[str, dict[str, int]]] = {}
        total = 0
        for (p, e, a), n in sorted(
            self.counts.items(), key=lambda item: (item[0][0], item[0][1], item[0][2] or "")
        ):
            if wanted(p, e, a):
                counts.setdefault(p, {}).setdefault(e, {})[a or "-"] = n
                total += n
        log = [r.as_json() for r in self.records if wanted(r.platform, r.endpoint, r.account)]
        return {"total": total, "counts": counts, "log": log}
