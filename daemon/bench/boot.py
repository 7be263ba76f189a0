"""`deneva bench boot`: time to /healthz 200 on first boot (initdb included), on a
later boot, and after the daemon was killed with SIGKILL; time from SIGTERM to exit,
and whether any process of its embedded Postgres is left behind."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _left_behind(state: Path) -> int:
    count = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if str(state) in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                count += 1
        except OSError:
            continue
    return count


def _start(env: dict[str, str], port: int) -> tuple[subprocess.Popen[bytes], float]:
    began = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "deneva", "demo"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = began + 60
    while time.perf_counter() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process, time.perf_counter() - began
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            raise RuntimeError(f"the daemon exited with status {process.returncode} while starting")
        time.sleep(0.01)
    process.kill()
    raise RuntimeError("no /healthz 200 within 60 s")


def _stop(process: subprocess.Popen[bytes]) -> tuple[int, float]:
    began = time.perf_counter()
    process.send_signal(signal.SIGTERM)
    code = process.wait(30)
    return code, time.perf_counter() - began


def run_boot_bench(as_json: bool) -> int:
    state = Path(tempfile.mkdtemp(prefix="deneva-boot-"))
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DENEVA_")}
    env.update(DENEVA_STATE_DIR=str(state / "state"), DENEVA_HTTP_BIND=f"127.0.0.1:{port}")
    results: dict[str, Any] = {}
    try:
        for phase in ("first_boot", "later_boot"):
            process, up = _start(env, port)
            code, stop = _stop(process)
            results[phase] = {"healthz_s": round(up, 2), "sigterm_exit": code, "stop_s": round(stop, 2)}
        process, _ = _start(env, port)
        process.kill()
        process.wait()
        process, up = _start(env, port)
        code, stop = _stop(process)
        results["boot_after_kill9"] = {
            "healthz_s": round(up, 2),
            "sigterm_exit": code,
            "stop_s": round(stop, 2),
        }
        results["processes_left"] = _left_behind(state)
    finally:
        shutil.rmtree(state, ignore_errors=True)
    if as_json:
        print(json.dumps(results, indent=2))
    else:
        for phase in ("first_boot", "later_boot", "boot_after_kill9"):
            row = results[phase]
            print(
                f"{phase:<18} /healthz 200 after {row['healthz_s']:.2f} s; "
                f"SIGTERM -> exit {row['sigterm_exit']} in {row['stop_s']:.2f} s"
            )
        print(f"processes left behind: {results['processes_left']}")
    return 0
