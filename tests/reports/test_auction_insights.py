"""Auction insights: competitors ranked, who outranks you most, your share against the leader."""

from __future__ import annotations

from deneva.reports import auction_insights
from deneva.reports.inputs import AuctionRow
from tests.reports.factories import auction, dump


def market() -> list[AuctionRow]:
    return [
        auction("You", 0.40, top=0.6),
        auction("a.com", 0.55, overlap=0.7, above=0.6, outranking=0.3, top=0.7),
        auction("b.com", 0.30, overlap=0.9, above=0.2, outranking=0.6),
        auction("c.com", 0.10, overlap=0.2, above=0.9),
    ]


def test_competitors_ranked_and_leaders_named() -> None:
    data = dump(auction_insights(market()))
    assert [c["domain"] for c in data["competitors"]] == ["a.com", "b.com", "c.com"]
    assert data["competitor_count"] == 3
    assert data["you"] == {
        "impression_share": 0.4,
        "overlap_rate": None,
        "position_above_rate": None,
        "outranking_share": None,
        "top_of_page_rate": 0.6,
        "above_you_share": None,
    }
    assert data["top_competitor"] == {
        "domain": "a.com",
        "impression_share": 0.55,
        "overlap_rate": 0.7,
        "position_above_rate": 0.6,
        "your_share_gap": -0.15,
    }
    assert data["most_overlap"] == {"domain": "b.com", "overlap_rate": 0.9, "impression_share": 0.3}
    # Above you on overlap x position-above: a 0.42, b 0.18, c 0.18.
    assert data["outranking_you_most"] == {
        "domain": "a.com",
        "above_you_share": 0.42,
        "position_above_rate": 0.6,
        "overlap_rate": 0.7,
    }
    assert data["summary"] == (
        "Your impression share is 40.0%; top competitor a.com has 55.0% (-15.0 points for you) among 3 "
        "competitors. a.com outranks you most: above you on 42.0% of your impressions "
        "(position above rate 60.0%)."
    )


def test_rows_for_one_domain_are_averaged() -> None:
    rows = [
        auction("you", 0.5, is_self=False),
        auction("A.com", 0.5, overlap=0.4, above=0.5),
        auction("a.com ", 0.6, overlap=0.6, above=None),
    ]
    data = dump(auction_insights(rows))
    (only,) = data["competitors"]
    assert only["domain"] == "A.com"
    assert (only["impression_share"], only["overlap_rate"], only["position_above_rate"]) == (0.55, 0.5, 0.5)
    assert only["above_you_share"] == 0.25
    assert data["you"]["impression_share"] == 0.5


def test_self_flag_and_missing_self_row() -> None:
    flagged = dump(auction_insights([auction("mysite.com", 0.3, is_self=True), auction("a.com", 0.2)]))
    assert flagged["you"]["impression_share"] == 0.3 and flagged["competitor_count"] == 1
    assert flagged["top_competitor"]["your_share_gap"] == 0.1
    assert flagged["outranking_you_most"] is None  # no position data

    missing = dump(auction_insights([auction("a.com", 0.2, overlap=0.5, above=0.5)]))
    assert missing["you"] is None and missing["top_competitor"]["your_share_gap"] is None
    assert missing["summary"].startswith("Your own row is missing")


def test_only_yourself_and_empty() -> None:
    alone = dump(auction_insights([auction("You", 0.8)]))
    assert alone["competitors"] == [] and alone["top_competitor"] is None
    assert "no competitors appeared" in alone["summary"]
    empty = dump(auction_insights([]))
    assert empty["has_data"] is False and empty["summary"] == "No auction insights data for this period."


def test_competitor_list_is_capped() -> None:
    rows = [auction(f"rival{i}.com", i / 100, overlap=0.5, above=0.5) for i in range(50)]
    data = dump(auction_insights(rows))
    assert len(data["competitors"]) == 20 and data["competitor_count"] == 50
    assert data["competitors"][0]["domain"] == "rival49.com"
