"""kill -9 of a worker in the middle of a 3-step run: the run finishes elsewhere,
completed steps are not executed again."""

from __future__ import annotations

import sys
from pathlib import Path

import trio

WORKER = Path(__file__).with_name("crash_worker.py")


async def test_run_survives_a_worker_killed_mid_step(tmp_path: Path, database_url: str) -> None:
    log = tmp_path / "steps.log"
    first = await trio.lowlevel.open_process([sys.executable, str(WORKER), database_url, str(log), "first"])
    try:
        with trio.fail_after(30):
            while "two first" not in (log.read_text() if log.exists() else ""):
                await trio.sleep(0.05)
    finally:
        first.kill()  # SIGKILL, in the middle of step two
        await first.wait()
    second = await trio.run_process(
        [sys.executable, str(WORKER), database_url, str(log), "second"], capture_stdout=True, check=False
    )
    assert second.returncode == 0
    assert second.stdout.decode().strip() == "succeeded"
    executed = [line.split()[:2] for line in log.read_text().splitlines()]
    # Step one ran once (before the kill); step two was cut short and ran again; three once.
    assert executed == [["one", "first"], ["two", "first"], ["two", "second"], ["three", "second"]]
