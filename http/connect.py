"""Browser connect over HTTP (SPEC §10): the pages of `deneva.connect`'s flow.

- `GET /connect/{platform}/start?state=...`: the link `deneva connect` printed. Binds the
  flow to this browser (an HttpOnly, SameSite=Lax cookie scoped to the platform's
  /connect path) and redirects to the platform's consent page.
- `GET /connect/{platform}/callback?state=...&code=...` (TikTok: `auth_code`; a refusal:
  `error=...`): exchanges the code, and shows the accounts to pick (or, with accounts
  pre-selected by `--account`, stores them).
- `POST /connect/{platform}/accounts` (`state`, `form_token`, `account`...): stores the
  accounts picked.

Every page is a Jinja2 template (http/templates/connect/), every value autoescaped. A
refusal is its own page with a 4xx status naming what went wrong and what to do; a
database outage is 503. Pages are never cached, never framed and send no referrer; no
token, code, state or secret is ever written into a page other than the form's own
one-time fields, nor logged.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
from quart import Blueprint, Response, request

from deneva.adapters.base import PLATFORMS
from deneva.connect import COOKIE, FLOW_TTL_S, BrowserConnect, Connected, ConnectRefused, Picking
from deneva.errors import DatabaseError

NAMES = {"google": "Google Ads", "meta": "Meta", "tiktok": "TikTok"}
_PAGES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates" / "connect"),
    autoescape=True,  # every template, whatever its name
    undefined=jinja2.StrictUndefined,
)
_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'",
}


def _page(template: str, status: int = 200, **context: Any) -> Response:
    body = _PAGES.get_template(template).render(**context)
    response = Response(body, status=status, content_type="text/html; charset=utf-8")
    response.headers.update(_HEADERS)
    return response


def refused_page(refused: ConnectRefused) -> Response:
    return _page("refused.html", refused.status, title=refused.title, detail=refused.detail)


def connect_blueprint(connect_of: Callable[[], BrowserConnect | None]) -> Blueprint:
    """`connect_of()` is the daemon's BrowserConnect (None while it is not running)."""
    blueprint = Blueprint("connect", __name__)

    def service(platform: str) -> BrowserConnect:
        if platform not in PLATFORMS:
            raise ConnectRefused(404, "No such platform", f"deneva connects {', '.join(PLATFORMS)}.")
        found = connect_of()
        if found is None:
            raise DatabaseError("not running yet")
        return found

    def outcome(platform: str, state: str, result: Picking | Connected) -> Response:
        if isinstance(result, Connected):
            return _page(
                "connected.html",
                tenant=result.tenant,
                platform_name=NAMES[platform],
                accounts=result.accounts,
                replaced=result.replaced,
            )
        return _page(
            "pick.html",
            200 if result.problem is None else 400,
            tenant=result.tenant,
            platform_name=NAMES[platform],
            accounts=result.accounts,
            state=state,
            form_token=result.form_token,
            action=f"/connect/{platform}/accounts",
            expires_at=result.expires_at.strftime("%H:%M:%S UTC"),
            problem=result.problem,
        )

    def guarded(handler: Callable[..., Any]) -> Callable[..., Any]:
        async def run(platform: str) -> Response:
            try:
                response: Response = await handler(platform)
                return response
            except ConnectRefused as refused:
                return refused_page(refused)
            except DatabaseError:
                return refused_page(
                    ConnectRefused(
                        503, "Try again shortly", "deneva's database is unavailable; reload this page."
                    )
                )

        run.__name__ = handler.__name__
        return run

    @blueprint.get("/connect/<platform>/start")
    @guarded
    async def start(platform: str) -> Response:
        connect = service(platform)
        started = await connect.start(platform, request.args.get("state", ""))
        response = Response("", status=302, headers={"Location": started.authorize_url, **_HEADERS})
        response.set_cookie(
            COOKIE,
            started.browser_secret,
            max_age=int(FLOW_TTL_S),
            path=f"/connect/{platform}/",
            secure=connect.public_url.startswith("https://"),
            httponly=True,
            samesite="Lax",  # sent on the platform's top-level redirect back, not on cross-site posts
        )
        return response

    @blueprint.get("/connect/<platform>/callback")
    @guarded
    async def callback(platform: str) -> Response:
        connect = service(platform)
        args = request.args
        state = args.get("state", "")
        code = args.get("code") or args.get("auth_code")
        error = args.get("error")
        result = await connect.callback(platform, state, code, error, request.cookies.get(COOKIE))
        return outcome(platform, state, result)

    @blueprint.post("/connect/<platform>/accounts")
    @guarded
    async def accounts(platform: str) -> Response:
        connect = service(platform)
        form = await request.form
        state = form.get("state", "")
        token = form.get("form_token", "")
        if not state or not token:
            raise ConnectRefused(
                400, "Incomplete form", "The form lacks its state or one-time token; nothing was stored."
            )
        chosen = [a for a in form.getlist("account") if isinstance(a, str)][:1000]
        result = await connect.pick(platform, state, token, chosen, request.cookies.get(COOKIE))
        return outcome(platform, state, result)

    return blueprint
