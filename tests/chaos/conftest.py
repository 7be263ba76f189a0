"""Chaos fixtures: a Postgres cluster of each module's own (tests may stop and kill it
without harming the rest of the session), a fresh chaos database per test, and the
figures table at the end of the session (see tests/chaos/harness.py)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.chaos.harness import FIGURES, ChaosDatabase, ChaosPostgres, figures_table

_names = itertools.count()


@pytest.fixture(scope="module")
def chaos_pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChaosPostgres]:
    cluster = ChaosPostgres(tmp_path_factory.mktemp("chaos-pg"))
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
async def chaos_db(chaos_pg: ChaosPostgres) -> AsyncIterator[ChaosDatabase]:
    if not chaos_pg.running:  # a case that failed half-way may have left it stopped
        chaos_pg.start()
    db = await chaos_pg.new_database(f"chaos{next(_names)}")
    try:
        yield db
    finally:
        await db.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.write_sep("=", "chaos figures")
        terminalreporter.write_line(figures_table(FIGURES))
