"""The MCP conformance suite's authorization-server scenarios against the daemon's
built-in authorization server.

The pinned suite of test_conformance.py (0.1.16) has no server-side authorization
scenarios: its `auth/*` scenarios test clients. Its 0.2 pre-releases add an
`authorization` command that tests an authorization server; `authorization/` beside
this file pins one (0.2.0-alpha.12, installed with `npm ci` like the other) and this
test runs every scenario it has: `authorization-server-metadata-endpoint` (RFC 8414
metadata) and `authorization-code-grant` (PKCE S256, `state`, `iss`, the token
response's status, type and `Cache-Control: no-store`). The suite prints the authorize
URL for a person to open; here the consent page is filled in over HTTP with a tenant's
connect code, and its redirect goes to the suite's own callback server on loopback.

Every scenario must pass unless EXPECTED_FAILURES names it with its reason (none do).
"""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import httpx
import pytest
import trio

from deneva.clock import SystemClock
from deneva.oauth.server import AuthorizationServer
from tests.conformance.suite import HERE, cache_base, install_suite, node_bin_dir, node_env, pinned_version
from tests.mcp.daemon_fixture import TenantSpec, running_daemon
from tests.mcp.oauth_flow import consent

SOURCE = HERE / "authorization"
SCENARIOS = ("authorization-server-metadata-endpoint", "authorization-code-grant")
EXPECTED_FAILURES: dict[str, str] = {}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _checks(output_dir: Path) -> dict[str, list[dict[str, object]]]:
    """Per scenario, the checks the suite wrote (`<dir>/<...scenario...>/checks.json`)."""
    out: dict[str, list[dict[str, object]]] = {}
    for checks_file in output_dir.glob("*/checks.json"):
        for scenario in SCENARIOS:
            if scenario in checks_file.parent.name:
                out[scenario] = json.loads(checks_file.read_text())
    return out


async def test_authorization_server_conformance_scenarios(tmp_path: Path, database_url: str) -> None:
    root = await trio.to_thread.run_sync(install_suite, None, SOURCE)
    cli = root / "node_modules" / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
    assert (root / ".installed").read_text().strip() == pinned_version(SOURCE)
    port = _free_port()
    callback = f"http://127.0.0.1:{port}/callback"
    async with (
        running_daemon(tmp_path, database_url, [TenantSpec("acme", (("google", "4405550101"),))]) as daemon,
        httpx.AsyncClient(timeout=10) as http,
    ):
        registered = await http.post(
            f"{daemon.base}/register",
            json={
                "client_name": "conformance",
                "redirect_uris": [callback],
                "token_endpoint_auth_method": "none",
            },
        )
        client_id = registered.json()["client_id"]
        code, _ = await AuthorizationServer(daemon.db, SystemClock()).create_connect_code("acme")
        output_dir = tmp_path / "out"
        command = [
            str(node_bin_dir() / "node"),
            str(cli),
            "authorization",
            "--url",
            daemon.base + "/",
            "--client-id",
            client_id,
            "--resource",
            daemon.url,
            "--port",
            str(port),
            "--output-dir",
            str(output_dir),
        ]
        printed: list[str] = []
        process = await trio.lowlevel.open_process(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=node_env(cache_base())
        )
        try:
            assert process.stdout is not None
            with trio.fail_after(120):
                pending = b""
                authorized = False
                async for chunk in process.stdout:
                    pending += chunk
                    *lines, rest = pending.split(b"\n")
                    pending = rest
                    for raw in lines:
                        line = raw.decode(errors="replace").strip()
                        printed.append(line)
                        if line.startswith(f"{daemon.base}/authorize?") and not authorized:
                            answer = await consent(http, line, connect_code=code)
                            assert answer.status_code == 302, answer.text
                            # The browser would follow the redirect to the suite's callback.
                            landed = await http.get(answer.headers["location"])
                            assert landed.status_code < 500
                            authorized = True
                await process.wait()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    output = "\n".join(printed)
    assert authorized, f"the suite never printed an authorize URL:\n{output[-3000:]}"
    results = _checks(output_dir)
    assert sorted(results) == sorted(SCENARIOS), f"scenarios without results:\n{output[-3000:]}"
    failures = {
        scenario: [c for c in checks if c.get("status") in ("FAILURE", "WARNING")]
        for scenario, checks in results.items()
    }
    unexpected = {s: f for s, f in failures.items() if f and s not in EXPECTED_FAILURES}
    if unexpected:
        pytest.fail(
            f"authorization scenarios failed: {json.dumps(unexpected, indent=1)[:4000]}", pytrace=False
        )
    assert all(any(c.get("status") == "SUCCESS" for c in checks) for checks in results.values()), results
