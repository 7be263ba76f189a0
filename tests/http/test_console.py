"""The operator console over real HTTP without a browser (issue 15): sign-in and its
cookie, the pages' text and headers, and every kind of bad input: forged or missing CSRF
tokens, expired sessions, read-only sessions posting actions, garbage filters. Each
refusal is the right 4xx with a clear message, and nothing is written."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import trio

from deneva import tenants
from deneva.clock import as_datetime
from deneva.console_auth import SESSION_COOKIE, ConsoleSettings
from deneva.credentials import PlainTokens, store_credential
from deneva.db import Database
from tests.conftest import Cluster
from tests.http.console_fixtures import (
    ADMIN_TOKEN,
    READONLY_TOKEN,
    ConsoleServer,
    console_server,
    hidden_fields,
    operator,
    text_of,
)
from tests.sync.harness import KEYS

PAGES = ("/admin/", "/admin/sync", "/admin/runs", "/admin/functions", "/admin/tenants")


async def _audit_types(db: Database) -> list[str]:
    return [r["event_type"] for r in await db.fetch("SELECT event_type FROM audit_log ORDER BY id")]


async def _failed_run(
    server: ConsoleServer, function: str = "on-signup", data: dict[str, Any] | None = None
) -> uuid.UUID:
    """A run of `function` that failed (made through the engine, its end written in SQL:
    no dispatcher runs here)."""
    run_id = await server.engine.invoke(function, data or {})
    await server.db.execute(
        "UPDATE engine_runs SET status = 'failed', attempt = 3, finished_at = $2, last_error = 'boom', "
        "last_traceback = 'Traceback (most recent call last):\n  ValueError: boom' WHERE id = $1",
        run_id,
        as_datetime(server.clock.now()),
    )
    return run_id


async def test_signing_in_gives_a_strict_session_cookie_and_every_page_shows_its_text_safely(
    db: Database,
) -> None:
    async with console_server(db) as server, operator(server) as op:
        anonymous = await op.get("/admin/runs?status=failed")
        assert anonymous.status_code == 401
        assert "Sign in to the deneva console" in text_of(anonymous.text)
        login_cookie = anonymous.headers["set-cookie"]
        assert (
            "HttpOnly" in login_cookie and "SameSite=Strict" in login_cookie and "Path=/admin" in login_cookie
        )
        answer = await op.sign_in(next_path="/admin/runs?status=failed")
        assert answer.status_code == 303 and answer.headers["location"] == "/admin/runs?status=failed"
        cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE + "="))
        for part in ("HttpOnly", "SameSite=Strict", "Path=/admin", "Max-Age=43200"):
            assert part in cookie, cookie
        assert "Secure" not in cookie  # plain HTTP, public_url not https
        secret = cookie.split(";")[0].split("=", 1)[1]
        stored = await db.fetchrow("SELECT role, secret_hash FROM admin_sessions")
        assert (
            stored is not None
            and stored["role"] == "admin"
            and secret.encode() not in bytes(stored["secret_hash"])
        )
        expected = {
            "/admin/": (
                "Engine heartbeat",
                "Cache hit ratio",
                "99.0 %",
                "Replicas seen",
                "Runs finished per minute",
            ),
            "/admin/sync": ("Sync health", "Credentials needing a reconnect", "account_health"),
            "/admin/runs": ("Runs", "no run matches", "Retry matching runs"),
            "/admin/functions": (
                "nightly-report",
                "cron 0 3 * * *",
                "event app/signup",
                "Pause the whole engine",
            ),
            "/admin/tenants": ("Tenants and keys", "Create tenant"),
        }
        for path in PAGES:
            page = await op.get(path)
            assert page.status_code == 200, (path, page.text[:300])
            for words in expected[path]:
                assert words in text_of(page.text), (path, words)
            headers = page.headers
            assert headers["cache-control"] == "no-store" and headers["x-frame-options"] == "DENY"
            assert "frame-ancestors 'none'" in headers["content-security-policy"]
            assert "script-src" not in headers["content-security-policy"]  # default-src 'none': no script
            assert headers["referrer-policy"] == "no-referrer"
            assert ADMIN_TOKEN not in page.text and secret not in page.text
        css = await op.get("/admin/static/console.css")
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
        assert await _audit_types(db) == ["console.sign_in"]
        actor = await db.fetchval("SELECT actor FROM audit_log")
        session_id = await db.fetchval("SELECT id FROM admin_sessions")
        assert actor == f"console:admin:{str(session_id)[:8]}"


async def test_behind_tls_the_cookies_are_secure(db: Database) -> None:
    async with (
        console_server(db, settings=ConsoleSettings(secure_cookies=True)) as server,
        httpx.AsyncClient() as http,
    ):
        form = await http.get(server.url("/admin/login"))
        assert "Secure" in form.headers["set-cookie"]
        login_csrf = hidden_fields(form.text)["login_csrf"]
        # A browser sends a Secure cookie back over https only; this client is told to.
        answer = await http.post(
            server.url("/admin/login"),
            data={"login_csrf": login_csrf, "token": ADMIN_TOKEN, "next": "/admin/"},
            headers={"cookie": f"deneva_console_login={login_csrf}"},
        )
        assert answer.status_code == 303
        cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE + "="))
        assert "Secure" in cookie and "HttpOnly" in cookie


async def test_wrong_tokens_are_refused_audited_and_limited_per_address(db: Database) -> None:
    settings = ConsoleSettings(sign_in_failures=3, sign_in_window_s=600)
    async with console_server(db, settings=settings) as server, operator(server) as op:
        for token in ("wrong", ADMIN_TOKEN[:-1], ""):
            refused = await op.sign_in(token)
            assert refused.status_code == 401
            assert "not the admin or the read-only token" in text_of(refused.text)
        blocked = await op.sign_in(ADMIN_TOKEN)  # even the right one, while blocked
        assert blocked.status_code == 429 and "Too many failed sign-ins" in text_of(blocked.text)
        assert await db.fetchval("SELECT count(*) FROM admin_sessions") == 0
        rows = await db.fetch("SELECT outcome, details FROM audit_log ORDER BY id")
        assert [r["outcome"] for r in rows] == ["failure"] * 3
        assert all(ADMIN_TOKEN[:-1] not in str(r["details"]) for r in rows)
        server.clock.offset += 601  # the window passes
        assert (await op.sign_in(ADMIN_TOKEN)).status_code == 303


async def test_the_sign_in_form_needs_its_own_csrf_cookie(db: Database) -> None:
    async with console_server(db) as server, httpx.AsyncClient() as http:
        form = await http.get(server.url("/admin/login"))
        fields = hidden_fields(form.text)
        # Another site posting a sign-in has no cookie of ours, or not the one in its form.
        for cookies, given in (
            ({}, fields["login_csrf"]),
            ({"deneva_console_login": "x" * 43}, fields["login_csrf"]),
        ):
            async with httpx.AsyncClient(cookies=cookies) as other:
                answer = await other.post(
                    server.url("/admin/login"),
                    data={"login_csrf": given, "token": ADMIN_TOKEN, "next": "/admin/"},
                )
                assert answer.status_code == 403 and "nothing was done" in text_of(answer.text)
        missing = await http.post(server.url("/admin/login"), data={"token": ADMIN_TOKEN})
        assert missing.status_code == 403
        assert await db.fetchval("SELECT count(*) FROM admin_sessions") == 0
        # An open redirect is not possible through `next` (a refused form came with a new token).
        fields = hidden_fields((await http.get(server.url("/admin/login"))).text)
        good = await http.post(
            server.url("/admin/login"),
            data={"login_csrf": fields["login_csrf"], "token": ADMIN_TOKEN, "next": "//evil.example/admin/"},
        )
        assert good.status_code == 303 and good.headers["location"] == "/admin/"


async def test_a_forged_or_missing_csrf_token_is_403_and_nothing_is_written(db: Database) -> None:
    async with console_server(db) as server, operator(server) as op:
        await op.sign_in()
        failed = await _failed_run(server)
        actions: list[tuple[str, dict[str, str]]] = [
            ("/admin/functions/pause", {"function": "on-signup"}),
            ("/admin/functions/invoke", {"function": "on-signup", "data": "{}"}),
            (f"/admin/runs/{failed}/retry", {}),
            ("/admin/runs/retry-matching", {"confirm": "yes"}),
            ("/admin/tenants", {"name": "forged"}),
            ("/admin/logout", {}),
        ]
        for path, data in actions:
            for csrf in (None, "", "0" * 64, op.csrf[:-1] + ("0" if op.csrf[-1] != "0" else "1")):
                fields = dict(data)
                if csrf is not None:
                    fields["csrf"] = csrf
                answer = await op.post(path, fields, csrf=False)
                assert answer.status_code == 403, (path, csrf, answer.text[:200])
                assert "CSRF token" in text_of(answer.text) and "nothing was done" in text_of(answer.text)
        assert await server.engine.paused() == []
        assert (await server.engine.get_run(failed)).status == "failed"
        assert await db.fetchval("SELECT count(*) FROM engine_runs") == 1
        assert await db.fetchval("SELECT count(*) FROM tenants") == 0
        assert await _audit_types(db) == ["console.sign_in"]
        assert (await op.get("/admin/")).status_code == 200  # still signed in: logout was refused too


async def test_an_expired_session_gets_the_sign_in_form_and_its_actions_are_401(db: Database) -> None:
    settings = ConsoleSettings(ttl_s=3600, idle_s=600)
    async with console_server(db, settings=settings) as server, operator(server) as op:
        await op.sign_in()
        assert (await op.get("/admin/functions")).status_code == 200
        server.clock.offset += 601  # idle longer than allowed
        idle = await op.get("/admin/functions")
        assert idle.status_code == 401 and "Your session expired" in text_of(idle.text)
        refused = await op.post("/admin/functions/pause", {"function": "on-signup"})
        assert refused.status_code == 401 and "session expired" in text_of(refused.text)
        assert await server.engine.paused() == []
        # Used within its idle time, a session still ends at its time limit.
        await op.sign_in()
        for _ in range(7):  # 3500 s, never idle for 600
            server.clock.offset += 500
            assert (await op.get("/admin/")).status_code == 200
        server.clock.offset += 200  # 3700 s after signing in
        over = await op.get("/admin/")
        assert over.status_code == 401 and "Your session expired" in text_of(over.text)
        assert (await op.post("/admin/tenants", {"name": "late"})).status_code == 401
        assert await db.fetchval("SELECT count(*) FROM tenants") == 0


async def test_a_read_only_session_sees_every_page_without_actions_and_its_posts_are_403(
    db: Database,
) -> None:
    async with console_server(db) as server, operator(server) as op:
        failed = await _failed_run(server)
        await db.transaction(lambda c: tenants.add_tenant(c, "acme"))
        assert (await op.sign_in(READONLY_TOKEN)).status_code == 303
        assert await db.fetchval("SELECT role FROM admin_sessions") == "readonly"
        for path in (*PAGES, f"/admin/runs/{failed}", "/admin/tenants?tenant=acme"):
            page = await op.get(path)
            assert page.status_code == 200 and "read-only" in text_of(page.text)
            forms = page.text.count('<form method="post"')
            assert forms == 1 and 'action="/admin/logout"' in page.text, path  # sign-out only
            for button in ("Retry", "Pause", "Invoke", "Create tenant", "Refresh now", "Revoke"):
                assert f">{button}" not in page.text, (path, button)
        run_page = text_of((await op.get(f"/admin/runs/{failed}")).text)
        assert "boom" in run_page and "ValueError" in run_page  # it sees the error and traceback
        for path, data in (
            ("/admin/functions/pause", {"function": "*"}),
            (f"/admin/runs/{failed}/retry", {}),
            ("/admin/runs/cancel-matching", {"confirm": "yes"}),
            ("/admin/tenants/keys", {"tenant": "acme"}),
            ("/admin/sync/refresh", {"tenant": "acme", "platform": "google", "report": "account_health"}),
        ):
            answer = await op.post(path, data)
            assert answer.status_code == 403, path
            assert "read-only session" in text_of(answer.text) and "nothing was done" in text_of(answer.text)
        assert await server.engine.paused() == []
        assert (await server.engine.get_run(failed)).status == "failed"
        assert await db.fetchval("SELECT count(*) FROM api_keys") == 0
        assert await _audit_types(db) == ["console.sign_in"]
        assert (await op.post("/admin/logout")).status_code == 200  # it may sign itself out
        assert await db.fetchval("SELECT count(*) FROM admin_sessions") == 0


async def test_without_a_read_only_token_that_role_does_not_exist(db: Database) -> None:
    async with console_server(db, readonly=False) as server, operator(server) as op:
        form = await op.get("/admin/login")
        assert "read-only token" not in text_of(form.text)
        assert (await op.sign_in(READONLY_TOKEN)).status_code == 401


async def test_garbage_filters_and_form_values_are_400_naming_the_field(db: Database) -> None:
    async with console_server(db) as server, operator(server) as op:
        await op.sign_in()
        failed = await _failed_run(server)
        pages = {
            "/admin/runs?status=exploded": "status",
            "/admin/runs?function=no-such-function": "function",
            "/admin/runs?tenant=ghost": "tenant",
            "/admin/runs?tenant=Not%20A%20Name": "tenant",
            "/admin/runs?from=yesterday": "from",
            "/admin/runs?until=2026-13-45T99:00": "until",
            "/admin/runs?from=2026-12-03T10:00&until=2026-12-03T09:00": "until",
            "/admin/runs?after=garbage": "after",
            "/admin/runs?after=2026-12-03T10:00~not-a-uuid": "after",
            "/admin/runs?from=0001-01-01T00:00%2B14:00": "from",
            "/admin/runs?status=" + "x" * 500: "status",
            "/admin/runs?function=%00": "function",
            "/admin/runs/not-a-uuid": "run id",
            "/admin/sync?tenant=" + "y" * 100: "tenant",
            "/admin/sync?tenant=ghost": "tenant",
            "/admin/tenants?tenant=ghost": "tenant",
        }
        for path, field in pages.items():
            answer = await op.get(path)
            assert answer.status_code == 400, (path, answer.status_code, answer.text[:300])
            assert f"{field}:" in text_of(answer.text), (path, text_of(answer.text)[:300])
        naive = await op.get(
            f"/admin/runs?after=2026-12-03T10:00~{uuid.uuid4()}&from=2026-01-01T00:00%2B01:00"
        )
        assert naive.status_code == 200, naive.text[:300]  # a cursor without an offset is UTC
        missing = await op.get(f"/admin/runs/{uuid.uuid4()}")
        assert missing.status_code == 404 and "no run with id" in text_of(missing.text)
        posts: list[tuple[str, str, dict[str, str]]] = [
            ("/admin/functions/invoke", "data", {"function": "on-signup", "data": "{not json"}),
            ("/admin/functions/invoke", "data", {"function": "on-signup", "data": "[1, 2]"}),
            ("/admin/functions/invoke", "function", {"function": "ghost", "data": "{}"}),
            ("/admin/functions/pause", "function", {"function": "ghost"}),
            ("/admin/runs/retry-matching", "confirm", {"status": "failed"}),
            ("/admin/runs/retry-matching", "status", {"status": "bogus", "confirm": "yes"}),
            ("/admin/runs/cancel-matching", "from", {"from": "soon", "confirm": "yes"}),
            ("/admin/tenants", "name", {"name": "Bad Name!"}),
            ("/admin/tenants/keys", "tenant", {"tenant": "ghost"}),
            ("/admin/tenants/keys/revoke", "prefix", {"prefix": "zz"}),
            ("/admin/sync/refresh", "platform", {"tenant": "ghost", "platform": "myspace", "report": "x"}),
            (
                "/admin/sync/refresh",
                "report",
                {"tenant": "ghost", "platform": "meta", "report": "quality_score"},
            ),
            ("/admin/sync/reconnect", "tenant", {"tenant": "ghost", "platform": "meta", "account": "1"}),
            ("/admin/runs/not-a-uuid/retry", "run id", {}),
        ]
        for path, field, data in posts:
            answer = await op.post(path, data)
            text = text_of(answer.text)
            assert answer.status_code == 400, (path, data, answer.status_code, text[:300])
            assert f"{field}:" in text and "nothing was done" in text, (path, text[:300])
        duplicated = await op.post("/admin/functions/pause", {"function": "on-signup", "csrf": op.csrf})
        assert duplicated.status_code == 200  # the form's own csrf, once: fine
        await server.engine.resume("on-signup")
        twice = await op.http.post(
            server.url("/admin/functions/pause"),
            content=f"csrf={op.csrf}&function=on-signup&function=on-signup",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert twice.status_code == 400 and "function: given more than once" in text_of(twice.text)
        assert (await server.engine.get_run(failed)).status == "failed"
        assert await db.fetchval("SELECT count(*) FROM engine_runs") == 1
        assert await db.fetchval("SELECT count(*) FROM tenants") == 0
        assert await server.engine.paused() == []
        assert await _audit_types(db) == ["console.sign_in", "console.function_pause"]  # the one good post


async def test_retry_and_cancel_one_run_or_every_matching_run_with_counts_and_audit(db: Database) -> None:
    async with console_server(db) as server, operator(server) as op:
        await op.sign_in()
        await db.transaction(lambda c: tenants.add_tenant(c, "acme"))
        acme = str(await db.fetchval("SELECT id FROM tenants WHERE name = 'acme'"))
        one = await _failed_run(server)
        of_acme = [await _failed_run(server, "on-signup", {"tenant_id": acme}) for _ in range(3)]
        other = await _failed_run(server, "nightly-report", {"tenant_id": acme})
        queued = [await server.engine.invoke("on-signup", {"tenant_id": acme}) for _ in range(2)]
        listing = text_of((await op.get("/admin/runs?status=failed&function=on-signup")).text)
        assert all(str(r) in listing for r in (one, *of_acme)) and str(other) not in listing
        page = await op.get(f"/admin/runs/{one}")
        assert ">Retry<" in page.text and ">Cancel<" not in page.text
        retried = await op.post(f"/admin/runs/{one}/retry")
        assert retried.status_code == 200 and "queued again" in text_of(retried.text)
        assert (await server.engine.get_run(one)).status == "queued"
        again = await op.post(f"/admin/runs/{one}/retry")
        assert "only failed or cancelled runs are retried" in text_of(again.text)
        matching = await op.post(
            "/admin/runs/retry-matching",
            {"status": "failed", "function": "on-signup", "tenant": "acme", "confirm": "yes"},
        )
        assert matching.status_code == 200, matching.text[:300]
        assert "Queued 3 failed or cancelled run(s) again" in text_of(matching.text)
        statuses = {r.id: r.status for r in await server.engine.get_runs([*of_acme, other])}
        assert [statuses[r] for r in of_acme] == ["queued"] * 3 and statuses[other] == "failed"
        cancelled = await op.post(
            "/admin/runs/cancel-matching", {"status": "queued", "tenant": "acme", "confirm": "yes"}
        )
        assert "Cancelled 5 run(s); asked 0 running run(s)" in text_of(cancelled.text)
        assert {r.status for r in await server.engine.get_runs([*of_acme, *queued])} == {"cancelled"}
        assert (await server.engine.get_run(one)).status == "queued"  # no tenant: not matched
        cancel_one = await op.post(f"/admin/runs/{one}/cancel")
        assert f"Run {one} is cancelled." in text_of(cancel_one.text)
        rows = await db.fetch("SELECT event_type, actor, details FROM audit_log ORDER BY id")
        assert [r["event_type"] for r in rows] == [
            "console.sign_in",
            "console.run_retry",
            "console.runs_retry_matching",
            "console.runs_cancel_matching",
            "console.run_cancel",
        ]
        assert rows[2]["details"]["filter"] == {"status": "failed", "function": "on-signup", "tenant": "acme"}
        assert len(rows[2]["details"]["result"]) == 3
        assert len({r["actor"] for r in rows}) == 1 and rows[0]["actor"].startswith("console:admin:")


async def test_run_pages_never_show_secrets(db: Database) -> None:
    secret_values = {
        "access_token": "plain-access-0123456789",
        "refreshToken": "plain-refresh-0123456789",
        "password": "hunter2hunter2",
        "Authorization": "Basic dXNlcjpwYXNz",
        "nested": {"client_secret": "cs-0123456789", "list": [{"api_key": "k-0123456789"}]},
        "note": "key dnv_0a1b2c3d_abcdefghijklmnopqrstuvwxyz0123 leaked, and ya29.A0ARrdaM-xyz, "
        "Bearer eyJhbGciOi.eyJzdWIiOi.sig",
    }
    async with console_server(db) as server, operator(server) as op:
        await op.sign_in()
        run_id = await _failed_run(
            server, "on-signup", {**secret_values, "tenant_label": "shown", "credential_id": "c-1"}
        )
        await db.execute(
            "UPDATE engine_runs SET output = $2, last_error = $3, last_traceback = $4 WHERE id = $1",
            run_id,
            {"token": "out-token-0123456789", "rows": 3},
            "refresh failed for dnv_0a1b2c3d_abcdefghijklmnopqrstuvwxyz0123",
            f"Traceback: ValueError('{ADMIN_TOKEN}')",
        )
        await db.execute(
            "INSERT INTO engine_steps (run_id, step_id, output, completed_at) VALUES ($1, 'fetch', $2, $3)",
            run_id,
            {"secret": "step-secret-0123456789", "fetched": 12},
            as_datetime(server.clock.now()),
        )
        from deneva.logs import register_secret

        register_secret(ADMIN_TOKEN)  # as the daemon registers every secret it loads
        page = await op.get(f"/admin/runs/{run_id}")
        assert page.status_code == 200
        for leaked in (
            "plain-access",
            "plain-refresh",
            "hunter2",
            "dXNlcjpwYXNz",
            "cs-0123",
            "k-0123",
            "dnv_0a1b2c3d_",
            "ya29.",
            "eyJhbGciOi",
            "out-token",
            "step-secret",
            ADMIN_TOKEN,
        ):
            assert leaked not in page.text, leaked
        text = text_of(page.text)
        assert "[redacted]" in text and "shown" in text and "c-1" in text and '"fetched": 12' in text
        assert '"rows": 3' in text and "fetch" in text


async def _grant(conn: Any, tenant: str) -> None:
    from deneva.oauth import store
    from deneva.oauth.model import Client

    found = await tenants.tenant_by_name(conn, tenant)
    redirect = "https://claude.example/callback"
    client = Client("dnv_client_console", "dcr", "Claude connector", (redirect,), "none", None, {})
    await store.save_client(conn, client)
    await store.insert_grant(conn, found.id, client.client_id, "reports:read", "https://x/mcp", "operator")


async def test_tenants_keys_shown_once_and_revoked_with_the_console_as_the_actor(db: Database) -> None:
    async with console_server(db) as server, operator(server) as op:
        await op.sign_in()
        created = await op.post("/admin/tenants", {"name": "acme"})
        assert created.status_code == 200 and "Created tenant acme" in text_of(created.text)
        duplicate = await op.post("/admin/tenants", {"name": "acme"})
        assert duplicate.status_code == 409 and "already exists" in text_of(duplicate.text)
        made = await op.post("/admin/tenants/keys", {"tenant": "acme", "label": "claude"})
        assert made.status_code == 200
        [key] = [line for line in text_of(made.text).split() if line.startswith("dnv_")]
        assert await db.run(lambda c: tenants.authenticate(c, key)) is not None  # it works
        await db.transaction(lambda c: _grant(c, "acme"))
        detail = await op.get("/admin/tenants?tenant=acme")
        grants = detail.text.split('id="grants"', 1)[1].split("</table>", 1)[0]
        assert "Claude connector" in grants and "reports:read" in grants and "operator" in grants
        prefix = key.split("_")[1]
        assert prefix in detail.text and key not in detail.text  # never shown again
        assert "claude" in text_of(detail.text)
        revoked = await op.post("/admin/tenants/keys/revoke", {"prefix": prefix, "tenant": "acme"})
        assert revoked.status_code == 200 and f"Revoked key {prefix}" in text_of(revoked.text)
        assert await db.run(lambda c: tenants.authenticate(c, key)) is None
        unknown = await op.post("/admin/tenants/keys/revoke", {"prefix": "0badc0de"})
        assert unknown.status_code == 404
        rows = await db.fetch(
            "SELECT event_type, actor FROM audit_log WHERE actor LIKE 'console:admin:%' ORDER BY id"
        )
        assert [r["event_type"] for r in rows] == [
            "console.sign_in",
            "console.tenant_created",
            "api_key.created",
            "api_key.revoked",
        ]
        overview = text_of((await op.get("/admin/")).text)
        assert "api_key.revoked" in overview and "console.tenant_created" in overview


async def test_a_session_works_on_every_replica_and_signing_out_ends_it_everywhere(db: Database) -> None:
    async with console_server(db) as first, console_server(db) as second, operator(first) as op:
        await op.sign_in()
        cookie = op.http.cookies.get(SESSION_COOKIE, domain="127.0.0.1", path="/admin")
        assert cookie
        async with httpx.AsyncClient(cookies={SESSION_COOKIE: cookie}) as elsewhere:
            assert (await elsewhere.get(second.url("/admin/functions"))).status_code == 200
            assert (await op.post("/admin/logout")).status_code == 200
            replayed = await elsewhere.get(second.url("/admin/functions"))
            assert replayed.status_code == 401
        assert await _audit_types(db) == ["console.sign_in", "console.sign_out"]


async def test_the_json_admin_endpoints_answer_to_their_header_not_to_a_session(db: Database) -> None:
    async with console_server(db) as server, operator(server) as op:
        await op.sign_in()
        for path in ("/admin/health/scheduler", "/admin/metrics/sync"):
            assert (await op.get(path)).status_code == 401  # the cookie does not open them
            answer = await op.http.get(server.url(path), headers={"x-admin-token": ADMIN_TOKEN})
            assert answer.status_code in (200, 503) and answer.headers["content-type"] == "application/json"
        metrics = await op.http.get(
            server.url("/admin/metrics/sync?sinceHours=2"), headers={"x-admin-token": ADMIN_TOKEN}
        )
        assert metrics.json()["window"]["sinceHours"] == 2 and metrics.json()["credentials"] == []
        beat = await op.http.get(
            server.url("/admin/health/scheduler"), headers={"x-admin-token": ADMIN_TOKEN}
        )
        assert beat.status_code == 503 and beat.json() == {
            "alive": False,
            "lastBeatAt": None,
            "ageMs": None,
            "node": None,
        }


async def _credential(db: Database, tenant: str, platform: str, account: str) -> None:
    tokens = PlainTokens("refresh-x", None) if platform == "google" else PlainTokens(None, "access-x")
    await db.transaction(lambda c: store_credential(c, KEYS, tenant, platform, account, tokens))


async def _cache(
    db: Database,
    tenant_id: uuid.UUID,
    platform: str,
    report: str,
    ranges: list[str],
    now: float,
    *,
    ttl: float = 3600,
    stale: bool = False,
) -> None:
    for date_range in ranges:
        await db.execute(
            "INSERT INTO metric_cache (tenant_id, platform, account_id, report_type, date_range, payload, "
            "fetched_at, expires_at, is_stale) VALUES ($1, $2, $3, $4, $5, '{}', $6, $7, $8)",
            tenant_id,
            platform,
            {"google": "1234567890", "meta": "1001", "tiktok": "7000000000000000001"}[platform],
            report,
            date_range,
            as_datetime(now - 60),
            as_datetime(now - 60 + ttl),
            stale,
        )


async def test_the_sync_matrix_shows_each_cells_state_and_refresh_and_reconnect_act_on_it(
    db: Database,
) -> None:
    async with console_server(db) as server, operator(server) as op:
        await op.sign_in()
        now = server.clock.now()
        await db.transaction(lambda c: tenants.add_tenant(c, "acme"))
        await db.transaction(lambda c: tenants.add_tenant(c, "globex"))
        acme = await db.fetchval("SELECT id FROM tenants WHERE name = 'acme'")
        await _credential(db, "acme", "google", "1234567890")
        await _credential(db, "acme", "meta", "1001")
        await _cache(
            db, acme, "google", "account_health", ["last_7_days", "last_30_days", "last_90_days"], now
        )
        await _cache(db, acme, "google", "budget_optimizer", ["last_7_days", "last_30_days"], now, stale=True)
        await _cache(db, acme, "google", "search_term_waste", ["last_7_days"], now)  # 1 of 2
        await db.execute(
            "UPDATE platform_credentials SET healthy = false, last_error_code = 'token_revoked', "
            "last_sync_failure_at = $1 WHERE platform = 'meta'",
            as_datetime(now - 30),
        )
        page = await op.get("/admin/sync")
        assert page.status_code == 200

        def cell(tenant: str, platform: str, report: str) -> str:
            marker = f'id="cell-{tenant}-{platform}-{report}" data-state="'
            return page.text.split(marker, 1)[1].split('"', 1)[0]

        assert cell("acme", "google", "account_health") == "fresh"
        assert cell("acme", "google", "budget_optimizer") == "stale"
        assert cell("acme", "google", "search_term_waste") == "stale"
        assert cell("acme", "google", "auction_insights") == "never"
        assert cell("acme", "meta", "account_health") == "failing"
        assert cell("acme", "tiktok", "account_health") == "absent"
        assert cell("globex", "google", "account_health") == "absent"
        text = text_of(page.text)
        assert "token_revoked" in text and "1 fresh" in text
        reconnects = page.text.split('id="reconnects"', 1)[1]
        assert "acme" in reconnects and "1001" in reconnects and "refused the stored credential" in reconnects

        refreshed = await op.post(
            "/admin/sync/refresh", {"tenant": "acme", "platform": "google", "report": "account_health"}
        )
        assert refreshed.status_code == 200, refreshed.text[:300]
        assert "Asked for 3 refreshes of google account_health for acme" in text_of(refreshed.text)
        events = await db.fetch("SELECT data FROM engine_events WHERE name = 'sync/report.refresh-requested'")
        assert sorted(e["data"]["date_range"] for e in events) == [
            "last_30_days",
            "last_7_days",
            "last_90_days",
        ]
        assert all(e["data"]["force"] is True and e["data"]["account_id"] == "1234567890" for e in events)
        none = await op.post(
            "/admin/sync/refresh", {"tenant": "globex", "platform": "meta", "report": "account_health"}
        )
        assert none.status_code == 400 and "no meta account connected" in text_of(none.text)

        link = await op.post(
            "/admin/sync/reconnect", {"tenant": "acme", "platform": "meta", "account": "1001"}
        )
        assert link.status_code == 200, link.text[:300]
        url = text_of(link.text).split("Connect link (shown once): ")[1].split()[0]
        assert url.startswith("http://127.0.0.1:8787/connect/meta/start?state=")
        flow = await db.fetchrow("SELECT operator, preselected, status FROM connect_flows")
        assert flow is not None and flow["status"] == "issued" and flow["preselected"] == ["1001"]
        assert flow["operator"].startswith("console:admin:")
        state = url.split("state=")[1]
        assert state not in (await op.get("/admin/sync")).text  # the link is shown once
        rows = await db.fetch(
            "SELECT event_type, tenant_id FROM audit_log WHERE actor LIKE 'console:admin:%' ORDER BY id"
        )
        assert [(r["event_type"], r["tenant_id"]) for r in rows[1:]] == [
            ("console.sync_refresh", acme),
            ("console.reconnect_link", acme),
        ]


async def test_functions_are_paused_resumed_and_invoked_with_json_data(db: Database) -> None:
    async with console_server(db) as server, operator(server) as op:
        await op.sign_in()
        paused = await op.post("/admin/functions/pause", {"function": "nightly-report"})
        assert "Paused nightly-report on every replica" in text_of(paused.text)
        page = await op.get("/admin/functions")
        row = page.text.split('id="function-nightly-report"', 1)[1].split("</tr>", 1)[0]
        assert "paused" in row and ">Resume<" in row
        assert "2026" in row or "20" in row  # its next tick is shown
        engine_wide = await op.post("/admin/functions/pause", {"function": "*"})
        assert "Paused the whole engine" in text_of(engine_wide.text)
        assert "The whole engine is paused" in text_of((await op.get("/admin/")).text)
        assert {p.function_id for p in await server.engine.paused()} == {"*", "nightly-report"}
        await op.post("/admin/functions/resume", {"function": "*"})
        resumed = await op.post("/admin/functions/resume", {"function": "nightly-report"})
        assert "Resumed nightly-report." in text_of(resumed.text)
        assert await server.engine.paused() == []
        invoked = await op.post(
            "/admin/functions/invoke", {"function": "on-signup", "data": '{"user": "u-1"}'}
        )
        run_id = uuid.UUID(invoked.text.split('<ul id="runs"><li><a href="/admin/runs/', 1)[1][:36])
        record = await server.engine.get_run(run_id)
        assert record.function_id == "on-signup" and record.event["data"] == {"user": "u-1"}
        big = await op.post(
            "/admin/functions/invoke", {"function": "on-signup", "data": '{"x": "' + "a" * 70_000 + '"}'}
        )
        assert big.status_code == 400
        types = await _audit_types(db)
        assert types[1:] == [
            "console.function_pause",
            "console.function_pause",
            "console.function_resume",
            "console.function_resume",
            "console.function_invoke",
        ]


async def test_a_database_outage_is_a_503_page_never_a_500(
    db: Database, cluster: Cluster, database_name: str
) -> None:
    async with console_server(db) as server, operator(server) as op:
        await op.sign_in()
        # The database stops taking connections and drops the ones it has.
        await trio.to_thread.run_sync(
            cluster.admin,
            f'ALTER DATABASE "{database_name}" WITH ALLOW_CONNECTIONS false; '
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database_name}'",
        )
        try:
            for path in (*PAGES, f"/admin/runs/{uuid.uuid4()}"):
                answer = await op.get(path)
                assert answer.status_code == 503, (path, answer.status_code, answer.text[:200])
                assert "database is unavailable" in text_of(answer.text)
            refused = await op.post("/admin/functions/pause", {"function": "on-signup"})
            assert refused.status_code == 503 and "nothing was done" in text_of(refused.text)
            assert (await op.get("/admin/login")).status_code == 503
        finally:
            await trio.to_thread.run_sync(
                cluster.admin, f'ALTER DATABASE "{database_name}" WITH ALLOW_CONNECTIONS true'
            )
