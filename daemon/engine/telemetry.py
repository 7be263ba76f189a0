"""The engine's one instrumentation point.

The engine reports what happens to runs here, once, and nowhere else: how an execution
ended (with the exception behind a failure), how long it and each step took, orphans
rescued. `RunObserver` turns that into log lines; the daemon's observer adds metrics on
top (`deneva.observe`), so logs, metrics and run records never disagree: the record gets
the same error text and traceback the log line shows.
"""

from __future__ import annotations

import logging

from deneva.engine.executor import Execution
from deneva.engine.model import ClaimedRun

log = logging.getLogger("deneva.engine.run")


class RunObserver:
    """Logs; subclass to count."""

    def execution_started(self, run: ClaimedRun) -> None:
        """A claimed run starts executing (a new attempt, or a resumption of one)."""

    def execution_ended(self, run: ClaimedRun, execution: Execution, seconds: float) -> None:
        transition = execution.transition
        if transition is not None and transition.error is None:
            return  # succeeded, sleeping or waiting: nothing to log (the hot path)
        fields = {"run_id": str(run.id), "function": run.function_id, "attempt": run.attempt}
        if transition is None:
            log.warning("lease lost; another worker owns the run", extra=fields)
        elif transition.status == "failed":
            log.warning(
                "run failed" + (" after its last attempt" if run.attempt >= run.max_attempts else ""),
                exc_info=execution.error,
                extra={**fields, "error": transition.error},
            )
        elif transition.status == "queued":
            log.info(
                "attempt failed; will retry",
                exc_info=execution.error,
                extra={**fields, "error": transition.error, "retry_at": transition.run_at},
            )

    def step_finished(self, function_id: str, step_id: str, seconds: float) -> None:
        """A step's function returned (it is being recorded)."""

    def orphans_rescued(self, count: int) -> None:
        log.warning("re-queued runs of a worker that stopped renewing", extra={"count": count})
