"""`deneva bench mcp`: MCP `tools/call` cache hits, deneva beside the official Python SDK.

What it does, on a throwaway database `deneva_bench_mcp_<pid>` made on the configured
server (the embedded one under the state directory, or DENEVA_DATABASE_URL's) and
dropped at the end, whatever happens:

1. Migrates it and provisions a tenant `bench`, an API key, a Meta account connected
   to the tenant (a credential sealed with the run's own KEK), and one metric_cache
   row for `account_health` / `last_7_days`: a real analysis of the sandbox account's
   last 14 days (about 3 KB of JSON), fresh for a day, so every call is a hit.
2. deneva: `deneva run` in a subprocess on that database (secrets made by `deneva
   secrets init` in a temporary directory, HTTP on a free loopback port, log level
   warning), serving `POST /mcp`.
3. The SDK: `python -m deneva.bench.mcp_peer`, the `mcp` package's MCPServer under
   uvicorn, stateful Streamable HTTP with JSON responses, the same tool reading the
   same row through the same database function (one call at a time, as the SDK's tools
   run; deneva batches concurrent calls into one statement), bearer auth on the same
   API key, remembered after its first check as deneva does, a pool as large as
   deneva's.
4. For each server in turn (the other one stopped), the load generator
   (`python -m deneva.bench.loadgen`, a process of its own, raw JSON-RPC over
   keep-alive HTTP/1.1) opens `sessions` MCP sessions, warms up, offers `rate` calls/s
   open loop for `duration` s (latency from each call's due time), then runs closed
   loop for `duration` s for the peak requests/s. Every answer is checked (HTTP 200,
   the request's id, no error, `isError` false, `cache` "hit").
   With `oauth` (`deneva bench mcp --oauth`), deneva is measured a second time, row
   `oauth`: the same daemon and calls, each carrying an OAuth access token of the
   built-in authorization server (a grant made through its own code path: registration,
   a connect code, PKCE, the code exchange) instead of the API key; SPEC §13 wants its
   p50 and p99 within 10 % of the API key's.
5. It does that `rounds` times (default 3), the servers taking turns, and reports for
   each server the round with the median p99 (latency) and the one with the median
   peak, listing every round: on a shared VM one round can be off by a third.

Targets (SPEC §13): deneva p50 <= 2 ms and p99 <= 10 ms at 500 calls/s over 50 sessions,
and deneva's peak >= 2x the SDK server's. Missing a target is reported, not an error.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import httpx
import trio

from deneva.admin import AppLogin, database_urls, owner_url, provision_login, run_async
from deneva.bench import mcp_peer
from deneva.bench.common import BenchError, Say, database_where, print_report, say_to_stderr
from deneva.bench.engine import ServerInfo, ThrowawayDatabase, database_dsn, machine_info, server_info
from deneva.config import Config
from deneva.db import Database

TARGET_P50_MS = 2.0
TARGET_P99_MS = 10.0
TARGET_RATIO = 2.0
TARGET_OAUTH_OVERHEAD = 0.10  # an OAuth token's p50 and p99 at most 10 % above the API key's
TOOL = "get_account_health"
TENANT = "bench"
PLATFORM = "meta"
ACCOUNT = "1001"
REPORT_TYPE = "account_health"
DATE_RANGE = "last_7_days"
CACHE_TTL_S = 24 * 3600.0
WARMUP_S = 2.0
START_TIMEOUT_S = 60.0
SERVER_ORDER = ("deneva", "sdk")
BACKGROUND_SAMPLE_S = 1.0
BUSY_WARNING_PCT = 15.0  # other processes this busy make the figures unreliable
LOG_TAIL = 20

if TYPE_CHECKING:
    from deneva.credentials import Keyring


def tool_arguments() -> dict[str, Any]:
    return {"platform": PLATFORM, "dateRange": DATE_RANGE, "accountId": ACCOUNT}


# -- the cache row ---------------------------------------------------------------------------------


def bench_payload(today: date) -> dict[str, Any]:
    """What the sync would cache for the sandbox account: its account_health analysis."""
    from deneva.sandbox.data import account_for, campaign_day
    from deneva.sync.analyse import analyse

    account = account_for(PLATFORM, ACCOUNT)
    rows = []
    for back in range(1, 15):  # the range and the one before it
        day = today - timedelta(days=back)
        for campaign in account.campaigns:
            measures = campaign_day(account, campaign, day)
            rows.append(
                {
                    "date": day.isoformat(),
                    "campaign_id": campaign.id,
                    "campaign_name": campaign.name,
                    "status": campaign.status,
                    "impressions": measures.impressions,
                    "clicks": measures.clicks,
                    "cost": measures.cost_micros / 1_000_000,
                    "conversions": measures.conversions,
                    "conversion_value": measures.conversions_value,
                    "daily_budget": campaign.daily_budget,
                }
            )
    return analyse(REPORT_TYPE, rows, today, DATE_RANGE)


@attrs.frozen(repr=False)
class Provisioned:
    tenant_id: uuid.UUID
    api_key: str
    payload_bytes: int

    def __repr__(self) -> str:
        return f"Provisioned(tenant_id={self.tenant_id}, api_key=***)"


async def issue_access_token(dsn: str, resource: str) -> str:
    """An access token of the built-in authorization server for the bench tenant, for
    `resource` (the daemon's MCP URL): registration, a connect code, PKCE and the code
    exchange, through the authorization server's own functions."""
    import secrets as random_secrets

    from authlib.oauth2.rfc7636 import create_s256_code_challenge

    from deneva.clock import SystemClock
    from deneva.oauth.server import AuthorizationServer, ClientCredentials

    db = await Database.open(dsn, min_size=1, max_size=2)
    try:
        server = AuthorizationServer(db, SystemClock())
        redirect = "http://127.0.0.1/callback"
        client = (
            await server.register(
                {
                    "client_name": "deneva bench",
                    "redirect_uris": [redirect],
                    "token_endpoint_auth_method": "none",
                }
            )
        ).client
        code, _ = await server.create_connect_code(TENANT)
        tenant = await server.redeem_connect_code(code)
        if tenant is None:
            raise BenchError("the bench tenant's connect code was refused")
        verifier = random_secrets.token_urlsafe(48)
        request = await server.check_authorization(
            {
                "response_type": "code",
                "client_id": client.client_id,
                "redirect_uri": redirect,
                "code_challenge": create_s256_code_challenge(verifier),
                "code_challenge_method": "S256",
                "resource": resource,
            },
            resource,
        )
        grant_code = await server.approve(request, tenant, "bench")
        issued = await server.exchange_code(
            ClientCredentials(client.client_id), {"code": grant_code, "code_verifier": verifier}, resource
        )
    finally:
        await db.close()
    return issued.access_token


async def provision(dsn: str, env: str, keys: Keyring) -> Provisioned:
    """Migrate, then a tenant, its API key, a connected account and the cache row."""
    from deneva import tenants
    from deneva.credentials import PlainTokens, store_credential
    from deneva.migrations import apply_migrations
    from deneva.sync.cache import CacheKey, write

    await apply_migrations(dsn, env)
    db = await Database.open(dsn, min_size=1, max_size=2)
    try:

        async def setup(conn: Any) -> tuple[uuid.UUID, str]:
            tenant = await tenants.add_tenant(conn, TENANT)
            await store_credential(conn, keys, TENANT, PLATFORM, ACCOUNT, PlainTokens(None, "bench-token"))
            key = await tenants.create_key(conn, TENANT, "bench")
            return tenant.id, key.plaintext

        tenant_id, api_key = await db.transaction(setup)
        payload = bench_payload(datetime.now(UTC).date())
        key = CacheKey(tenant_id, PLATFORM, ACCOUNT, REPORT_TYPE, DATE_RANGE)
        await write(db, key, payload, time.time(), CACHE_TTL_S)
    finally:
        await db.close()
    return Provisioned(tenant_id, api_key, len(json.dumps(payload)))


# -- servers -----------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("DENEVA_")}


def _tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-LOG_TAIL:])


