"""Tenant isolation, as a property (hypothesis): for random tenants, keys and tool arguments,
no response ever contains another tenant's data.

A real daemon (tests/mcp/daemon_fixture.py) serves three tenants, each with its own API
keys, its own platform tokens and its own sandbox accounts (distinct account ids, so
distinct synthetic data: the campaign ids in each tenant's cached reports are its own).
Hypothesis draws the caller, which of its credentials it uses (two API keys and an OAuth
access token issued through the built-in authorization server's consent page, all valid;
a revoked key and a revoked token), the
transport (on /mcp a 2025-11-25 session, a stateless 2026-07-28 request, or another
tenant's session id; on /mcp/ws a socket opened with that key, in either style), the tool
and its arguments: valid platforms, ranges and report types mixed with junk, account ids
of the caller and of the others, other tenants' ids, campaign ids and key prefixes
smuggled in as arguments, extra arguments, `refresh_report` without waiting. Every call
goes over real HTTP (or a real WebSocket); the key is resolved to its tenant by the
daemon's own authenticator.

Each response, errors included, must contain none of the other tenants' ids, names, keys,
key prefixes, tokens, account ids or campaign ids, except where the caller wrote that very
string into its own arguments and an error message quotes it back. Answers that succeed
must be the caller's own: a report is the caller's cached row, a refresh run is for the
caller's account, the sync status lists only the caller's accounts.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trio_websocket import ConnectionRejected, WebSocketConnection, open_websocket_url

from deneva import tenants
from deneva.adapters.base import DATE_RANGES, REPORT_SCHEMAS
from deneva.bridge import header_safe
from deneva.clock import SystemClock
from deneva.mcp.report_tools import REPORT_TOOLS
from deneva.oauth.server import AuthorizationServer
from tests.mcp.daemon_fixture import (
    PLATFORMS,
    TOOL_NAMES,
    RunningDaemon,
    TenantSpec,
    cache_rows,
    running_daemon,
)
from tests.mcp.oauth_flow import issue_tokens

SPECS = (
    TenantSpec(
        "tenant-alpha",
        (("google", "3101000001"), ("meta", "3101000002"), ("tiktok", "7310100000000000003")),
    ),
    # Two Google accounts: calls without accountId are ambiguous, and the error lists them.
    TenantSpec("tenant-bravo", (("google", "3202000001"), ("google", "3202000004"), ("meta", "3202000002"))),
    TenantSpec("tenant-charlie", (("tiktok", "7320300000000000003"),)),
)
LEGACY = "2025-11-25"
MODERN = "2026-07-28"
META = {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}}
ACCEPT = "application/json, text/event-stream"
# API keys, and OAuth access tokens of the built-in authorization server (issued through its
# consent page with each tenant's connect code); "revoked" and "oauth-revoked" no longer work.
KEYS = ("primary", "secondary", "oauth", "revoked", "oauth-revoked")
VALID = KEYS[:3]
REVOKED = ("revoked", "oauth-revoked")
# Hypothesis warns when the global `random` moves while it draws an example: here that is the
# daemon, in this process, jittering refresh times (deneva.sync.cadence.refresh_due) for the
# refreshes earlier examples asked for; the draws themselves use no `random`.
pytestmark = pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies")
TRANSPORTS = ("legacy", "modern", "ws-legacy", "ws-stateless", "foreign-session")


@attrs.frozen
class Call:
    caller: int  # index into the tenants
    key: str  # one of KEYS
    transport: str  # one of TRANSPORTS
    auth: str  # "bearer" or "x-api-key"
    tool: str
    arguments: dict[str, Any]


@attrs.frozen
class Party:
    """One tenant as the test sees it."""

    id: str
    name: str
    keys: dict[str, str]  # KEYS -> plaintext
    accounts: tuple[tuple[str, str], ...]
    session: str  # its 2025-11-25 session on /mcp
    private: frozenset[str]  # what no other tenant may ever see
    markers: frozenset[str]  # campaign ids found only in its cached reports


def _campaign_ids(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "campaign_id" and isinstance(item, str):
                yield item
            else:
                yield from _campaign_ids(item)
    elif isinstance(value, list):
        for item in value:
            yield from _campaign_ids(item)


def _strings(value: Any) -> Iterator[str]:
    """Every string in an argument value, dictionary keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


