"""Peer job systems measured on the same Postgres as the engine (`deneva bench engine --compare`).

    python -m deneva.bench.peers procrastinate --dsn DSN --jobs N --json
    python -m deneva.bench.peers dbos --dsn DSN --jobs N --json

Each peer runs in a process of its own, on a throwaway database the caller made for
it, and does what the engine benchmark does: enqueue `jobs` jobs first (timed on its
own), then start the workers and time until every job has succeeded. A few worker
settings are tried on a smaller batch first and the best one does the full run, so a
peer is not judged on a poor default. Progress goes to stderr; with --json, stdout
is one JSON object.

- procrastinate: an async no-op task (`batch_defer_async`, then `run_worker_async`
  with `wait=False`, which returns once the queue is empty).
- dbos: a workflow with one step, through a DBOS queue. The jobs are enqueued by a
  DBOS instance that does not dequeue from that queue; a fresh instance that does is
  then launched and the count of SUCCESS rows is polled every 25 ms.

The peer packages are optional (`pip install 'deneva[bench]'`); they are imported
lazily so this module imports, and type-checks, without them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import importlib.metadata
import importlib.util
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import attrs

PACKAGES = {"procrastinate": "procrastinate", "dbos": "dbos"}
WORKLOADS = {"procrastinate": "no-op task", "dbos": "one-step workflow on a queue"}
INSTALL_HINT = "pip install 'deneva[bench]'"
ENQUEUE_BATCH = 5000
PROCRASTINATE_CONCURRENCY = (10, 50)
DBOS_WORKER_CONCURRENCY = (32, 128)
DBOS_POLL_S = 0.1  # the queue's polling interval (DBOS's default is 1 s)
DONE_POLL_S = 0.025


class PeerError(Exception):
    """A peer could not be measured; the message says why."""


def missing_package(peer: str) -> str | None:
    """The package a peer needs that is not installed, or None when it can run."""
    package = PACKAGES[peer]
    return None if importlib.util.find_spec(package) is not None else package


def package_version(peer: str) -> str:
    try:
        return importlib.metadata.version(PACKAGES[peer])
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


@attrs.frozen
class PeerTrial:
    settings: dict[str, Any]
    jobs: int
    enqueue_s: float
    seconds: float

    @property
    def jobs_per_s(self) -> float:
        return self.jobs / self.seconds if self.seconds > 0 else 0.0

    @property
    def enqueue_per_s(self) -> float:
        return self.jobs / self.enqueue_s if self.enqueue_s > 0 else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "settings": self.settings,
            "jobs": self.jobs,
            "enqueue_s": round(self.enqueue_s, 4),
            "enqueue_per_s": round(self.enqueue_per_s, 1),
            "seconds": round(self.seconds, 4),
            "jobs_per_s": round(self.jobs_per_s, 1),
        }


def _chunks(n: int, size: int) -> list[int]:
    return [min(size, n - start) for start in range(0, n, size)]


# -- procrastinate ---------------------------------------------------------------------------


async def _procrastinate_trial(dsn: str, jobs: int, concurrency: int) -> PeerTrial:
    procrastinate: Any = importlib.import_module("procrastinate")
    # Quiet its warning about an App made in `__main__` (this module, run with -m).
    logging.getLogger("procrastinate").setLevel(logging.ERROR)
    connector = procrastinate.PsycopgConnector(conninfo=dsn, min_size=2, max_size=concurrency + 4)
    app = procrastinate.App(connector=connector)

    @app.task(name="deneva_bench_noop")
    async def noop() -> None:
        return None

    async with app.open_async():
        await connector.execute_query_async("TRUNCATE procrastinate_jobs CASCADE")
        started = time.perf_counter()
        for size in _chunks(jobs, ENQUEUE_BATCH):
            await noop.batch_defer_async(*({} for _ in range(size)))
        enqueue_s = time.perf_counter() - started
        started = time.perf_counter()
        await app.run_worker_async(
            concurrency=concurrency,
            wait=False,
            listen_notify=True,
            install_signal_handlers=False,
            fetch_job_polling_interval=0.1,
        )
        seconds = time.perf_counter() - started
        rows = await connector.execute_query_all_async(
            "SELECT status::text AS status, count(*) AS n FROM procrastinate_jobs GROUP BY status"
        )
    counts = {row["status"]: int(row["n"]) for row in rows}
    if counts.get("succeeded", 0) != jobs:
        raise PeerError(f"procrastinate: expected {jobs} succeeded jobs, found {counts}")
    return PeerTrial({"concurrency": concurrency}, jobs, enqueue_s, seconds)


async def _procrastinate_schema(dsn: str) -> None:
    procrastinate: Any = importlib.import_module("procrastinate")
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=dsn, min_size=1, max_size=2))
    async with app.open_async():
        await app.schema_manager.apply_schema_async()


def bench_procrastinate(dsn: str, jobs: int, calibration_jobs: int) -> tuple[PeerTrial, list[PeerTrial]]:
    asyncio.run(_procrastinate_schema(dsn))
    return _best_of(
        "procrastinate",
        [{"concurrency": c} for c in PROCRASTINATE_CONCURRENCY],
        lambda settings, n: asyncio.run(_procrastinate_trial(dsn, n, settings["concurrency"])),
        jobs,
        calibration_jobs,
    )


# -- DBOS ------------------------------------------------------------------------------------


class _Dbos:
    """One DBOS application (a one-step workflow) whose instance can be relaunched."""

    def __init__(self, dsn: str, pool: int) -> None:
        self.dbos: Any = importlib.import_module("dbos")
        self.dsn = dsn
        self.config: dict[str, Any] = {
            "name": "deneva-bench",
            "system_database_url": dsn,
            "sys_db_pool_size": pool,
            "log_level": "WARNING",
        }
        DBOS = self.dbos.DBOS
        DBOS(config=self.config)

        @DBOS.step()
        def echo(value: int) -> int:
            return value

        @DBOS.workflow()
        def one_step(value: int) -> int:
            result: int = echo(value)
            return result

        self.workflow = one_step

    def relaunch(self, listen: Sequence[str] | None) -> None:
        DBOS = self.dbos.DBOS
        DBOS.destroy(destroy_registry=False)
        DBOS(config=self.config)
        if listen is not None:
            DBOS.listen_queues(list(listen))
        DBOS.launch()

    def destroy(self) -> None:
        self.dbos.DBOS.destroy()


def _dbos_trial(app: _Dbos, dsn: str, queue_name: str, jobs: int, worker_concurrency: int) -> PeerTrial:
    psycopg: Any = importlib.import_module("psycopg")
    DBOS = app.dbos.DBOS
    # Enqueue with an instance that does not dequeue from this queue ...
    app.relaunch(listen=["deneva-bench-nobody"])
    queue = DBOS.register_queue(
        queue_name, worker_concurrency=worker_concurrency, polling_interval_sec=DBOS_POLL_S
    )
    started = time.perf_counter()
    for value in range(jobs):
        queue.enqueue(app.workflow, value)
    enqueue_s = time.perf_counter() - started
    # ... then launch one that does, and time until every workflow has succeeded.
    with psycopg.connect(dsn, autocommit=True) as conn:
        deadline = time.monotonic() + max(600.0, jobs / 5)
        started = time.perf_counter()
        app.relaunch(listen=None)
        done = 0
        while done < jobs:
            time.sleep(DONE_POLL_S)
            done = conn.execute(
                "SELECT count(*) FROM dbos.workflow_status WHERE queue_name = %s AND status = 'SUCCESS'",
                (queue_name,),
            ).fetchone()[0]
            if time.monotonic() > deadline:
                raise PeerError(f"dbos: only {done} of {jobs} workflows succeeded in time")
        seconds = time.perf_counter() - started
    settings = {"worker_concurrency": worker_concurrency, "polling_interval_sec": DBOS_POLL_S}
    return PeerTrial(settings, jobs, enqueue_s, seconds)


def bench_dbos(dsn: str, jobs: int, calibration_jobs: int) -> tuple[PeerTrial, list[PeerTrial]]:
    app = _Dbos(dsn, pool=max(DBOS_WORKER_CONCURRENCY) + 8)
    names = (f"deneva-bench-{i}" for i in range(1000))
    try:
        return _best_of(
            "dbos",
            [{"worker_concurrency": c} for c in DBOS_WORKER_CONCURRENCY],
            lambda settings, n: _dbos_trial(app, dsn, next(names), n, settings["worker_concurrency"]),
            jobs,
            calibration_jobs,
        )
    finally:
        app.destroy()


# -- both ------------------------------------------------------------------------------------


def _best_of(
    peer: str,
    candidates: list[dict[str, Any]],
    trial: Callable[[dict[str, Any], int], PeerTrial],
    jobs: int,
    calibration_jobs: int,
) -> tuple[PeerTrial, list[PeerTrial]]:
    """Try each candidate on `calibration_jobs` jobs; run the fastest on `jobs`."""
    calibration: list[PeerTrial] = []
    best = candidates[0]
    if calibration_jobs > 0 and len(candidates) > 1:
        size = min(calibration_jobs, jobs)
        for settings in candidates:
            _say(f"{peer}: calibrating {settings} on {size} jobs")
            result = trial(settings, size)
            _say(f"{peer}: {result.jobs_per_s:,.0f} jobs/s")
            calibration.append(result)
        fastest = max(range(len(candidates)), key=lambda i: calibration[i].jobs_per_s)
        if size == jobs:  # the calibration was the full run already
            return calibration[fastest], calibration
        best = candidates[fastest]
    _say(f"{peer}: {jobs} jobs with {best}")
    final = trial(best, jobs)
    _say(f"{peer}: {final.jobs_per_s:,.0f} jobs/s")
    return final, calibration


BENCHES: dict[str, Callable[[str, int, int], tuple[PeerTrial, list[PeerTrial]]]] = {
    "procrastinate": bench_procrastinate,
    "dbos": bench_dbos,
}


def run_peer(peer: str, dsn: str, jobs: int, calibration_jobs: int) -> dict[str, Any]:
    """Measure one peer in this process; the result as the JSON object `main` prints."""
    missing = missing_package(peer)
    if missing is not None:
        raise PeerError(f"{peer}: the package {missing!r} is not installed ({INSTALL_HINT})")
    final, calibration = BENCHES[peer](dsn, jobs, calibration_jobs)
    return {
        "peer": peer,
        "package": PACKAGES[peer],
        "version": package_version(peer),
        "workload": WORKLOADS[peer],
        **final.as_json(),
        "calibration": [trial.as_json() for trial in calibration],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deneva.bench.peers", description=__doc__.splitlines()[0])
    parser.add_argument("peer", choices=sorted(BENCHES))
    parser.add_argument("--dsn", required=True, help="libpq URL of a throwaway database for this peer")
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument(
        "--calibration-jobs",
        type=int,
        default=None,
        help="jobs per settings candidate before the full run (default: min(jobs, 1000); 0: none)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    calibration_jobs = min(args.jobs, 1000) if args.calibration_jobs is None else args.calibration_jobs
    try:
        # Keep stdout for the result: a peer's own chatter goes to stderr.
        with contextlib.redirect_stdout(sys.stderr):
            result = run_peer(args.peer, args.dsn, args.jobs, calibration_jobs)
    except PeerError as exc:
        print(f"deneva bench peers: error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{args.peer} {result['version']} ({result['workload']}): {result['jobs_per_s']:,.0f} jobs/s "
            f"over {result['jobs']} jobs with {result['settings']}; "
            f"enqueue {result['enqueue_per_s']:,.0f} jobs/s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