class ServerProcess:
    """A server in a subprocess, its output in a log file; stopped with SIGTERM (then SIGKILL)."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], port: int, log: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.port = port
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, ready_path: str) -> float:
        """Start it; the seconds until `ready_path` answered (any status below 500)."""
        began = time.perf_counter()
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = began + START_TIMEOUT_S
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                raise BenchError(
                    f"{self.name} exited with status {self.process.returncode} while starting:\n"
                    f"{_tail(self.log)}"
                )
            try:
                status = httpx.get(f"http://127.0.0.1:{self.port}{ready_path}", timeout=1).status_code
                if status < 500:
                    return time.perf_counter() - began
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise BenchError(f"{self.name} did not answer within {START_TIMEOUT_S:.0f} s:\n{_tail(self.log)}")

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def deneva_server(
    dsn: str,
    env_name: str,
    workdir: Path,
    secrets_dir: Path,
    workers: int,
    name: str = "deneva",
    app_dsn: str | None = None,
) -> ServerProcess:
    """`deneva run` on the database `dsn` (the owner's URL, which migrates), its pool
    logging in as `app_dsn`'s login (one that row-level security binds, as the daemon
    requires; None: `dsn`'s)."""
    port = free_port()
    env = _clean_env()
    env.update(
        DENEVA_DATABASE_URL=app_dsn or dsn,
        DENEVA_MIGRATE_DATABASE_URL=dsn,
        DENEVA_WORKERS=str(workers),
        DENEVA_ENV=env_name,
        DENEVA_HTTP_BIND=f"127.0.0.1:{port}",
        DENEVA_SECRETS_DIR=str(secrets_dir),
        DENEVA_STATE_DIR=str(workdir / "state"),
        DENEVA_LOG_LEVEL="warning",
        DENEVA_LOG_FORMAT="json",
    )
    argv = [sys.executable, "-m", "deneva", "run"]
    return ServerProcess(name, argv, env, port, workdir / f"{name}.log")


def sdk_server(dsn: str, workdir: Path, pool_size: int) -> ServerProcess:
    port = free_port()
    env = _clean_env()
    env[mcp_peer.DSN_ENV] = dsn
    argv = [sys.executable, "-m", "deneva.bench.mcp_peer", "--port", str(port), "--pool-size", str(pool_size)]
    return ServerProcess("sdk", argv, env, port, workdir / "sdk.log")


def probe_call(url: str, api_key: str) -> str | None:
    """One session and one tools/call with httpx: None when it is a good hit, else what is wrong."""
    from deneva.bench.loadgen import PROTOCOL_VERSION, HttpResponse, call_outcome

    headers = {
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
        "Authorization": f"Bearer {api_key}",
    }
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": PROTOCOL_VERSION, "capabilities": {}, "clientInfo": {"name": "probe"}},
    }
    try:
        with httpx.Client(timeout=10) as client:
            answer = client.post(url, json=init, headers=headers)
            if answer.status_code != 200:
                return f"initialize: HTTP {answer.status_code} {answer.text[:200]}"
            session = answer.headers.get("mcp-session-id")
            if session:
                headers["Mcp-Session-Id"] = session
            version = answer.json().get("result", {}).get("protocolVersion", PROTOCOL_VERSION)
            headers["MCP-Protocol-Version"] = version
            client.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
            call = {
                "jsonrpc": "2.0",
                "id": 2,
                "method": "tools/call",
                "params": {"name": TOOL, "arguments": tool_arguments()},
            }
            answer = client.post(url, json=call, headers=headers)
    except (httpx.HTTPError, ValueError) as exc:
        return f"probe failed: {exc}"
    response = HttpResponse(answer.status_code, dict(answer.headers), answer.content)
    outcome = call_outcome(response, 2, "hit")
    if outcome is None:
        return None
    return f"tools/call {TOOL}: {outcome}: {answer.text[:300]}"


