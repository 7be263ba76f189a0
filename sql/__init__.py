"""SQL files: numbered migrations and named queries, loaded by name."""

from __future__ import annotations

from importlib import resources


def query(name: str) -> str:
    """The text of `sql/queries/<name>.sql`."""
    return resources.files(__name__).joinpath("queries", f"{name}.sql").read_text(encoding="utf-8")
