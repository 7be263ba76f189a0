"""The interpreter as the daemon runs it: how often the garbage collector runs.

The engine makes and drops a few dozen objects per run (its claimed record, a context, a
transition, the rows decoded on the database thread). At CPython's default threshold a
young-generation pass runs every 700 allocations, a few times per batch of no-op runs,
and every tenth one walks the middle generation too. A larger first threshold keeps
the same collector, run less often: `deneva bench engine`'s no-op path spent about 2 us
less per run (10 %) on a 2-core VM (2026-12-03). The daemon and the benchmarks that run
the engine in-process call `tune_collector` once at start.
"""

from __future__ import annotations

import gc

GC_THRESHOLDS = (10_000, 10, 10)


def tune_collector() -> None:
    gc.set_threshold(*GC_THRESHOLDS)
