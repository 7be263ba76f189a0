"""Errors a function raises to steer its retries, and the engine's bad-input errors."""

from __future__ import annotations

from deneva.errors import DenevaError


class NonRetriableError(Exception):
    """Fail the run now: no further attempts (seed 002)."""


class RetryAfterError(Exception):
    """Retry, but not before `delay_s` seconds (e.g. a platform's Retry-After)."""

    def __init__(self, message: str, delay_s: float) -> None:
        super().__init__(message)
        self.delay_s = max(0.0, float(delay_s))


class EngineError(DenevaError):
    """Bad input to the engine (unknown function, malformed event, ...): the message says what."""


class UnknownFunction(EngineError):
    pass


class InvalidEvent(EngineError):
    pass


class RunNotFound(EngineError):
    pass
