"""The engine's CLI: functions, invoke, send, runs (list, show, cancel, retry), --json."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg

from tests.conftest import TEST_ENV, as_app_login


def _cli(tmp_path: Path, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`deneva ARGS` on the database at `database_url` (the owner's URL), as an operator
    configures it: the pool's login in DENEVA_DATABASE_URL, the owner's for migrations."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DENEVA_")}
    env.update(
        DENEVA_DATABASE_URL=as_app_login(database_url),
        DENEVA_MIGRATE_DATABASE_URL=database_url,
        DENEVA_ENV=TEST_ENV,
        DENEVA_STATE_DIR=str(tmp_path / "state"),
    )
    return subprocess.run(
        [sys.executable, "-m", "deneva", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )


def test_functions_lists_the_diagnostics(tmp_path: Path, database_url: str) -> None:
    listed = json.loads(_cli(tmp_path, database_url, "functions", "--json").stdout)
    by_id = {f["id"]: f for f in listed}
    assert by_id["deneva-noop"]["triggers"] == ["event deneva/noop"]
    assert by_id["deneva-one-step"]["retries"] == 3


def test_send_count_and_duplicates(tmp_path: Path, database_url: str) -> None:
    sent = _cli(tmp_path, database_url, "send", "deneva/noop", "--count", "5", "--id", "batch", "--json")
    assert sent.returncode == 0, sent.stderr
    assert json.loads(sent.stdout) == {"sent": 5, "new": 5, "duplicates": 0, "runs": 5, "errors": []}
    again = json.loads(
        _cli(tmp_path, database_url, "send", "deneva/noop", "--count", "5", "--id", "batch", "--json").stdout
    )
    assert again["new"] == 0 and again["duplicates"] == 5 and again["runs"] == 0
    runs = json.loads(_cli(tmp_path, database_url, "runs", "--json", "--function", "deneva-noop").stdout)
    assert len(runs) == 5 and {r["status"] for r in runs} == {"queued"}


def test_invoke_show_cancel_retry(tmp_path: Path, database_url: str) -> None:
    invoked = _cli(tmp_path, database_url, "invoke", "deneva-one-step", "--data", '{"value": 7}', "--json")
    assert invoked.returncode == 0, invoked.stderr
    run_id = json.loads(invoked.stdout)["runId"]
    shown = json.loads(_cli(tmp_path, database_url, "runs", "show", run_id, "--json").stdout)
    assert shown["status"] == "queued" and shown["event"]["data"] == {"value": 7} and shown["steps"] == []
    cancelled = json.loads(_cli(tmp_path, database_url, "runs", "cancel", run_id, "--json").stdout)
    assert cancelled == {"runId": run_id, "status": "cancelled"}
    retried = json.loads(_cli(tmp_path, database_url, "runs", "retry", run_id, "--json").stdout)
    assert retried == {"runId": run_id, "status": "queued"}


def test_bad_input_is_one_line_naming_the_problem(tmp_path: Path, database_url: str) -> None:
    cases = [
        (("invoke", "no-such-function"), "unknown function 'no-such-function'"),
        (("send", "deneva/noop", "--data", "{oops"), "--data: not valid JSON"),
        (("send", "deneva/noop", "--data", "[1]"), "--data: expected a JSON object"),
        (("send", "bad name!"), "events[0].name: expected a name"),
        (("send", "deneva/noop", "--count", "0"), "--count"),
        (("runs", "show", "not-a-uuid"), "is not a run id"),
        (("runs", "show", "00000000-0000-0000-0000-000000000000"), "no run with id"),
        (("runs", "--status", "sleepy"), "--status: expected one of"),
        (("runs", "cancel"), "give a run ID"),
    ]
    for args, message in cases:
        result = _cli(tmp_path, database_url, *args)
        assert result.returncode != 0, args
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (args, result.stderr)


def test_functions_pause_and_resume_one_function_and_the_engine(tmp_path: Path, database_url: str) -> None:
    def states() -> dict[str, str]:
        listed = _cli(tmp_path, database_url, "functions", "--json")
        assert listed.returncode == 0, listed.stderr
        return {f["id"]: f["state"] for f in json.loads(listed.stdout)}

    assert set(states().values()) == {"active"}
    paused = _cli(tmp_path, database_url, "functions", "pause", "refresh-tenant-report")
    assert paused.returncode == 0 and paused.stdout.strip() == "refresh-tenant-report paused"
    now = states()
    assert now["refresh-tenant-report"] == "paused" and now["deneva-noop"] == "active"
    text = _cli(tmp_path, database_url, "functions").stdout
    assert [line for line in text.splitlines() if "PAUSED" in line] == [
        line for line in text.splitlines() if line.startswith("refresh-tenant-report ")
    ]
    resumed = _cli(tmp_path, database_url, "functions", "resume", "refresh-tenant-report", "--json")
    assert json.loads(resumed.stdout) == {
        "function": "refresh-tenant-report",
        "action": "resume",
        "changed": True,
    }
    again = _cli(tmp_path, database_url, "functions", "resume", "refresh-tenant-report")
    assert again.returncode == 0 and again.stdout.strip() == "refresh-tenant-report was not paused"

    assert _cli(tmp_path, database_url, "functions", "pause", "--all").stdout.strip() == "the engine paused"
    assert set(states().values()) == {"paused"}
    assert "the engine is paused since" in _cli(tmp_path, database_url, "functions").stdout
    assert _cli(tmp_path, database_url, "functions", "resume", "--all").returncode == 0
    assert set(states().values()) == {"active"}


def test_functions_pause_bad_input_names_what_is_wrong(tmp_path: Path, database_url: str) -> None:
    cases = [
        (("functions", "pause", "nope"), "unknown function 'nope'"),
        (("functions", "resume", "nope"), "unknown function 'nope'"),
        (("functions", "pause"), "give a FUNCTION_ID, or --all"),
        (("functions", "pause", "deneva-noop", "--all"), "not both"),
        (("functions", "--all"), "go with pause or resume"),
    ]
    for args, message in cases:
        result = _cli(tmp_path, database_url, *args)
        assert result.returncode != 0, args
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (args, result.stderr)


def test_runs_show_prints_a_failed_attempts_traceback(tmp_path: Path, database_url: str) -> None:
    run_id = json.loads(_cli(tmp_path, database_url, "invoke", "deneva-noop", "--json").stdout)["runId"]
    trace = 'Traceback (most recent call last):\n  File "x.py", line 1, in f\nValueError: boom'

    async def fail_it() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(
                "UPDATE engine_runs SET status = 'failed', last_error = 'ValueError: boom', "
                "last_traceback = $2 WHERE id = $1",
                uuid.UUID(run_id),
                trace,
            )
        finally:
            await conn.close()

    asyncio.run(fail_it())
    shown = _cli(tmp_path, database_url, "runs", "show", run_id)
    assert shown.returncode == 0, shown.stderr
    assert "traceback:" in shown.stdout and "ValueError: boom" in shown.stdout
    assert '      File "x.py", line 1, in f' in shown.stdout
    as_json = json.loads(_cli(tmp_path, database_url, "runs", "show", run_id, "--json").stdout)
    assert as_json["lastTraceback"] == trace
