"""Event ingestion over HTTP: event key, 202 with ids, clear 4xx for bad input."""

from __future__ import annotations

import json

import trio

from deneva.clock import TrioClock
from deneva.db import Database
from deneva.engine.builtin import register_builtin
from deneva.engine.engine import Engine
from deneva.engine.functions import Registry
from deneva.health import HealthState
from deneva.http.app import MAX_BODY_BYTES, create_app
from deneva.secrets import Secret
from deneva.supervisor import Supervisor

KEY = "event-key-0123456789abcdef"


def _app(db: Database) -> tuple[object, Engine]:
    clock = TrioClock(1_767_225_600.0)
    engine = Engine(db, register_builtin(Registry()), clock, "http-test")
    health = HealthState(Supervisor(trio.Event()), clock, "node", db=db, migrated=True)
    return create_app(health, lambda: engine, Secret("DENEVA_EVENT_KEY", KEY)), engine


async def test_events_are_accepted_with_the_event_key(db: Database) -> None:
    app, _ = _app(db)
    client = app.test_client()  # type: ignore[attr-defined]
    one = await client.post(
        "/api/events", json={"name": "deneva/noop", "id": "e1"}, headers={"Authorization": f"Bearer {KEY}"}
    )
    assert one.status_code == 202
    assert (await one.get_json()) == {"ids": ["e1"], "status": 202, "runs": 1}
    batch = await client.post(
        "/api/events",
        json=[{"name": "deneva/noop", "id": "e1"}, {"name": "deneva/noop"}],
        headers={"X-Event-Key": KEY},
    )
    body = await batch.get_json()
    assert batch.status_code == 202 and body["ids"][0] == "e1" and len(body["ids"]) == 2 and body["runs"] == 1
    inngest = await client.post(f"/e/{KEY}", json={"name": "deneva/noop", "data": {"a": 1}})
    assert inngest.status_code == 202
    assert await db.fetchval("SELECT count(*) FROM engine_events") == 3


async def test_bad_requests_get_clear_errors_never_500(db: Database) -> None:
    app, _ = _app(db)
    client = app.test_client()  # type: ignore[attr-defined]
    auth = {"Authorization": f"Bearer {KEY}"}
    missing = await client.post("/api/events", json={"name": "deneva/noop"})
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"] == "Bearer"
    wrong = await client.post("/e/not-the-key", json={"name": "deneva/noop"})
    assert wrong.status_code == 401
    bad_json = await client.post(
        "/api/events", data="{nope", headers={**auth, "Content-Type": "application/json"}
    )
    assert bad_json.status_code == 400 and "not valid JSON" in (await bad_json.get_json())["error"]
    bad_event = await client.post("/api/events", json={"name": "x/y", "data": "text"}, headers=auth)
    assert bad_event.status_code == 400
    assert (await bad_event.get_json())["error"] == "event.data: expected a JSON object"
    empty = await client.post("/api/events", json=[], headers=auth)
    assert empty.status_code == 400
    huge = await client.post(
        "/api/events",
        data=json.dumps({"name": "x/y", "data": {"b": "x" * MAX_BODY_BYTES}}),
        headers={**auth, "Content-Type": "application/json"},
    )
    assert huge.status_code == 413
    assert await db.fetchval("SELECT count(*) FROM engine_events") == 0
