"""CLI commands for the engine: functions (and pause/resume), invoke, send, runs."""

from __future__ import annotations

import argparse
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from deneva.clock import SystemClock
from deneva.config import Config, load_config
from deneva.engine.engine import ENGINE, Engine
from deneva.engine.model import STATUSES, RunRecord
from deneva.errors import DenevaError
from deneva.functions import app_registry, function_states
from deneva.retention import plan_from_config

T = TypeVar("T")


class UsageError(DenevaError):
    pass


def command_config(args: argparse.Namespace) -> Config:
    """The Config for a command: its --config file, if given, and the environment."""
    return load_config(Path(args.config) if getattr(args, "config", None) else None)


def _with_engine(config: Config, fn: Callable[[Engine], Awaitable[T]]) -> T:
    from deneva.admin import with_database

    registry = app_registry(config.functions_module).registry
    return with_database(config, lambda db: fn(Engine(db, registry, SystemClock(), owner="cli")))


def _json_arg(text: str | None, flag: str) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{flag}: not valid JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(value, dict):
        raise UsageError(f"{flag}: expected a JSON object, got {type(value).__name__}")
    return value


def _run_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise UsageError(f"ID: {text!r} is not a run id (a UUID)") from None


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


def _pause_target(args: argparse.Namespace) -> str | None:
    if args.all and args.function_id:
        raise UsageError(f"functions {args.action}: give a FUNCTION_ID or --all, not both")
    if not args.all and not args.function_id:
        raise UsageError(f"functions {args.action}: give a FUNCTION_ID, or --all for the whole engine")
    target: str | None = None if args.all else args.function_id
    return target


def cmd_functions(args: argparse.Namespace) -> int:
    config = command_config(args)
    if args.action in ("pause", "resume"):
        target = _pause_target(args)
        if target is not None:
            app_registry(config.functions_module).registry.get(target)  # an unknown id fails here, naming it

        async def steer(engine: Engine) -> bool:
            if args.action == "pause":
                await engine.pause(target, by="cli")
                return True
            return await engine.resume(target)

        changed = _with_engine(config, steer)
        what = "the engine" if target is None else target
        word = "paused" if args.action == "pause" else ("resumed" if changed else "was not paused")
        if args.json:
            _print_json({"function": target or ENGINE, "action": args.action, "changed": changed})
        else:
            print(f"{what} {word}")
        return 0
    if args.function_id or args.all:
        raise UsageError("functions: FUNCTION_ID and --all go with pause or resume")
    schedules = dict(plan_from_config(config).schedules)
    paused = _with_engine(config, lambda e: e.paused())
    states = function_states(app_registry(config.functions_module).registry, schedules, paused, time.time())
    engine_paused = next((p for p in paused if p.function_id == ENGINE), None)
    rows: list[dict[str, Any]] = [state.as_json() for state in states]
    if args.json:
        _print_json(rows)
        return 0
    if engine_paused is not None:
        since = engine_paused.paused_at.isoformat()
        print(f"the engine is paused since {since} (deneva functions resume --all)")
    width = max(len(r["id"]) for r in rows)
    for row in rows:
        state = "" if row["state"] == "active" else "  PAUSED"
        print(f"{row['id']:<{width}}  {'; '.join(row['triggers'])}  (retries {row['retries']}){state}")
    return 0


def cmd_invoke(args: argparse.Namespace) -> int:
    data = _json_arg(args.data, "--data")
    config = command_config(args)

    async def go(engine: Engine) -> RunRecord | uuid.UUID:
        run_id = await engine.invoke(args.function_id, data)
        if args.wait:
            return await engine.wait_for_run(run_id, args.wait)
        return run_id

    result = _with_engine(config, go)
    if isinstance(result, RunRecord):
        if args.json:
            _print_json(result.as_json())
        else:
            print(f"{result.id} {result.status}")
        return 0 if result.status in ("succeeded", "queued", "running", "sleeping", "waiting") else 1
    print(json.dumps({"runId": str(result)}) if args.json else result)
    return 0


def cmd_send(args: argparse.Namespace) -> int:
    data = _json_arg(args.data, "--data")
    if args.count < 1 or args.count > 100_000:
        raise UsageError("--count: expected 1 to 100000")
    if args.id is not None and args.count > 1:
        ids: list[str | None] = [f"{args.id}-{i}" for i in range(args.count)]
    else:
        ids = [args.id] * args.count
    raw = [{"name": args.name, "data": data, **({"id": i} if i else {})} for i in ids]
    config = command_config(args)

    async def go(engine: Engine) -> tuple[int, int, int, list[str]]:
        sent = new = runs = 0
        errors: list[str] = []
        for start in range(0, len(raw), 5000):
            result = await engine.send(raw[start : start + 5000])
            sent += len(result.event_ids)
            new += len(result.new_event_ids)
            runs += len(result.run_ids)
            errors += result.errors
        return sent, new, runs, errors

    sent, new, runs, errors = _with_engine(config, go)
    if args.json:
        _print_json({"sent": sent, "new": new, "duplicates": sent - new, "runs": runs, "errors": errors})
    else:
        print(f"sent {sent} event(s): {new} new, {sent - new} duplicate(s); started {runs} run(s)")
        for error in errors[:10]:
            print(f"  not started: {error}")
    return 0


