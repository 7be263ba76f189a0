"""The one backoff: exponential with jitter, capped. Retries of runs (a function's
`backoff` option), restarts of crashed actors, reconnects of the LISTEN connection and
polls for a row to appear all wait `delay(attempt)`."""

from __future__ import annotations

import random

import attrs


@attrs.frozen
class Backoff:
    """base * factor**(attempt-1), spread by +-jitter (a fraction), at most max_s."""

    base_s: float = attrs.field(default=1.0, validator=attrs.validators.gt(0))
    factor: float = attrs.field(default=2.0, validator=attrs.validators.ge(1))
    max_s: float = attrs.field(default=600.0, validator=attrs.validators.gt(0))
    jitter: float = attrs.field(default=0.25, validator=[attrs.validators.ge(0), attrs.validators.lt(1)])

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """The wait before attempt `attempt + 1` (attempt counts from 1)."""
        raw = min(self.max_s, self.base_s * self.factor ** max(0, attempt - 1))
        spread = (rng or random).uniform(-self.jitter, self.jitter) if self.jitter else 0.0
        return min(self.max_s, max(0.0, raw * (1 + spread)))
