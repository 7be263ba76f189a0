"""Event ingestion over HTTP: event key, 202 with ids, clear 4xx for bad input."""

from __future__ import annotations

import json
from typing import Any

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


RAW = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}


async def _post_raw(client: Any, body: str) -> tuple[int, str | None]:
    response = await client.post("/api/events", data=body, headers=RAW)
    return response.status_code, (await response.get_json()).get("error")


async def test_a_number_of_more_than_4300_digits_is_a_clear_400(db: Database) -> None:
    app, _ = _app(db)
    client = app.test_client()  # type: ignore[attr-defined]
    status, error = await _post_raw(client, '{"name": "x/y", "data": {"n": ' + "9" * 5000 + "}}")
    assert status == 400
    assert error == "body is not valid JSON: a number has more than 4300 digits"
    assert await db.fetchval("SELECT count(*) FROM engine_events") == 0


async def test_deeply_nested_json_is_a_clear_400(db: Database) -> None:
    app, _ = _app(db)
    client = app.test_client()  # type: ignore[attr-defined]
    deep = '{"name": "x/y", "data": {"a": ' + "[" * 100_000 + "]" * 100_000 + "}}"
    status, error = await _post_raw(client, deep)
    assert status == 400
    assert error == "body is not valid JSON: arrays or objects nested too deeply"
    assert await db.fetchval("SELECT count(*) FROM engine_events") == 0


async def test_names_and_ids_with_a_trailing_newline_are_rejected(db: Database) -> None:
    app, _ = _app(db)
    client = app.test_client()  # type: ignore[attr-defined]
    status, error = await _post_raw(client, json.dumps({"name": "deneva/noop\n"}))
    assert status == 400 and error is not None and error.startswith("event.name: expected a name")
    status, error = await _post_raw(client, json.dumps({"name": "deneva/noop", "id": "e1\n"}))
    assert status == 400 and error is not None and error.startswith("event.id: expected")
    assert await db.fetchval("SELECT count(*) FROM engine_events") == 0


async def test_nul_characters_lone_surrogates_and_nan_are_a_400_naming_the_field(db: Database) -> None:
    """Postgres refuses these in jsonb and text: before, the store's rejection came back
    as 503 "retry later", which a client retries forever."""
    app, _ = _app(db)
    client = app.test_client()  # type: ignore[attr-defined]
    bad = {
        '{"name": "x/y", "data": {"a": {"b": ["ok", "x\\u0000y"]}}}': (
            "event.data.a.b[1]: contains a NUL character (\\u0000), which the database cannot store"
        ),
        '{"name": "x/y", "data": {"k\\u0000": 1}}': (
            'event.data["k\\u0000"]: the key contains a NUL character (\\u0000), '
            "which the database cannot store"
        ),
        '{"name": "x/y", "data": {"s": "a\\ud800"}}': (
            "event.data.s: contains a lone surrogate (\\ud800), which is not valid Unicode"
        ),
        '{"name": "x/y", "data": {"s": "\\udc00 after"}}': (
            "event.data.s: contains a lone surrogate (\\udc00), which is not valid Unicode"
        ),
        '[{"name": "x/y"}, {"name": "x/y", "data": {"n": [1, NaN]}}]': (
            "events[1].data.n[1]: NaN or Infinity is not a JSON number"
        ),
        '{"name": "x/y\\u0000"}': "event.name: expected a name like 'app/thing.happened', got 'x/y\\x00'",
        '{"name": "x/y", "id": "\\ud800"}': "event.id: expected up to 200 letters, digits or ._:/-",
    }
    answers = {body: await _post_raw(client, body) for body in bad}
    assert answers == {body: (400, expected) for body, expected in bad.items()}
    assert await db.fetchval("SELECT count(*) FROM engine_events") == 0
    # What only looks like them is kept: an emoji (a surrogate pair) and a literal "\u0000".
    look_alikes = '{"emoji": "\\ud83d\\ude00", "text": "\\\\u0000 \\\\ud800"}'
    fine = await client.post(
        "/api/events", data='{"name": "x/y", "id": "fine", "data": ' + look_alikes + "}", headers=RAW
    )
    assert fine.status_code == 202, await fine.get_json()
    assert await db.fetchval("SELECT data FROM engine_events WHERE id = 'fine'") == {
        "emoji": "\U0001f600",
        "text": "\\u0000 \\ud800",
    }
