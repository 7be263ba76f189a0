"""API-key authentication for the MCP endpoints, with a cache that revocation empties.

Looking a key up costs a database round trip on every MCP request. `KeyCache` keeps
what it has read of each key prefix: the active key's tenant and hash (so the right
key is a hit and a wrong secret for that prefix a miss, neither a lookup), or that no
active key has the prefix (so a flood of one bad key costs one lookup). `deneva key
revoke` and `deneva key create` send a NOTIFY on `deneva_api_keys` (with the key's
prefix) in their transaction, and every daemon's `KeyCache` actor LISTENs and forgets
that prefix.

Nothing is trusted forever: a known key is looked up again after 5 minutes, an unknown
prefix after 10 seconds, so a NOTIFY that never arrives delays a revocation (or a new
key) by that much at most. Known keys are cached only while the LISTEN path is known
to work: from the (re)connect (which empties the cache, as whatever was missed is
unknown) until the connection drops, stops echoing the cache's own ping NOTIFY within
5 seconds (every 30 seconds), or its buffer fills (db.listen then drops
notifications); each of those empties the cache too. A lookup that races a
notification is not cached (a generation counter changes with every notification).

OAuth access tokens of the built-in authorization server (`dnv_at_<id>_<secret>`) are
cached the same way by id (`authenticate_access_token`): the grant they carry, their
hash and expiry, under the same rules (TTLs, live LISTEN path, generation counter).
Revoking a token or its grant (`deneva oauth grants revoke`, RFC 7009, a replayed
refresh token) NOTIFYs `deneva_oauth_grants` with the grant's id, and the cache
forgets every token of that grant. An expired token is refused from the cache with no
lookup.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hmac
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

import attrs
import trio

from deneva import tenants
from deneva.db import LISTEN_LOST, Database
from deneva.errors import DatabaseError
from deneva.oauth import store as oauth_store
from deneva.oauth.model import AccessGrant, matches, parse_secret

log = logging.getLogger("deneva.mcp.auth")

MAX_ENTRIES = 10_000  # known keys
MAX_UNKNOWN = 10_000  # prefixes remembered as unknown (the oldest goes first)
KEY_TTL_S = 300.0
UNKNOWN_TTL_S = 10.0
PING_EVERY_S = 30.0
PING_TIMEOUT_S = 5.0
NOTIFY_BUFFER = 1024

_NOTIFY = "SELECT pg_notify($1, $2)"


@attrs.frozen
class _Known:
    tenant: str
    key_hash: bytes
    until: float  # trio time


@attrs.frozen
class _KnownToken:
    grant: AccessGrant | None  # None: not a valid access token (unknown, revoked)
    token_hash: bytes | None
    until: float  # trio time


class KeyCache:
    """An actor (`run`) and the `authenticate(key) -> tenant id | None` the endpoints use."""

    name = "key-cache"

    def __init__(
        self,
        db: Database,
        max_entries: int = MAX_ENTRIES,
        *,
        max_unknown: int = MAX_UNKNOWN,
        key_ttl_s: float = KEY_TTL_S,
        unknown_ttl_s: float = UNKNOWN_TTL_S,
        ping_every_s: float = PING_EVERY_S,
        ping_timeout_s: float = PING_TIMEOUT_S,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.now = now  # wall time, for access tokens' expiry
        self.max_entries = max_entries
        self.max_unknown = max_unknown
        self.key_ttl_s = key_ttl_s
        self.unknown_ttl_s = unknown_ttl_s
        self.ping_every_s = ping_every_s
        self.ping_timeout_s = ping_timeout_s
        self._known: dict[str, _Known] = {}  # prefix -> its active key
        self._unknown: dict[str, float] = {}  # prefix -> until (trio time): no active key
        self._tokens: dict[str, _KnownToken] = {}  # access token id -> what it grants
        self._bad_tokens: dict[str, float] = {}  # access token id -> until (trio time): refused
        self._connected = False  # the LISTEN connection is up
        self._answering = True  # ... and echoed the latest ping
        self._generation = 0
        self._changed = trio.Event()
        # A channel of this cache's own: its pings disturb no other daemon.
        self._ping_channel = f"{tenants.KEYS_CHANNEL}_ping_{secrets.token_hex(6)}"
        self._ping: tuple[str, concurrent.futures.Future[None]] | None = None
        self.lookups = 0
        self.pings = 0  # answered

    @property
    def live(self) -> bool:
        return self._connected and self._answering

    def __len__(self) -> int:
        return len(self._known)

    async def authenticate(self, key: str) -> str | None:
        prefix = tenants.parse_key(key)
        if prefix is None:
            return None
        digest = tenants.hash_key(key.strip())
        now = trio.current_time()
        known = self._known.get(prefix)
        if known is not None:
            if now < known.until:
                return known.tenant if hmac.compare_digest(known.key_hash, digest) else None
            del self._known[prefix]
        unknown_until = self._unknown.get(prefix)
        if unknown_until is not None:
            if now < unknown_until:
                return None
            del self._unknown[prefix]
        generation = self._generation
        self.lookups += 1
        active = await self.db.run(lambda conn: tenants.active_key(conn, prefix))
        if generation == self._generation:
            self._remember(prefix, active, trio.current_time())
        if active is None or not hmac.compare_digest(active.key_hash, digest):
            return None
        return str(active.tenant_id)

    async def authenticate_access_token(self, token: str) -> AccessGrant | None:
        """The grant of a valid, unexpired, unrevoked access token of the built-in server."""
        ident = parse_secret(token, "at")
        if ident is None:
            return None
        now = trio.current_time()
        bad_until = self._bad_tokens.get(ident)
        if bad_until is not None:
            if now < bad_until:
                return None
            del self._bad_tokens[ident]
        known = self._tokens.get(ident)
        if known is not None and now >= known.until:
            del self._tokens[ident]
            known = None
        if known is None:
            generation = self._generation
            self.lookups += 1
            row = await self.db.run(lambda conn: oauth_store.lookup_token(conn, ident))
            known = self._token_entry(row, trio.current_time())
            if generation == self._generation and known.grant is None:
                # Refused ids are bounded apart (the oldest goes first), so a flood of
                # made-up tokens never pushes the valid ones out.
                if len(self._bad_tokens) >= self.max_unknown:
                    del self._bad_tokens[next(iter(self._bad_tokens))]
                self._bad_tokens[ident] = known.until
            elif generation == self._generation and self.live:
                if len(self._tokens) >= self.max_entries:
                    self._tokens.clear()
                self._tokens[ident] = known
        if known.grant is None or known.token_hash is None or not matches(known.token_hash, token):
            return None
        return known.grant if self.now() < known.grant.expires_at else None

    def _token_entry(self, row: Any, now: float) -> _KnownToken:
        if (
            row is None
            or row["kind"] != "access"
            or row["revoked_at"] is not None
            or row["grant_revoked_at"] is not None
        ):
            return _KnownToken(None, None, now + self.unknown_ttl_s)
        grant = AccessGrant(
            tenant_id=str(row["tenant_id"]),
            grant_id=str(row["grant_id"]),
            client_id=row["client_id"],
            scopes=frozenset(row["scope"].split()),
            resource=row["resource"],
            expires_at=row["expires_at"].timestamp(),
        )
        return _KnownToken(grant, bytes(row["token_hash"]), now + self.key_ttl_s)

    def _remember(self, prefix: str, active: tenants.ActiveKey | None, now: float) -> None:
        if active is None:
            # Even while the LISTEN path is down: the short TTL bounds a new key's wait.
            if len(self._unknown) >= self.max_unknown:
                del self._unknown[next(iter(self._unknown))]
            self._unknown[prefix] = now + self.unknown_ttl_s
        elif self.live:
            if len(self._known) >= self.max_entries:
                self._known.clear()
            self._known[prefix] = _Known(str(active.tenant_id), active.key_hash, now + self.key_ttl_s)

    def next_change(self) -> trio.Event:
        """Set when the next notification (revocation, reconnect, loss) has been applied."""
        return self._changed

    async def wait_until(self, live: bool) -> None:
        while self.live != live:
            await self._changed.wait()

    def _bump(self) -> None:
        self._generation += 1
        self._changed.set()
        self._changed = trio.Event()

    def _forget(self, prefix: str) -> None:
        self._known.pop(prefix, None)
        self._unknown.pop(prefix, None)
        self._bump()

    def _forget_grant(self, grant_id: str) -> None:
        for ident in [
            i for i, t in self._tokens.items() if t.grant is not None and t.grant.grant_id == grant_id
        ]:
            del self._tokens[ident]
        self._bump()

    def _reset(self) -> None:
        self._known.clear()
        self._unknown.clear()
        self._tokens.clear()
        self._bad_tokens.clear()
        self._bump()

    async def run(self, *, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with (
                self.db.listen(
                    tenants.KEYS_CHANNEL,
                    oauth_store.GRANTS_CHANNEL,
                    self._ping_channel,
                    buffer=NOTIFY_BUFFER,
                    report_loss=True,
                ) as notes,
                trio.open_nursery() as nursery,
            ):
                nursery.start_soon(self._keep_pinging)
                task_status.started()
                await self.follow(notes)
                nursery.cancel_scope.cancel()
        finally:
            self._connected = False
            self._reset()

    async def follow(self, notes: trio.MemoryReceiveChannel[tuple[str, str]]) -> None:
        """Apply the (channel, payload) notifications `Database.listen` delivers."""
        async for channel, payload in notes:
            buffered = notes.statistics()
            if buffered.current_buffer_used >= buffered.max_buffer_size - 1:
                # It was full: listen drops what does not fit, so a revocation may be lost.
                if self._known or self._unknown or self._tokens or self._bad_tokens:
                    log.warning("API-key notifications overflowed their buffer; cache emptied")
                self._reset()
            if channel == self._ping_channel:
                self._answer(payload)
            elif channel == oauth_store.GRANTS_CHANNEL:
                # (Re)connects and losses are acted on once, from the keys channel's message.
                if payload not in ("", LISTEN_LOST):
                    self._forget_grant(payload)
            elif payload == "":  # (re)connected: whatever was missed is forgotten
                self._connected = self._answering = True
                self._reset()
            elif payload == LISTEN_LOST:
                self._connected = False
                self._reset()
                log.warning("API-key cache off until the LISTEN connection is back")
            else:
                self._forget(payload)

    def _answer(self, nonce: str) -> None:
        if self._ping is not None and self._ping[0] == nonce:
            try:
                self._ping[1].set_result(None)
            except concurrent.futures.InvalidStateError:
                pass  # it timed out just now

    async def _keep_pinging(self) -> None:
        while True:
            await trio.sleep(self.ping_every_s)
            if not self._connected:
                continue  # the reconnect empties the cache and turns it on
            answered = await self._ping_once()
            self.pings += answered
            if answered != self._answering:
                self._answering = answered
                self._reset()
                if answered:
                    log.info("API-key cache on again: the LISTEN connection answers its ping")
                else:
                    log.warning(
                        "API-key cache off: the LISTEN connection did not echo a ping",
                        extra={"timeout_s": self.ping_timeout_s},
                    )

    async def _ping_once(self) -> bool:
        """NOTIFY our own channel and wait for the echo on the LISTEN connection. The wait
        is a database call (on the bridge), as the echo is real-time database work."""
        nonce = secrets.token_hex(8)
        echoed: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._ping = (nonce, echoed)
        try:
            await self.db.execute(_NOTIFY, self._ping_channel, nonce)
            return await self.db.bridge.call(_echoed_within, echoed, self.ping_timeout_s)
        except DatabaseError as exc:
            log.warning("API-key cache could not ping its LISTEN connection", extra={"error": str(exc)})
            return False
        finally:
            self._ping = None


async def _echoed_within(echoed: concurrent.futures.Future[None], timeout_s: float) -> bool:
    try:
        await asyncio.wait_for(asyncio.wrap_future(echoed), timeout_s)
    except TimeoutError:
        return False
    return True