@attrs.define
class World:
    daemon: RunningDaemon
    http: httpx.AsyncClient
    parties: tuple[Party, ...]
    # (caller, key) -> an initialized socket on /mcp/ws opened with that key
    sockets: dict[tuple[int, str], WebSocketConnection] = attrs.field(factory=dict)
    ids: Iterator[int] = attrs.field(factory=itertools.count)
    outcomes: dict[str, int] = attrs.field(factory=dict)

    def forbidden(self, caller: int) -> frozenset[str]:
        return frozenset().union(*(p.private | p.markers for i, p in enumerate(self.parties) if i != caller))

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    async def post(self, call: Call) -> httpx.Response:
        me = self.parties[call.caller]
        key = me.keys[call.key]
        headers = {"Accept": ACCEPT, "Content-Type": "application/json"}
        if call.auth == "bearer" or call.key.startswith("oauth"):  # tokens go in Authorization
            headers["Authorization"] = f"Bearer {key}"
        else:
            headers["X-Api-Key"] = key
        params: dict[str, Any] = {"name": call.tool, "arguments": call.arguments}
        if call.transport == "modern":
            params["_meta"] = META
            headers |= {
                "MCP-Protocol-Version": MODERN,
                "Mcp-Method": "tools/call",
                "Mcp-Name": header_safe(call.tool),
            }
        else:
            session = me.session
            if call.transport == "foreign-session":
                session = self.parties[(call.caller + 1) % len(self.parties)].session
            headers |= {"MCP-Protocol-Version": LEGACY, "Mcp-Session-Id": session}
        body = {"jsonrpc": "2.0", "id": next(self.ids), "method": "tools/call", "params": params}
        return await self.http.post(self.daemon.url, content=json.dumps(body), headers=headers)

    async def over_ws(self, call: Call) -> tuple[int, str]:
        """(HTTP status, answer) of a call on the caller's socket; a revoked key's upgrade is refused."""
        me = self.parties[call.caller]
        if call.key in REVOKED:
            headers = [(b"authorization", f"Bearer {me.keys[call.key]}".encode())]
            try:
                async with open_websocket_url(
                    self.daemon.ws_url, subprotocols=["mcp"], extra_headers=headers
                ):
                    raise AssertionError("a revoked key or token opened a socket")
            except ConnectionRejected as refused:
                return refused.status_code, (refused.body or b"").decode()
        ws = self.sockets[(call.caller, call.key)]
        params: dict[str, Any] = {"name": call.tool, "arguments": call.arguments}
        if call.transport == "ws-stateless":
            params["_meta"] = META
        id = next(self.ids)
        await ws.send_message(
            json.dumps({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params})
        )
        with trio.fail_after(60):
            answer = await ws.get_message()
        assert isinstance(answer, str) and json.loads(answer)["id"] == id, answer
        return 200, answer

    async def check(self, call: Call) -> None:
        if call.transport.startswith("ws-"):
            status, text = await self.over_ws(call)
        else:
            response = await self.post(call)
            status, text = response.status_code, response.text
        self.assert_no_leak(call, text)
        if call.key in REVOKED:
            assert status == 401, text
            self.count("unauthorized")
            return
        if call.transport == "foreign-session":
            assert status == 404, text  # another tenant's session is unknown
            self.count("foreign session")
            return
        assert status == 200, text
        answer = json.loads(text)
        if "error" in answer:
            assert call.tool not in TOOL_NAMES, answer
            self.count("protocol error")
            return
        result = answer["result"]
        if result["isError"]:
            self.count("tool error")
            return
        await self.assert_own(call, result["structuredContent"])
        self.count("success")

    def assert_no_leak(self, call: Call, text: str) -> None:
        forbidden = self.forbidden(call.caller)
        # An error may quote an argument back ('like this'): what the caller wrote itself is
        # not a leak. Only the quoted form is discounted, so a listing of accounts that named
        # the same account (unquoted) would still be caught.
        quoted = sorted(
            (f"'{s}'" for s in _strings(call.arguments) if any(f in s for f in forbidden)),
            key=len,
            reverse=True,
        )
        for value in quoted:
            text = text.replace(value, "")
        leaked = sorted(f for f in forbidden if f in text)
        assert not leaked, f"{call} got another tenant's {leaked}: {text[:2000]}"

    async def assert_own(self, call: Call, out: dict[str, Any]) -> None:
        me = self.parties[call.caller]
        mine = {a for _, a in me.accounts}
        asked = call.arguments.get("accountId")
        assert asked is None or asked in mine, (call, out)
        if call.tool in REPORT_TOOLS:
            platform = call.arguments["platform"]
            [account] = [asked] if asked is not None else [a for p, a in me.accounts if p == platform]
            row = await self.daemon.db.fetchrow(
                "SELECT payload FROM metric_cache WHERE tenant_id = $1 AND platform = $2 AND account_id = $3 "
                "AND report_type = $4 AND date_range = $5",
                uuid.UUID(me.id),
                platform,
                account,
                REPORT_TOOLS[call.tool],
                call.arguments["dateRange"],
            )
            assert row is not None and row["payload"] == out["data"], call
        elif call.tool == "refresh_report":
            assert out["status"] == "queued", out
            run = await self.daemon.engine.get_run(uuid.UUID(out["runId"]))
            assert run.event["data"]["tenant_id"] == me.id and run.event["data"]["account_id"] in mine
        elif call.tool == "get_portfolio_overview":
            assert {a["account_id"] for a in out["data"]["accounts"]} <= mine, out
        else:
            assert {a["accountId"] for a in out["accounts"]} <= mine, out
            assert {f["accountId"] for f in out["recentFailures"]} <= mine, out


