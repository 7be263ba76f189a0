"""What the `deneva bench` programs share: progress on stderr, and how a command ends."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, Protocol

from deneva.config import Config
from deneva.errors import DenevaError, root_cause

Say = Callable[[str], None]


class BenchError(DenevaError):
    """The benchmark could not run or its results did not check out."""


class Printable(Protocol):
    def as_json(self) -> dict[str, Any]: ...

    def table(self) -> str: ...


def say_to_stderr(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def database_where(config: Config) -> str:
    """Where the benchmark's throwaway databases live, for the report."""
    return "external (DENEVA_DATABASE_URL)" if config.database_url else f"embedded ({config.state_dir})"


def print_report(name: str, produce: Callable[[], Printable], as_json: bool) -> int:
    """Run `produce` and print its report (a table, or one JSON object): the exit code.

    A DenevaError or OSError underneath is one line on stderr and 1; Ctrl-C is 130.
    """
    try:
        report = produce()
    except BaseException as exc:
        cause = root_cause(exc)
        if isinstance(exc, KeyboardInterrupt) or isinstance(cause, KeyboardInterrupt):
            return 130
        if isinstance(cause, DenevaError | OSError):
            print(f"deneva: error: bench {name}: {cause}", file=sys.stderr)
            return 1
        raise
    print(json.dumps(report.as_json()) if as_json else report.table(), flush=True)
    return 0
