"""The daemon's run observer: the engine's one instrumentation point (`RunObserver`)
feeding the metrics as well as the log, from the same values the run record gets."""

from __future__ import annotations

from deneva.engine.executor import Execution
from deneva.engine.model import ClaimedRun
from deneva.engine.telemetry import RunObserver
from deneva.metrics import RUN_OUTCOMES, Metrics


class MetricsObserver(RunObserver):
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def execution_started(self, run: ClaimedRun) -> None:
        if run.resumed_from == "queued":  # a new attempt (not a sleep or wait resuming)
            self.metrics.run_started(run.function_id)

    def execution_ended(self, run: ClaimedRun, execution: Execution, seconds: float) -> None:
        super().execution_ended(run, execution, seconds)
        self.metrics.observe_run(run.function_id, seconds)
        transition = execution.transition
        if transition is None:
            return
        if transition.status in RUN_OUTCOMES:
            self.metrics.run_finished(run.function_id, transition.status)
        elif transition.status == "queued" and transition.error is not None:
            self.metrics.run_retried(run.function_id)

    def step_finished(self, function_id: str, step_id: str, seconds: float) -> None:
        self.metrics.observe_step(function_id, seconds)

    def orphans_rescued(self, count: int) -> None:
        super().orphans_rescued(count)
        self.metrics.orphans_rescued(count)