def run_loadgen(
    server: ServerProcess, api_key: str, sessions: int, rate: float, duration_s: float, warmup_s: float
) -> dict[str, Any]:
    """The load generator in its own process against one server; its JSON."""
    argv = [
        sys.executable,
        "-m",
        "deneva.bench.loadgen",
        "--url",
        server.url,
        "--sessions",
        str(sessions),
        "--rate",
        str(rate),
        "--duration",
        str(duration_s),
        "--peak-duration",
        str(duration_s),
        "--warmup",
        str(warmup_s),
        "--tool",
        TOOL,
        "--arguments",
        json.dumps(tool_arguments()),
        "--server-pid",
        str(server.pid),
        "--json",
    ]
    from deneva.bench.loadgen import API_KEY_ENV

    env = _clean_env()
    env[API_KEY_ENV] = api_key
    done = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=None, text=True, check=False)
    if done.returncode != 0:
        raise BenchError(f"the load generator failed against {server.name} (exit {done.returncode})")
    try:
        result: dict[str, Any] = json.loads(done.stdout)
    except ValueError:
        raise BenchError(f"the load generator printed no JSON for {server.name}") from None
    return result


# -- the report --------------------------------------------------------------------------------------


@attrs.frozen
class ServerResult:
    name: str
    version: str
    result: dict[str, Any] | None = None
    not_measured: str | None = None
    start_s: float | None = None
    background_busy_pct: float | None = None  # the machine, just before the server started
    rounds: tuple[dict[str, Any], ...] = ()  # every round's summary (see combine_rounds)

    @property
    def open_loop(self) -> dict[str, Any] | None:
        return None if self.result is None else self.result.get("open_loop")

    @property
    def peak(self) -> dict[str, Any] | None:
        return None if self.result is None else self.result.get("peak")

    @property
    def peak_per_s(self) -> float | None:
        peak = self.peak
        return None if peak is None else float(peak["requests_per_s"])

    def latency_met(self) -> bool | None:
        loop = self.open_loop
        if loop is None or loop["p50_ms"] is None:
            return None
        return bool(
            loop["p50_ms"] <= TARGET_P50_MS
            and loop["p99_ms"] <= TARGET_P99_MS
            and loop["errors"] == 0
            and loop["achieved_per_s"] >= 0.99 * loop["offered_per_s"]
        )

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": "ok" if self.result is not None else "not measured"}
        out["version"] = self.version
        if self.not_measured:
            out["reason"] = self.not_measured
        if self.start_s is not None:
            out["start_s"] = round(self.start_s, 2)
        out["background_busy_pct"] = self.background_busy_pct
        if self.rounds:
            out["rounds"] = list(self.rounds)
        if self.result is not None:
            out.update(self.result)
            peak = self.peak
            if peak is not None:
                per_call = cpu_per_call_ms(peak)
                out["peak"] = {
                    **peak,
                    "server_cpu_ms_per_call": None if per_call is None else round(per_call, 3),
                }
        return out


