"""The sandbox's configuration and its mutable state (tokens, faults, request log)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, date, datetime

import attrs

from deneva.sandbox.faults import FaultBoard, RequestLog
from deneva.sandbox.tokens import TokenRegistry


@attrs.frozen
class SandboxConfig:
    # Mixed into every synthetic account: another seed, another world.
    seed: int = 0
    # The reporting "today" (data exists for the 120 days before it); None follows `clock`.
    today: date | None = None
    # Wall clock for token expiry and the default today. Tests may pass their own.
    clock: Callable[[], float] = time.time
    google_access_token_ttl_s: int = 3599
    meta_long_lived_ttl_s: int = 5_184_000
    meta_page_size: int = 50
    request_log_size: int = 10_000


class SandboxState:
    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.tokens = TokenRegistry(config.clock)
        self.faults = FaultBoard(config.seed)
        self.requests = RequestLog(config.request_log_size)
        self.today_override: date | None = None

    @property
    def seed(self) -> int:
        return self.config.seed

    def today(self) -> date:
        if self.today_override is not None:
            return self.today_override
        if self.config.today is not None:
            return self.config.today
        return datetime.fromtimestamp(self.config.clock(), UTC).date()

    def reset(self) -> None:
        """Back to a fresh sandbox: no tokens, no faults, an empty log, config's today."""
        self.tokens.clear()
        self.faults.clear()
        self.requests.clear()
        self.today_override = None
