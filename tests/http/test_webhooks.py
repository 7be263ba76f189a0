"""`POST /webhooks/events` (issue 15, seed 001): Standard Webhooks signatures, replays and
duplicates, bad input. Real HTTP (hypercorn on loopback, httpx) in front of the engine
on the real Postgres; the daemon's clock is injected (a fixed wall time), so stale and
future timestamps are signed in the past or future rather than waited for."""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import attrs
import httpx
import pytest
import trio
import trio.lowlevel
from standardwebhooks import Webhook

from deneva.config import Bind
from deneva.db import Database
from deneva.engine.builtin import register_builtin
from deneva.engine.engine import Engine
from deneva.engine.functions import Registry
from deneva.health import HealthState
from deneva.http.app import create_app
from deneva.http.server import HttpServer
from deneva.http.webhooks import WebhookSecrets
from deneva.secrets import Secret
from deneva.supervisor import Supervisor
from deneva.webhooks import SigningKey

NOW = 1_767_225_600  # the daemon's wall time in these tests
RAW_KEY = "webhook-signing-key-0123456789"
WHSEC = "whsec_" + base64.b64encode(b"k" * 32).decode()
URL = "/webhooks/events"
MAX_BODY = 4096


class FixedClock:
    def __init__(self, now: float) -> None:
        self.t = now

    def now(self) -> float:
        return self.t

    async def sleep_until(self, when: float) -> None:
        await trio.lowlevel.checkpoint()


@attrs.frozen
class Replica:
    base: str
    engine: Engine


@asynccontextmanager
async def replicas(db: Database, count: int = 1, key: str = RAW_KEY) -> AsyncIterator[list[Replica]]:
    """`count` daemons' HTTP fronts (each its own engine and server) on one database."""
    clock = FixedClock(NOW)
    secrets = WebhookSecrets(SigningKey.from_text(key), max_body=MAX_BODY)
    drain = trio.Event()
    out = []
    async with trio.open_nursery() as nursery:
        for i in range(count):
            engine = Engine(db, register_builtin(Registry()), clock, f"replica-{i}")
            health = HealthState(Supervisor(drain), clock, f"node-{i}", db=db, migrated=True)
            app = create_app(
                health,
                functools.partial(lambda e: e, engine),
                Secret("DENEVA_EVENT_KEY", "k" * 20),
                webhooks=secrets,
            )
            binds = await nursery.start(HttpServer(app, Bind("127.0.0.1", 0), drain, 1.0).run)
            out.append(Replica(binds[0], engine))
        yield out
        drain.set()
        nursery.cancel_scope.cancel()


def signed(
    body: bytes, webhook_id: str = "msg_1", at: int = NOW, key: bytes = RAW_KEY.encode()
) -> dict[str, str]:
    """The headers a Standard Webhooks sender (the `standardwebhooks` package) sends."""
    signature = Webhook(key).sign(webhook_id, datetime.fromtimestamp(at, UTC), body)
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(at),
        "webhook-signature": signature,
        "content-type": "application/json",
    }


def noop(**extra: Any) -> bytes:
    return json.dumps({"name": "deneva/noop", "data": {"n": 1}, **extra}).encode()


async def runs(db: Database) -> int:
    return int(await db.fetchval("SELECT count(*) FROM engine_runs WHERE function_id = 'deneva-noop'"))


async def stored(db: Database) -> tuple[int, int, int]:
    """(events, runs, deliveries) in the database."""
    events = await db.fetchval("SELECT count(*) FROM engine_events")
    deliveries = await db.fetchval("SELECT count(*) FROM webhook_deliveries")
    return int(events), await runs(db), int(deliveries)


async def post(http: httpx.AsyncClient, base: str, body: bytes, headers: Mapping[str, str]) -> httpx.Response:
    return await http.post(base + URL, content=body, headers=dict(headers))


