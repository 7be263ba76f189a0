"""The daemon: one trio process, one top nursery, every actor wired here.

Wiring (the circuit diagram):

    signals ──stop/reload──▶ run_daemon
    PostgresKeeper (embedded only) ──dsn──▶ migrations ──▶ Database pool
    Heartbeat ──▶ heartbeats table ◀── HealthState ◀── HttpServer (/healthz, /readyz)
    Engine.send/invoke ──wake channel──▶ Dispatcher ◀── LISTEN deneva_runs (other replicas)
    Scheduler (cron ticks) ──runs + wake──▶ Dispatcher ──bounded worker nursery──▶ functions
    drain (trio.Event) ──▶ HttpServer (graceful shutdown), Dispatcher (stop claiming)

Start order: Postgres, migrations, pool, actors, HTTP; READY=1 once all are up.
Stop order: STOPPING=1, drain within the grace period, cancel actors, close the
pool, stop Postgres.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import trio

from deneva.actors.dispatcher import Dispatcher
from deneva.actors.heartbeat import Heartbeat
from deneva.actors.postgres import PostgresKeeper
from deneva.actors.scheduler import Scheduler
from deneva.adapters import PlatformConfig, adapters_for
from deneva.admin import create_database
from deneva.clock import Clock, SystemClock
from deneva.config import Config, load_config
from deneva.db import AsyncioThread, Database, connect_once
from deneva.demo import DemoSandbox, provision_demo, warm_cache
from deneva.engine.engine import Engine, EngineSettings
from deneva.engine.functions import Registry
from deneva.errors import DenevaError
from deneva.functions import app_registry
from deneva.health import HealthState
from deneva.http.app import create_app
from deneva.http.mcp_ws import McpEndpoints
from deneva.http.server import HttpServer
from deneva.logs import register_secret, setup_logging
from deneva.mcp.auth import KeyCache
from deneva.mcp.report_tools import ToolServices, build_tools
from deneva.mcp.tools import ToolRegistry
from deneva.migrations import load_migrations, migrate
from deneva.pgembed import DATABASE, EmbeddedPostgres, StateLock
from deneva.sdnotify import Notifier
from deneva.secrets import Secrets
from deneva.supervisor import Supervisor
from deneva.sync.platforms import platform_setup
from deneva.sync.worker import SyncRuntime, SyncServices

log = logging.getLogger("deneva.daemon")
# Keys read once at start, by the ad-platform sync.
_PLATFORM_KEYS = (
    "platforms",
    "google_ads_url",
    "google_token_url",
    "meta_graph_url",
    "tiktok_api_url",
    "google_ads_api_version",
    "meta_api_version",
    "tiktok_api_version",
)


def node_name(config: Config) -> str:
    return f"{socket.gethostname()}:{config.http_bind.port}"


async def apply_migrations(dsn: str, env: str) -> tuple[str, ...]:
    migrations = load_migrations()
    bridge, conn = await connect_once(dsn)
    try:
        report = await bridge.call(migrate, conn, env, migrations)
        return report.applied
    finally:
        with trio.CancelScope(shield=True):
            await bridge.call(conn.close)
        bridge.stop()


class Daemon:
    def __init__(
        self,
        config: Config,
        secrets: Secrets,
        *,
        clock: Clock | None = None,
        notifier: Notifier | None = None,
        reload: Callable[[], Config] | None = None,
        registry: Registry | None = None,
        demo: bool = False,
    ) -> None:
        self.config = config
        self.secrets = secrets
        self.clock = clock or SystemClock()
        self.notifier = notifier or Notifier.from_env()
        self._reload = reload or (lambda: load_config(config.config_file))
        self.stop_requested = trio.Event()
        self.drain = trio.Event()
        self._skip_drain = trio.CancelScope()
        self.supervisor = Supervisor(self.drain)
        self.health = HealthState(self.supervisor, self.clock, node_name(config))
        self.http_binds: list[str] = []
        self.pg: EmbeddedPostgres | None = None
        self.demo = demo
        self.sync_runtime: SyncRuntime | None = None
        if registry is None:
            registry, self.sync_runtime = app_registry()
        self.registry = registry
        self.engine: Engine | None = None
        self.demo_key_file: Path | None = None
        self.mcp: McpEndpoints | None = None
        self.platform_http: httpx.AsyncClient | None = None  # while running: the adapters' client
        for secret in secrets.all():
            register_secret(secret.reveal())

    def request_stop(self) -> None:
        self.stop_requested.set()

    async def run(self, *, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
        config = self.config
        lock: StateLock | None = None
        if config.embedded_database:
            lock = StateLock(config.state_dir)
            if not lock.try_acquire():
                raise DenevaError(
                    f"DENEVA_STATE_DIR: {config.state_dir} is in use by another deneva (pid {lock.holder()})"
                )
        try:
            async with trio.open_nursery() as outer:
                outer.start_soon(self._handle_signals)
                if config.database_url is None:
                    self.notifier.status("starting embedded Postgres")
                    self.pg = EmbeddedPostgres(
                        config.state_dir, bin_dir=config.pg_bin, pg_user=config.pg_user
                    )
                    dsn = await self.supervisor.start(outer, PostgresKeeper(self.pg))
                    bridge = AsyncioThread()
                    try:
                        await bridge.call(create_database, self.pg.dsn("postgres"), DATABASE)
                    finally:
                        bridge.stop()
                else:
                    dsn = config.database_url
                self.notifier.status("migrating")
                applied = await apply_migrations(dsn, config.env)
                if applied:
                    log.info("migrations applied", extra={"migrations": list(applied)})
                self.health.migrated = True
                db = await Database.open(dsn, max_size=max(4, min(config.workers, 20)))
                self.health.db = db
                try:
                    # One HTTP client for every platform call: its connection pool and TLS
                    # context are made once (a new client costs about 20 ms of CPU for TLS).
                    async with (
                        httpx.AsyncClient(follow_redirects=False) as http,
                        trio.open_nursery() as inner,
                    ):
                        self.platform_http = http
                        await self._start_actors(inner, db)
                        self.notifier.ready(f"serving on {', '.join(self.http_binds)}")
                        log.info("deneva ready", extra={"http": self.http_binds, "env": config.env})
                        task_status.started(self.http_binds)
                        if self.notifier.watchdog_interval:
                            inner.start_soon(self._watchdog, self.notifier.watchdog_interval)
                        await self.stop_requested.wait()
                        await self._drain()
                        inner.cancel_scope.cancel()
                finally:
                    await db.close()
                outer.cancel_scope.cancel()
        finally:
            if lock is not None:
                lock.release()
        log.info("deneva stopped")

    async def _start_actors(self, nursery: trio.Nursery, db: Database) -> None:
        config = self.config
        owner = f"{self.health.node}:{os.getpid()}"
        if self.demo and self.sync_runtime is not None:
            base_url = await self.supervisor.start(nursery, DemoSandbox())
            adapters = adapters_for(PlatformConfig.for_sandbox(base_url), http=self.platform_http)
            self.sync_runtime.services = SyncServices(db, self.secrets.kek_bytes(), adapters, self.clock)
            self.demo_key_file = await provision_demo(db, self.secrets.kek_bytes(), config.state_dir)
        elif self.sync_runtime is not None:
            self._bind_platforms(self.sync_runtime, db)
        self.engine = Engine(db, self.registry, self.clock, owner, EngineSettings(workers=config.workers))
        await self.supervisor.start(
            nursery, Heartbeat(db, self.clock, self.health.node, config.heartbeat_interval_s)
        )
        await self.supervisor.start(nursery, Scheduler(self.engine))
        await self.supervisor.start(nursery, Dispatcher(self.engine, self.drain))
        engine = self.engine
        app = create_app(
            self.health,
            lambda: engine,
            self.secrets.event_key,
            admin_token=self.secrets.admin_token,
            db_of=lambda: db,
        )
        keys = KeyCache(db)
        await self.supervisor.start(nursery, keys)
        self.mcp = McpEndpoints.build(
            db, self.mcp_tools(db, engine), config, self.clock, self.drain, keys.authenticate
        )
        self.mcp.mount(app)
        self.http_binds = await self.supervisor.start(
            nursery, HttpServer(app, config.http_bind, self.drain, config.shutdown_grace_s)
        )
        if self.demo and self.sync_runtime is not None:
            await warm_cache(self.engine)

    def mcp_tools(self, db: Database, engine: Engine) -> ToolRegistry:
        """The MCP tools this daemon serves (SPEC §9), over the sync's cache and the engine."""
        sync = None if self.sync_runtime is None else self.sync_runtime.get
        return build_tools(
            ToolServices(db=db, engine=engine, clock=self.clock, sync=sync, owner=engine.owner)
        )

    def _bind_platforms(self, runtime: SyncRuntime, db: Database) -> None:
        """`deneva run`: sync the platforms that are configured (said once, without values)."""
        setup = platform_setup(self.config, self.secrets)
        log.info(
            "ad-platform sync", extra={"synced": list(setup.synced), "not_synced": dict(setup.not_synced)}
        )
        if setup.synced:
            adapters = setup.adapters(self.platform_http)
            runtime.services = SyncServices(db, self.secrets.kek_bytes(), adapters, self.clock)

    async def _drain(self) -> None:
        grace = self.config.shutdown_grace_s
        log.info("draining", extra={"grace_s": grace})
        self.notifier.stopping()
        self.drain.set()
        with self._skip_drain, trio.move_on_after(grace) as scope:
            await self.supervisor.wait_drained()
        if scope.cancelled_caught or self._skip_drain.cancelled_caught:
            log.warning("grace period over; cancelling what is left", extra={"grace_s": grace})

    async def _watchdog(self, interval: float) -> None:
        while True:
            self.notifier.watchdog()
            await trio.sleep(interval)

    async def _handle_signals(self) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            async for signum in signals:
                if signum == signal.SIGHUP:
                    self._reload_config()
                elif self.stop_requested.is_set():
                    log.warning("second stop signal; not waiting for the drain")
                    self._skip_drain.cancel()
                else:
                    log.info("stop requested", extra={"signal": signal.Signals(signum).name})
                    self.request_stop()

    def _reload_config(self) -> None:
        self.notifier.reloading()
        try:
            fresh = self._reload()
        except DenevaError as exc:
            log.error("config reload failed; keeping the running config", extra={"error": str(exc)})
            self.notifier.send("READY=1")
            return
        changed = [k for k in ("log_level", "log_format") if getattr(fresh, k) != getattr(self.config, k)]
        setup_logging(fresh.log_format, fresh.log_level)
        needs_restart = [
            k
            for k in (
                "database_url",
                "http_bind",
                "state_dir",
                "env",
                "workers",
                "secrets_dir",
                *_PLATFORM_KEYS,
            )
            if getattr(fresh, k) != getattr(self.config, k)
        ]
        log.info("config reloaded", extra={"applied": changed, "needs_restart": needs_restart})
        self.notifier.send("READY=1")
