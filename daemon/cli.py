"""The `deneva` command line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import trio

from deneva import __version__
from deneva.cli_engine import command_config
from deneva.config import Config
from deneva.errors import DatabaseUnavailable, DenevaError, root_cause
from deneva.logs import setup_logging

log = logging.getLogger("deneva.cli")


# The trio thread and the database thread (deneva.db) hand the GIL to each other on every
# query. At Python's default 5 ms switch interval an answer can wait that long for the busy
# trio thread to let go; at 0.2 ms `deneva bench mcp`'s p99 at 500 calls/s went from
# 108 ms to 6.5 ms and its peak rose 30 % (2-core VM, 2026-11-23).
GIL_SWITCH_INTERVAL_S = 0.0002


class CliError(DenevaError):
    """A usage problem reported as one line."""


def _describe_db_error(config: Config, exc: DatabaseUnavailable) -> str:
    if config.database_url is None:
        where = "embedded Postgres"
    elif config.migrate_database_url:
        where = "DENEVA_DATABASE_URL or DENEVA_MIGRATE_DATABASE_URL"
    else:
        where = "DENEVA_DATABASE_URL"
    return f"{where}: {exc}"


# -- run / demo -------------------------------------------------------------------


def _serve(config: Config, *, announce: bool = False, demo: bool = False) -> int:
    from deneva.interpreter import tune_collector
    from deneva.runtime import Daemon
    from deneva.secrets import load_secrets, secrets_directory

    secrets = load_secrets(secrets_directory(config.secrets_dir))
    daemon = Daemon(config, secrets, demo=demo)
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    tune_collector()

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(daemon.run)
            if announce:
                print(
                    f"deneva is up on {', '.join(binds)}: /healthz, /readyz "
                    f"(state in {config.state_dir}; Ctrl-C stops it)",
                    flush=True,
                )
                base = binds[0]
                print(
                    f"MCP: {base}/mcp (Streamable HTTP), {base.replace('http', 'ws', 1)}/mcp/ws (WebSocket)",
                    flush=True,
                )
                if daemon.demo_key_file is not None:
                    print(
                        f"demo tenant 'demo' on the sandbox ad platforms; its API key is in "
                        f"{daemon.demo_key_file}",
                        flush=True,
                    )

    try:
        trio.run(main)
    except KeyboardInterrupt:
        return 0
    except BaseException as exc:
        cause = root_cause(exc)
        if isinstance(cause, DatabaseUnavailable):
            raise CliError(_describe_db_error(config, cause)) from None
        if isinstance(cause, DenevaError | OSError):
            raise CliError(str(cause)) from None
        raise
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    config = command_config(args)
    setup_logging(config.log_format, config.log_level)
    return _serve(config)


def cmd_demo(args: argparse.Namespace) -> int:
    import attrs

    from deneva.secrets import init_secrets

    config = command_config(args)
    if config.secrets_dir is None:
        config = attrs.evolve(config, secrets_dir=config.state_dir / "secrets")
    assert config.secrets_dir is not None
    init_secrets(config.secrets_dir)
    setup_logging(config.log_format, config.log_level)
    return _serve(config, announce=True, demo=True)


# -- migrate / secrets ---------------------------------------------------------------


def cmd_migrate(args: argparse.Namespace) -> int:
    from deneva.admin import database_urls, owner_url, prepare_database
    from deneva.migrations import load_migrations

    config = command_config(args)
    migrations = load_migrations()
    try:
        with database_urls(config) as urls:
            owner_url(urls)
            applied = trio.run(prepare_database, urls, config.env)
    except DatabaseUnavailable as exc:
        raise CliError(_describe_db_error(config, exc)) from None
    if applied:
        for name in applied:
            print(f"applied {name}")
    else:
        print(f"up to date ({len(migrations)} migrations)")
    return 0


def cmd_secrets_init(args: argparse.Namespace) -> int:
    from deneva.secrets import init_secrets

    if args.dir:
        directory = Path(args.dir)
    else:
        config = command_config(args)
        directory = config.secrets_dir or (config.state_dir / "secrets")
    created = init_secrets(directory)
    for name in created:
        print(f"created {directory / name}")
    if not created:
        print(f"all secrets already exist in {directory}; nothing changed")
    return 0


def cmd_secrets_rotate_kek(args: argparse.Namespace) -> int:
    from deneva.admin import with_database
    from deneva.cli_tenants import command_keyring
    from deneva.credentials import rotate_kek

    if not 1 <= args.batch <= 10_000:
        raise CliError("--batch: expected 1 to 10000")
    config = command_config(args)
    keys = command_keyring(config)
    done = with_database(config, lambda db: rotate_kek(db, keys, batch=args.batch))
    if args.json:
        summary = {
            "kekId": done.kek_id,
            "rewrapped": done.rewrapped,
            "reformatted": done.reformatted,
            "unreadable": [str(i) for i in done.unreadable],
            "remaining": done.remaining,
        }
        print(json.dumps(summary))
    else:
        older = (
            f" ({done.reformatted} stored before migration 0007, now re-sealed)" if done.reformatted else ""
        )
        print(f"re-wrapped {done.rewrapped} credential(s) under DENEVA_KEK ({done.kek_id}){older}")
    if done.remaining:
        unreadable = len(done.unreadable)
        raise CliError(
            f"{done.remaining} credential(s) are still under another key-encryption key ({unreadable} that "
            "neither DENEVA_KEK nor DENEVA_KEK_PREVIOUS opens; any others were written meanwhile by a "
            "daemon without this DENEVA_KEK): keep DENEVA_KEK_PREVIOUS, and run this again"
        )
    if not args.json:
        print("every credential is under DENEVA_KEK; DENEVA_KEK_PREVIOUS is no longer needed")
    return 0


def cmd_bridge(args: argparse.Namespace) -> int:
    from deneva.bridge import load_key, run_bridge

    # Logs to stderr only: stdout carries the protocol.
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="deneva bridge: %(message)s")
    key = load_key(args.api_key_file)
    try:
        trio.run(run_bridge, args.url, key)
    except BaseException as exc:
        cause = root_cause(exc)
        if isinstance(cause, DenevaError):
            raise CliError(str(cause)) from None
        if isinstance(cause, KeyboardInterrupt):
            return 130
        raise
    return 0


# -- parser ----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deneva",
        description="MCP server for ad-platform data with an embedded durable job engine.",
    )
    parser.add_argument("--version", action="version", version=f"deneva {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--config", metavar="FILE", help="TOML config file (DENEVA_* variables override it)")
        return sub

    add("run", "run the daemon (systemd Type=notify)").set_defaults(fn=cmd_run)
    add("demo", "what `make run` runs: the daemon on the embedded Postgres with dev secrets").set_defaults(
        fn=cmd_demo
    )
    add(
        "migrate",
        "apply the SQL migrations as the schema's owner (DENEVA_MIGRATE_DATABASE_URL, or the embedded "
        "Postgres); the daemon also does this at start when it has that URL",
    ).set_defaults(fn=cmd_migrate)

    from deneva.cli_engine import add_engine_commands
    from deneva.cli_oauth import add_oauth_commands
    from deneva.cli_tenants import add_connect_command, add_tenant_commands

    add_tenant_commands(add)
    add_connect_command(add)
    add_oauth_commands(add)
    add_engine_commands(commands, add)

    from deneva.cli_bench import add_bench_command

    add_bench_command(add)

    bridge = commands.add_parser(
        "bridge",
        help="relay MCP between stdio and a remote deneva (for stdio-only desktop clients)",
        description="Relay MCP between stdio (newline-delimited JSON-RPC) and a deneva daemon's "
        "/mcp/ws (ws://, wss://) or /mcp (http://, https://). The API key comes from DENEVA_API_KEY "
        "or --api-key-file, never the command line.",
    )
    bridge.add_argument("url", help="e.g. ws://127.0.0.1:8787/mcp/ws or http://127.0.0.1:8787/mcp")
    bridge.add_argument("--api-key-file", metavar="FILE", help="file holding the API key")
    bridge.set_defaults(fn=cmd_bridge)

    secrets = commands.add_parser(
        "secrets",
        help="manage secret files and the key-encryption key",
        description="manage secret files and the key-encryption key",
    )
    secrets_commands = secrets.add_subparsers(dest="secrets_command", metavar="ACTION", required=True)
    init = secrets_commands.add_parser(
        "init",
        help="generate missing secrets (never overwrites)",
        description="generate missing secrets (never overwrites)",
    )
    init.add_argument("dir", nargs="?", help="directory (default: DENEVA_SECRETS_DIR or STATE_DIR/secrets)")
    init.add_argument("--config", metavar="FILE", help="TOML config file")
    init.set_defaults(fn=cmd_secrets_init)
    rotate_help = "re-wrap every platform credential's data key under DENEVA_KEK"
    rotate = secrets_commands.add_parser(
        "rotate-kek",
        help=rotate_help,
        description="Re-wrap every platform credential's data key under DENEVA_KEK, a batch of "
        "credentials per transaction. Credentials "
        "under DENEVA_KEK_PREVIOUS (the key before) stay readable meanwhile; those stored before "
        "migration 0007 are re-sealed in the current format. Exits non-zero while any credential "
        "is left under another key.",
    )
    rotate.add_argument(
        "--batch", type=int, default=500, metavar="N", help="credentials per transaction (default 500)"
    )
    rotate.add_argument("--json", action="store_true", help="machine-readable output")
    rotate.add_argument("--config", metavar="FILE", help="TOML config file")
    rotate.set_defaults(fn=cmd_secrets_rotate_kek)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.fn(args)
        return result
    except DenevaError as exc:
        print(f"deneva: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
