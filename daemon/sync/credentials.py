"""A connected account's credential as the sync uses it: loaded and opened, and its
tokens refreshed one refresh at a time, written only if nothing changed meanwhile.

Two paths refresh a token: the eager one (`refresh-one-token`, ahead of the expiry) and
the lazy one (an adapter finding its access token expired or rejected mid-fetch, which
asks its `TokenSource`, here `StoredTokens`). Both go through `refresh_credential`:

1. one trio lock per credential in this process, then the credential's refresh lease in
   the database (`refresh_owner`, `refresh_until`) across processes: never two refreshes
   of one credential at once, anywhere;
2. under both, the credential is read again: if someone else refreshed it meanwhile, that
   token is used and the platform is not called;
3. the new tokens are written only if the credential is still at the version read
   (compare-and-set, `token_version`), so a reconnect (`deneva connect`) that happened
   during the refresh is never undone; the write gives up the lease.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import attrs
import trio

from deneva.adapters import Credentials, PlatformError
from deneva.backoff import Backoff
from deneva.clock import as_datetime
from deneva.credentials import CredentialRow, Keyring, PlainTokens, load_credential, open_tokens, store_tokens
from deneva.db import Connection
from deneva.engine.errors import NonRetriableError
from deneva.errors import DatabaseError
from deneva.sql import query
from deneva.sync.model import Account, SyncServices
from deneva.sync.reconnect import log_reconnect_needed

LEASE_S = 120.0  # a refresh lease outlives the token call it covers (the adapters bound it)
_LEASE_POLL = Backoff(base_s=0.05, factor=2.0, max_s=2.0, jitter=0.25)
_TAKE_LEASE = query("credentials_take_refresh_lease")
_RELEASE_LEASE = query("credentials_release_refresh_lease")
_MARK_REVOKED = query("credentials_mark_revoked")
_TENANT_NAME = query("sync_tenant_name")
# The eager refresh renews a token this long before it expires: Google's last an hour,
# Meta's long-lived ones about 60 days (exchanging one needs it still valid).
REFRESH_MARGIN_S = {"google": 600.0, "meta": 3 * 86_400.0}
LAZY_MARGIN_S = 60.0  # the adapters' own rule: a token this close to expiry is not used


@attrs.frozen
class LoadedCredential:
    row: CredentialRow
    creds: Credentials
    version: int

    @property
    def id(self) -> uuid.UUID:
        return self.row.id


async def load_credentials(conn: Connection, keys: Keyring, account: Account) -> LoadedCredential:
    """The account's credential, opened; NonRetriableError when there is none,
    CredentialError when it does not decrypt."""
    stored = await load_credential(conn, account.tenant_id, account.platform, account.account_id)
    if stored is None:
        raise NonRetriableError(f"no {account.platform} credential for account {account.account_id}")
    tokens = open_tokens(keys, stored.row, stored.sealed)
    creds = Credentials(
        account.platform,
        account.account_id,
        refresh_token=tokens.refresh_token,
        access_token=tokens.access_token,
        access_token_expires_at=stored.access_token_expires_at,
        login_customer_id=stored.login_customer_id,
    )
    return LoadedCredential(stored.row, creds, stored.version)


def expiring(creds: Credentials, now: float, margin_s: float) -> bool:
    """No access token, or one that expires within `margin_s`."""
    if not creds.access_token:
        return True
    expires = creds.access_token_expires_at
    return expires is not None and expires - now <= margin_s


@attrs.frozen
class Refresh:
    """How a refresh ended: the credentials to use now, and whether the platform was called
    (`refreshed`), or why not (`skipped`: fresh already, or the credential changed)."""

    creds: Credentials
    refreshed: bool
    skipped: str | None = None
    expires_at: float | None = None


def _key(account: Account) -> tuple[uuid.UUID, str, str]:
    return (account.tenant_id, account.platform, account.account_id)


async def _take_lease(services: SyncServices, account: Account) -> None:
    clock = services.clock
    give_up = clock.now() + LEASE_S
    attempt = 0
    while True:
        now = clock.now()
        until, at = as_datetime(now + LEASE_S), as_datetime(now)
        row = await services.db.fetchrow(_TAKE_LEASE, *_key(account), services.owner, until, at)
        if row is None or row["id"] is None:
            raise NonRetriableError(f"no {account.platform} credential for account {account.account_id}")
        if row["taken"]:
            return
        if now >= give_up:
            raise PlatformError(
                "transient", "token", "another refresh of this credential did not finish in time"
            )
        attempt += 1
        await trio.sleep(_LEASE_POLL.delay(attempt))


async def refresh_credential(
    services: SyncServices, account: Account, needs_refresh: Callable[[Credentials, float], bool]
) -> Refresh:
    """Refresh the account's token if `needs_refresh(creds, now)` still holds once this
    caller has the credential to itself (see the module docstring)."""
    db, clock = services.db, services.clock
    adapter = services.adapters[account.platform]
    async with services.token_locks.hold(_key(account)):
        await _take_lease(services, account)
        try:
            loaded = await db.run(lambda conn: load_credentials(conn, services.keys, account))
            if not needs_refresh(loaded.creds, clock.now()):
                services.metrics.token_refresh(account.platform, "skipped")
                return Refresh(loaded.creds, False, "fresh already", loaded.creds.access_token_expires_at)
            try:
                grant = await adapter.refresh_token(loaded.creds)
            except PlatformError as error:
                services.metrics.platform_calls(account.platform, error.api_calls)
                services.metrics.platform_error(account.platform, error.code)
                revoked = error.code == "token_revoked"
                services.metrics.token_refresh(account.platform, "revoked" if revoked else "failed")
                if revoked:
                    now = clock.now()
                    await db.execute(_MARK_REVOKED, loaded.id, as_datetime(now), services.owner)
                    tenant = await db.fetchval(_TENANT_NAME, account.tenant_id)
                    log_reconnect_needed(account.platform, tenant, account.account_id, error.message)
                raise
            services.metrics.platform_calls(account.platform, 1)
            services.metrics.token_refresh(account.platform, "refreshed")
            fresh = loaded.creds.with_grant(grant)
            tokens = PlainTokens(fresh.refresh_token, fresh.access_token, fresh.access_token_expires_at)
            version = await db.run(
                lambda conn: store_tokens(
                    conn,
                    services.keys,
                    loaded.row,
                    tokens,
                    expected_version=loaded.version,
                    lease_owner=services.owner,
                )
            )
            if version is None:  # reconnected meanwhile: those tokens win
                now_stored = await db.run(lambda conn: load_credentials(conn, services.keys, account))
                return Refresh(
                    now_stored.creds, True, "credential changed", now_stored.creds.access_token_expires_at
                )
            return Refresh(fresh, True, None, fresh.access_token_expires_at)
        finally:
            with trio.CancelScope(shield=True):
                try:  # a write above gave it up already; this covers the other ways out
                    await db.execute(_RELEASE_LEASE, *_key(account), services.owner)
                except DatabaseError:
                    pass  # it expires on its own


@attrs.define
class StoredTokens:
    """The sync's `TokenSource` for one fetch: an adapter's lazy refresh goes through
    `refresh_credential`, so it never races the eager one, and its result is stored."""

    services: SyncServices
    account: Account
    refreshes: int = 0

    async def refreshed(self, creds: Credentials, rejected: str | None) -> Credentials:
        def needs(current: Credentials, now: float) -> bool:
            if rejected is not None and current.access_token == rejected:
                return True  # the platform refused this very token
            return expiring(current, now, LAZY_MARGIN_S)

        result = await refresh_credential(self.services, self.account, needs)
        self.refreshes += int(result.refreshed)
        return result.creds
