"""The design card's layout installs as one package, `deneva`, and http/ never shadows
the standard library's `http` package: from the repository root or elsewhere, from
the editable install and from a wheel."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

PROBE = (
    "import http, http.client, deneva, deneva.http.app, deneva.sql;"
    "import sys; assert http.__file__.startswith(sys.base_prefix), http.__file__;"
    "print(deneva.__file__)"
)


def _python(
    args: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("where", ["repo root", "elsewhere"])
def test_editable_install_does_not_shadow_stdlib_http(repo_root: Path, tmp_path: Path, where: str) -> None:
    cwd = repo_root if where == "repo root" else tmp_path
    probe = _python(["-c", PROBE], cwd)
    assert probe.returncode == 0, probe.stderr
    helped = _python(["-m", "deneva", "--help"], cwd)
    assert helped.returncode == 0, helped.stderr
    assert "usage: deneva" in helped.stdout


def test_wheel_contains_the_card_layout_and_does_not_shadow_http(repo_root: Path, tmp_path: Path) -> None:
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(repo_root),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert built.returncode == 0, built.stderr
    wheel = next(tmp_path.glob("deneva-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in (
        "deneva/__init__.py",
        "deneva/cli.py",
        "deneva/actors/canary.py",
        "deneva/http/app.py",
        "deneva/sql/migrations/0001_foundation.sql",
    ):
        assert expected in names
    assert not any(name.startswith("http/") for name in names)
    target = tmp_path / "site"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert installed.returncode == 0, installed.stderr
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}
    for cwd in (repo_root, tmp_path):
        probe = _python(["-c", PROBE], cwd, env)
        assert probe.returncode == 0, probe.stderr
        assert probe.stdout.strip().startswith(str(target)), probe.stdout
        helped = _python(["-m", "deneva", "--help"], cwd, env)
        assert helped.returncode == 0 and "usage: deneva" in helped.stdout, helped.stderr
