"""The daemon: one trio process, one top nursery, every actor started here.

The engine's circuit (its actors and the channels between them) is drawn and built in
`deneva.wiring`; this module starts it, with what surrounds it:

    signals ──stop/reload──▶ Daemon.run
    PostgresKeeper (embedded only) ──▶ migrations (the owner's login) ──▶ Database pool
                                        (the app login, which row-level security binds)
    deneva.wiring: Listener, Dispatcher (+ workers), Lifeline, Scheduler, Janitor,
                   TokenRefresher, Canary, all around the Engine
    KeyCache (LISTEN deneva_api_keys) ──▶ MCP auth
    HttpServer (MCP, health, metrics, events, webhooks, admin, the console) ──▶ Engine, HealthState, Metrics
    drain (trio.Event) ──▶ HttpServer (graceful shutdown), Dispatcher (stop claiming)

Start order: the API versions' sunset check (`deneva.sync.versions`: a sunset one stops
the start), Postgres, migrations, pool, the engine's actors, HTTP; READY=1 once all
are up. Stop order: STOPPING=1, drain within the grace period, cancel actors, close
the pool, stop Postgres.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import trio

from deneva.actors.postgres import PostgresKeeper
from deneva.adapters import PlatformConfig, adapters_for
from deneva.admin import create_database, embedded_urls, external_urls, open_pool, prepare_database
from deneva.canary import CanaryServices, latest_beat
from deneva.clock import Clock, SystemClock
from deneva.config import KEYS, Config, load_config
from deneva.connect import BrowserConnect
from deneva.console_auth import ConsoleAuth, ConsoleSettings
from deneva.db import AsyncioThread, Database
from deneva.demo import DemoSandbox, provision_demo, warm_cache
from deneva.engine.engine import Engine, EngineSettings
from deneva.engine.functions import Registry
from deneva.errors import DenevaError
from deneva.functions import AppFunctions, app_registry
from deneva.health import HealthState
from deneva.http.app import create_app
from deneva.http.console import ConsoleServices
from deneva.http.mcp_ws import McpEndpoints, host_policy
from deneva.http.metrics import MetricsEndpoint
from deneva.http.oauth import oauth_blueprint
from deneva.http.server import HttpServer
from deneva.http.webhooks import WebhookSecrets
from deneva.logs import register_secret, setup_logging
from deneva.mcp.auth import KeyCache
from deneva.mcp.report_tools import ToolServices, build_tools
from deneva.mcp.tools import ToolRegistry
from deneva.metrics import Metrics, ScrapeValues
from deneva.oauth.cimd import ClientDocuments
from deneva.oauth.jwt import ExternalIssuer
from deneva.oauth.resource import ProtectedResource
from deneva.oauth.server import AuthorizationServer, ResolveDocument
from deneva.observe import MetricsObserver
from deneva.pgembed import DATABASE, EmbeddedPostgres, StateLock
from deneva.retention import JanitorServices, plan_from_config
from deneva.sdnotify import Notifier
from deneva.secrets import META_APP_SECRET, META_VERIFY_TOKEN, Secrets
from deneva.supervisor import Supervisor
from deneva.sync.model import SyncRuntime, SyncServices
from deneva.sync.platforms import PlatformSetup, platform_setup
from deneva.sync.tokens import TokenDeadlines
from deneva.sync.versions import api_versions, check_at_start
from deneva.tenants import TenantError, check_tenant_name, tenant_by_name
from deneva.webhooks import SigningKey
from deneva.wiring import CanaryPlan, Circuit, engine_circuit

log = logging.getLogger("deneva.daemon")


def node_name(config: Config) -> str:
    return f"{socket.gethostname()}:{config.http_bind.port}"


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
        self.clock = clock or SystemClock(config.clock_offset_s)
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
        # With a registry of its own (tests), the daemon binds no services to it.
        self.functions: AppFunctions | None = None
        if registry is None:
            self.functions = app_registry(config.functions_module)
            registry = self.functions.registry
        self.sync_runtime: SyncRuntime | None = None if self.functions is None else self.functions.sync
        self.registry = registry
        self.janitor_plan = plan_from_config(config)
        self.engine: Engine | None = None
        self.circuit: Circuit | None = None
        self.demo_key_file: Path | None = None
        self.mcp: McpEndpoints | None = None
        self.keys: KeyCache | None = None  # API keys and OAuth access tokens, cached
        self.platform_http: httpx.AsyncClient | None = None  # while running: the adapters' client
        self.connect: BrowserConnect | None = None  # while serving: the browser connect's flows
        self.metrics = Metrics()
        for secret in secrets.all():
            register_secret(secret.reveal())

    def request_stop(self) -> None:
        self.stop_requested.set()

    async def run(self, *, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
        config = self.config
        self.check_api_versions()
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
                    await self.supervisor.start(outer, PostgresKeeper(self.pg))
                    bridge = AsyncioThread()
                    try:
                        await bridge.call(create_database, self.pg.dsn("postgres"), DATABASE)
                    finally:
                        bridge.stop()
                    urls = embedded_urls(self.pg)
                else:
                    urls = external_urls(config)
                self.notifier.status("migrating" if urls.owner else "checking the schema")
                applied = await prepare_database(urls, config.env)
                if applied:
                    log.info("migrations applied", extra={"migrations": list(applied)})
                # The pool's login is one row-level security binds (refused otherwise).
                db = await open_pool(urls, config.env, max_size=max(4, min(config.workers, 20)))
                self.health.migrated = True
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
        functions = self.functions
        platform_config = self.platforms.config
        if self.demo and self.sync_runtime is not None:
            base_url = await self.supervisor.start(nursery, DemoSandbox())
            platform_config = PlatformConfig.for_sandbox(base_url)
            adapters = adapters_for(platform_config, http=self.platform_http)
            keyring = self.secrets.keyring()
            self.sync_runtime.services = SyncServices(
                db, keyring, adapters, self.clock, owner=owner, metrics=self.metrics
            )
            self.demo_key_file = await provision_demo(db, keyring, config.state_dir)
        elif self.sync_runtime is not None:
            self._bind_platforms(self.sync_runtime, db, owner)
        tokens = None
        if self.sync_runtime is not None:
            runtime = self.sync_runtime
            tokens = TokenDeadlines(
                lambda: db, lambda: tuple(runtime.services.adapters) if runtime.services else ()
            )
        self.circuit = engine_circuit(
            db,
            self.registry,
            self.clock,
            owner,
            EngineSettings(workers=config.workers),
            drain=self.drain,
            observer=MetricsObserver(self.metrics),
            janitor=self.janitor_plan if functions is not None else None,
            tokens=tokens,
            canary=CanaryPlan(self.health.node, config.heartbeat_interval_s)
            if functions is not None
            else None,
        )
        engine = self.engine = self.circuit.engine
        self.health.engine = engine
        if functions is not None:
            functions.canary.value = CanaryServices(db, self.clock, self.health.node)
            functions.database.value = db
            functions.janitor.value = JanitorServices(
                db, engine, self.clock, self.janitor_plan, self.metrics.janitor_deleted
            )
        for actor in self.circuit.actors:
            await self.supervisor.start(nursery, actor)
        console = ConsoleServices(
            db,
            engine,
            ConsoleAuth(
                db,
                self.clock,
                self.secrets.admin_token,
                self.secrets.admin_readonly_token,
                ConsoleSettings(
                    ttl_s=config.console_session_ttl,
                    idle_s=config.console_session_idle,
                    secure_cookies=(config.public_url or "").startswith("https://"),
                ),
            ),
            self.health.node,
            dict(self.janitor_plan.schedules) if functions is not None else {},
            lambda: config.public_base(self.http_binds[0] if self.http_binds else None),
            self.metrics.cache_reads,
        )
        app = create_app(
            self.health,
            lambda: engine,
            self.secrets.event_key,
            admin_token=self.secrets.admin_token,
            db_of=lambda: db,
            metrics=MetricsEndpoint(self.metrics, self.scrape, self.secrets.metrics_token),
            api_versions=self.api_versions,
            connect_of=lambda: self.connect,
            webhooks=self.webhook_secrets(),
            console=console,
        )
        keys = self.keys = KeyCache(db, now=self.clock.now)
        await self.supervisor.start(nursery, keys)
        tools = self.mcp_tools(db, engine)
        protected, authorization = self.oauth(db, keys, tools.scopes)
        app.register_blueprint(
            oauth_blueprint(protected, authorization, host_policy(config), self.secrets.admin_token)
        )
        self.mcp = McpEndpoints.build(db, tools, config, self.clock, self.drain, keys.authenticate, protected)
        self.mcp.mount(app)
        self.http_binds = await self.supervisor.start(
            nursery,
            HttpServer(app, config.http_bind, self.drain, config.shutdown_grace_s, metrics=self.metrics),
        )
        self.connect = BrowserConnect(
            db,
            self.secrets.keyring(),
            platform_config,
            self.clock,
            config.public_base(self.http_binds[0] if self.http_binds else None),
            http=self.platform_http,
        )
        if self.demo and self.sync_runtime is not None:
            await warm_cache(engine)

    def webhook_secrets(self) -> WebhookSecrets:
        """What `/webhooks/events` and `/webhooks/meta` check deliveries with (Meta's: only
        when both of its secret files are there)."""
        secrets = self.secrets
        return WebhookSecrets(
            SigningKey.from_text(secrets.signing_key.reveal()),
            secrets.get(META_APP_SECRET),
            secrets.get(META_VERIFY_TOKEN),
            self.config.webhook_max_body,
        )

    def oauth(
        self, db: Database, keys: KeyCache, scopes: list[str]
    ) -> tuple[ProtectedResource, AuthorizationServer | None]:
        """MCP authorization: the resource server, and the built-in authorization server
        unless an external identity provider is configured."""
        config = self.config
        if config.oauth_issuer is not None:

            async def tenant_id(name: str) -> str | None:
                try:
                    check_tenant_name(name)  # a claim is untrusted text: no query for junk
                    return str((await db.run(lambda conn: tenant_by_name(conn, name))).id)
                except TenantError:
                    return None

            external = ExternalIssuer(
                config.oauth_issuer,
                tenant_id,
                jwks_url=config.oauth_jwks_url,
                tenant_claim=config.oauth_tenant_claim,
                algorithms=config.oauth_algorithms,
                now=self.clock.now,
            )
            resource = ProtectedResource(
                keys.authenticate, external=external, public_url=config.public_url, scopes=tuple(scopes)
            )
            return resource, None
        authorization = AuthorizationServer(db, self.clock, resolve_document=self.client_documents())
        protected = ProtectedResource(
            keys.authenticate,
            keys.authenticate_access_token,
            public_url=config.public_url,
            scopes=tuple(scopes),
        )
        return protected, authorization

    def client_documents(self) -> ResolveDocument:
        """How the authorization server reads Client ID Metadata Documents (deneva.oauth.cimd)."""
        return ClientDocuments(
            allow_loopback=self.config.oauth_cimd_allow_loopback, ca_file=self.config.oauth_cimd_ca_file
        )

    def mcp_tools(self, db: Database, engine: Engine) -> ToolRegistry:
        """The MCP tools this daemon serves (SPEC §9), over the sync's cache and the engine."""
        sync = None if self.sync_runtime is None else self.sync_runtime.get
        services = ToolServices(
            db=db,
            engine=engine,
            clock=self.clock,
            sync=sync,
            owner=engine.owner,
            on_cache_read=self.metrics.cache_read,
        )
        return build_tools(services)

    async def scrape(self) -> ScrapeValues:
        """What /metrics reads at scrape time: the queue, the canary, MCP sessions."""
        engine, db = self.engine, self.health.db
        if engine is None or db is None:
            return ScrapeValues()
        stats = await engine.queue_stats()
        beat = await latest_beat(db)
        return ScrapeValues(
            queue_depth=stats.due,
            oldest_due_age_s=stats.oldest_due_age_s,
            heartbeat_age_s=None if beat is None else beat.age_s(self.clock.now()),
            mcp_sessions_open=None if self.mcp is None else self.mcp.sessions_open(),
            runs_by_status=stats.by_status,
        )

    @functools.cached_property
    def platforms(self) -> PlatformSetup:
        """`deneva run`'s platforms: which are synced, and the adapters' configuration."""
        return platform_setup(self.config, self.secrets)

    def check_api_versions(self) -> None:
        """`deneva run`: a synced platform's API version that is sunset stops the start
        (ConfigError naming the key); one close to its sunset is logged. The demo speaks to
        the sandbox at deneva's own versions and is not checked."""
        if self.demo or self.sync_runtime is None or not self.platforms.synced:
            return
        check_at_start(self.platforms.adapters(), self.clock.now())

    def api_versions(self) -> dict[str, Any]:
        """The `apiVersions` of `/admin/metrics/sync`: the synced platforms' versions today."""
        services = None if self.sync_runtime is None else self.sync_runtime.services
        return {} if services is None else api_versions(services.adapters, self.clock.now())

    def _bind_platforms(self, runtime: SyncRuntime, db: Database, owner: str) -> None:
        """`deneva run`: sync the platforms that are configured (said once, without values)."""
        setup = self.platforms
        log.info(
            "ad-platform sync", extra={"synced": list(setup.synced), "not_synced": dict(setup.not_synced)}
        )
        if setup.synced:
            adapters = setup.adapters(self.platform_http)
            runtime.services = SyncServices(
                db, self.secrets.keyring(), adapters, self.clock, owner=owner, metrics=self.metrics
            )

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
        # Everything but the log settings is read once at start.
        needs_restart = [
            k
            for k in KEYS
            if k not in ("log_level", "log_format") and getattr(fresh, k) != getattr(self.config, k)
        ]
        log.info("config reloaded", extra={"applied": changed, "needs_restart": needs_restart})
        self.notifier.send("READY=1")
