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
    import time

    from deneva.credentials import CredentialError, PlainTokens, check_connect_input, store_credential

    if not args.tenant or not args.account or not args.token_file:
        raise CredentialError(
            "connect: give --tenant NAME, --account ID and --token-file PATH (or - for stdin)"
        )
    token = _read_token(args.token_file)
    kind = args.token_kind or ("refresh" if args.platform == "google" else "access")
    expires = None if args.expires_in is None else time.time() + args.expires_in
    tokens = PlainTokens(token if kind == "refresh" else None, token if kind == "access" else None, expires)
    check_connect_input(args.platform, args.account, tokens)
    config = command_config(args)
    keys = command_keyring(config)
    result = with_database(
        config,
        lambda db: db.transaction(
            lambda c: store_credential(c, keys, args.tenant, args.platform, args.account, tokens)
        ),
    )
    verb = "connected" if result["new"] else "replaced the credential of"
    print(
        json.dumps(result)
        if args.json
        else f"{verb} {args.platform} account {args.account} for {args.tenant}"
    )
    return 0


def add_connect_command(add: Callable[[str, str], argparse.ArgumentParser]) -> None:
    connect = add("connect", "store a tenant's platform credential (envelope-encrypted under DENEVA_KEK)")
    connect.add_argument("platform", metavar="PLATFORM", help="google, meta or tiktok")
    connect.add_argument("--tenant", metavar="NAME")
    connect.add_argument("--account", metavar="ID", help="customer / ad account / advertiser id")
    connect.add_argument(
        "--token-file",
        metavar="PATH",
        help="file holding the token, or - for stdin (never on the command line)",
    )
    connect.add_argument(
        "--token-kind", choices=["refresh", "access"], help="default: refresh for google, access otherwise"
    )
    connect.add_argument("--expires-in", type=float, metavar="S", help="access token lifetime in seconds")
    connect.add_argument("--json", action="store_true", help="machine-readable output")
    connect.set_defaults(fn=cmd_connect)
