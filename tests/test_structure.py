"""The house's shape, checked (STYLE.md, issue 10): nothing outside the engine touches its
storage, no actor imports another, actors' channels are made in the wiring only, no
import cycles, no private names imported across modules, `http/` runs no SQL, and every
named query exists, is used and is valid SQL for the migrated schema."""

from __future__ import annotations

import ast
import asyncio
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import asyncpg

from deneva.db import init_connection
from deneva.sql import query

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"daemon": "deneva", "actors": "deneva.actors", "http": "deneva.http", "sql": "deneva.sql"}
SQL_WORDS = re.compile(r"\b(SELECT\s.+\sFROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM)\b", re.I | re.S)


def modules() -> dict[str, Path]:
    found = {}
    for folder, package in PACKAGES.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([package, *parts])] = path
    return found


MODULES = modules()


def imports(path: Path) -> Iterator[tuple[str, list[str]]]:
    """(module, names) for every import in the file, wherever it stands (functions and
    TYPE_CHECKING blocks included)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, [alias.name for alias in node.names]


def edges(module: str) -> set[str]:
    found = set()
    for target, names in imports(MODULES[module]):
        if not target.startswith("deneva"):
            continue
        submodules = {f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES}
        found |= submodules or ({target} if target in MODULES else set())
        if submodules and len(submodules) < len(names) and target in MODULES:
            found.add(target)  # names from the package itself too
    return found - {module}


def test_nothing_outside_the_engine_imports_its_storage() -> None:
    # The issue's own check, as anyone can run it.
    grep = subprocess.run(
        ["grep", "-rn", r"engine.store\|from deneva.engine import store", "actors", "http"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert grep.returncode == 1 and grep.stdout == "", grep.stdout
    users = {m for m in MODULES if "deneva.engine.store" in edges(m)}
    assert users == {"deneva.engine.engine"}


def test_no_actor_imports_another_and_channels_are_made_in_the_wiring() -> None:
    actors = {m for m in MODULES if m.startswith("deneva.actors.")}
    for actor in actors:
        assert not (edges(actor) & actors), f"{actor} imports another actor"
    makers = {m for m, path in MODULES.items() if "open_memory_channel" in path.read_text()}
    # The wiring makes every channel between actors; the database layer makes the one
    # its LISTEN loop hands notifications over on; benchmarks are programs of their own.
    assert {m for m in makers if not m.startswith("deneva.bench")} == {"deneva.wiring", "deneva.db"}


def test_there_are_no_import_cycles() -> None:
    graph = {m: edges(m) for m in MODULES}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    assert cycles == []


def test_no_private_name_is_imported_from_another_module() -> None:
    offenders = [
        (module, target, name)
        for module, path in MODULES.items()
        for target, names in imports(path)
        if target.startswith("deneva") and target != module
        for name in names
        if name.startswith("_") and not name.startswith("__")
    ]
    assert offenders == []


def test_http_runs_no_sql() -> None:
    for module, path in MODULES.items():
        if not module.startswith("deneva.http"):
            continue
        assert "deneva.sql" not in edges(module), module
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert not SQL_WORDS.search(node.value), (module, node.value[:80])


def _named_queries() -> set[str]:
    return {p.stem for p in (ROOT / "sql" / "queries").glob("*.sql")}


def test_every_named_query_is_used_and_every_use_exists() -> None:
    used = set()
    for path in MODULES.values():
        used |= set(re.findall(r"""query\(\s*"([a-z0-9_]+)"\s*\)""", path.read_text()))
    assert used == _named_queries()


def test_every_named_query_is_valid_sql_for_the_schema(database_url: str) -> None:
    async def check() -> list[str]:
        conn = await asyncpg.connect(database_url)
        prepared = []
        try:
            await init_connection(conn)
            for name in sorted(_named_queries()):
                sql = query(name)
                if "SET LOCAL" in sql:
                    continue  # a setting, not a statement to plan
                async with conn.transaction():
                    await conn.prepare(sql)  # parses and plans against the migrated schema
                prepared.append(name)
        finally:
            await conn.close()
        return prepared

    prepared = asyncio.run(check())
    assert len(prepared) == len(_named_queries()) - 1
