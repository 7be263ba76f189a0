"""Quality score: a hand-computed distribution, low-QS spend and the costliest low scorers."""

from __future__ import annotations

from deneva.reports import quality_score
from deneva.reports.inputs import KeywordRow
from tests.reports.factories import dump, keyword


def keywords() -> list[KeywordRow]:
    return [
        keyword("crm software", 8, impressions=1000, cost=100.0, conversions=5.0),
        keyword("cheap crm", 3, impressions=500, cost=300.0),
        keyword("crm tool", 4, impressions=500, cost=100.0, conversions=2.0),
        keyword("new keyword", None, impressions=10, cost=5.0),
        keyword("crm suite", 2, impressions=0, cost=0.0, clicks=0),
    ]


def test_distribution_and_averages_by_hand() -> None:
    data = dump(quality_score(keywords()))
    assert data["keywords"] == {"total": 5, "scored": 4, "unscored": 1}
    assert data["unscored_cost"] == 5.0
    # (8 + 3 + 4 + 2) / 4; by impressions (8000 + 1500 + 2000) / 2000; by cost (800 + 900 + 400) / 500.
    assert data["average_quality_score"] == {
        "simple": 4.25,
        "impression_weighted": 5.75,
        "cost_weighted": 4.2,
    }
    assert data["low_qs"] == {"keywords": 3, "cost": 400.0, "cost_share": 0.8, "impression_share": 0.5}
    by_score = {b["score"]: b for b in data["distribution"]}
    assert sorted(by_score) == list(range(1, 11))
    assert by_score[8] == {
        "score": 8,
        "keywords": 1,
        "impressions": 1000,
        "cost": 100.0,
        "impression_share": 0.5,
        "cost_share": 0.2,
    }
    assert (
        by_score[3]["cost_share"] == 0.6 and by_score[2]["keywords"] == 1 and by_score[2]["cost_share"] == 0.0
    )
    assert by_score[10]["keywords"] == 0


def test_worst_keywords_are_low_qs_by_cost() -> None:
    data = dump(quality_score(keywords()))
    worst = [(k["keyword"], k["quality_score"], k["cost"], k["cpa"]) for k in data["worst_keywords"]]
    assert worst == [("cheap crm", 3, 300.0, None), ("crm tool", 4, 100.0, 50.0)]  # crm suite cost nothing
    assert data["summary"] == (
        "Average quality score 4.2 over 4 scored keywords (4.2 weighted by spend); 3 keywords with QS <= 4 "
        "take 80.0% of spend (400.00). Costliest low-QS keyword: 'cheap crm' (QS 3, 300.00)."
    )


def test_unscored_only_and_no_spend() -> None:
    data = dump(quality_score([keyword("a", None, impressions=5, cost=1.0)]))
    assert data["average_quality_score"] == {
        "simple": None,
        "impression_weighted": None,
        "cost_weighted": None,
    }
    assert data["low_qs"]["cost_share"] is None
    assert "None of the 1 keywords has a quality score" in data["summary"]

    free = dump(quality_score([keyword("a", 5, impressions=0, cost=0.0, clicks=0)]))
    assert free["average_quality_score"]["simple"] == 5.0
    assert free["average_quality_score"]["cost_weighted"] is None
    assert all(b["cost_share"] is None for b in free["distribution"])


def test_empty() -> None:
    data = dump(quality_score([]))
    assert data["has_data"] is False and data["summary"] == "No keyword data for this period."
    assert data["worst_keywords"] == []


def test_worst_list_is_capped() -> None:
    rows = [keyword(f"kw {i}", 1 + i % 4, impressions=10, cost=float(i + 1)) for i in range(100)]
    data = dump(quality_score(rows))
    assert len(data["worst_keywords"]) == 20 and data["low_qs"]["keywords"] == 100
    assert data["worst_keywords"][0]["keyword"] == "kw 99"
