"""Connect in a browser (issue 12): OAuth 2.0 authorization code with `state` (and PKCE
where the platform has it, see deneva.adapters.oauth), then the operator picks accounts.

1. `deneva connect PLATFORM --tenant NAME [--account ID ...]` (no token file) starts a
   flow (`begin_flow`): a random state, single-use, bound to the tenant, the operator
   who ran the command and the accounts it pre-selects, expiring in 10 minutes. It
   prints `{public_url}/connect/{platform}/start?state=...`.
2. The browser that opens it first (`BrowserConnect.start`) is bound to the flow by a
   cookie (only its hash is stored) and redirected to the platform's consent page.
3. The platform redirects to `/connect/{platform}/callback` (`callback`): the flow is
   taken once, from that browser only; the code is exchanged, the accounts the grant
   reaches are listed. With accounts pre-selected, they are stored if the grant reaches
   every one (else nothing is); without, the grant is sealed in the flow and the
   operator gets a form of those accounts, protected by a one-time token.
4. The form's post (`pick`) stores the chosen accounts, each one the grant reaches, in
   one transaction, with the tokens envelope-encrypted as `deneva connect --token-file`
   stores them (`deneva.credentials.store_credential`: a reconnect replaces a
   credential in place and makes it healthy).

Any refusal is a `ConnectRefused` (an HTTP status, a title, what to do); a flow that
fails records why (`outcome`), which the waiting CLI prints. Nothing is stored unless
every check passed, and only for the flow's own tenant.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

import attrs
import httpx

from deneva.accounts import account_id_problem
from deneva.adapters.base import PLATFORMS, PlatformConfig
from deneva.adapters.errors import PlatformError
from deneva.adapters.oauth import PKCE_PLATFORMS, ConsentClient, ReachableAccount, authorize_url, pkce_pair
from deneva.clock import Clock, as_datetime
from deneva.credentials import Keyring, PlainTokens, open_grant, seal_grant, store_credential
from deneva.db import Connection, Database
from deneva.errors import DenevaError
from deneva.sql import query
from deneva.tenants import tenant_by_name

FLOW_TTL_S: Final = 600.0
COOKIE: Final = "deneva_connect"
_BEGIN = query("connect_flow_begin")
_FIND = query("connect_flow_find")
_OPEN = query("connect_flow_open")
_CLAIM_CALLBACK = query("connect_flow_claim_callback")
_CONSENTED = query("connect_flow_consented")
_CLAIM_PICK = query("connect_flow_claim_pick")
_REOPEN = query("connect_flow_reopen")
_FINISH = query("connect_flow_finish")
_OUTCOME = query("connect_flow_outcome")


class ConnectError(DenevaError):
    """`deneva connect` cannot start a flow (bad input)."""


@attrs.frozen
class ConnectRefused(Exception):
    """A step of the flow refused: the HTTP status of its page, a title, what to do."""

    status: int
    title: str
    detail: str


def _hash(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


def normal_account(platform: str, account_id: str) -> str:
    """An account id as the platforms list it: Google without dashes, Meta without act_."""
    if platform == "google":
        return account_id.replace("-", "")
    if platform == "meta":
        return account_id.removeprefix("act_")
    return account_id


def redirect_uri(public_url: str, platform: str) -> str:
    return f"{public_url.rstrip('/')}/connect/{platform}/callback"


def start_url(public_url: str, platform: str, state: str) -> str:
    return f"{public_url.rstrip('/')}/connect/{platform}/start?state={state}"


@attrs.frozen(repr=False)
class Invitation:
    """A flow `deneva connect` started: its id (to wait on) and its one-time state."""

    flow_id: uuid.UUID
    state: str
    expires_at: float

    def __repr__(self) -> str:
        return f"Invitation({self.flow_id}, state=***)"


async def begin_flow(
    conn: Connection,
    tenant_name: str,
    platform: str,
    operator: str,
    accounts: Sequence[str],
    now: float,
) -> Invitation:
    if platform not in PLATFORMS:
        raise ConnectError(f"PLATFORM: expected one of {', '.join(PLATFORMS)}, got {platform!r}")
    for account in accounts:
        what = account_id_problem(platform, account)
        if what is not None:
            raise ConnectError(f"--account: expected {what}, got {account!r}")
    tenant = await tenant_by_name(conn, tenant_name)
    state = secrets.token_urlsafe(32)
    verifier = pkce_pair()[0] if platform in PKCE_PLATFORMS else None
    chosen = list(dict.fromkeys(normal_account(platform, a) for a in accounts))
    flow_id = await conn.fetchval(
        _BEGIN,
        _hash(state),
        tenant.id,
        platform,
        operator,
        chosen,
        verifier,
        as_datetime(now),
        as_datetime(now + FLOW_TTL_S),
    )
    return Invitation(flow_id, state, now + FLOW_TTL_S)


@attrs.frozen
class FlowOutcome:
    status: str
    outcome: str | None
    connected: tuple[str, ...]
    expires_at: datetime

    @property
    def finished(self) -> bool:
        return self.status in ("connected", "failed")


async def flow_outcome(db: Database, flow_id: uuid.UUID) -> FlowOutcome:
    row = await db.fetchrow(_OUTCOME, flow_id)
    if row is None:
        raise ConnectError("the connect flow is gone (its tenant was removed?)")
    return FlowOutcome(row["status"], row["outcome"], tuple(row["connected"] or ()), row["expires_at"])


async def expire_flow(db: Database, flow_id: uuid.UUID, now: float) -> None:
    """The CLI gave up waiting: the flow can no longer complete."""
    await db.execute(
        _FINISH, flow_id, "failed", "the link expired before it was completed", None, as_datetime(now)
    )


@attrs.frozen
class Started:
    """The link was opened: where to send the browser, and the cookie that binds it."""

    authorize_url: str
    browser_secret: str = attrs.field(repr=False)


@attrs.frozen
class Picking:
    """The grant reaches these accounts; the operator picks (the form carries `form_token`)."""

    tenant: str
    platform: str
    accounts: tuple[ReachableAccount, ...]
    form_token: str = attrs.field(repr=False)
    expires_at: datetime
    problem: str | None = None


@attrs.frozen
class Connected:
    tenant: str
    platform: str
    accounts: tuple[ReachableAccount, ...]
    replaced: tuple[str, ...]


_UNKNOWN = ConnectRefused(
    400,
    "Unknown connect link",
    "This link is not one deneva issued, or it was cut short. Run `deneva connect` again for a new one.",
)


class BrowserConnect:
    """The daemon's side of the flow (the HTTP layer renders what it answers)."""

    def __init__(
        self,
        db: Database,
        keys: Keyring,
        platforms: PlatformConfig,
        clock: Clock,
        public_url: str,
        *,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.db = db
        self.keys = keys
        self.platforms = platforms
        self.clock = clock
        self.public_url = public_url
        self.consent = ConsentClient(platforms, http=http)

    async def _why_not(self, platform: str, state: str, step: str) -> ConnectRefused:
        """Why flow `state` cannot take `step` now: the refusal to show."""
        if not state:
            return ConnectRefused(
                400, "No connect state", "This address needs the state deneva put in it; open the link "
                "`deneva connect` printed.",
            )  # fmt: skip
        row = await self.db.fetchrow(_FIND, _hash(state))
        if row is None:
            return _UNKNOWN
        if row["platform"] != platform:
            return ConnectRefused(
                400,
                "Link for another platform",
                f"This link connects {row['platform']}, not {platform}. Nothing was changed.",
            )
        if row["status"] == "connected":
            return ConnectRefused(
                409, "Link used already", "This link completed a connect already; it works once."
            )
        if row["status"] == "failed":
            return ConnectRefused(
                410,
                "Link no longer valid",
                f"This connect ended: {row['outcome']}. Run `deneva connect` again.",
            )
        if row["expires_at"].timestamp() <= self.clock.now():
            return ConnectRefused(
                410, "Link expired", "Connect links expire after 10 minutes. Run `deneva connect` again."
            )
        if step == "start":
            return ConnectRefused(
                409,
                "Link opened already",
                "This link was opened already, in this browser or another; it works once. Run "
                "`deneva connect` again for a new one.",
            )
        return ConnectRefused(
            403,
            "Not the browser that started this connect",
            "This step must come from the browser that opened the link, once. Nothing was changed; "
            "run `deneva connect` again and complete it in one browser.",
        )

    async def _fail(self, flow_id: uuid.UUID, refused: ConnectRefused) -> ConnectRefused:
        await self.db.execute(_FINISH, flow_id, "failed", refused.detail, None, as_datetime(self.clock.now()))
        return refused

    async def start(self, platform: str, state: str) -> Started:
        now = self.clock.now()
        browser = secrets.token_urlsafe(32)
        row = await self.db.fetchrow(_OPEN, _hash(state), platform, _hash(browser), as_datetime(now))
        if row is None:
            raise await self._why_not(platform, state, "start")
        challenge = None
        if row["code_verifier"] is not None:
            digest = hashlib.sha256(row["code_verifier"].encode()).digest()
            challenge = base64.urlsafe_b64encode(digest).decode().rstrip("=")
        try:
            url = authorize_url(
                self.platforms, platform, redirect_uri(self.public_url, platform), state, challenge
            )
        except PlatformError as error:
            raise await self._fail(
                row["id"], ConnectRefused(400, "Platform not configured", error.message)
            ) from None
        return Started(url, browser)

    async def callback(
        self, platform: str, state: str, code: str | None, error: str | None, browser_secret: str | None
    ) -> Picking | Connected:
        now = self.clock.now()
        row = await self.db.fetchrow(
            _CLAIM_CALLBACK, _hash(state), platform, _hash(browser_secret or ""), as_datetime(now)
        )
        if row is None:
            raise await self._why_not(platform, state, "callback")
        flow_id = row["id"]
        if error or not code:
            reason = (
                "consent was denied"
                if error == "access_denied"
                else f"the platform answered {error or 'no code'}"
            )
            raise await self._fail(
                flow_id,
                ConnectRefused(
                    400,
                    "Consent not given",
                    f"The connect did not complete: {reason}. Nothing was stored; run `deneva connect` again "
                    "to retry.",
                ),
            )
        try:
            consent = await self.consent.complete(
                platform, code, redirect_uri(self.public_url, platform), row["code_verifier"]
            )
        except PlatformError as exc:
            raise await self._fail(
                flow_id,
                ConnectRefused(
                    400,
                    "The platform refused the authorization",
                    f"{exc.message}. Nothing was stored.",
                ),
            ) from None
        grant = consent.grant
        tokens = PlainTokens(grant.refresh_token, grant.access_token, grant.expires_at)
        if not consent.accounts:
            raise await self._fail(
                flow_id,
                ConnectRefused(
                    400,
                    "No ad accounts",
                    f"The {platform} user who consented reaches no ad account. Nothing was stored.",
                ),
            )
        preselected = tuple(row["preselected"] or ())
        if preselected:
            chosen = await self._check_reach(flow_id, platform, preselected, consent.accounts)
            return await self._store(flow_id, row["tenant"], row["operator"], platform, chosen, tokens)
        form_token = secrets.token_urlsafe(32)
        wrapped, key_id, sealed = seal_grant(self.keys, flow_id, tokens)
        reachable = json.dumps([a.as_json() for a in consent.accounts])
        await self.db.execute(
            _CONSENTED, flow_id, wrapped, key_id, sealed, reachable, _hash(form_token), as_datetime(now)
        )
        return Picking(row["tenant"], platform, consent.accounts, form_token, row["expires_at"])

    async def _check_reach(
        self,
        flow_id: uuid.UUID,
        platform: str,
        wanted: Sequence[str],
        reachable: Sequence[ReachableAccount],
    ) -> tuple[ReachableAccount, ...]:
        by_id = {a.account_id: a for a in reachable}
        missing = [a for a in wanted if normal_account(platform, a) not in by_id]
        if missing:
            listed = ", ".join(by_id) or "none"
            raise await self._fail(
                flow_id,
                ConnectRefused(
                    400,
                    "Account not reachable",
                    f"This grant does not reach {platform} account {', '.join(m[:40] for m in missing)} "
                    f"(it reaches {listed}). Nothing was stored.",
                ),
            )
        return tuple(by_id[normal_account(platform, a)] for a in dict.fromkeys(wanted))

    async def pick(
        self, platform: str, state: str, form_token: str, chosen: Sequence[str], browser_secret: str | None
    ) -> Picking | Connected:
        now = self.clock.now()
        row = await self.db.fetchrow(
            _CLAIM_PICK,
            _hash(state),
            platform,
            _hash(browser_secret or ""),
            _hash(form_token),
            as_datetime(now),
        )
        if row is None:
            raise await self._why_not(platform, state, "pick")
        flow_id = row["id"]
        reachable = tuple(ReachableAccount.from_json(a) for a in json.loads(row["reachable"]))
        if not chosen:
            await self.db.execute(_REOPEN, flow_id, as_datetime(now))
            return Picking(
                row["tenant"],
                platform,
                reachable,
                form_token,
                row["expires_at"],
                "Pick at least one account.",
            )
        accounts = await self._check_reach(flow_id, platform, chosen, reachable)
        tokens = open_grant(
            self.keys, flow_id, bytes(row["wrapped_key"]), row["kek_id"], bytes(row["grant_ct"])
        )
        return await self._store(flow_id, row["tenant"], row["operator"], platform, accounts, tokens)

    async def _store(
        self,
        flow_id: uuid.UUID,
        tenant: str,
        operator: str,
        platform: str,
        accounts: tuple[ReachableAccount, ...],
        tokens: PlainTokens,
    ) -> Connected:
        async def store(conn: Connection) -> list[dict[str, Any]]:
            results = [
                await store_credential(
                    conn,
                    self.keys,
                    tenant,
                    platform,
                    account.account_id,
                    tokens,
                    login_customer_id=account.login_customer_id,
                    actor=f"browser:{operator}"[:200],
                )
                for account in accounts
            ]
            ids = [a.account_id for a in accounts]
            names = ", ".join(ids)
            outcome = f"connected {platform} account{'s' if len(ids) > 1 else ''} {names} for {tenant}"
            await conn.execute(_FINISH, flow_id, "connected", outcome, ids, as_datetime(self.clock.now()))
            return results

        results = await self.db.transaction(store)
        replaced = tuple(r["account"] for r in results if not r["new"])
        return Connected(tenant, platform, accounts, replaced)
