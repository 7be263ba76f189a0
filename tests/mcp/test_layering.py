"""The MCP layer speaks the domain's vocabulary (deneva.catalog) and the engine's send/wait
API: it imports nothing from the adapters, so every platform call goes through the sync."""

from __future__ import annotations

import ast
from pathlib import Path

import deneva.mcp


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_no_mcp_module_imports_the_adapters_or_the_workers_fetch() -> None:
    modules = sorted(Path(deneva.mcp.__file__).parent.glob("*.py"))
    assert len(modules) > 5
    for path in modules:
        imported = _imports(path)
        assert not {n for n in imported if n == "deneva.adapters" or n.startswith("deneva.adapters.")}, path
        assert "deneva.sync.worker" not in imported, path