@attrs.frozen
class Report:
    sessions: int
    rate: float
    duration_s: float
    server: ServerInfo
    payload_bytes: int
    servers: tuple[ServerResult, ...]
    rounds: int = 1

    def by_name(self, name: str) -> ServerResult | None:
        return next((s for s in self.servers if s.name == name), None)

    def oauth_overhead(self) -> dict[str, float] | None:
        """The OAuth token's open-loop p50 and p99 over the API key's (1.0: the same), when both ran."""
        key, token = self.by_name("deneva"), self.by_name("oauth")
        a, b = (None if s is None else s.open_loop for s in (key, token))
        if a is None or b is None or not a.get("p50_ms") or not a.get("p99_ms") or b.get("p50_ms") is None:
            return None
        return {
            "p50": float(b["p50_ms"]) / float(a["p50_ms"]),
            "p99": float(b["p99_ms"]) / float(a["p99_ms"]),
        }

    def oauth_met(self) -> bool | None:
        overhead = self.oauth_overhead()
        if overhead is None:
            return None
        return all(v <= 1 + TARGET_OAUTH_OVERHEAD for v in overhead.values())

    @property
    def ratio(self) -> float | None:
        ours, theirs = self.by_name("deneva"), self.by_name("sdk")
        if ours is None or theirs is None or not ours.peak_per_s or not theirs.peak_per_s:
            return None
        return ours.peak_per_s / theirs.peak_per_s

    def as_json(self) -> dict[str, Any]:
        ratio = self.ratio
        deneva = self.by_name("deneva")
        return {
            "benchmark": "mcp",
            "machine": machine_info(),
            "postgres": self.server.as_json(),
            "tool": TOOL,
            "arguments": tool_arguments(),
            "payload_bytes": self.payload_bytes,
            "sessions": self.sessions,
            "offered_per_s": self.rate,
            "duration_s": self.duration_s,
            "rounds": self.rounds,
            "servers": {s.name: s.as_json() for s in self.servers},
            "peak_ratio": None if ratio is None else round(ratio, 2),
            "targets": {
                "p50_ms": TARGET_P50_MS,
                "p99_ms": TARGET_P99_MS,
                "peak_ratio": TARGET_RATIO,
                "latency_met": None if deneva is None else deneva.latency_met(),
                "ratio_met": None if ratio is None else ratio >= TARGET_RATIO,
                "oauth_overhead": TARGET_OAUTH_OVERHEAD,
                "oauth_met": self.oauth_met(),
            },
            "oauth_vs_api_key": None
            if (overhead := self.oauth_overhead()) is None
            else {k: round(v, 3) for k, v in overhead.items()},
        }

    def table(self) -> str:
        machine = machine_info()
        lines = [
            f"deneva MCP benchmark: {machine['cores']} cores, Python {machine['python']}, "
            f"PostgreSQL {self.server.version} (fsync {self.server.fsync}, synchronous_commit "
            f"{self.server.synchronous_commit}), {self.server.where}",
            f"tools/call {TOOL} cache hit ({self.payload_bytes:,} bytes of data), {self.sessions} sessions; "
            f"open loop {self.rate:g} calls/s offered for {self.duration_s:g} s, then closed loop "
            f"for {self.duration_s:g} s (peak); latency in ms from each call's due time"
            + (
                f"; {self.rounds} rounds, the servers taking turns, each figure the median round's"
                if self.rounds > 1
                else ""
            ),
            "",
            *(f"{server.name:<8} {server.version}" for server in self.servers),
            "",
            f"{'server':<8} {'offered':>8} {'achieved':>9} {'p50':>7} {'p90':>7} {'p99':>7} {'max':>8} "
            f"{'errors':>6} {'peak req/s':>11} {'peak p50':>9} {'peak errors':>11}",
        ]
        notes = []
        for server in self.servers:
            label = server.name
            loop, peak = server.open_loop, server.peak
            if loop is None or peak is None:
                lines.append(f"{label:<8} not measured: {server.not_measured}")
                continue
            lines.append(
                f"{label:<8} {loop['offered_per_s']:>8,.0f} {loop['achieved_per_s']:>9,.1f} "
                f"{_ms(loop['p50_ms']):>7} {_ms(loop['p90_ms']):>7} {_ms(loop['p99_ms']):>7} "
                f"{_ms(loop['max_ms']):>8} {loop['errors']:>6} {peak['requests_per_s']:>11,.0f} "
                f"{_ms(peak['p50_ms']):>9} {peak['errors']:>11}"
            )
            if server.background_busy_pct is not None and server.background_busy_pct > BUSY_WARNING_PCT:
                notes.append(
                    f"  WARNING: other processes kept the machine {server.background_busy_pct:.0f} % busy "
                    f"just before {server.name} started: its figures are not reliable"
                )
            if len(server.rounds) > 1:
                notes.append(
                    f"  {server.name} rounds (p50 / p99 ms at {loop['offered_per_s']:g}/s, peak req/s): "
                    + "; ".join(
                        f"{_ms(r['p50_ms'])} / {_ms(r['p99_ms'])}, {r['peak_per_s']:,.0f}"
                        if r["measured"]
                        else "not measured"
                        for r in server.rounds
                    )
                )
            kinds = {**loop["error_kinds"], **{f"peak {k}": v for k, v in peak["error_kinds"].items()}}
            if kinds:
                notes.append(f"  {server.name} errors: {kinds}")
            notes.append(
                f"  {server.name}: CPU at {loop['offered_per_s']:g}/s: "
                f"server {_pct(loop['server_cpu_pct'])}, "
                f"load generator {_pct(loop['loadgen_cpu_pct'])}, machine {_pct(loop['machine_busy_pct'])}; "
                f"at peak: server {_pct(peak['server_cpu_pct'])} ({_ms(cpu_per_call_ms(peak))} ms of "
                f"server CPU a call), load generator "
                f"{_pct(peak['loadgen_cpu_pct'])}, machine {_pct(peak['machine_busy_pct'])}; "
                f"generator send lag p99 {_ms(loop['send_lag']['p99_ms'])} ms, "
                f"{loop['queued']} calls queued behind their session's previous one"
            )
        lines += ["", "notes:", *notes] if notes else []
        lines.append("")
        deneva = self.by_name("deneva")
        met = None if deneva is None else deneva.latency_met()
        if met is None:
            lines.append(
                f"deneva latency target (p50 <= {TARGET_P50_MS:g} ms, p99 <= {TARGET_P99_MS:g} ms): "
                "not measured"
            )
        else:
            lines.append(
                f"deneva latency target (p50 <= {TARGET_P50_MS:g} ms, p99 <= {TARGET_P99_MS:g} ms at "
                f"{self.rate:g} calls/s, no errors): {_verdict(met)}"
            )
        ratio = self.ratio
        if ratio is None:
            lines.append(f"deneva / SDK peak requests/s (target >= {TARGET_RATIO:g}x): not measured")
        else:
            lines.append(
                f"deneva / SDK peak requests/s: {ratio:.2f}x (target >= {TARGET_RATIO:g}x: "
                f"{_verdict(ratio >= TARGET_RATIO)})"
            )
        overhead = self.oauth_overhead()
        if overhead is not None:
            lines.append(
                f"OAuth token / API key at {self.rate:g} calls/s: p50 {overhead['p50']:.2f}x, p99 "
                f"{overhead['p99']:.2f}x (target <= {1 + TARGET_OAUTH_OVERHEAD:.2f}x: "
                f"{_verdict(bool(self.oauth_met()))})"
            )
        elif self.by_name("oauth") is not None:
            lines.append("OAuth token / API key: not measured")
        return "\n".join(lines)


