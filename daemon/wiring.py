"""The circuit diagram: the engine, the actors around it and every channel between them,
made here and nowhere else. The daemon, the tests and the benchmarks all build it here.

                      NOTIFY deneva_runs (other replicas)
                                 │
    Postgres ──LISTEN──▶ Listener ├──wake──────────────────────────────▶ Dispatcher
                                 │                                        ▲   │ bounded worker
                                 │ NOTIFY deneva_paused ──wake──▶ Scheduler │   │ nursery: functions
                                 │                        └─wake─▶ Janitor  │   ▼
                                 │ NOTIFY deneva_credentials ─wake─▶ TokenRefresher
                                 │                                          │
    Engine.send/complete/retry/resume/rescue (this process) ──wake─────────┘
    Scheduler, Janitor ──ticks──▶ Engine.fire_ticks       TokenRefresher ──refresh requests──▶ Engine.send
    Lifeline ──renew leases, rescue orphans──▶ Engine     Canary ──a heartbeat request──▶ Engine.send
    Dispatcher ──claim, execute, complete, release──▶ Engine (the engine's face: deneva.engine.engine)

Every channel carries wake-ups (`None`, buffer 1: a pending wake-up absorbs the next).
The actors never import one another; each talks to the engine's API and listens on the
receive end it is given here.
"""

from __future__ import annotations

from typing import Any, Protocol

import attrs
import trio

from deneva.actors.canary import Canary
from deneva.actors.dispatcher import Dispatcher
from deneva.actors.janitor import Janitor
from deneva.actors.lifeline import Lifeline
from deneva.actors.listener import Listener, Route
from deneva.actors.scheduler import Scheduler
from deneva.actors.token_refresh import TokenRefresher
from deneva.clock import Clock
from deneva.credentials import CHANGED_CHANNEL
from deneva.db import Database
from deneva.engine.engine import NOTIFY_CHANNEL, PAUSED_CHANNEL, Engine, EngineSettings
from deneva.engine.functions import Registry
from deneva.engine.telemetry import RunObserver
from deneva.retention import JanitorPlan
from deneva.sync.tokens import TokenDeadlines


class Actor(Protocol):
    name: str

    async def run(self, *, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None: ...


@attrs.frozen
class CanaryPlan:
    node: str
    interval_s: float = 30.0


@attrs.define
class Circuit:
    engine: Engine
    actors: list[Actor]  # in start order

    def actor(self, name: str) -> Any:
        return next(a for a in self.actors if a.name == name)


def wake_channel() -> tuple[trio.MemorySendChannel[None], trio.MemoryReceiveChannel[None]]:
    return trio.open_memory_channel[None](1)


def engine_circuit(
    db: Database,
    registry: Registry,
    clock: Clock,
    owner: str,
    settings: EngineSettings | None = None,
    *,
    drain: trio.Event,
    observer: RunObserver | None = None,
    listen: bool = True,
    dispatch: bool = True,
    schedule: bool = True,
    janitor: JanitorPlan | None = None,
    tokens: TokenDeadlines | None = None,
    canary: CanaryPlan | None = None,
) -> Circuit:
    """The engine and its actors (those asked for), wired."""
    dispatch_send, dispatch_wake = wake_channel()
    schedule_send, schedule_wake = wake_channel()
    janitor_send, janitor_wake = wake_channel()
    tokens_send, tokens_wake = wake_channel()
    engine = Engine(db, registry, clock, owner, settings, wake=dispatch_send, observer=observer)
    actors: list[Actor] = []
    if listen:
        routes = {
            # This process's own NOTIFYs are skipped: its engine wakes the dispatcher itself.
            NOTIFY_CHANNEL: Route([dispatch_send], skip_own=True),
            PAUSED_CHANNEL: Route([schedule_send, janitor_send]),
            CHANGED_CHANNEL: Route([tokens_send]),
        }
        actors.append(Listener(db, routes))
    if dispatch:
        actors += [Dispatcher(engine, dispatch_wake, drain), Lifeline(engine)]
    if schedule:
        actors.append(Scheduler(engine, schedule_wake))
    if janitor is not None:
        actors.append(Janitor(engine, janitor, janitor_wake))
    if tokens is not None:
        actors.append(TokenRefresher(engine, tokens, tokens_wake))
    if canary is not None:
        actors.append(Canary(engine, canary.node, canary.interval_s))
    return Circuit(engine, actors)