async def test_a_signed_delivery_is_stored_once_and_its_replay_is_a_success_without_a_second_run(
    db: Database,
) -> None:
    async with replicas(db) as [replica], httpx.AsyncClient() as http:
        body = noop()
        first = await post(http, replica.base, body, signed(body))
        assert first.status_code == 202, first.text
        answer = first.json()
        assert answer["runs"] == 1 and len(answer["ids"]) == 1 and answer["webhookId"] == "msg_1"
        # The sender retries (same id, a fresh timestamp and signature), or someone replays
        # the captured request: 2xx, nothing stored.
        for headers in (signed(body, at=NOW + 30), signed(body)):
            again = await post(http, replica.base, body, headers)
            assert again.status_code == 200, again.text
            assert again.json() == {
                "ids": [],
                "status": 200,
                "runs": 0,
                "duplicate": True,
                "webhookId": "msg_1",
            }
        assert await stored(db) == (1, 1, 1)
        # A list of events, as /api/events takes them, under another id: stored too.
        batch = json.dumps([{"name": "deneva/noop", "id": "e-7"}, {"name": "deneva/noop"}]).encode()
        many = await post(http, replica.base, batch, signed(batch, webhook_id="msg_2"))
        assert many.status_code == 202 and many.json()["ids"][0] == "e-7" and many.json()["runs"] == 2
        assert await stored(db) == (3, 3, 2)


async def test_the_same_signed_payload_three_times_in_5_s_on_two_replicas_gives_one_run(db: Database) -> None:
    body = noop()
    async with replicas(db, count=2) as [a, b], httpx.AsyncClient() as http:
        statuses: list[int] = []

        async def deliver(base: str, at: int) -> None:
            response = await post(http, base, body, signed(body, webhook_id="msg_same", at=at))
            statuses.append(response.status_code)

        for _round in range(3):  # three rounds of three concurrent deliveries across both replicas
            async with trio.open_nursery() as nursery:
                for base, at in ((a.base, NOW), (b.base, NOW + 2), (a.base, NOW + 4)):
                    nursery.start_soon(deliver, base, at)
    assert sorted(statuses) == [200] * 8 + [202]
    assert await stored(db) == (1, 1, 1)


async def test_unsigned_wrongly_signed_stale_and_malformed_deliveries_are_refused_and_nothing_stored(
    db: Database,
) -> None:
    body = noop()
    good = signed(body, webhook_id="msg_bad")
    cases: list[tuple[str, dict[str, str], bytes, int, str]] = []
    for header in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        headers = {k: v for k, v in good.items() if k != header}
        cases.append((f"no {header}", headers, body, 400, f"missing header {header}"))
    other_key = signed(body, webhook_id="msg_bad", key=b"another-key-0123456789")
    forged = "v1," + base64.b64encode(b"\x00" * 32).decode()
    cases += [
        ("wrong key", other_key, body, 401, "no signature matches"),
        ("forged", {**good, "webhook-signature": forged}, body, 401, "no signature matches"),
        ("body changed", good, noop(id="other"), 401, "no signature matches"),
        (
            "no scheme",
            {**good, "webhook-signature": good["webhook-signature"][3:]},
            body,
            400,
            "'v1,<base64>'",
        ),
        ("hex", {**good, "webhook-signature": "sha256=" + "ab" * 32}, body, 400, "'v1,<base64>'"),
        ("not base64", {**good, "webhook-signature": "v1,###"}, body, 400, "'v1,<base64>'"),
        ("bad padding", {**good, "webhook-signature": "v1,abc"}, body, 400, "not valid base64"),
        ("only v1a", {**good, "webhook-signature": "v1a,abcd"}, body, 401, "no v1"),
        ("id with a space", {**good, "webhook-id": "msg bad"}, body, 400, "webhook-id: expected"),
        ("id too long", {**good, "webhook-id": "m" * 201}, body, 400, "webhook-id: expected"),
        ("not an integer", {**good, "webhook-timestamp": "1767225600.5"}, body, 400, "whole seconds"),
        ("a date", {**good, "webhook-timestamp": "2026-01-01T00:00:00Z"}, body, 400, "whole seconds"),
        ("negative", {**good, "webhook-timestamp": "-5"}, body, 400, "whole seconds"),
        (
            "stale",
            signed(body, "msg_bad", at=NOW - 301),
            body,
            401,
            "301 s in the past, outside the tolerance of 5 minutes",
        ),
        ("far past", signed(body, "msg_bad", at=1), body, 401, "outside the tolerance of 5 minutes"),
        ("future", signed(body, "msg_bad", at=NOW + 400), body, 401, "400 s in the future"),
        ("far future", {**good, "webhook-timestamp": "999999999999"}, body, 401, "in the future"),
    ]
    not_json = b"{nope"
    not_event = json.dumps({"name": "deneva/noop", "data": "text"}).encode()
    no_events = b"[]"
    cases += [
        ("not JSON", signed(not_json, "msg_bad"), not_json, 400, "not valid JSON"),
        ("not an event", signed(not_event, "msg_bad"), not_event, 400, "event.data: expected a JSON object"),
        ("no events", signed(no_events, "msg_bad"), no_events, 400, "no events given"),
    ]
    async with replicas(db) as [replica], httpx.AsyncClient() as http:
        for name, headers, content, status, message in cases:
            response = await post(http, replica.base, content, headers)
            assert response.status_code == status, (name, response.text)
            assert message in response.json()["error"], (name, response.json())
            assert RAW_KEY not in response.text
        # Rotation: several signatures, one of them by the key this daemon holds.
        rotated = {
            **good,
            "webhook-signature": f"{other_key['webhook-signature']} {good['webhook-signature']}",
        }
        assert await stored(db) == (0, 0, 0)  # nothing of the refused requests, not even their id
        accepted = await post(http, replica.base, body, rotated)
        assert accepted.status_code == 202, accepted.text
        assert await stored(db) == (1, 1, 1)


