"""Readiness: what `/readyz` reports, from the database, migrations, actors and the canary.

`/readyz` answers from a state checked at most once a second (`probe`), so a crowd of
probes costs the database one query a second, and it names the failing part in fixed
words: error text (which may hold a DSN, a host, a database name) goes to the log only.
"""

from __future__ import annotations

import logging
import math

import attrs
import trio

from deneva.canary import MAX_AGE_S, Beat, latest_beat
from deneva.clock import Clock
from deneva.db import Database
from deneva.engine.engine import ENGINE, Engine
from deneva.errors import DatabaseError
from deneva.supervisor import Supervisor

log = logging.getLogger("deneva.health")

HEARTBEAT_MAX_AGE_S = MAX_AGE_S
DB_PROBE_TIMEOUT_S = 2.0
REFRESH_S = 1.0  # /readyz answers from a check at most this old
DATABASE_UNREACHABLE = "database: unreachable (the daemon's log has the error)"
DATABASE_SLOW = f"database: no answer within {DB_PROBE_TIMEOUT_S:.0f} s"


@attrs.frozen
class Readiness:
    ready: bool
    problems: tuple[str, ...]
    checks: dict[str, str]


@attrs.define
class HealthState:
    """What the daemon knows about itself; the HTTP layer asks it, never the actors."""

    supervisor: Supervisor
    clock: Clock
    node: str
    db: Database | None = None
    migrated: bool = False
    engine: Engine | None = None
    _latest: Readiness | None = attrs.field(default=None, init=False)
    _latest_at: float = attrs.field(default=-math.inf, init=False)  # trio time of its check
    _checking: trio.Event | None = attrs.field(default=None, init=False)
    _database_error: str | None = attrs.field(default=None, init=False)  # the last one logged

    async def probe(self) -> Readiness:
        """What `/readyz` answers: the latest check if under a second old, else a new one;
        probes that arrive during a check wait for it rather than start their own."""
        while True:
            if self._latest is not None and trio.current_time() - self._latest_at < REFRESH_S:
                return self._latest
            if self._checking is None:
                break
            await self._checking.wait()  # then fresh, or that probe was cancelled: look again
        self._checking = checked = trio.Event()
        try:
            result = await self.readiness()
            self._latest, self._latest_at = result, trio.current_time()
            return result
        finally:
            self._checking = None
            checked.set()

    async def latest_beat(self) -> Beat | None:
        """The engine canary's latest beat (None if none yet); raises on a DB outage."""
        if self.db is None:
            raise DatabaseError("database not connected yet")
        with trio.fail_after(DB_PROBE_TIMEOUT_S):
            return await latest_beat(self.db)

    async def _paused_note(self) -> str:
        """Why the canary may be stale on purpose: the whole engine is paused."""
        if self.engine is None:
            return ""
        try:
            with trio.fail_after(DB_PROBE_TIMEOUT_S):
                paused = [p for p in await self.engine.paused() if p.function_id == ENGINE]
        except (DatabaseError, trio.TooSlowError):
            return ""
        if not paused:
            return ""
        return (
            f"; the engine is paused since {paused[0].paused_at.isoformat()} (deneva functions resume --all)"
        )

    async def readiness(self) -> Readiness:
        problems: list[str] = []
        checks: dict[str, str] = {}
        try:
            beat = await self.latest_beat()
            checks["database"] = "ok"
            age = None if beat is None else beat.age_s(self.clock.now())
            if age is None:
                checks["heartbeat"] = "missing"
                problems.append("heartbeat: no heartbeat run has got through the engine yet")
            elif age > HEARTBEAT_MAX_AGE_S:
                checks["heartbeat"] = f"stale ({age:.0f} s old)"
                problems.append(
                    f"heartbeat: last heartbeat run {age:.0f} s ago (limit {HEARTBEAT_MAX_AGE_S:.0f} s): "
                    "the scheduler, dispatcher or workers are stuck" + await self._paused_note()
                )
            else:
                checks["heartbeat"] = "ok"
        except (DatabaseError, trio.TooSlowError) as exc:
            checks["database"] = "unreachable"
            checks["heartbeat"] = "unknown"
            slow = isinstance(exc, trio.TooSlowError)
            problems.append(DATABASE_SLOW if slow else DATABASE_UNREACHABLE)
            self._log_database_error(DATABASE_SLOW if slow else f"{type(exc).__name__}: {exc}")
        else:
            self._database_error = None
        checks["migrations"] = "ok" if self.migrated else "pending"
        if not self.migrated:
            problems.append("migrations: not applied")
        actor_problems = self.supervisor.problems(errors=False)  # the supervisor logged them
        checks["actors"] = "ok" if not actor_problems else "failing"
        problems += [f"actor: {p}" for p in actor_problems]
        return Readiness(not problems, tuple(problems), checks)

    def _log_database_error(self, error: str) -> None:
        if error != self._database_error:  # once per outage (and per change of error)
            self._database_error = error
            log.warning("readiness: the database check failed", extra={"error": error})
