"""PMax breakdown: per-group numbers, campaign shares, best and worst, non-converting groups."""

from __future__ import annotations

from deneva.reports import pmax_breakdown
from deneva.reports.inputs import AssetGroupRow
from tests.reports.factories import dump, group


def groups(with_value: bool = True) -> list[AssetGroupRow]:
    def v(value: float) -> float:
        return value if with_value else 0.0

    return [
        group("g1", "Shoes", 150.0, 5.0, v(750.0)),
        group("g1", "Shoes", 150.0, 5.0, v(750.0)),  # a second day of the same group
        group("g2", "Bags", 200.0, 2.0, v(200.0)),
        group("g3", "Hats", 100.0, 0.0),
        group("g4", "All products", 400.0, 8.0, v(1200.0), campaign_id="p2"),
    ]


def test_per_group_numbers_and_campaign_shares() -> None:
    data = dump(pmax_breakdown(groups()))
    assert data["ranking_metric"] == "roas"
    assert (data["totals"]["cost"], data["totals"]["conversions"], data["totals"]["cpa"]) == (
        1000.0,
        20.0,
        50.0,
    )
    assert data["totals"]["roas"] == 2.9  # 2900 / 1000
    by_id = {g["asset_group_id"]: g for g in data["asset_groups"]}
    assert [g["asset_group_id"] for g in data["asset_groups"]] == ["g4", "g1", "g2", "g3"]  # by cost
    assert by_id["g1"]["cost"] == 300.0 and by_id["g1"]["cpa"] == 30.0 and by_id["g1"]["roas"] == 5.0
    assert by_id["g1"]["share_of_campaign_cost"] == 0.5  # 300 of p1's 600
    assert by_id["g2"]["share_of_campaign_cost"] == 0.3333
    assert by_id["g3"]["cpa"] is None and by_id["g3"]["roas"] == 0.0
    assert by_id["g4"]["share_of_campaign_cost"] == 1.0
    assert [(c["campaign_id"], c["asset_groups"], c["cost"]) for c in data["campaigns"]] == [
        ("p1", 3, 600.0),
        ("p2", 1, 400.0),
    ]


def test_best_worst_and_non_converting_by_roas() -> None:
    data = dump(pmax_breakdown(groups()))
    # ROAS: g1 5.0, g4 3.0, g2 1.0 -> best half rounded up, then the rest, worst first.
    assert [g["asset_group_id"] for g in data["best"]] == ["g1", "g4"]
    assert [g["asset_group_id"] for g in data["worst"]] == ["g2"]
    assert [g["asset_group_id"] for g in data["no_conversions"]] == ["g3"]
    assert (data["no_conversions_count"], data["no_conversions_cost"]) == (1, 100.0)
    assert data["summary"] == (
        "4 asset groups in 2 PMax campaigns spent 1,000.00 for 20 conversions (ROAS 2.90). "
        "Best: 'Shoes' (ROAS 5.00). Worst: 'Bags' (ROAS 1.00). "
        "1 group spent 100.00 (10.0%) with no conversions."
    )


def test_ranked_by_cpa_without_conversion_value() -> None:
    data = dump(pmax_breakdown(groups(with_value=False)))
    assert data["ranking_metric"] == "cpa"
    # CPA: g1 30, g4 50, g2 100.
    assert [g["asset_group_id"] for g in data["best"]] == ["g1", "g4"]
    assert [g["asset_group_id"] for g in data["worst"]] == ["g2"]
    assert "Best: 'Shoes' (CPA 30.00). Worst: 'Bags' (CPA 100.00)." in data["summary"]


def test_one_converting_group_is_best_not_worst() -> None:
    data = dump(pmax_breakdown([group("g1", "Only", 10.0, 1.0)]))
    assert [g["asset_group_id"] for g in data["best"]] == ["g1"] and data["worst"] == []


def test_empty_and_zero_spend() -> None:
    empty = dump(pmax_breakdown([]))
    assert (
        empty["has_data"] is False
        and empty["summary"] == "No Performance Max asset-group data for this period."
    )
    idle = dump(pmax_breakdown([group("g1", "Idle", 0.0, 0.0)]))
    assert idle["asset_groups"][0]["share_of_campaign_cost"] is None
    assert idle["no_conversions"] == [] and idle["best"] == []


def test_lists_are_capped() -> None:
    rows = [group(f"g{i}", f"Group {i}", 10.0 + i, i % 3) for i in range(80)]
    data = dump(pmax_breakdown(rows))
    assert len(data["asset_groups"]) == 15 and data["asset_group_count"] == 80
    assert len(data["best"]) == 5 and len(data["worst"]) == 5
    assert len(data["no_conversions"]) == 10 and data["no_conversions_count"] == 27
