"""The operator console at `/admin/` (issue 15): server-rendered pages (Jinja2,
autoescaped, http/templates/admin/), one stylesheet served by the app itself, no script.

Pages (GET): `/admin/` overview, `/admin/sync` sync health, `/admin/runs` and
`/admin/runs/<id>`, `/admin/functions`, `/admin/tenants`; `/admin/login`. Actions (POST,
admin sessions only): `/admin/sync/refresh`, `/admin/sync/reconnect`,
`/admin/runs/<id>/retry|cancel`, `/admin/runs/retry-matching|cancel-matching`,
`/admin/functions/pause|resume|invoke`, `/admin/tenants` (create), `/admin/tenants/keys`
(create), `/admin/tenants/keys/revoke`; `/admin/logout` (any session).

Who may: `deneva.console_auth` (sign-in with the admin or the read-only token, sessions
in Postgres, CSRF). A page without a usable session answers 401 with the sign-in form
(saying when the session expired); an action without one 401; a form without its
session's CSRF token 403; an action from a read-only session 403 "read-only session";
a bad form or filter value 400 naming the field; an unknown run 404; a database outage
503. A refused request writes nothing. Every page is `no-store`, never framed
(`X-Frame-Options: DENY`, CSP `frame-ancestors 'none'`), sends no referrer, and runs no
script (CSP `script-src` is not even allowed). Secrets never appear: API keys and connect
links are shown once, on the page that made them; run inputs and outputs are redacted
(`deneva.console.redact`).

The JSON endpoints `/admin/health/scheduler` and `/admin/metrics/sync` stay in
`deneva.http.admin`, behind the `x-admin-token` header, unchanged; a console session
does not open them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import attrs
import jinja2
from quart import Blueprint, Response, redirect, request

from deneva import console
from deneva.clock import as_datetime
from deneva.console import ConsoleInputError
from deneva.console_auth import (
    COOKIE_PATH,
    LOGIN_COOKIE,
    LOGIN_FORM_TTL_S,
    SESSION_COOKIE,
    ConsoleAuth,
    ConsoleSession,
    NoSession,
    login_form_ok,
    login_form_token,
)
from deneva.db import Database
from deneva.engine.engine import MAX_MATCHING, Engine
from deneva.engine.errors import RunNotFound, UnknownFunction
from deneva.engine.model import RETRYABLE, RunCursor
from deneva.errors import DatabaseError
from deneva.functions import function_states
from deneva.metrics import CacheReads

log = logging.getLogger("deneva.http.console")

_HERE = Path(__file__).parent
_PAGES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(_HERE / "templates" / "admin"),
    autoescape=True,  # every template, whatever its name
    undefined=jinja2.StrictUndefined,
)
STYLESHEET = (_HERE / "static" / "admin" / "console.css").read_bytes()
HEADERS = {
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
}
NAV = (
    ("/admin/", "Overview"),
    ("/admin/sync", "Sync health"),
    ("/admin/runs", "Runs"),
    ("/admin/functions", "Functions"),
    ("/admin/tenants", "Tenants and keys"),
)
MAX_FIELD = 70_000  # a form field's characters (the invoke data's 64 KB and some)


def _when(value: datetime | float | None) -> str:
    if value is None:
        return "never"
    moment = as_datetime(value) if isinstance(value, int | float) else value
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86_400:.1f} d"


def _took(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else _ago(seconds)


_PAGES.filters.update(when=_when, ago=_ago, took=_took, query=lambda params: urlencode(params))


@attrs.frozen
class ConsoleServices:
    """What the console runs on (the daemon builds it once its engine is up)."""

    db: Database
    engine: Engine
    auth: ConsoleAuth
    node: str
    janitor_schedules: Mapping[str, str] = attrs.Factory(dict)
    # Where operators' browsers reach this daemon (the reconnect links' base).
    public_url: Callable[[], str] = lambda: "http://127.0.0.1:8787"
    # The MCP tools' cache reads in this replica (deneva.metrics.Metrics.cache_reads).
    cache_reads: Callable[[], CacheReads] = lambda: CacheReads(0, 0, 0)


@attrs.frozen
class Refused(Exception):
    """A request the console refuses: the status, a title, what to do."""

    status: int
    title: str
    detail: str


def _page(template: str, status: int = 200, **context: Any) -> Response:
    context.setdefault("session", None)
    context.setdefault("nav", NAV)
    context.setdefault("current", "")
    body = _PAGES.get_template(template).render(**context)
    return Response(body, status=status, content_type="text/html; charset=utf-8")


def _refused_page(refused: Refused, session: ConsoleSession | None = None) -> Response:
    return _page("error.html", refused.status, title=refused.title, detail=refused.detail, session=session)


def _next_path(raw: str | None) -> str:
    """Where to go after signing in: a console path only (no open redirect)."""
    if raw and raw.startswith("/admin/") and not raw.startswith("//") and "\\" not in raw and len(raw) < 2000:
        return raw
    return "/admin/"


def console_blueprint(services: ConsoleServices) -> Blueprint:
    blueprint = Blueprint("console", __name__)
    auth, engine, db = services.auth, services.engine, services.db

    @blueprint.after_request
    async def secure_headers(response: Response) -> Response:
        response.headers.update(HEADERS)
        return response

    def secure() -> bool:
        return request.scheme == "https" or auth.settings.secure_cookies

    def client() -> str:
        return request.remote_addr or "unknown"

    def login_page(status: int, problem: str | None, next_path: str) -> Response:
        token = login_form_token()
        page = _page(
            "login.html",
            status,
            title="Sign in",
            problem=problem,
            login_csrf=token,
            next_path=_next_path(next_path),
            readonly=auth.has_readonly,
        )
        page.set_cookie(
            LOGIN_COOKIE,
            token,
            max_age=LOGIN_FORM_TTL_S,
            path=COOKIE_PATH,
            secure=secure(),
            httponly=True,
            samesite="Strict",
        )
        return page

    async def current_session() -> ConsoleSession | NoSession:
        return await auth.session(request.cookies.get(SESSION_COOKIE))

    def page_handler(
        handler: Callable[..., Awaitable[Response]],
    ) -> Callable[..., Awaitable[Response]]:
        """A GET page: the sign-in form (401) without a usable session."""

        async def run(**kwargs: Any) -> Response:
            session: ConsoleSession | None = None
            try:
                found = await current_session()
                if isinstance(found, NoSession):
                    problem = "Your session expired; sign in again." if found.reason == "expired" else None
                    path = request.path + (
                        f"?{request.query_string.decode()}" if request.query_string else ""
                    )
                    return login_page(401, problem, path)
                session = found
                return await handler(session, **kwargs)
            except Refused as refused:
                return _refused_page(refused, session)
            except ConsoleInputError as exc:
                return _refused_page(Refused(exc.status, "Not understood", str(exc)), session)
            except RunNotFound as exc:
                return _refused_page(Refused(404, "No such run", str(exc)), session)
            except DatabaseError:
                return _refused_page(
                    Refused(503, "Try again shortly", "deneva's database is unavailable; reload this page."),
                    session,
                )

        run.__name__ = handler.__name__
        return run

    def action_handler(
        handler: Callable[..., Awaitable[Response]], *, admin: bool = True
    ) -> Callable[..., Awaitable[Response]]:
        """A POST action: a usable session (401), its CSRF token (403), an admin session
        unless `admin` is False (403), then the handler with the form's fields."""

        async def run(**kwargs: Any) -> Response:
            session: ConsoleSession | None = None
            try:
                form = await request.form
                fields: dict[str, str] = {}
                for name in form:
                    values = form.getlist(name)
                    if len(values) > 1:
                        raise ConsoleInputError(name, "given more than once")
                    if len(values[0]) > MAX_FIELD:
                        raise ConsoleInputError(name, "too long")
                    fields[name] = values[0]
                found = await current_session()
                if isinstance(found, NoSession):
                    why = "Your session expired" if found.reason == "expired" else "You are not signed in"
                    raise Refused(401, "Sign in first", f"{why}; nothing was done. Sign in at /admin/login.")
                session = found
                if not session.csrf_ok(fields.get("csrf")):
                    raise Refused(
                        403,
                        "Form refused",
                        "This form lacks the session's CSRF token or carries a wrong one (a stale page, or "
                        "one not sent from this console); nothing was done. Reload the page and try again.",
                    )
                if admin and not session.can_act:
                    raise Refused(
                        403,
                        "Read-only session",
                        "read-only session: it can see everything and change nothing; nothing was done. "
                        "Sign in with the admin token to act.",
                    )
                return await handler(session, fields, **kwargs)
            except Refused as refused:
                return _refused_page(refused, session)
            except ConsoleInputError as exc:
                return _refused_page(Refused(exc.status, "Not done", f"{exc}; nothing was done."), session)
            except RunNotFound as exc:
                return _refused_page(Refused(404, "No such run", f"{exc}; nothing was done."), session)
            except UnknownFunction as exc:
                return _refused_page(Refused(400, "Not done", f"function: {exc}; nothing was done."), session)
            except DatabaseError:
                return _refused_page(
                    Refused(503, "Try again shortly", "deneva's database is unavailable; nothing was done."),
                    session,
                )

        run.__name__ = handler.__name__
        return run

    def done(session: ConsoleSession, title: str, message: str, back: str, **extra: Any) -> Response:
        return _page("done.html", title=title, message=message, back=back, session=session, **extra)

    # -- assets, sign-in, sign-out ---------------------------------------------------------

    @blueprint.get("/admin/static/console.css")
    async def stylesheet() -> Response:
        return Response(STYLESHEET, content_type="text/css; charset=utf-8")

    @blueprint.get("/admin/login")
    async def login_form() -> Response:
        try:
            found = await current_session()
        except DatabaseError:
            return _refused_page(Refused(503, "Try again shortly", "deneva's database is unavailable."))
        if isinstance(found, ConsoleSession):
            return redirect(_next_path(request.args.get("next")), 303)  # type: ignore[return-value]
        return login_page(200, None, request.args.get("next", "/admin/"))

    @blueprint.post("/admin/login")
    async def login() -> Response:
        form = await request.form
        next_path = _next_path(form.get("next"))
        if not login_form_ok(request.cookies.get(LOGIN_COOKIE), form.get("login_csrf")):
            return login_page(
                403,
                "The sign-in form was stale or not sent from this page; nothing was done. Try again.",
                next_path,
            )
        wait = auth.sign_in_blocked_for(client())
        if wait is not None:
            return login_page(
                429,
                f"Too many failed sign-ins from this address; try again in {max(1, round(wait))} s.",
                next_path,
            )
        role = auth.role_of(str(form.get("token", ""))[:4096])
        try:
            if role is None:
                await auth.refuse_sign_in(client(), "wrong token")
                log.info("console sign-in refused", extra={"client": client()})
                return login_page(401, "That token is not the admin or the read-only token.", next_path)
            session, secret = await auth.sign_in(role, client())
        except DatabaseError:
            return _refused_page(Refused(503, "Try again shortly", "deneva's database is unavailable."))
        log.info("console sign-in", extra={"role": role, "session": str(session.id)[:8]})
        response: Response = redirect(next_path, 303)  # type: ignore[assignment]
        response.set_cookie(
            SESSION_COOKIE,
            secret,
            max_age=int(auth.settings.ttl_s),
            path=COOKIE_PATH,
            secure=secure(),
            httponly=True,
            samesite="Strict",
        )
        response.delete_cookie(LOGIN_COOKIE, path=COOKIE_PATH)
        return response

    async def logout(session: ConsoleSession, fields: dict[str, str]) -> Response:
        await auth.sign_out(session)
        page = _page("signed_out.html", title="Signed out")
        page.delete_cookie(
            SESSION_COOKIE, path=COOKIE_PATH, secure=secure(), httponly=True, samesite="Strict"
        )
        return page

    blueprint.add_url_rule("/admin/logout", "logout", action_handler(logout, admin=False), methods=["POST"])

    # -- overview ----------------------------------------------------------------------------

    async def overview(session: ConsoleSession) -> Response:
        data = await console.overview(db, engine, services.node, services.cache_reads())
        return _page("overview.html", title="Overview", current="/admin/", session=session, o=data)

    blueprint.add_url_rule("/admin/", "overview", page_handler(overview), methods=["GET"])

    # -- sync health ---------------------------------------------------------------------------

    async def sync_page(session: ConsoleSession) -> Response:
        after = request.args.get("after", "")
        tenant = request.args.get("tenant", "").strip() or None
        if len(after) > 64 or (tenant is not None and len(tenant) > 64):
            raise ConsoleInputError(
                "tenant" if tenant and len(tenant) > 64 else "after", "at most 64 characters"
            )
        now = engine.clock.now()
        matrix = await console.sync_matrix(db, now, after=after, tenant=tenant)
        if tenant is not None and not matrix.rows:
            raise ConsoleInputError("tenant", f"no tenant named {tenant!r}")
        return _page(
            "sync.html",
            title="Sync health",
            current="/admin/sync",
            session=session,
            matrix=matrix,
            now=now,
            tenant=tenant or "",
            states=console.CELL_STATES,
        )

    async def refresh(session: ConsoleSession, fields: dict[str, str]) -> Response:
        done_ = await console.refresh_now(
            db,
            engine,
            session,
            fields.get("tenant", ""),
            fields.get("platform", ""),
            fields.get("report", ""),
        )
        message = (
            f"Asked for {done_.targets} refresh{'es' if done_.targets != 1 else ''} of {done_.platform} "
            f"{done_.report_type} for {done_.tenant}: {len(done_.run_ids)} run(s) queued."
        )
        return done(
            session, "Refresh queued", message, "/admin/sync", run_ids=done_.run_ids, errors=done_.errors
        )

    async def reconnect(session: ConsoleSession, fields: dict[str, str]) -> Response:
        link = await console.reconnect_link(
            db,
            session,
            fields.get("tenant", ""),
            fields.get("platform", ""),
            fields.get("account", ""),
            services.public_url(),
            engine.clock.now(),
        )
        message = (
            f"Open this link in a browser signed in to {link.platform} as someone who can reach account "
            f"{link.account_id}; it works once, until {_when(link.expires_at)}. It replaces the stored "
            f"credential of {link.tenant} in place; the next sync marks it healthy."
        )
        return done(
            session, "Reconnect link", message, "/admin/sync", secret=link.url, secret_label="Connect link"
        )

    blueprint.add_url_rule("/admin/sync", "sync", page_handler(sync_page), methods=["GET"])
    blueprint.add_url_rule("/admin/sync/refresh", "sync_refresh", action_handler(refresh), methods=["POST"])
    blueprint.add_url_rule(
        "/admin/sync/reconnect", "sync_reconnect", action_handler(reconnect), methods=["POST"]
    )

    # -- runs ------------------------------------------------------------------------------------

    async def runs_page(session: ConsoleSession) -> Response:
        args = {k: request.args.get(k, "") for k in ("status", "function", "tenant", "from", "until")}
        wanted = await console.parse_run_query(db, engine, args)
        after_text = request.args.get("after", "")
        after: RunCursor | None = console.parse_cursor(after_text) if after_text else None
        records = await engine.find_runs(wanted.where, after, console.PAGE_SIZE)
        older = None
        if len(records) == console.PAGE_SIZE:
            older = {**wanted.params(), "after": console.cursor_text(RunCursor.after(records[-1]))}
        return _page(
            "runs.html",
            title="Runs",
            current="/admin/runs",
            session=session,
            q=wanted,
            runs=records,
            older=older,
            paged=after is not None,
            statuses=console.STATUS_CHOICES,
            functions=[f.id for f in engine.registry.all()],
            max_matching=MAX_MATCHING,
        )

    async def run_page(session: ConsoleSession, run_id: str) -> Response:
        view = await console.run_view(db, engine, console.parse_run_id(run_id))
        return _page(
            "run.html", title=f"Run {view.record.id}", current="/admin/runs", session=session, r=view
        )

    async def retry_run(session: ConsoleSession, fields: dict[str, str], run_id: str) -> Response:
        ident = console.parse_run_id(run_id)
        current = (await engine.get_run(ident)).status
        if current not in RETRYABLE:  # nothing to do, nothing written
            message = f"Run {ident} is {current}: only failed or cancelled runs are retried."
            return done(session, "Retry", message, f"/admin/runs/{ident}")
        status = await engine.retry(
            ident, audit=console.run_audit(session, "console.run_retry", {"run": str(ident)})
        )
        message = (
            f"Run {ident} is queued again (its completed steps are kept)."
            if status == "queued"
            else f"Run {ident} is {status}: only failed or cancelled runs are retried."
        )
        return done(session, "Retry", message, f"/admin/runs/{ident}")

    async def cancel_run(session: ConsoleSession, fields: dict[str, str], run_id: str) -> Response:
        ident = console.parse_run_id(run_id)
        status = await engine.cancel(
            ident, audit=console.run_audit(session, "console.run_cancel", {"run": str(ident)})
        )
        messages = {
            "cancelled": f"Run {ident} is cancelled.",
            "cancelling": f"Run {ident} is running: it stops at its next step.",
        }
        message = messages.get(status, f"Run {ident} had finished already ({status}); nothing to cancel.")
        return done(session, "Cancel", message, f"/admin/runs/{ident}")

    def confirmed(fields: dict[str, str]) -> None:
        if fields.get("confirm") != "yes":
            raise ConsoleInputError("confirm", "tick the box to confirm that you mean every matching run")

    async def retry_matching(session: ConsoleSession, fields: dict[str, str]) -> Response:
        confirmed(fields)
        wanted = await console.parse_run_query(db, engine, fields)
        ids = await engine.retry_matching(
            wanted.where,
            audit=console.run_audit(session, "console.runs_retry_matching", console.filter_details(wanted)),
        )
        more = " (the most one action changes; run it again for the rest)" if len(ids) >= MAX_MATCHING else ""
        message = f"Queued {len(ids)} failed or cancelled run(s) again{more}."
        return done(session, "Retry matching runs", message, f"/admin/runs?{urlencode(wanted.params())}")

    async def cancel_matching(session: ConsoleSession, fields: dict[str, str]) -> Response:
        confirmed(fields)
        wanted = await console.parse_run_query(db, engine, fields)
        result = await engine.cancel_matching(
            wanted.where,
            audit=console.run_audit(session, "console.runs_cancel_matching", console.filter_details(wanted)),
        )
        count = len(result.cancelled) + len(result.cancelling)
        more = " (the most one action changes; run it again for the rest)" if count >= MAX_MATCHING else ""
        message = (
            f"Cancelled {len(result.cancelled)} run(s); asked {len(result.cancelling)} running run(s) "
            f"to stop at their next step{more}."
        )
        return done(session, "Cancel matching runs", message, f"/admin/runs?{urlencode(wanted.params())}")

    blueprint.add_url_rule("/admin/runs", "runs", page_handler(runs_page), methods=["GET"])
    blueprint.add_url_rule(
        "/admin/runs/retry-matching", "runs_retry_matching", action_handler(retry_matching), methods=["POST"]
    )
    blueprint.add_url_rule(
        "/admin/runs/cancel-matching",
        "runs_cancel_matching",
        action_handler(cancel_matching),
        methods=["POST"],
    )
    blueprint.add_url_rule("/admin/runs/<run_id>", "run", page_handler(run_page), methods=["GET"])
    blueprint.add_url_rule(
        "/admin/runs/<run_id>/retry", "run_retry", action_handler(retry_run), methods=["POST"]
    )
    blueprint.add_url_rule(
        "/admin/runs/<run_id>/cancel", "run_cancel", action_handler(cancel_run), methods=["POST"]
    )

    # -- functions ---------------------------------------------------------------------------

    async def functions_page(session: ConsoleSession) -> Response:
        now = engine.clock.now()
        paused = await engine.paused()
        crons = [
            f.id for f in engine.registry.all() if f.cron_triggers() or f.id in services.janitor_schedules
        ]
        last = await engine.last_ticks(crons)
        states = function_states(engine.registry, services.janitor_schedules, paused, now, last)
        engine_pause = next((p for p in paused if p.function_id == "*"), None)
        return _page(
            "functions.html",
            title="Functions",
            current="/admin/functions",
            session=session,
            functions=states,
            engine_pause=engine_pause,
        )

    async def pause(session: ConsoleSession, fields: dict[str, str]) -> Response:
        target = console.check_function(engine, fields.get("function", ""))
        what = "the whole engine" if target is None else target
        await engine.pause(
            target,
            by=session.actor,
            audit=console.run_audit(session, "console.function_pause", {"function": target or "*"}),
        )
        message = f"Paused {what} on every replica: its runs stay queued, running ones finish."
        return done(session, "Paused", message, "/admin/functions")

    async def resume(session: ConsoleSession, fields: dict[str, str]) -> Response:
        target = console.check_function(engine, fields.get("function", ""))
        what = "the whole engine" if target is None else target
        resumed = await engine.resume(
            target, audit=console.run_audit(session, "console.function_resume", {"function": target or "*"})
        )
        message = f"Resumed {what}." if resumed else f"{what} was not paused."
        return done(session, "Resumed", message, "/admin/functions")

    async def invoke(session: ConsoleSession, fields: dict[str, str]) -> Response:
        target = console.check_function(engine, fields.get("function", ""))
        if target is None:
            raise ConsoleInputError("function", "name the function to invoke")
        data = console.parse_invoke_data(fields.get("data", ""))
        run_id = await engine.invoke(
            target, data, audit=console.run_audit(session, "console.function_invoke", {"function": target})
        )
        return done(
            session,
            "Invoked",
            f"Started a run of {target}: {run_id}.",
            f"/admin/runs/{run_id}",
            run_ids=(run_id,),
        )

    blueprint.add_url_rule("/admin/functions", "functions", page_handler(functions_page), methods=["GET"])
    blueprint.add_url_rule(
        "/admin/functions/pause", "functions_pause", action_handler(pause), methods=["POST"]
    )
    blueprint.add_url_rule(
        "/admin/functions/resume", "functions_resume", action_handler(resume), methods=["POST"]
    )
    blueprint.add_url_rule(
        "/admin/functions/invoke", "functions_invoke", action_handler(invoke), methods=["POST"]
    )

    # -- tenants and keys -----------------------------------------------------------------------

    async def tenants_page(session: ConsoleSession) -> Response:
        after = request.args.get("after", "")
        chosen = request.args.get("tenant", "").strip()
        if len(after) > 64:
            raise ConsoleInputError("after", "at most 64 characters")
        lines, next_after = await console.tenant_lines(db, after)
        detail = await console.tenant_detail(db, chosen) if chosen else None
        return _page(
            "tenants.html",
            title="Tenants and keys",
            current="/admin/tenants",
            session=session,
            tenants=lines,
            next_after=next_after,
            detail=detail,
        )

    async def create_tenant(session: ConsoleSession, fields: dict[str, str]) -> Response:
        tenant = await console.create_tenant(db, session, fields.get("name", "").strip())
        return done(
            session,
            "Tenant created",
            f"Created tenant {tenant.name} ({tenant.id}).",
            f"/admin/tenants?tenant={tenant.name}",
        )

    async def create_key(session: ConsoleSession, fields: dict[str, str]) -> Response:
        tenant = fields.get("tenant", "")
        key = await console.new_key(db, session, tenant, fields.get("label", "").strip())
        message = f"API key {key.prefix} for {key.tenant}. Copy it now: it is shown once (a hash is kept)."
        return done(
            session,
            "API key created",
            message,
            f"/admin/tenants?tenant={key.tenant}",
            secret=key.plaintext,
            secret_label="API key",
        )

    async def revoke_key(session: ConsoleSession, fields: dict[str, str]) -> Response:
        prefix = await console.end_key(db, session, fields.get("prefix", ""))
        back = fields.get("tenant", "")
        where = (
            f"/admin/tenants?tenant={back}"
            if back.replace("-", "").replace("_", "").isalnum()
            else "/admin/tenants"
        )
        return done(session, "API key revoked", f"Revoked key {prefix}: it stops working at once.", where)

    blueprint.add_url_rule("/admin/tenants", "tenants", page_handler(tenants_page), methods=["GET"])
    blueprint.add_url_rule(
        "/admin/tenants", "tenants_create", action_handler(create_tenant), methods=["POST"]
    )
    blueprint.add_url_rule("/admin/tenants/keys", "keys_create", action_handler(create_key), methods=["POST"])
    blueprint.add_url_rule(
        "/admin/tenants/keys/revoke", "keys_revoke", action_handler(revoke_key), methods=["POST"]
    )

    return blueprint