def cpu_per_call_ms(phase: dict[str, Any]) -> float | None:
    """The server process's CPU time per good answer in a phase (Postgres's not included)."""
    cpu, rate = phase.get("server_cpu_pct"), phase.get("requests_per_s") or phase.get("achieved_per_s")
    if cpu is None or not rate:
        return None
    return float(cpu) / 100 / float(rate) * 1000


def round_summary(result: ServerResult) -> dict[str, Any]:
    loop, peak = result.open_loop, result.peak
    if loop is None or peak is None:
        return {"measured": False, "reason": result.not_measured}
    per_call = cpu_per_call_ms(peak)
    return {
        "measured": True,
        "p50_ms": loop["p50_ms"],
        "p99_ms": loop["p99_ms"],
        "open_loop_errors": loop["errors"],
        "peak_per_s": peak["requests_per_s"],
        "server_cpu_ms_per_call": None if per_call is None else round(per_call, 3),
    }


def combine_rounds(results: Sequence[ServerResult]) -> ServerResult:
    """One server's rounds as one result: the open loop of the round with the median p99,
    the peak of the round with the median peak (upper median), every round listed."""
    measured = [r for r in results if r.open_loop is not None and r.peak is not None]
    summaries = tuple(round_summary(r) for r in results)
    if not measured:
        return attrs.evolve(results[0], rounds=summaries)
    by_p99 = sorted(measured, key=lambda r: float((r.open_loop or {}).get("p99_ms") or math.inf))
    by_peak = sorted(measured, key=lambda r: float(r.peak_per_s or 0.0))
    latency, peak = by_p99[len(by_p99) // 2], by_peak[len(by_peak) // 2]
    result = {**(peak.result or {}), "open_loop": latency.open_loop}
    return attrs.evolve(peak, result=result, rounds=summaries)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} %"


