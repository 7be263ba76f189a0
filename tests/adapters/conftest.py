"""A real sandbox per test (127.0.0.1:0, in the test's nursery), its control API, and adapters on it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import attrs
import httpx
import pytest
import trio

from deneva.adapters import Credentials, PlatformConfig, PlatformError, ReportRequest, adapters_for
from deneva.adapters.base import Platform
from deneva.adapters.rows import ROW_FIELDS
from deneva.sandbox.server import SandboxServer
from deneva.sandbox.state import SandboxConfig

TODAY = date(2024, 6, 1)
ACCOUNTS = {"google": "1234567890", "meta": "1001", "tiktok": "7000000000000000001"}
GOOGLE_REFRESH = "google-refresh-token-0001"
META_TOKEN = "meta-user-token-0001"
TIKTOK_TOKEN = "tiktok-access-token-0001"
# Everything that must never show in a message or a repr (PlatformConfig.for_sandbox's secrets too).
SECRETS = (
    GOOGLE_REFRESH,
    META_TOKEN,
    TIKTOK_TOKEN,
    "sandbox-client-secret",
    "sandbox-developer-token",
    "sandbox-app-secret",
)
PLATFORMS = ("google", "meta", "tiktok")


class FakeClock:
    """Wall time for the adapters' token expiry decisions, moved by hand."""

    def __init__(self, now: float = 1_717_200_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@attrs.define
class Sandbox:
    server: SandboxServer
    url: str
    control: httpx.AsyncClient

    async def register(self, platform: str, **tokens: str) -> None:
        response = await self.control.post("/_control/tokens", json={"platform": platform, **tokens})
        assert response.status_code == 201, response.text

    async def token_action(self, action: str, platform: str, token: str) -> None:
        response = await self.control.post(
            f"/_control/tokens/{action}", json={"platform": platform, "token": token}
        )
        assert response.status_code == 200, response.text

    async def faults(self, platform: str, plan: dict[str, Any]) -> None:
        response = await self.control.put(f"/_control/faults/{platform}", json=plan)
        assert response.status_code == 200, response.text

    async def calls(self, platform: str, endpoint: str) -> int:
        response = await self.control.get(
            "/_control/requests", params={"platform": platform, "endpoint": endpoint}
        )
        assert response.status_code == 200, response.text
        total: int = response.json()["total"]
        return total

    async def issued(self, platform: str) -> list[str]:
        """Tokens the sandbox minted (access tokens from refreshes and exchanges)."""
        response = await self.control.get("/_control/tokens", params={"platform": platform})
        return [t["token"] for t in response.json()["tokens"] if t["issued"]]


async def start_sandbox(nursery: trio.Nursery, config: SandboxConfig | None = None) -> SandboxServer:
    server = SandboxServer(config or SandboxConfig(today=TODAY))
    await nursery.start(server.run)
    return server


@pytest.fixture
async def sandbox(nursery: trio.Nursery) -> AsyncIterator[Sandbox]:
    server = await start_sandbox(nursery)
    assert server.base_url is not None
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as control:
        box = Sandbox(server, server.base_url, control)
        await box.register("google", refresh_token=GOOGLE_REFRESH)
        await box.register("meta", access_token=META_TOKEN)
        await box.register("tiktok", access_token=TIKTOK_TOKEN)
        yield box


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def sandbox_config(url: str, clock: FakeClock, **overrides: Any) -> PlatformConfig:
    values: dict[str, Any] = {"clock": clock, "request_timeout_s": 5.0, "operation_timeout_s": 10.0}
    values.update(overrides)
    return PlatformConfig.for_sandbox(url, **values)


@pytest.fixture
def config(sandbox: Sandbox, clock: FakeClock) -> PlatformConfig:
    return sandbox_config(sandbox.url, clock)


@pytest.fixture
def adapters(config: PlatformConfig) -> dict[str, Platform]:
    return adapters_for(config)


def creds(platform: str, account_id: str | None = None) -> Credentials:
    account = account_id or ACCOUNTS[platform]
    if platform == "google":
        return Credentials("google", account, refresh_token=GOOGLE_REFRESH)
    return Credentials(platform, account, access_token=META_TOKEN if platform == "meta" else TIKTOK_TOKEN)


def request(
    platform: str,
    report_type: str = "account_health",
    date_range: str = "last_7_days",
    account_id: str | None = None,
) -> ReportRequest:
    return ReportRequest(platform, account_id or ACCOUNTS[platform], report_type, date_range, today=TODAY)


async def fetch_error(
    adapter: Platform, credentials: Credentials, report: ReportRequest, *extra_secrets: str
) -> PlatformError:
    """The PlatformError a fetch raises, checked to carry no secret in its message or repr."""
    with pytest.raises(PlatformError) as info:
        await adapter.fetch_report(credentials, report)
    assert_no_secrets(info.value, *extra_secrets)
    return info.value


def assert_no_secrets(value: object, *extra: str) -> None:
    shown = f"{value}\n{value!r}"
    for secret in (*SECRETS, *extra):
        assert secret not in shown, f"{secret!r} leaked into {shown!r}"


def assert_schema(schema: str, rows: list[dict[str, Any]]) -> None:
    """Every row has exactly the schema's keys, each value of its declared type."""
    fields = ROW_FIELDS[schema]
    for row in rows:
        assert set(row) == set(fields), (schema, sorted(set(row) ^ set(fields)))
        for name, kind in fields.items():
            value = row[name]
            assert isinstance(value, kind), (schema, name, value)
            if kind is int:
                assert not isinstance(value, bool), (schema, name, value)
