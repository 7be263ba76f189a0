"""A real sandbox server on 127.0.0.1:0 per test, in the test's nursery, and an httpx client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import httpx
import pytest
import trio

from deneva.sandbox.server import SandboxServer
from deneva.sandbox.state import SandboxConfig

TODAY = date(2024, 6, 1)
CUSTOMER = "1234567890"
META_ACCOUNT = "1001"
ADVERTISER = "7000000000000000001"
STREAM = f"/google/v26/customers/{CUSTOMER}/googleAds:searchStream"
INSIGHTS = f"/meta/v27.0/act_{META_ACCOUNT}/insights"
REPORT = "/tiktok/open_api/v1.3/report/integrated/get/"


class FakeClock:
    """Wall time the test moves by hand (token expiry without sleeping)."""

    def __init__(self, now: float = 1_717_200_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def sandbox(nursery: trio.Nursery, clock: FakeClock) -> SandboxServer:
    server = SandboxServer(SandboxConfig(today=TODAY, clock=clock))
    await nursery.start(server.run)
    return server


@pytest.fixture
async def client(sandbox: SandboxServer) -> AsyncIterator[httpx.AsyncClient]:
    assert sandbox.base_url is not None
    async with httpx.AsyncClient(base_url=sandbox.base_url, timeout=10) as http:
        yield http


async def register(client: httpx.AsyncClient, platform: str, **tokens: str) -> None:
    response = await client.post("/_control/tokens", json={"platform": platform, **tokens})
    assert response.status_code == 201, response.text


async def google_access_token(client: httpx.AsyncClient, refresh_token: str = "refresh-1") -> str:
    await register(client, "google", refresh_token=refresh_token)
    response = await client.post("/google/token", data=refresh_form(refresh_token))
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def refresh_form(refresh_token: str) -> dict[str, str]:
    return {
        "grant_type": "refresh_token",
        "client_id": "client.apps.googleusercontent.com",
        "client_secret": "secret",
        "refresh_token": refresh_token,
    }


async def google_headers(client: httpx.AsyncClient, refresh_token: str = "refresh-1") -> dict[str, str]:
    token = await google_access_token(client, refresh_token)
    return {"Authorization": f"Bearer {token}", "developer-token": "dev-token"}


async def gaql(
    client: httpx.AsyncClient, headers: dict[str, str], query: str, customer: str = CUSTOMER
) -> httpx.Response:
    return await client.post(
        f"/google/v26/customers/{customer}/googleAds:searchStream",
        json={"query": query},
        headers=headers,
    )


def stream_rows(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    batches = response.json()
    assert isinstance(batches, list) and batches
    rows: list[dict[str, Any]] = []
    for batch in batches:
        rows.extend(batch.get("results", []))
    return rows


def google_error(response: httpx.Response) -> dict[str, Any]:
    """The error object of a searchStream error (wrapped in a one-element array)."""
    body = response.json()
    assert isinstance(body, list) and len(body) == 1, body
    error: dict[str, Any] = body[0]["error"]
    assert error["code"] == response.status_code
    return error


def google_error_code(response: httpx.Response) -> dict[str, str]:
    error = google_error(response)
    failure = error["details"][0]
    assert failure["@type"].endswith("errors.GoogleAdsFailure")
    code: dict[str, str] = failure["errors"][0]["errorCode"]
    return code


async def meta_token(client: httpx.AsyncClient, token: str = "meta-user-token") -> str:
    await register(client, "meta", access_token=token)
    return token


async def tiktok_token(client: httpx.AsyncClient, token: str = "tiktok-token") -> str:
    await register(client, "tiktok", access_token=token)
    return token


def report_params(**overrides: Any) -> dict[str, str]:
    params: dict[str, Any] = {
        "advertiser_id": ADVERTISER,
        "report_type": "BASIC",
        "data_level": "AUCTION_CAMPAIGN",
        "dimensions": ["campaign_id", "stat_time_day"],
        "metrics": ["spend", "impressions", "clicks", "ctr", "conversion", "campaign_name"],
        "start_date": "2024-05-25",
        "end_date": "2024-05-31",
        "page_size": 1000,
    }
    params.update(overrides)
    return {k: json.dumps(v) if isinstance(v, list) else str(v) for k, v in params.items()}


async def set_faults(client: httpx.AsyncClient, platform: str, plan: dict[str, Any]) -> None:
    response = await client.put(f"/_control/faults/{platform}", json=plan)
    assert response.status_code == 200, response.text