def _verdict(met: bool) -> str:
    return "met" if met else "MISSED"


# -- entry points ------------------------------------------------------------------------------------


def _deneva_version() -> str:
    from deneva import __version__

    return __version__


def measure_server(
    server: ServerProcess,
    ready_path: str,
    provisioned: Provisioned,
    args: MeasureArgs,
    say: Say,
    credential: str | None = None,
) -> ServerResult:
    """Start, probe, load, stop; `credential` (default the API key) on every request."""
    from deneva.bench.loadgen import machine_busy_pct

    credential = credential or provisioned.api_key
    version = args.versions[server.name]
    background = machine_busy_pct(BACKGROUND_SAMPLE_S)
    if background is not None and background > BUSY_WARNING_PCT:
        say(f"warning: the machine is {background:.0f} % busy before {server.name} starts")
    try:
        start_s = server.start(ready_path)
        problem = probe_call(server.url, credential)
        if problem is not None:
            say(f"{server.name}: not measured: {problem}")
            return ServerResult(server.name, version, not_measured=problem, start_s=start_s)
        say(f"{server.name} {version}: serving at {server.url} (pid {server.pid})")
        result = run_loadgen(server, credential, args.sessions, args.rate, args.duration_s, args.warmup_s)
        return ServerResult(
            server.name, version, result=result, start_s=start_s, background_busy_pct=background
        )
    finally:
        server.stop()


