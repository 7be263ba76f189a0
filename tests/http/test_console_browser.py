"""Issue 15's acceptance in a real headless Chromium (`tests.browser`) against a real
daemon (`deneva.runtime.Daemon` syncing against the sandbox ad platforms): an operator
signs in, sees a revoked credential turn red in the sync matrix after "refresh now",
retries a failed run and sees it succeed, pauses a function and sees its runs stay
queued; a read-only session gets no action buttons and a 403 when it posts anyway.

Each test drives one browser in a worker thread (Playwright's sync API), reaching back
into the test's trio loop with `trio.from_thread.run` to wait on the engine (never a
sleep); it writes a screenshot of every page it visits under its tmp_path and asserts on
each page's text, not only its status.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from deneva.engine.context import Context
from deneva.engine.functions import Function
from deneva.secrets import ADMIN_READONLY_TOKEN
from tests.browser import chromium, require_chromium
from tests.connect.flows import app_db
from tests.mcp.daemon_fixture import RunningDaemon, TenantSpec, running_daemon

READONLY = "readonly-console-token-0123456789abcdef"
RED = "rgb(251, 228, 226)"  # the stylesheet's --bad-bg: a failing cell


@pytest.fixture(autouse=True)
def browser_present() -> None:
    require_chromium()


class Pages:
    """One Chromium page on the console, screenshotting each page it shows."""

    def __init__(self, page: Any, base: str, shots: Path) -> None:
        self.page = page
        self.base = base
        self.shots = shots
        self.taken: list[Path] = []

    def go(self, path: str) -> str:
        self.page.goto(self.base + path)
        return self.text()

    def text(self) -> str:
        return str(self.page.inner_text("body"))

    def submit(self, selector: str) -> str:
        with self.page.expect_navigation():
            self.page.click(selector)
        return self.text()

    def shot(self, name: str) -> None:
        path = self.shots / f"{len(self.taken):02d}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 1000, path
        self.taken.append(path)

    def sign_in(self, token: str) -> str:
        shown = self.go("/admin/")
        assert "Sign in to the deneva console" in shown
        self.shot("sign-in")
        self.page.fill("#token", token)
        return self.submit("#sign-in")


def _browse(running: RunningDaemon, shots: Path, script: Any) -> Any:
    with chromium() as browser:
        pages = Pages(browser.new_page(), running.base, shots)
        return script(pages)


async def browse(running: RunningDaemon, shots: Path, script: Any) -> Any:
    return await trio.to_thread.run_sync(_browse, running, shots, script)


def _run_id_of(pages: Pages) -> uuid.UUID:
    href = pages.page.get_attribute("#runs a", "href")
    return uuid.UUID(str(href).rsplit("/", 1)[1])


async def test_an_operator_signs_in_and_sees_a_revoked_credential_red_in_the_sync_matrix(
    tmp_path: Path, database_url: str
) -> None:
    specs = [TenantSpec("acme", (("google", "1234567890"), ("meta", "1001"))), TenantSpec("globex", ())]
    async with running_daemon(tmp_path, database_url, specs) as running:
        acme = running.tenant("acme")
        await running.sandbox.token_action("revoke", "meta", acme.tokens["meta"])
        admin = running.daemon.secrets.admin_token.reveal()

        def script(pages: Pages) -> dict[str, Any]:
            overview = pages.sign_in(admin)
            for words in (
                "Overview",
                "Engine heartbeat",
                "Queue",
                "Replicas seen",
                "Runs finished per minute",
            ):
                assert words in overview, words
            assert f"{running.daemon.health.node} (this one)" in overview
            assert pages.page.locator("svg.chart rect.bar").count() == 96  # 24 h in 15-minute bars
            pages.shot("overview")

            matrix = pages.go("/admin/sync")
            cell = "#cell-acme-meta-account_health"
            assert pages.page.get_attribute(cell, "data-state") == "fresh", matrix
            assert "not connected" in pages.page.inner_text("#cell-acme-tiktok-account_health")
            pages.shot("sync-before")
            done = pages.submit(f"{cell} button.refresh")
            assert "Asked for 3 refreshes of meta account_health for acme" in done, done
            statuses = trio.from_thread.run(running.settle_refreshes)
            assert "failed" in statuses

            pages.go("/admin/sync")
            assert pages.page.get_attribute(cell, "data-state") == "failing"
            assert "token_revoked" in pages.page.inner_text(cell)
            color = pages.page.eval_on_selector(cell, "e => getComputedStyle(e).backgroundColor")
            assert color == RED, color  # red, by the console's own stylesheet (CSP: 'self')
            assert pages.page.get_attribute("#cell-acme-google-account_health", "data-state") == "fresh"
            reconnects = pages.page.inner_text("#reconnects")
            assert (
                "acme" in reconnects
                and "1001" in reconnects
                and "refused the stored credential" in reconnects
            )
            pages.shot("sync-failing")
            link_page = pages.submit("#reconnects button.reconnect")
            link = pages.page.inner_text("#secret")
            assert link.startswith(f"{running.base}/connect/meta/start?state="), link_page
            pages.shot("reconnect-link")

            runs = pages.go("/admin/runs?status=failed&function=refresh-tenant-report")
            assert pages.page.locator("#runs tr.run").count() == 3, runs
            pages.shot("runs")
            run = pages.submit("#runs a.mono")
            assert "failed" in run and "token_revoked" in run and "Attempts" in run
            assert acme.tokens["meta"] not in run
            pages.shot("run")

            functions = pages.go("/admin/functions")
            assert "refresh-tenant-report" in functions and "event sync/report.refresh-requested" in functions
            pages.shot("functions")
            pages.go("/admin/tenants")
            tenant = pages.submit("#tenants a >> text=acme")
            assert "1234567890" in tenant and "Connected accounts" in tenant
            pages.page.fill("#key-label", "from the browser")
            made = pages.submit("#create-key-button")
            key = pages.page.inner_text("#secret")
            assert key.startswith("dnv_") and "shown once" in made
            pages.shot("key-created")
            again = pages.go("/admin/tenants?tenant=acme")
            assert key not in again and "from the browser" in again
            pages.shot("tenants")
            return {"shots": len(pages.taken)}

        seen = await browse(running, tmp_path, script)
        assert seen["shots"] == 10
        credential = await app_db(running).fetchrow(
            "SELECT healthy, last_error_code FROM platform_credentials WHERE platform = 'meta'"
        )
        assert credential is not None and not credential["healthy"]
        actions = await app_db(running).fetch(
            "SELECT event_type FROM audit_log WHERE actor LIKE 'console:admin:%' ORDER BY id"
        )
        assert [a["event_type"] for a in actions] == [
            "console.sign_in",
            "console.sync_refresh",
            "console.reconnect_link",
            "api_key.created",
        ]


@attrs.define
class Flaky:
    failing: bool = True
    ran: list[dict[str, Any]] = attrs.Factory(list)


def flaky_function(flaky: Flaky) -> Function:
    async def console_flaky(ctx: Context) -> dict[str, Any]:
        flaky.ran.append(ctx.event["data"])
        if flaky.failing:
            raise RuntimeError("flaky: the platform said no")
        return {"ok": True, "order": ctx.event["data"].get("order")}

    return Function("console-flaky", console_flaky, (), retries=0)


async def test_retry_a_failed_run_and_see_it_succeed_and_a_paused_functions_runs_stay_queued(
    tmp_path: Path, database_url: str
) -> None:
    flaky = Flaky()
    async with running_daemon(
        tmp_path,
        database_url,
        [TenantSpec("acme", (("tiktok", "7000000000000000001"),))],
        functions=[flaky_function(flaky)],
    ) as running:
        engine = running.engine
        admin = running.daemon.secrets.admin_token.reveal()

        def invoke(pages: Pages, function: str, data: str) -> uuid.UUID:
            pages.go("/admin/functions")
            row = f"#function-{function}"
            pages.page.fill(f"{row} textarea", data)
            done = pages.submit(f"{row} button.invoke-button")
            assert f"Started a run of {function}" in done
            return _run_id_of(pages)

        def script(pages: Pages) -> None:
            pages.sign_in(admin)
            run_id = invoke(pages, "console-flaky", '{"order": 7}')
            pages.shot("invoked")
            assert trio.from_thread.run(engine.wait_for_run, run_id, 30).status == "failed"
            failed = pages.go(f"/admin/runs/{run_id}")
            assert "failed" in failed and "flaky: the platform said no" in failed
            assert "RuntimeError" in pages.page.inner_text("#traceback")
            assert '"order": 7' in pages.page.inner_text("#input")
            pages.shot("run-failed")

            flaky.failing = False
            retried = pages.submit("#retry")
            assert "queued again" in retried
            assert trio.from_thread.run(engine.wait_for_run, run_id, 30).status == "succeeded"
            succeeded = pages.go(f"/admin/runs/{run_id}")
            assert pages.page.inner_text("#run-status") == "succeeded" and '"ok": true' in succeeded
            assert pages.page.locator("#retry").count() == 0  # nothing to retry any more
            pages.shot("run-succeeded")

            pages.go("/admin/functions")
            paused = pages.submit("#function-console-flaky button.pause")
            assert "Paused console-flaky on every replica" in paused
            held = invoke(pages, "console-flaky", '{"order": 8}')
            # A run invoked after it, of a function not paused, gets through the dispatcher:
            # by then the paused function's run was passed over, not merely not reached yet.
            other = invoke(pages, "deneva-noop", "{}")
            assert trio.from_thread.run(engine.wait_for_run, other, 30).status == "succeeded"
            waiting = pages.go(f"/admin/runs/{held}")
            assert pages.page.inner_text("#run-status") == "queued", waiting
            functions = pages.go("/admin/functions")
            assert "paused" in pages.page.inner_text("#function-console-flaky .state"), functions
            listing = pages.go("/admin/runs?status=queued&function=console-flaky")
            assert str(held) in listing
            pages.shot("paused-and-queued")

            pages.go("/admin/functions")
            pages.submit("#function-console-flaky button.resume")
            assert trio.from_thread.run(engine.wait_for_run, held, 30).status == "succeeded"
            assert pages.page.locator("#message").inner_text() == "Resumed console-flaky."
            pages.go(f"/admin/runs/{held}")
            assert pages.page.inner_text("#run-status") == "succeeded"
            pages.shot("resumed")

        await browse(running, tmp_path, script)
        assert [r.get("order") for r in flaky.ran] == [7, 7, 8]  # the held run ran once, after resume
        actions = await app_db(running).fetch(
            "SELECT event_type, details FROM audit_log WHERE actor LIKE 'console:admin:%' ORDER BY id"
        )
        assert [a["event_type"] for a in actions] == [
            "console.sign_in",
            "console.function_invoke",
            "console.run_retry",
            "console.function_pause",
            "console.function_invoke",
            "console.function_invoke",
            "console.function_resume",
        ]


async def test_a_read_only_session_gets_no_action_buttons_and_a_403_when_it_posts(
    tmp_path: Path, database_url: str
) -> None:
    flaky = Flaky()
    async with running_daemon(
        tmp_path,
        database_url,
        [TenantSpec("acme", (("google", "1234567890"),))],
        functions=[flaky_function(flaky)],
        secret_files={ADMIN_READONLY_TOKEN: READONLY},
    ) as running:
        failed = await running.engine.invoke("console-flaky", {})
        assert (await running.engine.wait_for_run(failed, 30)).status == "failed"

        def script(pages: Pages) -> dict[str, Any]:
            pages.sign_in(READONLY)
            assert pages.page.inner_text("#role") == "read-only"
            for path, words in (
                ("/admin/", "Engine heartbeat"),
                ("/admin/sync", "account_health"),
                ("/admin/runs", "console-flaky"),
                (f"/admin/runs/{failed}", "flaky: the platform said no"),
                ("/admin/functions", "console-flaky"),
                ("/admin/tenants?tenant=acme", "1234567890"),
            ):
                text = pages.go(path)
                assert words in text, (path, words)
                posts = pages.page.locator("form[method=post]")
                assert posts.count() == 1 and posts.get_attribute("action") == "/admin/logout", path
                buttons = {b.strip() for b in pages.page.locator("button").all_inner_texts()}
                assert buttons <= {"Sign out", "Show", "Filter"}, (path, buttons)
                pages.shot(path.strip("/").replace("/", "-").replace("?", "-") or "overview")
            # Posting anyway, with the session's own cookie and CSRF token: refused.
            csrf = pages.page.get_attribute("#sign-out-form input[name=csrf]", "value")
            refused = pages.page.request.post(
                f"{running.base}/admin/functions/pause", form={"csrf": str(csrf), "function": "console-flaky"}
            )
            retry = pages.page.request.post(
                f"{running.base}/admin/runs/{failed}/retry", form={"csrf": str(csrf)}
            )
            return {
                "pause": (refused.status, refused.text()),
                "retry": (retry.status, retry.text()),
            }

        seen = await browse(running, tmp_path, script)
        for status, body in seen.values():
            assert status == 403 and "read-only session" in body and "nothing was done" in body
        assert await running.engine.paused() == []
        assert (await running.engine.get_run(failed)).status == "failed"
        actions = await app_db(running).fetch(
            "SELECT event_type FROM audit_log WHERE actor LIKE 'console:%' ORDER BY id"
        )
        assert [a["event_type"] for a in actions] == ["console.sign_in"]