def _junk() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.text(max_size=12),
        st.integers(min_value=-5, max_value=10**12),
        st.booleans(),
        st.none(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.lists(st.text(max_size=3), max_size=2),
        st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    )


def _mostly(valid: st.SearchStrategy[Any], other: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`valid` four times in five (and `valid` is what a failing example shrinks towards)."""
    return st.integers(0, 4).flatmap(lambda n: other if n == 4 else valid)


def calls(world: World) -> st.SearchStrategy[Call]:
    parties = world.parties
    affix = st.text(alphabet="abcxyz0123456789-_", max_size=4)

    @st.composite
    def draw_call(draw: st.DrawFn) -> Call:
        caller = draw(st.integers(0, len(parties) - 1))
        me = parties[caller]
        others = [p for i, p in enumerate(parties) if i != caller]
        theirs = sorted(a for p in others for _, a in p.accounts)
        smuggled = sorted(
            {p.id for p in others}
            | {p.name for p in others}
            | {m for p in others for m in sorted(p.markers)[:5]}
            | {f"dnv_{p.keys['primary'].split('_')[1]}_" for p in others}
        )
        own = st.sampled_from(sorted(a for _, a in me.accounts))
        account = st.one_of(
            own,
            st.sampled_from(theirs),
            st.builds(lambda a, b, s: f"{a}{s}{b}", affix, affix, st.sampled_from(smuggled)),
            _junk(),
        )
        tool = draw(_mostly(st.sampled_from(TOOL_NAMES), st.sampled_from(["get_everything", *TOOL_NAMES])))
        args: dict[str, Any] = {}
        if tool != "get_sync_status" or draw(st.booleans()):
            args["platform"] = draw(_mostly(st.sampled_from(PLATFORMS), _junk()))
        if tool != "get_sync_status":
            args["dateRange"] = draw(_mostly(st.sampled_from(sorted(DATE_RANGES)), _junk()))
            if draw(_mostly(st.just(True), st.just(False))):
                args["accountId"] = draw(account)
        if tool == "refresh_report":
            args["reportType"] = draw(_mostly(st.sampled_from(sorted(REPORT_SCHEMAS)), _junk()))
            if draw(st.booleans()):
                args["wait"] = False
        if draw(st.integers(0, 9)) == 0:
            name = draw(st.sampled_from(["tenantId", "tenant_id", "account_id", "accountId", "x"]))
            args[name] = draw(st.one_of(st.sampled_from(smuggled), account))
        if draw(st.integers(0, 9)) == 0:
            args = {k: v for k, v in args.items() if draw(st.booleans())}
        return Call(
            caller=caller,
            key=draw(_mostly(st.sampled_from(VALID), st.sampled_from(REVOKED))),
            transport=draw(_mostly(st.sampled_from(TRANSPORTS[:4]), st.just("foreign-session"))),
            auth=draw(st.sampled_from(["bearer", "x-api-key"])),
            tool=tool,
            arguments=args,
        )

    return draw_call()


async def _initialize(http: httpx.AsyncClient, url: str, key: str) -> str:
    init = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": LEGACY,
            "capabilities": {},
            "clientInfo": {"name": "e2e", "version": "1"},
        },
    }
    headers = {"Authorization": f"Bearer {key}", "Accept": ACCEPT}
    r = await http.post(url, json=init, headers=headers)
    assert r.status_code == 200, r.text
    session = r.headers["mcp-session-id"]
    headers |= {"Mcp-Session-Id": session, "MCP-Protocol-Version": LEGACY}
    done = await http.post(
        url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers
    )
    assert done.status_code == 202
    return session


async def _open_socket(stack: AsyncExitStack, url: str, key: str) -> WebSocketConnection:
    headers = [(b"authorization", f"Bearer {key}".encode())]
    ws = await stack.enter_async_context(open_websocket_url(url, subprotocols=["mcp"], extra_headers=headers))
    init = {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "e2e", "version": "1"}}
    await ws.send_message(json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": init}))
    with trio.fail_after(30):
        assert json.loads(await ws.get_message())["result"]["protocolVersion"] == LEGACY
    await ws.send_message(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}))
    return ws


async def _parties(daemon: RunningDaemon, http: httpx.AsyncClient) -> tuple[Party, ...]:
    rows = await cache_rows(daemon.db)
    campaigns: dict[str, set[str]] = {}
    texts: dict[str, str] = {}
    for row in rows:
        campaigns.setdefault(row["tenant_id"], set()).update(_campaign_ids(row["payload"]))
        texts[row["tenant_id"]] = texts.get(row["tenant_id"], "") + json.dumps(row["payload"])
    parties = []
    for info in daemon.tenants:

        async def more_keys(conn: Any, name: str = info.name) -> tuple[str, str]:
            secondary = await tenants.create_key(conn, name, "second")
            revoked = await tenants.create_key(conn, name, "revoked")
            await tenants.revoke_key(conn, revoked.prefix)
            return secondary.plaintext, revoked.plaintext

        secondary, revoked = await daemon.db.transaction(more_keys)
        server = AuthorizationServer(daemon.db, SystemClock())
        oauth = await issue_tokens(http, daemon.base, (await server.create_connect_code(info.name))[0])
        oauth_revoked = await issue_tokens(
            http, daemon.base, (await server.create_connect_code(info.name))[0]
        )
        gone = await http.post(
            f"{daemon.base}/revoke",
            data={"token": oauth_revoked["access_token"], "client_id": oauth_revoked["client_id"]},
        )
        assert gone.status_code == 200
        others_text = "".join(t for tenant, t in texts.items() if tenant != info.id)
        markers = frozenset(c for c in campaigns.get(info.id, ()) if len(c) >= 9 and c not in others_text)
        assert markers, f"{info.name} has no campaign id of its own in its cached reports"
        keys = {
            "primary": info.key,
            "secondary": secondary,
            "oauth": oauth["access_token"],
            "revoked": revoked,
            "oauth-revoked": oauth_revoked["access_token"],
        }
        api_keys = (info.key, secondary, revoked)
        tokens = (oauth["access_token"], oauth["refresh_token"], oauth_revoked["access_token"])
        private = {
            *info.secrets(),
            *api_keys,
            *tokens,
            *(f"dnv_{k.split('_')[1]}_" for k in api_keys),
            *(t[: len("dnv_at_") + 17] for t in tokens),  # dnv_at_<id>_
        }
        session = await _initialize(http, daemon.url, info.key)
        parties.append(Party(info.id, info.name, keys, info.accounts, session, frozenset(private), markers))
    return tuple(parties)


def anchors(parties: tuple[Party, ...]) -> list[Call]:
    """Calls made before the random ones, so that every kind of answer is seen at least once."""
    alpha, bravo, charlie = (p.accounts[0][1] for p in parties)
    week = {"dateRange": "last_7_days"}
    google = {"platform": "google", **week}
    return [
        Call(0, "primary", "legacy", "bearer", "get_account_health", google),
        Call(1, "secondary", "modern", "x-api-key", "get_account_health", {"platform": "meta", **week}),
        Call(1, "primary", "legacy", "bearer", "get_account_health", google),
        Call(0, "primary", "modern", "bearer", "get_account_health", {"accountId": bravo, **google}),
        Call(2, "primary", "legacy", "bearer", "get_weekly_anomaly", {"accountId": alpha, **google}),
        Call(1, "primary", "modern", "bearer", "refresh_report",
             {"platform": "tiktok", "reportType": "account_health", "accountId": charlie, **week}),
        Call(2, "secondary", "legacy", "bearer", "refresh_report",
             {"platform": "tiktok", "reportType": "account_health", "wait": False, **week}),
        Call(1, "primary", "modern", "bearer", "get_sync_status", {}),
        Call(0, "secondary", "ws-legacy", "bearer", "get_budget_optimizer", {"platform": "meta", **week}),
        Call(1, "primary", "ws-stateless", "bearer", "get_weekly_anomaly", {"accountId": alpha, **google}),
        Call(2, "revoked", "modern", "bearer", "get_sync_status", {}),
        Call(0, "oauth", "legacy", "bearer", "get_account_health", google),
        Call(1, "oauth", "modern", "bearer", "get_account_health", {"accountId": alpha, **google}),
        Call(2, "oauth", "ws-stateless", "bearer", "get_sync_status", {}),
        Call(0, "oauth-revoked", "modern", "bearer", "get_sync_status", {}),
        Call(1, "oauth-revoked", "ws-legacy", "bearer", "get_sync_status", {}),
        Call(1, "revoked", "ws-legacy", "bearer", "get_sync_status", {}),
        Call(0, "primary", "foreign-session", "bearer", "get_sync_status", {}),
    ]  # fmt: skip


async def test_no_response_ever_contains_another_tenants_data(tmp_path: Path, database_url: str) -> None:
    async with (
        running_daemon(tmp_path, database_url, SPECS) as daemon,
        httpx.AsyncClient(timeout=httpx.Timeout(30, read=120)) as http,
        AsyncExitStack() as stack,
    ):
        world = World(daemon, http, await _parties(daemon, http))
        for (index, party), key in itertools.product(enumerate(world.parties), VALID):
            world.sockets[(index, key)] = await _open_socket(stack, daemon.ws_url, party.keys[key])
        for call in anchors(world.parties):
            await world.check(call)
        kinds = {"success", "tool error", "unauthorized", "foreign session"}
        assert set(world.outcomes) == kinds, world.outcomes

        # Hypothesis runs in a worker thread; each example is one call served by this trio
        # loop (trio.from_thread.run), where the daemon runs.
        @settings(
            max_examples=120, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
        )
        @given(call=calls(world))
        def every_call_sees_only_its_own_tenant(call: Call) -> None:
            trio.from_thread.run(world.check, call)

        await trio.to_thread.run_sync(every_call_sees_only_its_own_tenant)
        assert sum(world.outcomes.values()) == 120 + len(anchors(world.parties)), world.outcomes

        # The refreshes asked for ran for the asking tenant's accounts, and nothing was
        # ever cached for an account under a tenant that does not own it.
        statuses = await daemon.settle_refreshes()
        assert set(statuses) == {"succeeded"}, statuses
        owned = {(p.id, platform, account) for p in world.parties for platform, account in p.accounts}
        rows = await cache_rows(daemon.db)
        assert {(r["tenant_id"], r["platform"], r["account_id"]) for r in rows} <= owned
