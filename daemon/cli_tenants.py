"""CLI commands for tenants and API keys."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from deneva import tenants
from deneva.admin import with_database
from deneva.cli_engine import command_config
from deneva.credentials import Keyring


def cmd_tenant(args: argparse.Namespace) -> int:
    config = command_config(args)
    if args.action == "add":
        tenants.check_tenant_name(args.name)
        tenant = with_database(config, lambda db: db.transaction(lambda c: tenants.add_tenant(c, args.name)))
        print(json.dumps(tenant.as_json()) if args.json else f"added tenant {tenant.name} ({tenant.id})")
        return 0
    listed = with_database(config, lambda db: db.run(tenants.list_tenants))
    if args.json:
        print(json.dumps([t.as_json() for t in listed], indent=2))
    else:
        for tenant in listed:
            print(f"{tenant.name:<24} {tenant.id}  since {tenant.created_at:%Y-%m-%d}")
        if not listed:
            print("no tenants")
    return 0


def cmd_key(args: argparse.Namespace) -> int:
    config = command_config(args)
    if args.action == "create":
        if not args.tenant:
            raise tenants.TenantError("key create: give --tenant NAME")
        key = with_database(
            config, lambda db: db.transaction(lambda c: tenants.create_key(c, args.tenant, args.label))
        )
        if args.json:
            print(json.dumps({"prefix": key.prefix, "tenant": key.tenant, "key": key.plaintext}))
        else:
            print(key.plaintext)
            print(f"(API key for tenant {key.tenant}, prefix {key.prefix}: shown once, stored hashed)")
        return 0
    if args.action == "revoke":
        if not args.prefix:
            raise tenants.TenantError("key revoke: give the key's PREFIX")
        prefix = with_database(
            config, lambda db: db.transaction(lambda c: tenants.revoke_key(c, args.prefix))
        )
        print(json.dumps({"prefix": prefix, "revoked": True}) if args.json else f"revoked key {prefix}")
        return 0
    listed = with_database(config, lambda db: db.run(lambda c: tenants.list_keys(c, args.tenant)))
    if args.json:
        print(json.dumps(listed, indent=2))
    else:
        for row in listed:
            state = f"revoked {row['revokedAt'][:10]}" if row["revokedAt"] else "active"
            print(f"{row['prefix']}  {row['tenant']:<24} {state:<18} {row['label'] or ''}")
        if not listed:
            print("no keys")
    return 0


def add_tenant_commands(add: Callable[[str, str], argparse.ArgumentParser]) -> None:
    tenant = add("tenant", "add or list tenants")
    tenant.add_argument("action", choices=["add", "list"])
    tenant.add_argument("name", nargs="?", metavar="NAME")
    tenant.add_argument("--json", action="store_true", help="machine-readable output")
    tenant.set_defaults(fn=_tenant_entry)

    key = add("key", "create, revoke or list API keys (printed once, stored hashed)")
    key.add_argument("action", choices=["create", "revoke", "list"])
    key.add_argument("prefix", nargs="?", metavar="PREFIX", help="the key to revoke")
    key.add_argument("--tenant", metavar="NAME", help="the key's tenant (create; filter for list)")
    key.add_argument("--label", help="a note to remember the key by")
    key.add_argument("--json", action="store_true", help="machine-readable output")
    key.set_defaults(fn=cmd_key)


def _tenant_entry(args: argparse.Namespace) -> Any:
    if args.action == "add" and not args.name:
        raise tenants.TenantError("tenant add: give a NAME")
    return cmd_tenant(args)


def command_keyring(config: Any) -> Keyring:
    """DENEVA_KEK (and DENEVA_KEK_PREVIOUS) from the secrets directory."""
    import os

    from deneva.secrets import load_secrets, secrets_directory

    directory = config.secrets_dir
    if directory is None and not os.environ.get("CREDENTIALS_DIRECTORY"):
        directory = config.state_dir / "secrets"  # where `deneva demo` keeps dev secrets
    return load_secrets(secrets_directory(directory)).keyring()


def _read_token(path: str) -> str:
    import sys
    from pathlib import Path

    from deneva.credentials import CredentialError

    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as exc:
        raise CredentialError(f"--token-file: cannot read {path} ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise CredentialError(f"--token-file: {path} is not UTF-8 text") from None
    return text.strip()


def cmd_connect(args: argparse.Namespace) -> int:
    from deneva.credentials import CredentialError

    if not args.tenant:
        raise CredentialError("connect: give --tenant NAME")
    if args.token_file is None:
        return _connect_in_browser(args)
    if not args.account or len(args.account) != 1:
        raise CredentialError("connect --token-file: give exactly one --account ID")
    return _connect_token_file(args, args.account[0])


def _connect_token_file(args: argparse.Namespace, account: str) -> int:
    import time

    from deneva.credentials import PlainTokens, check_connect_input, store_credential

    token = _read_token(args.token_file)
    kind = args.token_kind or ("refresh" if args.platform == "google" else "access")
    expires = None if args.expires_in is None else time.time() + args.expires_in
    tokens = PlainTokens(token if kind == "refresh" else None, token if kind == "access" else None, expires)
    check_connect_input(args.platform, account, tokens)
    config = command_config(args)
    keys = command_keyring(config)
    result = with_database(
        config,
        lambda db: db.transaction(
            lambda c: store_credential(c, keys, args.tenant, args.platform, account, tokens)
        ),
    )
    verb = "connected" if result["new"] else "replaced the credential of"
    print(json.dumps(result) if args.json else f"{verb} {args.platform} account {account} for {args.tenant}")
    return 0


def _connect_in_browser(args: argparse.Namespace) -> int:
    """Print the one-time link of a browser connect, then (unless --no-wait) wait until the
    operator completed it, or it failed or expired, and say how it ended."""
    import getpass
    import sys
    import time

    import trio

    from deneva.connect import ConnectError, begin_flow, expire_flow, flow_outcome, start_url
    from deneva.db import Database

    config = command_config(args)
    operator = args.operator or getpass.getuser()
    accounts = list(args.account or ())

    async def run(db: Database) -> int:
        invitation = await db.transaction(
            lambda c: begin_flow(c, args.tenant, args.platform, operator, accounts, time.time())
        )
        url = start_url(config.public_base(), args.platform, invitation.state)
        if args.json:
            print(json.dumps({"url": url, "expiresIn": int(invitation.expires_at - time.time())}), flush=True)
        else:
            print(f"Open this link in a browser within 10 minutes; it works once:\n{url}", flush=True)
        if args.no_wait:
            return 0
        if not args.json:
            print("waiting for the browser...", file=sys.stderr, flush=True)
        delay = 0.2
        while True:
            state = await flow_outcome(db, invitation.flow_id)
            if state.finished:
                break
            if time.time() >= invitation.expires_at:
                await expire_flow(db, invitation.flow_id, time.time())
                state = await flow_outcome(db, invitation.flow_id)
                break
            await trio.sleep(delay)  # polls the flow's row: the CLI holds no LISTEN connection
            delay = min(delay * 1.5, 2.0)
        if state.status != "connected":
            raise ConnectError(f"connect failed: {state.outcome or 'no reason recorded'}")
        if args.json:
            print(
                json.dumps(
                    {"connected": list(state.connected), "platform": args.platform, "tenant": args.tenant}
                )
            )
        else:
            print(state.outcome)
        return 0

    return with_database(config, run)


def add_connect_command(add: Callable[[str, str], argparse.ArgumentParser]) -> None:
    connect = add(
        "connect",
        "connect a tenant's ad accounts: in a browser (prints a one-time link, waits for the consent "
        "and the accounts picked), or from a token file (automation); stored envelope-encrypted "
        "under DENEVA_KEK",
    )
    connect.add_argument("platform", metavar="PLATFORM", help="google, meta or tiktok")
    connect.add_argument("--tenant", metavar="NAME")
    connect.add_argument(
        "--account",
        metavar="ID",
        action="append",
        help="customer / ad account / advertiser id; in a browser, pre-selects it (repeatable) "
        "instead of showing the accounts to pick; with --token-file, the one account",
    )
    connect.add_argument(
        "--token-file",
        metavar="PATH",
        help="file holding the token, or - for stdin (never on the command line); without it, "
        "connect in a browser",
    )
    connect.add_argument(
        "--operator", metavar="NAME", help="who connects, for the audit log (default: $USER)"
    )
    connect.add_argument("--no-wait", action="store_true", help="browser: print the link and return at once")
    connect.add_argument(
        "--token-kind", choices=["refresh", "access"], help="default: refresh for google, access otherwise"
    )
    connect.add_argument("--expires-in", type=float, metavar="S", help="access token lifetime in seconds")
    connect.add_argument("--json", action="store_true", help="machine-readable output")
    connect.set_defaults(fn=cmd_connect)