async def test_an_oversized_body_is_413_naming_the_limit_before_anything_is_read_or_stored(
    db: Database,
) -> None:
    big = json.dumps({"name": "deneva/noop", "data": {"pad": "x" * MAX_BODY}}).encode()
    async with replicas(db) as [replica], httpx.AsyncClient() as http:
        declared = await post(http, replica.base, big, signed(big))
        assert declared.status_code == 413
        assert (
            declared.json()["error"]
            == f"request body larger than the limit of {MAX_BODY} bytes (webhook_max_body)"
        )

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit is met while reading
            for start in range(0, len(big), 1000):
                yield big[start : start + 1000]

        streamed = await http.post(replica.base + URL, content=chunks(), headers=signed(big))
        assert streamed.status_code == 413 and "webhook_max_body" in streamed.json()["error"]
        beyond = b"x" * (1024 * 1024 + 1)  # over the app's own limit on any request
        refused = await post(http, replica.base, beyond, signed(beyond))
        assert refused.status_code == 413
    assert await stored(db) == (0, 0, 0)


@pytest.mark.parametrize("form", ["whsec", "raw"])
async def test_the_signing_key_in_either_form_verifies_what_a_standard_webhooks_library_signs(
    db: Database, form: str
) -> None:
    key = WHSEC if form == "whsec" else RAW_KEY
    # What a sender configures: the whsec_ string as it is (the library decodes it), or the
    # raw key's bytes (the library would read a text secret as base64).
    sender = Webhook(WHSEC) if form == "whsec" else Webhook(RAW_KEY.encode())
    body = noop()
    headers = {
        "webhook-id": "msg_lib",
        "webhook-timestamp": str(NOW),
        "webhook-signature": sender.sign("msg_lib", datetime.fromtimestamp(NOW, UTC), body),
    }
    async with replicas(db, key=key) as [replica], httpx.AsyncClient() as http:
        response = await post(http, replica.base, body, headers)
        assert response.status_code == 202, response.text
        wrong = await post(http, replica.base, body, signed(body, "msg_lib2", key=b"not-the-key-0123456789"))
        assert wrong.status_code == 401


async def test_meta_webhooks_answer_503_naming_the_missing_secrets_when_not_configured(db: Database) -> None:
    async with replicas(db) as [replica], httpx.AsyncClient() as http:
        handshake = await http.get(
            replica.base + "/webhooks/meta",
            params={"hub.mode": "subscribe", "hub.verify_token": "x", "hub.challenge": "1"},
        )
        notification = await http.post(replica.base + "/webhooks/meta", content=b"{}")
    for response in (handshake, notification):
        assert response.status_code == 503
        assert response.json()["error"].startswith("Meta webhooks are not configured")
        assert "DENEVA_META_VERIFY_TOKEN" in response.json()["error"]
    assert await stored(db) == (0, 0, 0)


def test_a_whsec_signing_key_must_decode() -> None:
    with pytest.raises(ValueError, match="DENEVA_SIGNING_KEY: a whsec_ value must be base64"):
        SigningKey.from_text("whsec_not base64!")
    with pytest.raises(ValueError, match="decode to 16 bytes or more"):
        SigningKey.from_text("whsec_" + base64.b64encode(b"short").decode())
    assert "k" not in repr(SigningKey.from_text(WHSEC)).replace("SigningKey", "")
