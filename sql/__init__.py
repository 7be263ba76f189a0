"""SQL files: numbered migrations and named queries, loaded by name."""

from __future__ import annotations

import functools
from importlib import resources


@functools.cache
def query(name: str) -> str:
    """The text of `sql/queries/<name>.sql` (read once; a missing name fails loudly)."""
    return resources.files(__name__).joinpath("queries", f"{name}.sql").read_text(encoding="utf-8")
