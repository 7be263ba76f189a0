"""Whatever a client sends, the answer is the platform's error shape, never a 500."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from urllib.parse import urlencode

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deneva.sandbox import google, meta, tiktok
from deneva.sandbox.state import SandboxConfig, SandboxState
from deneva.sandbox.wire import Incoming

STATE = SandboxState(SandboxConfig(today=date(2024, 6, 1)))
STATE.tokens.register("google", "access", "g")
STATE.tokens.register("meta", "access", "m")
STATE.tokens.register("tiktok", "access", "t")

_TEXT = st.text(max_size=40)
_JSON_VALUES = [
    "", "[]", "{}", "[", "null", '"x"', "1", '["campaign_id"]', '["stat_time_day"]',
    '{"since": "2024-05-01", "until": "2024-05-09"}', '["spend", "campaign_name"]',
    '[{"field": "campaign.id"}]',
]  # fmt: skip
_JSONISH = st.sampled_from(_JSON_VALUES) | _TEXT


def _incoming(path: str, params: dict[str, str], headers: dict[str, str], body: bytes = b"") -> Incoming:
    return Incoming("GET" if not body else "POST", path, urlencode(params), headers, body, "http://sandbox/")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    query=_TEXT | st.sampled_from(["SELECT campaign.id FROM campaign", "SELECT segments.date FROM customer"]),
    body_kind=st.sampled_from(["query", "raw", "extra"]),
    raw=st.binary(max_size=30),
    customer=st.sampled_from(["1234567890", "12", "abc", ""]),
)
def test_google_search_never_fails_with_a_500(query: str, body_kind: str, raw: bytes, customer: str) -> None:
    bodies = {
        "query": json.dumps({"query": query}).encode(),
        "raw": raw,
        "extra": json.dumps({"query": query, "pageToken": query}).encode(),
    }
    body = bodies[body_kind]
    headers = {"authorization": "Bearer g", "developer-token": "d"}
    for stream in (True, False):
        incoming = _incoming(f"/google/v26/customers/{customer}/googleAds:search", {}, headers, body)
        response = google.search(STATE, incoming, customer, stream=stream)
        assert response.status < 500
        json.loads(response.body)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    params=st.dictionaries(
        st.sampled_from(
            [
                "level",
                "fields",
                "time_range",
                "date_preset",
                "time_increment",
                "limit",
                "after",
                "before",
                "filtering",
                "breakdowns",
            ]
        ),
        _JSONISH,
    ),
    node=st.sampled_from(["act_1001", "act_x", "1001"]),
)
def test_meta_insights_never_fail_with_a_500(params: dict[str, str], node: str) -> None:
    incoming = _incoming(f"/meta/v27.0/{node}/insights", {"access_token": "m", **params}, {})
    for handler in (meta.insights, meta.campaigns):
        response = handler(STATE, incoming, node)
        assert response.status < 500
        body = json.loads(response.body)
        assert "data" in body or set(body["error"]) >= {"message", "type", "code", "fbtrace_id"}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    params=st.dictionaries(
        st.sampled_from(
            [
                "advertiser_id",
                "report_type",
                "data_level",
                "dimensions",
                "metrics",
                "start_date",
                "end_date",
                "page",
                "page_size",
                "order_field",
                "order_type",
                "query_lifetime",
                "filtering",
                "fields",
            ]
        ),
        _JSONISH | st.sampled_from(["BASIC", "AUCTION_CAMPAIGN", "2024-05-01", "7", "true"]),
    )
)
def test_tiktok_reports_never_fail_with_a_500(params: dict[str, str]) -> None:
    incoming = _incoming("/tiktok/open_api/v1.3/report/integrated/get/", params, {"access-token": "t"})
    for handler in (tiktok.report, tiktok.campaigns):
        response = handler(STATE, incoming)
        assert response.status == 200
        assert set(json.loads(response.body)) == {"code", "message", "request_id", "data"}


async def test_unknown_routes_and_methods_are_json_not_500(client: httpx.AsyncClient) -> None:
    cases = [
        ("GET", "/google/v26/customers/1234567890/googleAds:searchStream"),
        ("POST", "/google/vX/customers/1234567890/googleAds:searchStream"),
        ("GET", "/meta/latest/act_1/insights"),
        ("GET", "/tiktok/open_api/v9/report/integrated/get/"),
        ("GET", "/nowhere"),
        ("DELETE", "/_control/tokens"),
    ]
    for method, path in cases:
        response = await client.request(method, path)
        assert response.status_code in (404, 405), (method, path)
        assert response.json()["error"]


def test_python_dash_m_serves_until_interrupted() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "deneva.sandbox", "--port", "0", "--today", "2024-06-01"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:")
        health = httpx.get(f"{base_url}/_control/health", timeout=5).json()
        assert health == {"status": "ok", "today": "2024-06-01", "seed": 0}
    finally:
        process.terminate()
        process.wait(timeout=10)
