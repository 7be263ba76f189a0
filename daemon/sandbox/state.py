"""The sandbox's configuration and its mutable state (tokens, faults, request log)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime

import attrs

from deneva.sandbox.consent import ConsentBoard, Reach
from deneva.sandbox.faults import FaultBoard, RequestLog
from deneva.sandbox.tokens import TokenRegistry

# The API versions each platform served on 3 December 2026 (Google sunset v22 on 7
# October 2026, Meta's v24.0 expired on 10 November 2026, TikTok serves v1.3 only).
SERVED_VERSIONS: Mapping[str, tuple[str, ...]] = {
    "google": ("v23", "v24", "v25", "v26"),
    "meta": ("v25.0", "v26.0", "v27.0"),
    "tiktok": ("v1.3",),
}


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
    # The API versions served; any other answers as the platform answers a sunset one.
    google_versions: tuple[str, ...] = SERVED_VERSIONS["google"]
    meta_versions: tuple[str, ...] = SERVED_VERSIONS["meta"]
    tiktok_versions: tuple[str, ...] = SERVED_VERSIONS["tiktok"]

    def served_versions(self) -> dict[str, tuple[str, ...]]:
        return {"google": self.google_versions, "meta": self.meta_versions, "tiktok": self.tiktok_versions}


class SandboxState:
    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.tokens = TokenRegistry(config.clock)
        self.faults = FaultBoard(config.seed)
        self.requests = RequestLog(config.request_log_size)
        self.today_override: date | None = None
        self.versions = config.served_versions()
        self.consent = ConsentBoard()

    def reach_of(self, platform: str, token: str) -> Reach:
        """The accounts a token reaches: its consent's (through the tokens it was minted
        from), else the consenting user's as set now (a token a test registered)."""
        seen = 0
        current: str | None = token
        while current is not None and seen < 64:
            found = self.consent.reach.get((platform, current))
            if found is not None:
                return found
            record = self.tokens.get(platform, current)
            current = None if record is None else record.parent
            seen += 1
        return self.consent.current_reach(platform)

    def serves(self, platform: str, version: str) -> bool:
        return version in self.versions[platform]

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
        """Back to a fresh sandbox: no tokens, no faults, an empty log, config's today and
        versions."""
        self.tokens.clear()
        self.faults.clear()
        self.requests.clear()
        self.today_override = None
        self.versions = self.config.served_versions()
        self.consent.clear()