@attrs.frozen
class MeasureArgs:
    sessions: int
    rate: float
    duration_s: float
    warmup_s: float
    versions: dict[str, str]


def run_benchmark(
    server_dsn: str,
    *,
    env: str,
    sessions: int,
    rate: float,
    duration_s: float,
    rounds: int = 1,
    warmup_s: float = WARMUP_S,
    workers: int = 256,
    where: str = "",
    servers: Sequence[str] = SERVER_ORDER,
    say: Say = say_to_stderr,
    oauth: bool = False,
    app_dsn: str | None = None,
    login: AppLogin | None = None,
) -> Report:
    """With `oauth`, deneva measured again with an OAuth access token (row `oauth`).
    `app_dsn`: a URL on the same server for the daemon's pool login (`login`, provisioned
    after the migrations on the embedded server); None: `server_dsn`'s."""
    if oauth and "oauth" not in servers:
        servers = (*servers[:1], "oauth", *servers[1:]) if servers[:1] == ("deneva",) else (*servers, "oauth")
    from deneva.secrets import init_secrets, load_secrets

    info = run_async(lambda: server_info(server_dsn, where))
    name = f"deneva_bench_mcp_{os.getpid()}"
    workdir = Path(tempfile.mkdtemp(prefix="deneva-bench-mcp-"))
    peer_versions = mcp_peer.versions()
    versions = {
        "deneva": f"deneva {_deneva_version()}: `deneva run` (hypercorn, trio)",
        "sdk": f"mcp {peer_versions['mcp']}: MCPServer, stateful, JSON responses, under uvicorn "
        f"{peer_versions['uvicorn']} ({peer_versions['http']}, {peer_versions['loop']})",
        "oauth": f"deneva {_deneva_version()}: the same, with an OAuth access token instead of the API key",
    }
    measure = MeasureArgs(sessions, rate, duration_s, warmup_s, versions)
    say(f"PostgreSQL {info.version}; {os.cpu_count()} cores; database {name}; work directory {workdir}")
    try:
        secrets_dir = workdir / "secrets"
        init_secrets(secrets_dir)
        keys = load_secrets(secrets_dir).keyring()
        with ThrowawayDatabase(server_dsn, name, info) as dsn:
            provisioned = trio.run(provision, dsn, env, keys)
            if login is not None:
                run_async(lambda: provision_login(dsn, login))
            pool_dsn = None if app_dsn is None else database_dsn(app_dsn, name)
            say(f"provisioned tenant {TENANT!r}, its key and a {provisioned.payload_bytes:,}-byte cache row")
            rounds_of: dict[str, list[ServerResult]] = {which: [] for which in servers}
            for turn in range(rounds):
                if rounds > 1:
                    say(f"round {turn + 1} of {rounds}")
                for which in servers:
                    rounds_of[which].append(
                        _measure_one(
                            which,
                            dsn,
                            env,
                            workdir,
                            secrets_dir,
                            workers,
                            provisioned,
                            measure,
                            versions,
                            say,
                            pool_dsn,
                        )
                    )
            results = [
                combine_rounds(rounds_of[which]) if rounds > 1 else rounds_of[which][0] for which in servers
            ]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return Report(sessions, rate, duration_s, info, provisioned.payload_bytes, tuple(results), rounds)


