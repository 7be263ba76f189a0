"""What is cached for how long (seed 000 §B1's TTLs) and when to refresh it.

The seed's cron strings refreshed some keys after they expired (`40 */2` for a 2 h
TTL) or unevenly (`*/50` fires at :00 and :50); the intent was "refresh every key
before its TTL runs out, with 10-20 % headroom", which `refresh_due` implements.
"""

from __future__ import annotations

import random

import attrs

HOUR = 3600.0


@attrs.frozen
class Cadence:
    platform: str
    report_type: str
    ttl_s: float
    date_ranges: tuple[str, ...]


CADENCES: tuple[Cadence, ...] = (
    Cadence("google", "account_health", 1 * HOUR, ("last_7_days", "last_30_days", "last_90_days")),
    Cadence("google", "budget_optimizer", 1 * HOUR, ("last_7_days", "last_30_days")),
    Cadence("google", "search_term_waste", 2 * HOUR, ("last_7_days", "last_30_days")),
    Cadence("google", "quality_score", 2 * HOUR, ("last_30_days",)),
    Cadence("google", "pmax_breakdown", 2 * HOUR, ("last_30_days",)),
    Cadence("google", "weekly_anomaly", 2 * HOUR, ("last_7_days", "last_30_days")),
    Cadence("google", "auction_insights", 4 * HOUR, ("last_30_days",)),
    Cadence("meta", "account_health", 1 * HOUR, ("last_7_days", "last_30_days", "last_90_days")),
    Cadence("meta", "budget_optimizer", 1 * HOUR, ("last_7_days", "last_30_days")),
    Cadence("meta", "weekly_anomaly", 2 * HOUR, ("last_7_days", "last_30_days")),
    Cadence("tiktok", "account_health", 2 * HOUR, ("last_7_days", "last_30_days")),
    Cadence("tiktok", "budget_optimizer", 2 * HOUR, ("last_7_days", "last_30_days")),
    Cadence("tiktok", "weekly_anomaly", 2 * HOUR, ("last_7_days", "last_30_days")),
)
_BY_KEY = {(c.platform, c.report_type): c for c in CADENCES}


def cadence_for(platform: str, report_type: str) -> Cadence | None:
    return _BY_KEY.get((platform, report_type))


def refresh_due(fetched_at: float, ttl_s: float, rng: random.Random | None = None) -> float:
    """When to refresh a row fetched at `fetched_at`: at 80-90 % of its TTL, jittered
    so that keys fetched together do not all refresh together."""
    return fetched_at + ttl_s * (rng or random).uniform(0.8, 0.9)