def _run_line(record: RunRecord) -> str:
    when = record.created_at.strftime("%Y-%m-%d %H:%M:%S")
    error = f"  {record.last_error[:60]}" if record.last_error else ""
    return (
        f"{record.id}  {record.status:<9}  {record.function_id:<28} attempt {record.attempt}  {when}{error}"
    )


def cmd_runs(args: argparse.Namespace) -> int:
    config = command_config(args)
    action = args.action
    if action is None:
        if args.status is not None and args.status not in STATUSES:
            raise UsageError(f"--status: expected one of {', '.join(STATUSES)}")
        if not 1 <= args.limit <= 10_000:
            raise UsageError("--limit: expected 1 to 10000")
        records = _with_engine(config, lambda e: e.list_runs(args.status, args.function, args.limit))
        if args.json:
            _print_json([r.as_json() for r in records])
        else:
            for record in records:
                print(_run_line(record))
            if not records:
                print("no runs")
        return 0
    if args.id is None:
        raise UsageError(f"runs {action}: give a run ID")
    run_id = _run_id(args.id)
    if action == "show":

        async def show(engine: Engine) -> dict[str, Any]:
            record = await engine.get_run(run_id)
            body = record.as_json()
            body["steps"] = [step.as_json() for step in await engine.get_steps(run_id)]
            return body

        body = _with_engine(config, show)
        if args.json:
            _print_json(body)
        else:
            for key in ("id", "function", "status", "attempt", "maxAttempts", "createdAt", "startedAt"):
                print(f"{key:>14}: {body[key]}")
            for key in ("finishedAt", "durationMs", "nextAttemptAt", "lastError"):
                print(f"{key:>14}: {body[key]}")
            print(f"{'output':>14}: {json.dumps(body['output'])}")
            for step in body["steps"]:
                print(f"{'step':>14}: {step['id']} at {step['completedAt']}")
            if body["lastTraceback"]:
                print(f"{'traceback':>14}:")
                for line in body["lastTraceback"].rstrip().splitlines():
                    print(f"{'':>16}{line}")
        return 0
    if action == "retry":
        status = _with_engine(config, lambda e: e.retry(run_id))
    else:
        status = _with_engine(config, lambda e: e.cancel(run_id))
    print(json.dumps({"runId": str(run_id), "status": status}) if args.json else f"{run_id} {status}")
    return 0


def add_engine_commands(commands: Any, add: Callable[[str, str], argparse.ArgumentParser]) -> None:
    functions = add("functions", "list the functions (triggers, paused or not), or pause / resume one")
    functions.add_argument(
        "action", nargs="?", choices=["pause", "resume"], help="stop or restart starting runs (every replica)"
    )
    functions.add_argument(
        "function_id", nargs="?", metavar="FUNCTION_ID", help="the function to pause or resume"
    )
    functions.add_argument("--all", action="store_true", help="with pause/resume: the whole engine")
    functions.add_argument("--json", action="store_true", help="machine-readable output")
    functions.set_defaults(fn=cmd_functions)

    invoke = add("invoke", "run a function now, whatever its triggers")
    invoke.add_argument("function_id", metavar="FUNCTION_ID")
    invoke.add_argument("--data", metavar="JSON", help="event data (a JSON object)")
    invoke.add_argument("--wait", type=float, metavar="S", help="wait up to S seconds for the run to finish")
    invoke.add_argument("--json", action="store_true", help="machine-readable output")
    invoke.set_defaults(fn=cmd_invoke)

    send = add("send", "send an event (N copies with distinct ids)")
    send.add_argument("name", metavar="EVENT_NAME")
    send.add_argument("--data", metavar="JSON", help="event data (a JSON object)")
    send.add_argument("--id", help="event id (a duplicate id is a no-op); with --count, ID-0 ... ID-(N-1)")
    send.add_argument("--count", type=int, default=1, metavar="N", help="send N copies (default 1)")
    send.add_argument("--json", action="store_true", help="machine-readable output")
    send.set_defaults(fn=cmd_send)

    runs = add("runs", "list runs, or show / retry / cancel one")
    runs.add_argument("action", nargs="?", choices=["show", "retry", "cancel"], help="what to do with run ID")
    runs.add_argument("id", nargs="?", metavar="ID", help="the run id")
    runs.add_argument("--status", help=f"only runs in this status ({', '.join(STATUSES)})")
    runs.add_argument("--function", metavar="F", help="only runs of this function")
    runs.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    runs.add_argument("--json", action="store_true", help="machine-readable output")
    runs.set_defaults(fn=cmd_runs)
