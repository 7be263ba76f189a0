"""`deneva oauth`: connect codes, and the built-in authorization server's clients and grants."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from deneva.admin import with_database
from deneva.cli_engine import command_config
from deneva.clock import SystemClock
from deneva.db import Database
from deneva.errors import DenevaError
from deneva.oauth import store
from deneva.oauth.model import as_uuid
from deneva.oauth.server import AuthorizationServer


class OAuthCliError(DenevaError):
    """Bad `deneva oauth` input; the message names it."""


def _code(args: argparse.Namespace) -> int:
    if not args.tenant:
        raise OAuthCliError("oauth code: give --tenant NAME")
    config = command_config(args)

    async def create(db: Database) -> tuple[str, float]:
        return await AuthorizationServer(db, SystemClock()).create_connect_code(args.tenant)

    code, expires = with_database(config, create)
    until = datetime.fromtimestamp(expires, UTC).isoformat(timespec="seconds")
    if args.json:
        print(json.dumps({"tenant": args.tenant, "code": code, "expiresAt": until}))
    else:
        print(code)
        print(f"(connect code for tenant {args.tenant}: single use, valid until {until})")
    return 0


def _clients(args: argparse.Namespace) -> int:
    config = command_config(args)
    if args.action == "revoke":
        if not args.id:
            raise OAuthCliError("oauth clients revoke: give the CLIENT_ID")
        grants = with_database(
            config, lambda db: db.transaction(lambda c: store.revoke_client(c, args.id, time.time(), "cli"))
        )
        if grants is None:
            raise OAuthCliError(f"no OAuth client {args.id!r} (see `deneva oauth clients list`)")
        if args.json:
            print(json.dumps({"clientId": args.id, "revoked": True, "grantsRevoked": len(grants)}))
        else:
            print(f"revoked client {args.id} and {len(grants)} grant(s)")
        return 0
    listed = with_database(config, lambda db: db.run(store.list_clients))
    if args.json:
        print(json.dumps(listed, indent=2))
        return 0
    for row in listed:
        state = f"revoked {row['revokedAt'][:10]}" if row["revokedAt"] else f"{row['activeGrants']} grant(s)"
        print(f"{row['clientId']}  {row['kind']:<4} {state:<18} {row['clientName'] or ''}")
    if not listed:
        print("no OAuth clients")
    return 0


def _grants(args: argparse.Namespace) -> int:
    config = command_config(args)
    if args.action == "revoke":
        grant_id = as_uuid(args.id or "")
        if grant_id is None:
            raise OAuthCliError("oauth grants revoke: give a GRANT_ID (see `deneva oauth grants list`)")
        revoked = with_database(
            config,
            lambda db: db.transaction(
                lambda c: store.revoke_grant(c, grant_id, time.time(), "revoked by the operator", "cli")
            ),
        )
        if not revoked:
            raise OAuthCliError(f"no OAuth grant {args.id!r} (see `deneva oauth grants list`)")
        print(
            json.dumps({"grantId": str(grant_id), "revoked": True})
            if args.json
            else f"revoked grant {grant_id}"
        )
        return 0
    listed = with_database(config, lambda db: db.run(lambda c: store.list_grants(c, args.tenant)))
    if args.json:
        print(json.dumps(listed, indent=2))
        return 0
    for row in listed:
        state = f"revoked {row['revokedAt'][:10]}" if row["revokedAt"] else "active"
        print(
            f"{row['grantId']}  {row['tenant']:<20} {state:<18} {row['scope']:<30} "
            f"{row['clientName'] or row['clientId']}"
        )
    if not listed:
        print("no OAuth grants")
    return 0


def add_oauth_commands(add: Callable[[str, str], argparse.ArgumentParser]) -> None:
    oauth = add(
        "oauth",
        "MCP authorization: a tenant's connect code; the OAuth clients and grants of the built-in server",
    )
    oauth.add_argument("what", choices=["code", "clients", "grants"], metavar="code|clients|grants")
    oauth.add_argument(
        "action", nargs="?", choices=["list", "revoke"], default="list", help="list (default) or revoke"
    )
    oauth.add_argument("id", nargs="?", metavar="ID", help="the client id or grant id to revoke")
    oauth.add_argument("--tenant", metavar="NAME", help="the code's tenant (code); filter for grants list")
    oauth.add_argument("--json", action="store_true", help="machine-readable output")
    oauth.set_defaults(fn=_oauth_entry)


def _oauth_entry(args: argparse.Namespace) -> Any:
    if args.what == "code":
        return _code(args)
    return _clients(args) if args.what == "clients" else _grants(args)