def _measure_one(
    which: str,
    dsn: str,
    env: str,
    workdir: Path,
    secrets_dir: Path,
    workers: int,
    provisioned: Provisioned,
    measure: MeasureArgs,
    versions: dict[str, str],
    say: Say,
    app_dsn: str | None = None,
) -> ServerResult:
    if which in ("deneva", "oauth"):
        server = deneva_server(dsn, env, workdir, secrets_dir, workers, name=which, app_dsn=app_dsn)
        token = None if which == "deneva" else trio.run(issue_access_token, dsn, server.url)
        return measure_server(server, "/healthz", provisioned, measure, say, token)
    missing = mcp_peer.missing_package()
    if missing is not None:
        why = f"the package {missing!r} is not installed (pip install 'deneva[bench]')"
        say(f"sdk: not measured: {why}")
        return ServerResult("sdk", versions["sdk"], not_measured=why)
    server = sdk_server(dsn, workdir, deneva_pool_size(workers))
    return measure_server(server, "/mcp", provisioned, measure, say)


def deneva_pool_size(workers: int) -> int:
    """The daemon's pool size for its `workers` setting (runtime.Daemon.run)."""
    return max(4, min(workers, 20))


def run_mcp_bench(
    config: Config,
    sessions: int,
    rate: float,
    duration_s: float,
    as_json: bool,
    rounds: int = 1,
    oauth: bool = False,
) -> int:
    """`deneva bench mcp`: print the figures; the exit code (0 when it ran, targets missed or not)."""
    where = database_where(config)

    def produce() -> Report:
        with database_urls(config) as urls:
            return run_benchmark(
                owner_url(urls),
                app_dsn=urls.app,
                login=urls.login,
                env=config.env,
                sessions=sessions,
                rate=rate,
                duration_s=duration_s,
                rounds=rounds,
                workers=config.workers,
                where=where,
                oauth=oauth,
            )

    return print_report("mcp", produce, as_json)
