"""A real HTTP server (hypercorn on loopback) with the operator console mounted, on a real
database and engine (no dispatcher: runs stay where the test puts them), the JSON admin
endpoints beside it, and a clock the test can move (sessions expire by it).

`Operator` is a browser without a browser: an httpx client with a cookie jar that signs
in through the login form, as a person does, and posts the forms the pages carry."""

from __future__ import annotations

import html
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import httpx
import trio

from deneva.config import Bind
from deneva.console_auth import ConsoleAuth, ConsoleSettings
from deneva.db import Database
from deneva.engine.builtin import register_builtin
from deneva.engine.context import Context
from deneva.engine.engine import Engine
from deneva.engine.functions import CronTrigger, EventTrigger, Function, Registry
from deneva.health import HealthState
from deneva.http.app import create_app
from deneva.http.console import ConsoleServices
from deneva.http.server import HttpServer
from deneva.metrics import CacheReads
from deneva.secrets import Secret
from deneva.supervisor import Supervisor

ADMIN_TOKEN = "console-admin-token-0123456789abcdef"
READONLY_TOKEN = "console-readonly-token-0123456789abcdef"


class ShiftClock:
    """The wall clock, plus however far the test moved it on."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    async def sleep_until(self, when: float) -> None:
        await trio.sleep(max(0.0, when - self.now()))


async def _nothing(ctx: Context) -> dict[str, Any]:
    return {"ok": True}


def console_registry() -> Registry:
    """The engine's diagnostics, a cron function, and one with an event trigger."""
    registry = register_builtin(Registry())
    registry.add(Function("nightly-report", _nothing, (CronTrigger("0 3 * * *"),)))
    registry.add(Function("on-signup", _nothing, (EventTrigger("app/signup"),), retries=2))
    return registry


@attrs.frozen
class ConsoleServer:
    base: str
    db: Database
    engine: Engine
    clock: ShiftClock

    def url(self, path: str) -> str:
        return f"{self.base}{path}"


@asynccontextmanager
async def console_server(
    db: Database,
    *,
    readonly: bool = True,
    settings: ConsoleSettings | None = None,
    registry: Registry | None = None,
) -> AsyncIterator[ConsoleServer]:
    clock = ShiftClock()
    engine = Engine(db, registry or console_registry(), clock, owner="console-test")
    admin = Secret("DENEVA_ADMIN_TOKEN", ADMIN_TOKEN)
    auth = ConsoleAuth(
        db,
        clock,
        admin,
        Secret("DENEVA_ADMIN_READONLY_TOKEN", READONLY_TOKEN) if readonly else None,
        settings,
    )
    services = ConsoleServices(
        db,
        engine,
        auth,
        "node-a:8787",
        {"gdpr-purge-cache": "0 2 * * *"},
        lambda: "http://127.0.0.1:8787",
        lambda: CacheReads(990, 4, 6),
    )
    health = HealthState(Supervisor(trio.Event()), clock, "node-a:8787", db=db, migrated=True)
    app = create_app(health, admin_token=admin, db_of=lambda: db, console=services)
    drain = trio.Event()
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(HttpServer(app, Bind("127.0.0.1", 0), drain, 2.0).run)
        yield ConsoleServer(binds[0], db, engine, clock)
        drain.set()
        nursery.cancel_scope.cancel()


_HIDDEN = re.compile(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)">')


def hidden_fields(page: str) -> dict[str, str]:
    return dict(_HIDDEN.findall(page))


class Operator:
    """A signed-in (or not) operator's HTTP client."""

    def __init__(self, server: ConsoleServer, http: httpx.AsyncClient) -> None:
        self.server = server
        self.http = http
        self.csrf = ""

    async def sign_in(self, token: str = ADMIN_TOKEN, next_path: str = "/admin/") -> httpx.Response:
        form = await self.http.get(self.server.url(f"/admin/login?next={next_path}"))
        fields = hidden_fields(form.text)
        answer = await self.http.post(
            self.server.url("/admin/login"),
            data={"login_csrf": fields["login_csrf"], "next": fields["next"], "token": token},
        )
        if answer.status_code == 303:
            page = await self.http.get(self.server.url(answer.headers["location"]))
            self.csrf = hidden_fields(page.text).get("csrf", "")
        return answer

    async def get(self, path: str) -> httpx.Response:
        return await self.http.get(self.server.url(path))

    async def post(
        self, path: str, data: dict[str, str] | None = None, *, csrf: bool = True
    ) -> httpx.Response:
        fields = dict(data or {})
        if csrf:
            fields.setdefault("csrf", self.csrf)
        return await self.http.post(self.server.url(path), data=fields)


@asynccontextmanager
async def operator(server: ConsoleServer) -> AsyncIterator[Operator]:
    async with httpx.AsyncClient(timeout=20) as http:
        yield Operator(server, http)


def text_of(page: str) -> str:
    """A page's visible text, roughly (tags dropped, whitespace folded)."""
    without = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", page, flags=re.S)
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", without)))
