"""Streamable HTTP at /mcp over real HTTP: both protocol generations, auth, bad input."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import trio

from deneva.config import Bind, Config
from deneva.db import Database
from deneva.tenants import revoke_key
from tests.http.mcp_fixtures import McpTestServer, mcp_test_server

ACCEPT = "application/json, text/event-stream"
MODERN = "2026-07-28"
META = {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}}


@pytest.fixture
async def srv(db: Database) -> AsyncIterator[McpTestServer]:
    async with mcp_test_server(db) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


def rpc(id: int | str | None, method: str, **params: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params}
    if id is not None:
        body["id"] = id
    return body


def auth(key: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Accept": ACCEPT, **extra}


async def initialize(http: httpx.AsyncClient, srv: McpTestServer, key: str | None = None) -> str:
    init = rpc(
        1,
        "initialize",
        protocolVersion="2025-11-25",
        capabilities={},
        clientInfo={"name": "t", "version": "1"},
    )
    r = await http.post(srv.url, json=init, headers=auth(key or srv.key_a))
    assert r.status_code == 200, r.text
    assert r.json()["result"]["protocolVersion"] == "2025-11-25"
    sid = r.headers["mcp-session-id"]
    done = await http.post(
        srv.url,
        json=rpc(None, "notifications/initialized"),
        headers=auth(key or srv.key_a, **{"Mcp-Session-Id": sid}),
    )
    assert done.status_code == 202 and done.content == b""
    return sid


def modern_headers(key: str, method: str, name: str | None = None, **extra: str) -> dict[str, str]:
    headers = auth(key, **{"MCP-Protocol-Version": MODERN, "Mcp-Method": method}, **extra)
    if name is not None:
        headers["Mcp-Name"] = name
    return headers


async def test_legacy_session_lifecycle(srv: McpTestServer, http: httpx.AsyncClient) -> None:
    sid = await initialize(http, srv)
    headers = auth(srv.key_a, **{"Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-11-25"})
    listed = await http.post(srv.url, json=rpc(2, "tools/list"), headers=headers)
    assert listed.status_code == 200 and listed.headers["content-type"] == "application/json"
    assert [t["name"] for t in listed.json()["result"]["tools"]] == ["add", "slow", "whoami"]
    called = await http.post(
        srv.url, json=rpc(3, "tools/call", name="add", arguments={"a": 2, "b": 3}), headers=headers
    )
    result = called.json()["result"]
    assert result["structuredContent"] == {"sum": 5} and json.loads(result["content"][0]["text"]) == {
        "sum": 5
    }
    ping = await http.post(srv.url, json=rpc(4, "ping"), headers=headers)
    assert ping.json() == {"jsonrpc": "2.0", "id": 4, "result": {}}
    bad_args = await http.post(
        srv.url, json=rpc(5, "tools/call", name="add", arguments={"a": "x", "b": 1}), headers=headers
    )
    assert (
        bad_args.json()["result"]["isError"] is True
        and "'a'" in bad_args.json()["result"]["content"][0]["text"]
    )
    unknown = await http.post(srv.url, json=rpc(6, "tools/call", name="nope"), headers=headers)
    assert unknown.status_code == 200 and unknown.json()["error"]["code"] == -32602
    gone = await http.delete(srv.url, headers=headers)
    assert gone.status_code == 200
    after = await http.post(srv.url, json=rpc(7, "tools/list"), headers=headers)
    assert after.status_code == 404
    again = await http.delete(srv.url, headers=headers)
    assert again.status_code == 404


async def test_sessions_are_checked_and_bound_to_their_tenant(
    srv: McpTestServer, http: httpx.AsyncClient
) -> None:
    sid = await initialize(http, srv)
    no_session = await http.post(srv.url, json=rpc(1, "tools/list"), headers=auth(srv.key_a))
    assert no_session.status_code == 400 and "Mcp-Session-Id" in no_session.json()["error"]["message"]
    unknown = await http.post(
        srv.url, json=rpc(1, "tools/list"), headers=auth(srv.key_a, **{"Mcp-Session-Id": "x" * 40})
    )
    assert unknown.status_code == 404
    malformed = await http.post(
        srv.url, json=rpc(1, "tools/list"), headers=auth(srv.key_a, **{"Mcp-Session-Id": "a b"})
    )
    assert malformed.status_code == 400
    other_tenant = await http.post(
        srv.url, json=rpc(1, "tools/list"), headers=auth(srv.key_b, **{"Mcp-Session-Id": sid})
    )
    assert other_tenant.status_code == 404
    wrong_version = await http.post(
        srv.url,
        json=rpc(1, "tools/list"),
        headers=auth(srv.key_a, **{"Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-06-18"}),
    )
    assert wrong_version.status_code == 400 and "2025-11-25" in wrong_version.json()["error"]["message"]
    whoami = await http.post(
        srv.url, json=rpc(2, "tools/call", name="whoami"), headers=auth(srv.key_a, **{"Mcp-Session-Id": sid})
    )
    assert whoami.json()["result"]["structuredContent"] == {"tenant": srv.tenant_a}


async def test_sessions_expire_when_idle(srv: McpTestServer, http: httpx.AsyncClient) -> None:
    sid = await initialize(http, srv)
    headers = auth(srv.key_a, **{"Mcp-Session-Id": sid})
    assert (await http.post(srv.url, json=rpc(1, "tools/list"), headers=headers)).status_code == 200
    srv.clock.t += srv.endpoints.http.server.sessions.idle_timeout_s + 1
    assert (await http.post(srv.url, json=rpc(2, "tools/list"), headers=headers)).status_code == 404


async def test_auth_is_required_and_revocation_is_immediate(
    srv: McpTestServer, http: httpx.AsyncClient, db: Database
) -> None:
    init = rpc(1, "initialize", protocolVersion="2025-11-25", capabilities={})
    none = await http.post(srv.url, json=init)
    assert none.status_code == 401 and none.headers["www-authenticate"].startswith("Bearer")
    assert "API key" in none.json()["error"]["message"]
    wrong = await http.post(srv.url, json=init, headers=auth("dnv_00000000_" + "x" * 43))
    assert wrong.status_code == 401 and 'error="invalid_token"' in wrong.headers["www-authenticate"]
    x_api_key = await http.post(srv.url, json=init, headers={"X-Api-Key": srv.key_a, "Accept": ACCEPT})
    assert x_api_key.status_code == 200
    sid = await initialize(http, srv)
    await db.run(lambda conn: revoke_key(conn, srv.key_a))
    revoked = await http.post(
        srv.url, json=rpc(2, "tools/list"), headers=auth(srv.key_a, **{"Mcp-Session-Id": sid})
    )
    assert revoked.status_code == 401
    assert srv.key_a not in revoked.text


async def test_host_and_origin_are_validated(srv: McpTestServer, http: httpx.AsyncClient) -> None:
    init = rpc(1, "initialize", protocolVersion="2025-11-25", capabilities={})
    rebinding = await http.post(srv.url, json=init, headers=auth(srv.key_a, Host="evil.example"))
    assert rebinding.status_code == 421
    foreign = await http.post(srv.url, json=init, headers=auth(srv.key_a, Origin="http://evil.example"))
    assert foreign.status_code == 403 and foreign.json()["error"]["code"] == -32600
    local = await http.post(srv.url, json=init, headers=auth(srv.key_a, Origin="http://localhost:3000"))
    assert local.status_code == 200
    junk = await http.post(srv.url, json=init, headers=auth(srv.key_a, Origin="null"))
    assert junk.status_code == 403


async def test_configured_hosts_and_origins(db: Database, http: httpx.AsyncClient) -> None:
    config = Config(
        http_bind=Bind("0.0.0.0", 0),
        mcp_allowed_hosts=("mcp.example.com",),
        mcp_allowed_origins=("https://app.example.com",),
    )
    async with mcp_test_server(db, config) as srv:
        init = rpc(1, "initialize", protocolVersion="2025-11-25", capabilities={})
        ok = await http.post(
            srv.url,
            json=init,
            headers=auth(srv.key_a, Host="mcp.example.com", Origin="https://app.example.com"),
        )
        assert ok.status_code == 200
        assert (await http.post(srv.url, json=init, headers=auth(srv.key_a))).status_code == 421
        other = await http.post(
            srv.url,
            json=init,
            headers=auth(srv.key_a, Host="mcp.example.com", Origin="https://mcp.example.com"),
        )
        assert other.status_code == 403


async def test_methods_and_bad_input_get_clear_statuses(srv: McpTestServer, http: httpx.AsyncClient) -> None:
    headers = auth(srv.key_a)
    get = await http.get(srv.url, headers=headers)
    assert get.status_code == 405 and "POST" in get.headers["allow"]
    put = await http.put(srv.url, headers=headers, content=b"{}")
    assert put.status_code == 405
    not_json = await http.post(
        srv.url, content=b"{nope", headers={**headers, "Content-Type": "application/json"}
    )
    assert not_json.status_code == 400 and not_json.json()["error"]["code"] == -32700
    batch = await http.post(srv.url, json=[rpc(1, "ping")], headers=headers)
    assert batch.status_code == 400 and "batch" in batch.json()["error"]["message"]
    shape = await http.post(srv.url, json={"jsonrpc": "1.0", "id": 1, "method": "ping"}, headers=headers)
    assert shape.status_code == 400 and shape.json()["error"]["code"] == -32600 and shape.json()["id"] == 1
    text = await http.post(srv.url, content=b"{}", headers={**headers, "Content-Type": "text/plain"})
    assert text.status_code == 415
    html_only = await http.post(srv.url, json=rpc(1, "ping"), headers={**headers, "Accept": "text/html"})
    assert html_only.status_code == 406
    huge = await http.post(
        srv.url,
        content=b'{"x":"' + b"a" * (1024 * 1024) + b'"}',
        headers={**headers, "Content-Type": "application/json"},
    )
    assert huge.status_code == 413
    client_response = await http.post(
        srv.url, json={"jsonrpc": "2.0", "id": 9, "result": {}}, headers=headers
    )
    assert client_response.status_code == 202
    before_init = await http.post(srv.url, json=rpc(1, "tools/list"), headers=headers)
    assert before_init.status_code == 400


async def test_modern_stateless_requests(srv: McpTestServer, http: httpx.AsyncClient) -> None:
    discover = await http.post(
        srv.url,
        json=rpc(1, "server/discover", _meta=META),
        headers=modern_headers(srv.key_a, "server/discover"),
    )
    assert discover.status_code == 200 and "mcp-session-id" not in discover.headers
    result = discover.json()["result"]
    assert result["supportedVersions"][0] == MODERN and "2025-11-25" in result["supportedVersions"]
    assert (
        result["resultType"] == "complete"
        and result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "deneva"
    )
    listed = await http.post(
        srv.url, json=rpc(2, "tools/list", _meta=META), headers=modern_headers(srv.key_a, "tools/list")
    )
    body = listed.json()["result"]
    assert len(body["tools"]) == 3 and body["ttlMs"] > 0 and body["cacheScope"] == "public"
    call = rpc(3, "tools/call", name="add", arguments={"a": 1, "b": 1}, _meta=META)
    called = await http.post(srv.url, json=call, headers=modern_headers(srv.key_a, "tools/call", "add"))
    assert called.json()["result"]["structuredContent"] == {"sum": 2}
    assert called.json()["result"]["resultType"] == "complete"
    encoded = "=?base64?" + base64.b64encode(b"whoami").decode() + "?="
    whoami = await http.post(
        srv.url,
        json=rpc(4, "tools/call", name="whoami", _meta=META),
        headers=modern_headers(srv.key_b, "tools/call", encoded, **{"Mcp-Session-Id": "ignored"}),
    )
    assert whoami.json()["result"]["structuredContent"] == {"tenant": srv.tenant_b}


async def test_modern_header_and_version_errors(srv: McpTestServer, http: httpx.AsyncClient) -> None:
    call = rpc(1, "tools/call", name="add", arguments={"a": 1, "b": 1}, _meta=META)
    no_method = await http.post(
        srv.url, json=call, headers=auth(srv.key_a, **{"MCP-Protocol-Version": MODERN, "Mcp-Name": "add"})
    )
    assert no_method.status_code == 400 and no_method.json()["error"]["code"] == -32020
    no_name = await http.post(srv.url, json=call, headers=modern_headers(srv.key_a, "tools/call"))
    assert no_name.status_code == 400 and "Mcp-Name" in no_name.json()["error"]["message"]
    wrong_name = await http.post(
        srv.url, json=call, headers=modern_headers(srv.key_a, "tools/call", "whoami")
    )
    assert wrong_name.status_code == 400 and wrong_name.json()["error"]["code"] == -32020
    wrong_method = await http.post(srv.url, json=call, headers=modern_headers(srv.key_a, "tools/list"))
    assert wrong_method.status_code == 400 and wrong_method.json()["error"]["code"] == -32020
    no_version_header = await http.post(
        srv.url, json=call, headers=auth(srv.key_a, **{"Mcp-Method": "tools/call", "Mcp-Name": "add"})
    )
    assert no_version_header.status_code == 400 and no_version_header.json()["error"]["code"] == -32020
    future = {**META, "io.modelcontextprotocol/protocolVersion": "2099-01-01"}
    unsupported = await http.post(
        srv.url,
        json=rpc(2, "server/discover", _meta=future),
        headers=auth(srv.key_a, **{"MCP-Protocol-Version": "2099-01-01", "Mcp-Method": "server/discover"}),
    )
    assert unsupported.status_code == 400
    error = unsupported.json()["error"]
    assert (
        error["code"] == -32022
        and error["data"]["requested"] == "2099-01-01"
        and MODERN in error["data"]["supported"]
    )
    no_caps = await http.post(
        srv.url,
        json=rpc(3, "tools/list", _meta={"io.modelcontextprotocol/protocolVersion": MODERN}),
        headers=modern_headers(srv.key_a, "tools/list"),
    )
    assert no_caps.status_code == 400 and "clientCapabilities" in no_caps.json()["error"]["message"]
    unknown = await http.post(
        srv.url,
        json=rpc(4, "resources/list", _meta=META),
        headers=modern_headers(srv.key_a, "resources/list"),
    )
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == -32601
    notification = await http.post(
        srv.url, json=rpc(None, "notifications/whatever", _meta=META), headers=modern_headers(srv.key_a, "x")
    )
    assert notification.status_code == 202


def sse_messages(text: str) -> list[dict[str, Any]]:
    out = []
    for block in text.split("\n\n"):
        data = [line[6:] for line in block.splitlines() if line.startswith("data: ")]
        if data:
            out.append(json.loads("\n".join(data)))
    return out


async def test_progress_streams_as_sse_before_the_result(srv: McpTestServer, http: httpx.AsyncClient) -> None:
    sid = await initialize(http, srv)
    call = rpc(5, "tools/call", name="slow", _meta={"progressToken": "p1"})
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_release_when_started, srv)
        r = await http.post(srv.url, json=call, headers=auth(srv.key_a, **{"Mcp-Session-Id": sid}))
    assert r.headers["content-type"] == "text/event-stream"
    messages = sse_messages(r.text)
    assert [m.get("method") for m in messages] == ["notifications/progress", "notifications/progress", None]
    assert messages[0]["params"] == {"progressToken": "p1", "progress": 1, "total": 2, "message": "halfway"}
    assert messages[-1]["id"] == 5 and messages[-1]["result"]["structuredContent"] == {"done": True}
    modern = rpc(6, "tools/call", name="add", arguments={"a": 1, "b": 2}, _meta={**META, "progressToken": 7})
    streamed = await http.post(srv.url, json=modern, headers=modern_headers(srv.key_a, "tools/call", "add"))
    assert streamed.headers["content-type"] == "text/event-stream"
    assert sse_messages(streamed.text)[-1]["result"]["structuredContent"] == {"sum": 3}
    sse_only = await http.post(
        srv.url,
        json=rpc(7, "tools/list"),
        headers={**auth(srv.key_a, **{"Mcp-Session-Id": sid}), "Accept": "text/event-stream"},
    )
    assert (
        sse_only.headers["content-type"] == "text/event-stream" and sse_messages(sse_only.text)[0]["id"] == 7
    )


async def _release_when_started(srv: McpTestServer) -> None:
    await srv.slow.started.wait()
    srv.slow.release.set()


async def test_closing_the_connection_cancels_the_call(srv: McpTestServer) -> None:
    call = rpc(1, "tools/call", name="slow", _meta=META)
    async with httpx.AsyncClient(timeout=10) as client, trio.open_nursery() as nursery:

        async def post() -> None:
            await client.post(srv.url, json=call, headers=modern_headers(srv.key_a, "tools/call", "slow"))

        nursery.start_soon(post)
        await srv.slow.started.wait()
        nursery.cancel_scope.cancel()  # the client hangs up
    with trio.fail_after(5):
        await srv.slow.cancelled.wait()


async def test_notifications_cancelled_cancels_a_legacy_call(
    srv: McpTestServer, http: httpx.AsyncClient
) -> None:
    sid = await initialize(http, srv)
    headers = auth(srv.key_a, **{"Mcp-Session-Id": sid})
    answer: list[httpx.Response] = []

    async def post() -> None:
        answer.append(
            await http.post(srv.url, json=rpc("call-1", "tools/call", name="slow"), headers=headers)
        )

    async with trio.open_nursery() as nursery:
        nursery.start_soon(post)
        await srv.slow.started.wait()
        cancel = rpc(None, "notifications/cancelled", requestId="call-1", reason="user")
        assert (await http.post(srv.url, json=cancel, headers=headers)).status_code == 202
    assert srv.slow.cancelled.is_set()
    assert answer[0].json()["error"]["code"] == -32800


async def test_a_client_that_never_finishes_its_body_gets_408(srv: McpTestServer) -> None:
    srv.endpoints.http.body_timeout_s = 0.2
    stream = await trio.open_tcp_stream("127.0.0.1", int(srv.url.split(":")[2].split("/")[0]))
    head = (
        f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {srv.key_a}\r\n"
        "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
    )
    await stream.send_all(head.encode())
    answer = b""
    with trio.fail_after(10):
        while b"\r\n\r\n" not in answer:
            answer += await stream.receive_some(4096)
    assert answer.startswith(b"HTTP/1.1 408")
    await stream.aclose()


async def test_a_client_streaming_bytes_into_a_slow_call_is_disconnected_and_the_call_cancelled(
    srv: McpTestServer,
) -> None:
    # While the call runs the server only listens for the client going; 64 MiB more from
    # the client would have been read and kept whole (http/hypercorn_tcp.py).
    body = json.dumps(rpc(1, "tools/call", name="slow", _meta=META)).encode()
    headers = modern_headers(srv.key_a, "tools/call", "slow", **{"Content-Type": "application/json"})
    head = "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    port = int(srv.url.split(":")[2].split("/")[0])
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
    await srv.slow.started.wait()
    offered, sent, chunk = 64 * 1024 * 1024, 0, b"x" * 65536
    try:
        while sent < offered:
            await stream.send_all(chunk)
            sent += len(chunk)
    except trio.BrokenResourceError:
        pass  # the server closed the connection
    assert sent < offered, "the server took all 64 MiB while the call ran"
    with trio.fail_after(10):  # a guard: the call is cancelled as the connection closes
        await srv.slow.cancelled.wait()
    await stream.aclose()
