"""Deterministic synthetic ad accounts.

Pure: no I/O, no clock, no global random state. An account is a function of
(platform, account id, seed); the metrics of an entity on a day are a function of the
account, the entity and the calendar date only, never of "today", so moving the pinned
`today` forward keeps history stable and only changes which days exist.

Every level adds up: the ad groups of a campaign split the campaign's day exactly
(largest-remainder rounding for counts), and so do keywords, search terms, asset
groups and ads within their parents. A few campaign-days are anomalies: a spend spike
without matching conversions, or a conversion collapse.
"""

from __future__ import annotations

import functools
import hashlib
import math
import random
from collections.abc import Sequence
from datetime import date

import attrs

PLATFORMS = ("google", "meta", "tiktok")

# Probability per campaign-day of a spend spike, and (after it) of a conversion collapse.
SPIKE_P = 0.010
COLLAPSE_P = 0.006

_MASK = (1 << 64) - 1


def _splitmix(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


@functools.lru_cache(maxsize=4096)
def _text_hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def stable_hash(*parts: str | int) -> int:
    """A 64-bit hash that is the same in every process (unlike `hash`)."""
    h = 0x243F6A8885A308D3
    for part in parts:
        value = _text_hash(part) if isinstance(part, str) else part & _MASK
        h = _splitmix(h ^ value)
    return h


def unit(*parts: str | int) -> float:
    """A deterministic number in [0, 1)."""
    return stable_hash(*parts) / 2.0**64


# -- the model ------------------------------------------------------------------------


@attrs.frozen
class Measures:
    """Additive daily quantities; rates are derived from sums after aggregation."""

    impressions: int = 0
    clicks: int = 0
    cost_micros: int = 0
    conversions: float = 0.0
    conversions_value: float = 0.0
    reach: int = 0
    # Search impression-share bookkeeping, in impressions.
    eligible: float = 0.0
    budget_lost: float = 0.0
    rank_lost: float = 0.0
    # Auction insights: sums of daily shares over `ai_days` days.
    ai_days: int = 0
    ai_impression_share: float = 0.0
    ai_overlap_rate: float = 0.0
    ai_outranking_share: float = 0.0
    ai_position_above_rate: float = 0.0
    ai_top_rate: float = 0.0
    ai_abs_top_rate: float = 0.0

    def __add__(self, other: Measures) -> Measures:
        return Measures(
            self.impressions + other.impressions,
            self.clicks + other.clicks,
            self.cost_micros + other.cost_micros,
            self.conversions + other.conversions,
            self.conversions_value + other.conversions_value,
            self.reach + other.reach,
            self.eligible + other.eligible,
            self.budget_lost + other.budget_lost,
            self.rank_lost + other.rank_lost,
            self.ai_days + other.ai_days,
            self.ai_impression_share + other.ai_impression_share,
            self.ai_overlap_rate + other.ai_overlap_rate,
            self.ai_outranking_share + other.ai_outranking_share,
            self.ai_position_above_rate + other.ai_position_above_rate,
            self.ai_top_rate + other.ai_top_rate,
            self.ai_abs_top_rate + other.ai_abs_top_rate,
        )


ZERO = Measures()


@attrs.frozen
class Weights:
    """How a child takes its share of its parent's day."""

    impressions: float
    clicks: float
    cost: float
    conversions: float


@attrs.frozen
class Keyword:
    id: str
    text: str
    match_type: str  # EXACT | PHRASE | BROAD
    status: str  # ENABLED | PAUSED
    quality_score: int | None  # Google leaves it unset for low-volume keywords
    creative_quality: str  # BELOW_AVERAGE | AVERAGE | ABOVE_AVERAGE
    landing_page_quality: str
    predicted_ctr: str
    weight: float
    ctr_mult: float
    cpc_mult: float
    cvr_mult: float


@attrs.frozen
class SearchTerm:
    text: str
    match_type: str  # segments.search_term_match_type
    status: str  # ADDED | EXCLUDED | NONE
    weight: float
    ctr_mult: float
    cvr_mult: float  # 0 for a wasted term: spend, never a conversion


@attrs.frozen
class Ad:
    id: str
    name: str
    status: str
    weight: float
    cvr_mult: float


@attrs.frozen
class AdGroup:
    id: str
    name: str
    status: str
    weight: float
    keywords: tuple[Keyword, ...]
    search_terms: tuple[SearchTerm, ...]
    ads: tuple[Ad, ...]


@attrs.frozen
class AssetGroup:
    id: str
    name: str
    status: str
    ad_strength: str
    weight: float
    cvr_mult: float


@attrs.frozen
class Campaign:
    index: int
    id: str
    name: str
    status: str  # ENABLED | PAUSED | REMOVED (platform modules map to their own words)
    channel: str  # SEARCH | PERFORMANCE_MAX | DISPLAY | VIDEO (Google); SOCIAL elsewhere
    objective: str  # platform-specific objective name
    bidding: str
    budget_id: str
    daily_budget: float  # account currency
    budget_limited: bool
    base_impressions: float
    ctr: float
    cpc: float
    cvr: float
    aov: float
    rank_share: float  # search impression share the campaign would win with no budget cap
    frequency: float  # impressions per person per day (Meta, TikTok)
    ad_groups: tuple[AdGroup, ...]
    asset_groups: tuple[AssetGroup, ...]
    competitors: tuple[int, ...]  # indexes into Account.competitors (search campaigns)

    @property
    def delivering(self) -> bool:
        return self.status == "ENABLED"


@attrs.frozen
class Competitor:
    domain: str
    impression_share: float
    overlap_rate: float
    outranking_share: float
    position_above_rate: float
    top_rate: float
    abs_top_rate: float


@attrs.frozen
class Account:
    platform: str
    account_id: str
    base_seed: int  # the sandbox-wide seed the account was drawn with
    seed: int  # derived from platform, account id and base seed
    name: str
    currency: str
    time_zone: str
    vertical: str
    campaigns: tuple[Campaign, ...]
    competitors: tuple[Competitor, ...]


# -- verticals: what the synthetic advertisers sell -----------------------------------


@attrs.frozen
class Vertical:
    name: str
    brand: str
    themes: tuple[str, ...]
    keywords: tuple[str, ...]
    competitors: tuple[str, ...]
    aov: tuple[float, float]
    cpc: tuple[float, float]


VERTICALS = (
    Vertical(
        "running shoes",
        "Stridewell",
        ("Trail", "Road", "Marathon", "Women", "Men", "Sale", "Kids", "Wide Fit"),
        (
            "running shoes",
            "trail running shoes",
            "marathon running shoes",
            "womens running shoes",
            "mens running shoes",
            "stability running shoes",
            "lightweight running shoes",
            "running shoes sale",
            "best running shoes",
            "wide running shoes",
            "cushioned running shoes",
            "carbon plate shoes",
        ),
        (
            "runfleet.com",
            "paceandpath.com",
            "swiftsole.co",
            "trackline.com",
            "milemaker.shop",
            "urbanstride.com",
            "peakrunner.net",
            "sprintbox.com",
        ),
        (70.0, 160.0),
        (0.6, 2.2),
    ),
    Vertical(
        "home insurance",
        "Hearthguard",
        ("Homeowners", "Renters", "Landlord", "Condo", "Flood", "Quotes", "Bundle", "Seniors"),
        (
            "home insurance",
            "homeowners insurance quote",
            "renters insurance",
            "cheap home insurance",
            "landlord insurance",
            "condo insurance",
            "flood insurance",
            "home and auto bundle",
            "best home insurance",
            "home insurance online",
            "house insurance cost",
            "insurance for renters",
        ),
        (
            "shieldnest.com",
            "coverwise.com",
            "homesafe-insure.com",
            "trustroof.com",
            "policypal.io",
            "keystoneassure.com",
            "brightcover.com",
        ),
        (250.0, 900.0),
        (3.5, 14.0),
    ),
    Vertical(
        "coffee subscription",
        "Roastline",
        ("Subscription", "Espresso", "Decaf", "Gifts", "Single Origin", "Beans", "Pods"),
        (
            "coffee subscription",
            "coffee beans online",
            "espresso beans",
            "single origin coffee",
            "decaf coffee beans",
            "coffee gift box",
            "fresh roasted coffee",
            "monthly coffee delivery",
            "coffee club",
            "organic coffee beans",
            "compostable coffee pods",
        ),
        (
            "beanpost.com",
            "dailygrind.co",
            "crema-club.com",
            "roastroute.com",
            "mugmail.com",
            "brewbox.net",
        ),
        (22.0, 60.0),
        (0.4, 1.6),
    ),
    Vertical(
        "project management software",
        "Taskloom",
        ("Project Mgmt", "Kanban", "Gantt", "Teams", "Enterprise", "Free Trial", "Agencies"),
        (
            "project management software",
            "project management tool",
            "kanban board app",
            "gantt chart software",
            "task management app",
            "team collaboration tool",
            "agile project software",
            "project tracking software",
            "pm software for agencies",
            "resource planning tool",
            "project portfolio software",
        ),
        (
            "planstack.io",
            "boardly.com",
            "flowgrid.app",
            "teamtrack.com",
            "sprintly.co",
            "workweave.com",
            "taskhive.io",
            "orbitpm.com",
        ),
        (300.0, 1500.0),
        (4.0, 18.0),
    ),
    Vertical(
        "dental clinic",
        "Brightbite Dental",
        ("Implants", "Invisalign", "Emergency", "Whitening", "Checkups", "Veneers", "Kids"),
        (
            "dentist near me",
            "emergency dentist",
            "dental implants cost",
            "teeth whitening",
            "invisalign provider",
            "dental checkup",
            "cosmetic dentist",
            "veneers cost",
            "family dentist",
            "pediatric dentist",
        ),
        (
            "smileworks.com",
            "pearlclinic.com",
            "toothfairydental.com",
            "dentacare.net",
            "brightsmiles.co",
            "urbandental.com",
        ),
        (120.0, 2500.0),
        (2.5, 11.0),
    ),
    Vertical(
        "yoga studio",
        "Lotus & Line",
        ("Classes", "Intro Offer", "Hot Yoga", "Pilates", "Online", "Teacher Training"),
        (
            "yoga classes",
            "hot yoga studio",
            "beginner yoga class",
            "pilates classes",
            "online yoga classes",
            "yoga teacher training",
            "vinyasa yoga",
            "yoga membership",
            "prenatal yoga",
            "yoga near me",
        ),
        (
            "flowhouse.com",
            "zenloft.co",
            "breathe-studio.com",
            "corepilates.com",
            "sunsalute.net",
            "mat-and-mind.com",
        ),
        (25.0, 180.0),
        (0.8, 3.5),
    ),
)

_WASTE_MODIFIERS = ("free", "jobs", "diy", "used", "wiki", "salary", "how to make", "reddit")
_GOOD_MODIFIERS = ("buy", "best", "online", "near me", "discount", "reviews", "price")
_CURRENCIES = (
    ("USD", "America/New_York"),
    ("USD", "America/Los_Angeles"),
    ("EUR", "Europe/Berlin"),
    ("GBP", "Europe/London"),
    ("CAD", "America/Toronto"),
)


def _id(rng: random.Random, digits: int) -> str:
    return str(rng.randrange(10 ** (digits - 1), 10**digits))


def _enum_from_score(score: float) -> str:
    if score > 0.66:
        return "ABOVE_AVERAGE"
    if score > 0.33:
        return "AVERAGE"
    return "BELOW_AVERAGE"


_ID_DIGITS = {"google": (10, 11), "meta": (18, 18), "tiktok": (19, 19)}


def _entity_id(rng: random.Random, platform: str) -> str:
    low, high = _ID_DIGITS[platform]
    return _id(rng, rng.randint(low, high))


def _keywords(
    rng: random.Random, platform: str, terms: Sequence[str]
) -> tuple[tuple[Keyword, ...], tuple[SearchTerm, ...]]:
    keywords: list[Keyword] = []
    search_terms: list[SearchTerm] = []
    for text in terms:
        # Skewed toward 5..8, with the occasional bad keyword; ~8 % have no score yet.
        qs: int | None = max(1, min(10, round(rng.gauss(6.3, 2.0))))
        if rng.random() < 0.08:
            qs = None
        quality = (qs if qs is not None else 5) / 10
        match_type = rng.choice(("EXACT", "PHRASE", "BROAD"))
        keywords.append(
            Keyword(
                id=_entity_id(rng, platform),
                text=text,
                match_type=match_type,
                status="ENABLED" if rng.random() < 0.9 else "PAUSED",
                quality_score=qs,
                creative_quality=_enum_from_score(min(0.99, quality * rng.uniform(0.6, 1.4))),
                landing_page_quality=_enum_from_score(min(0.99, quality * rng.uniform(0.6, 1.4))),
                predicted_ctr=_enum_from_score(min(0.99, quality * rng.uniform(0.6, 1.4))),
                weight=rng.uniform(0.3, 3.0),
                ctr_mult=0.5 + quality,
                cpc_mult=1.6 - quality,
                cvr_mult=rng.uniform(0.3, 1.5) * (0.4 + quality),
            )
        )
        search_terms.append(
            SearchTerm(text, "EXACT", "ADDED", rng.uniform(1.0, 3.0), 1.2, rng.uniform(0.8, 1.5))
        )
        if rng.random() < 0.7:
            good = f"{rng.choice(_GOOD_MODIFIERS)} {text}"
            search_terms.append(
                SearchTerm(
                    good,
                    rng.choice(("PHRASE", "NEAR_PHRASE", "BROAD")),
                    "NONE",
                    rng.uniform(0.3, 1.5),
                    1.0,
                    rng.uniform(0.5, 1.4),
                )
            )
        if rng.random() < 0.45:
            waste = f"{text} {rng.choice(_WASTE_MODIFIERS)}"
            search_terms.append(
                SearchTerm(
                    waste,
                    rng.choice(("BROAD", "NEAR_EXACT", "PHRASE")),
                    "EXCLUDED" if rng.random() < 0.25 else "NONE",
                    rng.uniform(0.2, 1.2),
                    rng.uniform(0.6, 1.1),
                    0.0,
                )
            )
    return tuple(keywords), tuple(search_terms)


_META_OBJECTIVES = ("OUTCOME_SALES", "OUTCOME_LEADS", "OUTCOME_TRAFFIC", "OUTCOME_AWARENESS")
_TIKTOK_OBJECTIVES = ("CONVERSIONS", "TRAFFIC", "LEAD_GENERATION", "REACH", "VIDEO_VIEWS")
_GOOGLE_BIDDING = (
    "MAXIMIZE_CONVERSIONS",
    "TARGET_CPA",
    "TARGET_ROAS",
    "MANUAL_CPC",
    "MAXIMIZE_CONVERSION_VALUE",
)
_CHANNEL_RATES = {
    # channel: (impressions/day, ctr, cpc factor, cvr)
    "SEARCH": ((600.0, 9000.0), (0.025, 0.09), 1.0, (0.025, 0.10)),
    "PERFORMANCE_MAX": ((4000.0, 40000.0), (0.005, 0.02), 0.6, (0.015, 0.06)),
    "DISPLAY": ((10000.0, 80000.0), (0.002, 0.008), 0.3, (0.003, 0.02)),
    "VIDEO": ((8000.0, 50000.0), (0.004, 0.015), 0.25, (0.003, 0.015)),
    "SOCIAL": ((5000.0, 60000.0), (0.006, 0.025), 0.45, (0.01, 0.05)),
}


def _google_channel(index: int, rng: random.Random) -> str:
    if index < 2:
        return "SEARCH"
    if index == 2:
        return "PERFORMANCE_MAX"
    return rng.choices(("SEARCH", "PERFORMANCE_MAX", "DISPLAY", "VIDEO"), (6, 2, 1, 1))[0]


def _status(index: int, rng: random.Random) -> str:
    if index < 3:
        return "ENABLED"
    return rng.choices(("ENABLED", "PAUSED", "REMOVED"), (75, 17, 8))[0]


def _campaign_name(platform: str, channel: str, objective: str, theme: str, brand: str) -> str:
    if platform == "google":
        label = {
            "SEARCH": "Search",
            "PERFORMANCE_MAX": "PMax",
            "DISPLAY": "Display",
            "VIDEO": "YouTube",
        }[channel]
        return f"{label} - {theme}"
    if platform == "meta":
        return f"{theme} | {objective.removeprefix('OUTCOME_').title()} | {brand}"
    return f"{objective.replace('_', ' ').title()} - {theme}"


def _campaign(
    rng: random.Random,
    platform: str,
    index: int,
    vertical: Vertical,
    theme: str,
    keyword_pool: list[str],
    competitor_count: int,
) -> Campaign:
    channel = _google_channel(index, rng) if platform == "google" else "SOCIAL"
    if platform == "meta":
        objective = _META_OBJECTIVES[0] if index == 0 else rng.choice(_META_OBJECTIVES)
    elif platform == "tiktok":
        objective = _TIKTOK_OBJECTIVES[0] if index == 0 else rng.choice(_TIKTOK_OBJECTIVES)
    else:
        objective = channel
    status = _status(index, rng)
    (imp_lo, imp_hi), (ctr_lo, ctr_hi), cpc_factor, (cvr_lo, cvr_hi) = _CHANNEL_RATES[channel]
    base_impressions = math.exp(rng.uniform(math.log(imp_lo), math.log(imp_hi)))
    ctr = rng.uniform(ctr_lo, ctr_hi)
    cpc = rng.uniform(*vertical.cpc) * cpc_factor
    potential_cost = base_impressions * ctr * cpc
    # Roughly a third of campaigns run out of budget: the budget optimizer's material.
    budget_limited = status == "ENABLED" and (index == 1 or rng.random() < 0.3)
    ratio = rng.uniform(0.55, 0.8) if budget_limited else rng.uniform(1.4, 2.6)
    daily_budget = max(5.0, round(potential_cost * ratio))

    ad_groups: list[AdGroup] = []
    asset_groups: list[AssetGroup] = []
    if channel == "PERFORMANCE_MAX":
        for n in range(rng.randint(2, 5)):
            asset_groups.append(
                AssetGroup(
                    id=_entity_id(rng, platform),
                    name=f"{theme} - Asset Group {n + 1}",
                    status="ENABLED" if n == 0 or rng.random() < 0.85 else "PAUSED",
                    ad_strength=rng.choices(("POOR", "AVERAGE", "GOOD", "EXCELLENT"), (1, 3, 4, 2))[0],
                    weight=rng.uniform(0.3, 3.0),
                    cvr_mult=rng.uniform(0.2, 1.8),
                )
            )
    else:
        group_words = (
            "Core",
            "Broad",
            "Exact",
            "Long Tail",
            "Competitors",
            "Lookalike",
            "Retargeting",
            "Interests",
        )
        for n in range(rng.randint(2, 4) if channel == "SEARCH" else rng.randint(1, 3)):
            ad_group_id = _entity_id(rng, platform)
            keywords: tuple[Keyword, ...] = ()
            search_terms: tuple[SearchTerm, ...] = ()
            if channel == "SEARCH":
                count = rng.randint(3, 6)
                picked = [keyword_pool[(index * 7 + n * 3 + k) % len(keyword_pool)] for k in range(count)]
                if n == 0 and index == 0:
                    picked[0] = vertical.brand.lower()
                keywords, search_terms = _keywords(rng, platform, list(dict.fromkeys(picked)))
            ads = tuple(
                Ad(
                    id=_entity_id(rng, platform),
                    name=f"{theme} {group_words[n % len(group_words)]} - Creative {k + 1}",
                    status="ENABLED" if k == 0 or rng.random() < 0.8 else "PAUSED",
                    weight=rng.uniform(0.3, 3.0),
                    cvr_mult=rng.uniform(0.3, 1.6),
                )
                for k in range(rng.randint(1, 3))
            )
            ad_groups.append(
                AdGroup(
                    id=ad_group_id,
                    name=f"{theme} - {group_words[n % len(group_words)]}",
                    status="ENABLED" if n == 0 or rng.random() < 0.85 else "PAUSED",
                    weight=rng.uniform(0.5, 3.0),
                    keywords=keywords,
                    search_terms=search_terms,
                    ads=ads,
                )
            )
    competitors: tuple[int, ...] = ()
    if channel == "SEARCH" and competitor_count:
        chosen = [c for c in range(competitor_count) if rng.random() < 0.7]
        competitors = tuple(chosen or [0, competitor_count - 1])
    return Campaign(
        index=index,
        id=_entity_id(rng, platform),
        name=_campaign_name(platform, channel, objective, theme, vertical.brand),
        status=status,
        channel=channel,
        objective=objective,
        bidding=rng.choice(_GOOGLE_BIDDING),
        budget_id=_entity_id(rng, platform),
        daily_budget=daily_budget,
        budget_limited=budget_limited,
        base_impressions=base_impressions,
        ctr=ctr,
        cpc=cpc,
        cvr=rng.uniform(cvr_lo, cvr_hi),
        aov=rng.uniform(*vertical.aov),
        rank_share=rng.uniform(0.45, 0.92),
        frequency=rng.uniform(1.05, 1.6),
        ad_groups=tuple(ad_groups),
        asset_groups=tuple(asset_groups),
        competitors=competitors,
    )


@functools.lru_cache(maxsize=1024)
def account_for(platform: str, account_id: str, seed: int = 0) -> Account:
    """The synthetic account behind an id. Same arguments, same account, in any process."""
    account_seed = stable_hash(platform, account_id, seed)
    rng = random.Random(account_seed)
    vertical = rng.choice(VERTICALS)
    currency, time_zone = rng.choice(_CURRENCIES)
    count = rng.randint(3, 12)
    themes = ["Brand", *rng.sample(vertical.themes, len(vertical.themes))]
    themes += [f"{t} 2" for t in themes]
    keyword_pool = list(vertical.keywords)
    rng.shuffle(keyword_pool)
    competitor_domains = rng.sample(vertical.competitors, rng.randint(3, min(8, len(vertical.competitors))))
    competitors = tuple(
        Competitor(
            domain=domain,
            impression_share=rng.uniform(0.1, 0.65),
            overlap_rate=rng.uniform(0.1, 0.75),
            outranking_share=rng.uniform(0.05, 0.5),
            position_above_rate=rng.uniform(0.1, 0.6),
            top_rate=rng.uniform(0.2, 0.85),
            abs_top_rate=rng.uniform(0.05, 0.45),
        )
        for domain in competitor_domains
    )
    campaigns = tuple(
        _campaign(
            rng,
            platform,
            i,
            vertical,
            themes[i],
            keyword_pool,
            len(competitors) if platform == "google" else 0,
        )
        for i in range(count)
    )
    suffix = {"google": "Google Ads", "meta": "Ad Account", "tiktok": "TikTok Ads"}[platform]
    return Account(
        platform=platform,
        account_id=account_id,
        base_seed=seed,
        seed=account_seed,
        name=f"{vertical.brand} {suffix}",
        currency=currency,
        time_zone=time_zone,
        vertical=vertical.name,
        campaigns=campaigns,
        competitors=competitors,
    )


# -- daily metrics --------------------------------------------------------------------

_WEEKDAY = (1.04, 1.07, 1.06, 1.02, 0.97, 0.86, 0.89)


@attrs.frozen
class DayShape:
    """What kind of day a campaign had: for tests and for explaining anomalies."""

    spike: float  # multiplier on reach and spend; 1.0 on a normal day
    conversion_factor: float


def day_shape(account: Account, campaign: Campaign, day: date) -> DayShape:
    u = unit(account.seed, campaign.index, day.toordinal(), 2)
    if u < SPIKE_P:
        spike = 2.5 + 2.0 * unit(account.seed, campaign.index, day.toordinal(), 3)
        return DayShape(spike, 1.0 / spike)  # spend explodes, conversions do not follow
    if u < SPIKE_P + COLLAPSE_P:
        return DayShape(1.0, 0.12)
    return DayShape(1.0, 1.0)


@functools.lru_cache(maxsize=65536)
def _campaign_day(platform: str, account_id: str, seed: int, index: int, ordinal: int) -> Measures:
    account = account_for(platform, account_id, seed)
    c = account.campaigns[index]
    if not c.delivering:
        return ZERO
    day = date.fromordinal(ordinal)
    s = account.seed

    def noise(k: int, lo: float, hi: float) -> float:
        return lo + (hi - lo) * unit(s, index, ordinal, k)

    shape = day_shape(account, c, day)
    trend = 1.0 + 0.08 * math.sin(ordinal / 11.0 + index)
    potential_impressions = (
        c.base_impressions * _WEEKDAY[day.weekday()] * trend * noise(1, 0.85, 1.15) * shape.spike
    )
    potential_clicks = potential_impressions * c.ctr * noise(4, 0.9, 1.1)
    cpc = c.cpc * noise(5, 0.9, 1.1)
    potential_cost = potential_clicks * cpc
    cap = c.daily_budget * (2.0 if shape.spike > 1.0 else 1.0) * noise(6, 0.96, 1.0)
    served = min(1.0, cap / potential_cost) if potential_cost > 0 else 1.0
    impressions = round(potential_impressions * served)
    if impressions == 0:
        return ZERO
    clicks = min(impressions, round(potential_clicks * served))
    cost_micros = round(clicks * cpc * 1_000_000)
    conversions = clicks * c.cvr * noise(7, 0.75, 1.25) * shape.conversion_factor
    conversions = round(conversions, 2) if platform == "google" else float(round(conversions))
    value = round(conversions * c.aov * noise(8, 0.85, 1.15), 2)
    eligible = budget_lost = rank_lost = 0.0
    if c.channel == "SEARCH":
        rank_share = min(0.98, c.rank_share * noise(9, 0.92, 1.08))
        eligible = potential_impressions / rank_share
        budget_lost = potential_impressions * (1.0 - served)
        rank_lost = eligible * (1.0 - rank_share)
    reach = 0
    if platform != "google":
        reach = max(1, round(impressions / (c.frequency * noise(10, 0.95, 1.05))))
    return Measures(
        impressions=impressions,
        clicks=clicks,
        cost_micros=cost_micros,
        conversions=conversions,
        conversions_value=value,
        reach=reach,
        eligible=eligible,
        budget_lost=budget_lost,
        rank_lost=rank_lost,
    )


def campaign_day(account: Account, campaign: Campaign, day: date) -> Measures:
    """One campaign's metrics on one calendar day (ZERO unless it is delivering)."""
    return _campaign_day(
        account.platform, account.account_id, account.base_seed, campaign.index, day.toordinal()
    )


def _largest_remainder(total: int, shares: Sequence[float]) -> list[int]:
    exact = [total * s for s in shares]
    floors = [math.floor(x) for x in exact]
    left = total - sum(floors)
    order = sorted(range(len(shares)), key=lambda i: (floors[i] - exact[i], i))
    for i in order[:left]:
        floors[i] += 1
    return floors


def _normalise(values: Sequence[float]) -> list[float]:
    total = sum(values)
    if total <= 0:
        return [1.0 / len(values)] * len(values)
    return [v / total for v in values]


def split(parent: Measures, weights: Sequence[Weights], *, whole_conversions: bool) -> list[Measures]:
    """Divide a parent's day among children so that the children add up to the parent."""
    if not weights:
        return []
    imp = _normalise([w.impressions for w in weights])
    clk = _normalise([w.clicks for w in weights])
    cost = _normalise([w.cost for w in weights])
    conv = [w.conversions for w in weights]
    conv_total = sum(conv)
    conv = _normalise(conv) if conv_total > 0 else clk
    impressions = _largest_remainder(parent.impressions, imp)
    clicks = [min(c, i) for c, i in zip(_largest_remainder(parent.clicks, clk), impressions, strict=True)]
    # Clicks the min() removed go back to the children with room for them.
    missing = parent.clicks - sum(clicks)
    for i in sorted(range(len(clicks)), key=lambda i: -(impressions[i] - clicks[i])):
        if missing <= 0:
            break
        room = min(missing, impressions[i] - clicks[i])
        clicks[i] += room
        missing -= room
    costs = _largest_remainder(parent.cost_micros, cost)
    reach = _largest_remainder(parent.reach, imp)
    if whole_conversions:
        conversions = [float(x) for x in _largest_remainder(round(parent.conversions), conv)]
    else:
        cents = _largest_remainder(round(parent.conversions * 100), conv)
        conversions = [c / 100 for c in cents]
    values = [v / 100 for v in _largest_remainder(round(parent.conversions_value * 100), conv)]
    return [
        Measures(
            impressions=impressions[i],
            clicks=clicks[i],
            cost_micros=costs[i],
            conversions=conversions[i],
            conversions_value=values[i],
            reach=reach[i],
            eligible=parent.eligible * imp[i],
            budget_lost=parent.budget_lost * imp[i],
            rank_lost=parent.rank_lost * imp[i],
        )
        for i in range(len(weights))
    ]


def _jitter(account: Account, key: str, ordinal: int) -> float:
    return 0.7 + 0.6 * unit(account.seed, key, ordinal)


def _child_weights(account: Account, campaign: Campaign, level: str, group: int, o: int) -> list[Weights]:
    weights: list[Weights] = []
    if level == "ad_group":
        for g in campaign.ad_groups:
            w = g.weight * _jitter(account, g.id, o) if g.status == "ENABLED" else 0.0
            weights.append(Weights(w, w, w, w))
    elif level == "keyword":
        for k in campaign.ad_groups[group].keywords:
            w = k.weight * _jitter(account, k.id, o) if k.status == "ENABLED" else 0.0
            weights.append(
                Weights(w, w * k.ctr_mult, w * k.ctr_mult * k.cpc_mult, w * k.ctr_mult * k.cvr_mult)
            )
    elif level == "search_term":
        group_id = campaign.ad_groups[group].id
        for t in campaign.ad_groups[group].search_terms:
            w = t.weight * _jitter(account, f"{group_id}/{t.text}", o)
            weights.append(Weights(w, w * t.ctr_mult, w * t.ctr_mult, w * t.ctr_mult * t.cvr_mult))
    elif level == "asset_group":
        for a in campaign.asset_groups:
            w = a.weight * _jitter(account, a.id, o) if a.status == "ENABLED" else 0.0
            weights.append(Weights(w, w, w, w * a.cvr_mult))
    else:  # ad
        for ad in campaign.ad_groups[group].ads:
            w = ad.weight * _jitter(account, ad.id, o) if ad.status == "ENABLED" else 0.0
            weights.append(Weights(w, w, w, w * ad.cvr_mult))
    return weights


@functools.lru_cache(maxsize=65536)
def _children_days(
    platform: str, account_id: str, base_seed: int, index: int, level: str, group: int, ordinal: int
) -> tuple[Measures, ...]:
    account = account_for(platform, account_id, base_seed)
    campaign = account.campaigns[index]
    day = date.fromordinal(ordinal)
    if level in ("ad_group", "asset_group"):
        parent = campaign_day(account, campaign, day)
    else:
        parent = _children_days(platform, account_id, base_seed, index, "ad_group", 0, ordinal)[group]
    weights = _child_weights(account, campaign, level, group, ordinal)
    if parent.impressions == 0 or not any(w.impressions for w in weights):
        return (ZERO,) * len(weights)
    # Meta and TikTok count whole conversions; Google attributes fractions below the ad group.
    whole = platform != "google" and level in ("ad_group", "ad")
    return tuple(split(parent, weights, whole_conversions=whole))


def _children(
    account: Account, campaign: Campaign, level: str, group: int, day: date
) -> tuple[Measures, ...]:
    return _children_days(
        account.platform,
        account.account_id,
        account.base_seed,
        campaign.index,
        level,
        group,
        day.toordinal(),
    )


def ad_group_days(account: Account, campaign: Campaign, day: date) -> tuple[Measures, ...]:
    """Each ad group's (ad set's) share of the campaign's day, in campaign.ad_groups order."""
    return _children(account, campaign, "ad_group", 0, day)


def keyword_days(account: Account, campaign: Campaign, group: int, day: date) -> tuple[Measures, ...]:
    return _children(account, campaign, "keyword", group, day)


def search_term_days(account: Account, campaign: Campaign, group: int, day: date) -> tuple[Measures, ...]:
    return _children(account, campaign, "search_term", group, day)


def asset_group_days(account: Account, campaign: Campaign, day: date) -> tuple[Measures, ...]:
    return _children(account, campaign, "asset_group", 0, day)


def ad_days(account: Account, campaign: Campaign, group: int, day: date) -> tuple[Measures, ...]:
    return _children(account, campaign, "ad", group, day)


def auction_day(account: Account, campaign: Campaign, competitor: int | None, day: date) -> Measures:
    """One auction-insights row: a competitor (or the advertiser, `None`) on one day.

    ZERO when the campaign did not take part in auctions that day.
    """
    own = campaign_day(account, campaign, day)
    if own.impressions == 0 or own.eligible <= 0:
        return ZERO
    own_share = own.impressions / own.eligible
    if competitor is None:
        return Measures(
            ai_days=1,
            ai_impression_share=own_share,
            ai_top_rate=0.55 + 0.3 * unit(account.seed, campaign.id, day.toordinal()),
            ai_abs_top_rate=0.2 + 0.25 * unit(account.seed, campaign.id, day.toordinal(), 1),
        )
    c = account.competitors[competitor]
    o = day.toordinal()

    def vary(value: float, k: int) -> float:
        return max(0.0, min(1.0, value * (0.85 + 0.3 * unit(account.seed, campaign.id, c.domain, o, k))))

    return Measures(
        ai_days=1,
        ai_impression_share=vary(c.impression_share, 1),
        ai_overlap_rate=vary(c.overlap_rate, 2),
        ai_outranking_share=vary(c.outranking_share, 3),
        ai_position_above_rate=vary(c.position_above_rate, 4),
        ai_top_rate=vary(c.top_rate, 5),
        ai_abs_top_rate=vary(c.abs_top_rate, 6),
    )
