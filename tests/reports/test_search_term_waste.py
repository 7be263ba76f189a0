"""Search-term waste: known wasted terms, their share of spend, and the negatives to add."""

from __future__ import annotations

import math

import attrs
import pytest

from deneva.reports import ReportInputError, search_term_waste
from deneva.reports.inputs import SearchTermRow
from tests.reports.factories import dump, term


def crm_terms() -> list[SearchTermRow]:
    return [
        term("free crm", 40.0),
        term("crm jobs", 30.0),
        term("crm software", 200.0, conversions=10.0),
        term("free crm download", 25.0, campaign_id="c2"),
        term("Best CRM  Pricing", 15.0),
        term("best crm pricing", 5.0, campaign_id="c2"),  # the same term, another campaign
        term("crm login", 0.5),  # below min_cost
    ]


def test_wasted_terms_ranked_by_cost_with_their_share() -> None:
    data = dump(search_term_waste(crm_terms(), min_cost=1.0, period_days=30))
    assert data["totals"] == {"terms": 6, "cost": 315.5, "clicks": 70, "conversions": 10.0}
    # 40 + 30 + 25 + 20 = 115 of 315.5 spent with no conversion.
    assert data["wasted"] == {"terms": 4, "cost": 115.0, "clicks": 50, "share_of_spend": 0.3645}
    ranked = [(t["search_term"], t["cost"], t["campaign_count"]) for t in data["top_wasted_terms"]]
    assert ranked == [
        ("free crm", 40.0, 1),
        ("crm jobs", 30.0, 1),
        ("free crm download", 25.0, 1),
        ("best crm pricing", 20.0, 2),
    ]
    assert data["top_wasted_terms"][3]["top_campaign_id"] == "c1"


def test_negatives_phrase_for_a_shared_word_exact_for_the_rest() -> None:
    data = dump(search_term_waste(crm_terms(), period_days=30))
    # "free" is in two wasted terms and no converting one; "crm" converts, so it is never suggested.
    assert data["suggested_negatives"] == [
        {"keyword": "free", "match_type": "phrase", "level": "account", "covers_terms": 2,
         "wasted_cost": 65.0, "estimated_monthly_savings": 65.0},
        {"keyword": "crm jobs", "match_type": "exact", "level": "campaign", "campaign_id": "c1",
         "covers_terms": 1, "wasted_cost": 30.0, "estimated_monthly_savings": 30.0},
        {"keyword": "best crm pricing", "match_type": "exact", "level": "account", "covers_terms": 1,
         "wasted_cost": 20.0, "estimated_monthly_savings": 20.0},
    ]  # fmt: skip
    assert data["estimated_monthly_savings"] == 115.0
    assert data["summary"] == (
        "4 search terms spent 115.00 with no conversions (36.5% of search-term spend 315.50); "
        "worst: 'free crm' (40.00). 3 negative keywords would save about 115.00 a month."
    )


def test_savings_scale_to_a_month() -> None:
    data = dump(search_term_waste(crm_terms(), period_days=7))
    assert data["estimated_monthly_savings"] == 492.86  # 115 x 30 / 7
    assert data["suggested_negatives"][0]["estimated_monthly_savings"] == 278.57  # 65 x 30 / 7


def test_min_cost_filters_small_terms() -> None:
    data = dump(search_term_waste(crm_terms(), min_cost=35.0))
    assert [t["search_term"] for t in data["top_wasted_terms"]] == ["free crm"]
    assert [(n["keyword"], n["match_type"]) for n in data["suggested_negatives"]] == [("free crm", "exact")]


def test_terms_too_long_for_a_keyword_are_listed_but_not_suggested() -> None:
    long_term = "how do i export all my contacts from one crm into another crm tool"  # 14 words
    data = dump(search_term_waste([term(long_term, 12.0), term("crm", 10.0, conversions=1.0)]))
    assert data["wasted"]["terms"] == 1
    assert data["suggested_negatives"] == [] and data["unsuggestable_terms"] == 1
    assert data["estimated_monthly_savings"] == 0.0


def test_terms_already_excluded_or_added_get_no_negative() -> None:
    rows = [
        term("free crm", 40.0),
        attrs.evolve(term("free crm trial", 30.0), status="EXCLUDED"),
        attrs.evolve(term("crm jobs", 20.0), status="ADDED"),  # a keyword of yours that never converts
        term("free jobs board", 10.0),
    ]
    data = dump(search_term_waste(rows))
    assert data["wasted"]["terms"] == 4
    assert (data["already_excluded_terms"], data["wasted_terms_that_are_keywords"]) == (1, 1)
    targeting = {t["search_term"]: t.get("targeting") for t in data["top_wasted_terms"]}
    assert targeting == {
        "free crm": None,
        "free crm trial": "excluded",
        "crm jobs": "keyword",
        "free jobs board": None,
    }
    # "free" covers the two open terms; "jobs" is in your keyword, so it is never a phrase negative.
    assert [(n["keyword"], n["match_type"], n["covers_terms"]) for n in data["suggested_negatives"]] == [
        ("free", "phrase", 2)
    ]
    assert data["estimated_monthly_savings"] == 50.0
    assert data["summary"].endswith("1 wasted term is a keyword of yours: pause or refine it.")


def test_no_waste() -> None:
    data = dump(search_term_waste([term("crm software", 100.0, conversions=2.0), term("crm", 0.2)]))
    assert data["has_data"] is True and data["wasted"]["terms"] == 0
    assert data["summary"].startswith("No wasted search terms")
    assert data["wasted"]["share_of_spend"] == 0.0


def test_empty_and_zero_spend() -> None:
    data = dump(search_term_waste([]))
    assert data["has_data"] is False and data["summary"] == "No search-term data for this period."
    assert data["wasted"]["share_of_spend"] is None
    free = dump(search_term_waste([term("crm", 0.0)], min_cost=0.0))
    assert free["wasted"]["terms"] == 0  # a term that cost nothing wasted nothing


def test_lists_are_capped() -> None:
    rows = [term(f"widget{i} gadget{i}", 100.0 + i, campaign_id=f"c{i % 3}") for i in range(60)]
    data = dump(search_term_waste(rows))
    assert len(data["top_wasted_terms"]) == 20 and data["wasted"]["terms"] == 60
    assert data["top_wasted_terms"][0]["search_term"] == "widget59 gadget59"
    assert len(data["suggested_negatives"]) == 20 and data["suggested_negatives_total"] == 60
    assert data["estimated_monthly_savings"] == sum(100.0 + i for i in range(60))


def test_one_phrase_negative_can_cover_many_terms() -> None:
    rows = [term(f"term number {i}", 100.0 + i) for i in range(60)]
    data = dump(search_term_waste(rows))
    # "number" and "term" are in every wasted term and tie on cost: the first word alphabetically wins.
    assert data["suggested_negatives"] == [
        {"keyword": "number", "match_type": "phrase", "level": "campaign", "campaign_id": "c1",
         "covers_terms": 60, "wasted_cost": 7770.0, "estimated_monthly_savings": 7770.0},
    ]  # fmt: skip


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"min_cost": -1.0}, "min_cost"),
    ({"min_cost": math.nan}, "min_cost"),
    ({"period_days": 0}, "period_days"),
])  # fmt: skip
def test_arguments_are_checked(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ReportInputError, match=f"field '{field}'"):
        search_term_waste([], **kwargs)  # type: ignore[arg-type]
