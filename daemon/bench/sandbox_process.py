"""The sandbox ad platforms in a process of their own, on a simulation's virtual clock.

Real platforms do their work on their own machines; so does this sandbox, on the other
core, so its synthetic-data CPU is not counted as the daemon's. Its clock (token expiry,
the reporting "today") is the virtual wall clock the simulation publishes in a
`ClockFile` (`deneva.bench.simclock`). The tokens it accepts are registered before it
serves.

    python -m deneva.bench.sandbox_process --clock-file PATH [--seed N] < tokens.json

reads [[platform, kind, token], ...] on stdin, prints its base URL on stdout and
serves until terminated.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import select
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import trio

from deneva.bench.simclock import ClockFile
from deneva.errors import DenevaError

START_TIMEOUT_S = 60.0

# (platform, token kind, token) as the sandbox's control API takes them.
TokenSpec = tuple[str, str, str]


class SandboxProcessError(DenevaError):
    """The sandbox process did not start."""


class SandboxProcess:
    """`with SandboxProcess(tokens) as base_url:` the sandbox serving in a child process.

    `clock` is the file the simulation's `SkipIdleClock` publishes virtual time in.
    """

    def __init__(self, tokens: Sequence[TokenSpec], *, seed: int = 0) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="deneva-bench-")
        self.clock = ClockFile(Path(self._dir.name) / "clock", create=True)
        self.tokens = list(tokens)
        self.seed = seed
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> str:
        argv = [
            sys.executable,
            "-m",
            "deneva.bench.sandbox_process",
            "--clock-file",
            str(self.clock.path),
            "--seed",
            str(self.seed),
        ]
        process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self._process = process
        try:
            assert process.stdin is not None and process.stdout is not None
            process.stdin.write(json.dumps(self.tokens).encode())
            process.stdin.close()
            return _first_line(process, process.stdout)
        except BaseException:
            self._stop()
            raise

    def __exit__(self, *exc_info: object) -> None:
        self._stop()

    def cpu_seconds(self) -> float | None:
        """CPU time (user + system) the sandbox process has used so far; None where /proc is not."""
        process = self._process
        if process is None:
            return None
        return process_cpu_seconds(process.pid)

    def _stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5)
            if process.stdout is not None:
                process.stdout.close()
        self.clock.close()
        self._dir.cleanup()


def process_cpu_seconds(pid: int) -> float | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _first_line(process: subprocess.Popen[bytes], stdout: IO[bytes]) -> str:
    ready, _, _ = select.select([stdout], [], [], START_TIMEOUT_S)
    line = stdout.readline().decode().strip() if ready else ""
    if not line.startswith("http"):
        status = process.poll()
        why = (
            f"exited with status {status}" if status is not None else f"said nothing in {START_TIMEOUT_S:g} s"
        )
        raise SandboxProcessError(f"the sandbox process did not start: it {why}")
    return line


def _serve(clock_file: Path, seed: int, tokens: list[Any]) -> None:
    from deneva.sandbox.server import SandboxServer
    from deneva.sandbox.state import SandboxConfig

    clock = ClockFile(clock_file)
    server = SandboxServer(SandboxConfig(seed=seed, clock=clock.now, request_log_size=1))
    for platform, kind, token in tokens:
        server.state.tokens.register(str(platform), str(kind), str(token))

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            base_url: str = await nursery.start(server.run)
            print(base_url, flush=True)

    trio.run(main)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deneva.bench.sandbox_process")
    parser.add_argument("--clock-file", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="sandbox: %(levelname)s %(name)s: %(message)s")
    tokens = json.load(sys.stdin)
    try:
        _serve(args.clock_file, args.seed, tokens)
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
