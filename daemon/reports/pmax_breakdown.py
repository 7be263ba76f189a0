"""Performance Max breakdown: spend and results per asset group, the best, the worst, the non-converting.

Rows with the same (campaign id, asset group id) are summed (e.g. one row per day). Groups are
ranked by ROAS when the account reports conversion value, else by CPA; only
groups with conversions are ranked. Best and worst never share a group: with n
ranked groups, the best half (rounded up, at most 5) and the rest (at most 5).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import attrs

from deneva.reports._common import (
    JSONDict,
    Totals,
    clip,
    div,
    fmt_money,
    fmt_share,
    money,
    money_or_none,
    plural,
    qty,
    ratio_or_none,
)
from deneva.reports.inputs import AssetGroupRow

__all__ = ["AssetGroup", "PmaxBreakdown", "pmax_breakdown"]

BEST_WORST = 5
SHORT_LIST = 10
GROUP_LIST = 15


@attrs.frozen
class AssetGroup:
    asset_group_id: str
    asset_group_name: str
    campaign_id: str
    campaign_name: str
    status: str
    totals: Totals
    campaign_cost: float

    @property
    def share_of_campaign_cost(self) -> float | None:
        return div(self.totals.cost, self.campaign_cost)

    def short_json(self) -> JSONDict:
        return {
            "asset_group_id": self.asset_group_id,
            "asset_group_name": clip(self.asset_group_name, 60),
            "cost": money(self.totals.cost),
            "conversions": qty(self.totals.conversions),
            "cpa": money_or_none(self.totals.cpa),
            "roas": ratio_or_none(self.totals.roas),
        }

    def to_json(self) -> JSONDict:
        t = self.totals
        return {
            "asset_group_id": self.asset_group_id,
            "asset_group_name": clip(self.asset_group_name, 60),
            "campaign_id": self.campaign_id,
            "status": clip(self.status, 24),
            "cost": money(t.cost),
            "share_of_campaign_cost": ratio_or_none(self.share_of_campaign_cost),
            "impressions": t.impressions,
            "clicks": t.clicks,
            "ctr": ratio_or_none(t.ctr),
            "conversions": qty(t.conversions),
            "conversion_value": money(t.conversion_value),
            "cpa": money_or_none(t.cpa),
            "roas": ratio_or_none(t.roas),
        }


@attrs.frozen
class PmaxCampaign:
    campaign_id: str
    campaign_name: str
    totals: Totals
    asset_groups: int

    def to_json(self) -> JSONDict:
        t = self.totals
        return {
            "campaign_id": self.campaign_id,
            "campaign_name": clip(self.campaign_name, 60),
            "asset_groups": self.asset_groups,
            "cost": money(t.cost),
            "conversions": qty(t.conversions),
            "conversion_value": money(t.conversion_value),
            "cpa": money_or_none(t.cpa),
            "roas": ratio_or_none(t.roas),
        }


@attrs.frozen
class PmaxBreakdown:
    """The result of `pmax_breakdown`."""

    totals: Totals
    ranking_metric: str  # "roas" | "cpa"
    campaigns: tuple[PmaxCampaign, ...]
    groups: tuple[AssetGroup, ...]  # all, by cost
    best: tuple[AssetGroup, ...]
    worst: tuple[AssetGroup, ...]  # worst first
    no_conversions: tuple[AssetGroup, ...]  # all, by cost

    @property
    def has_data(self) -> bool:
        return bool(self.groups)

    def summary(self) -> str:
        if not self.has_data:
            return "No Performance Max asset-group data for this period."
        t = self.totals
        metric = (
            f"ROAS {t.roas:.2f}"
            if self.ranking_metric == "roas" and t.roas is not None
            else f"CPA {fmt_money(t.cpa)}"
        )
        text = (
            f"{plural(len(self.groups), 'asset group')} in {plural(len(self.campaigns), 'PMax campaign')} "
            f"spent {fmt_money(t.cost)} "
            f"for {qty(t.conversions):g} conversions ({metric})."
        )

        def describe(g: AssetGroup) -> str:
            value = (
                f"ROAS {g.totals.roas or 0:.2f}"
                if self.ranking_metric == "roas"
                else f"CPA {fmt_money(g.totals.cpa)}"
            )
            return f"{clip(g.asset_group_name, 50)!r} ({value})"

        if self.best:
            text += f" Best: {describe(self.best[0])}."
        if self.worst:
            text += f" Worst: {describe(self.worst[0])}."
        if self.no_conversions:
            wasted = sum(g.totals.cost for g in self.no_conversions)
            text += (
                f" {plural(len(self.no_conversions), 'group')} spent {fmt_money(wasted)} "
                f"({fmt_share(div(wasted, t.cost))}) with no conversions."
            )
        return text

    def to_json(self) -> JSONDict:
        return {
            "report": "pmax_breakdown",
            "has_data": self.has_data,
            "summary": self.summary(),
            "ranking_metric": self.ranking_metric,
            "totals": self.totals.to_json(),
            "campaigns": [c.to_json() for c in self.campaigns[:SHORT_LIST]],
            "campaign_count": len(self.campaigns),
            "asset_groups": [g.to_json() for g in self.groups[:GROUP_LIST]],
            "asset_group_count": len(self.groups),
            "best": [g.short_json() for g in self.best],
            "worst": [g.short_json() for g in self.worst],
            "no_conversions": [g.short_json() for g in self.no_conversions[:SHORT_LIST]],
            "no_conversions_count": len(self.no_conversions),
            "no_conversions_cost": money(sum(g.totals.cost for g in self.no_conversions)),
        }


def pmax_breakdown(rows: Sequence[AssetGroupRow]) -> PmaxBreakdown:
    """Per asset group: spend, conversions, CPA, ROAS, campaign-spend share; best, worst, non-converting."""
    by_group: dict[tuple[str, str], list[AssetGroupRow]] = defaultdict(list)
    by_campaign: dict[str, list[AssetGroupRow]] = defaultdict(list)
    for row in rows:
        by_group[row.campaign_id, row.asset_group_id].append(row)
        by_campaign[row.campaign_id].append(row)
    campaign_totals = {cid: Totals.of(group) for cid, group in by_campaign.items()}
    totals = Totals.of(rows)

    groups: list[AssetGroup] = []
    for (cid, gid), group_rows in by_group.items():
        last = group_rows[-1]
        groups.append(
            AssetGroup(
                gid,
                last.asset_group_name,
                cid,
                last.campaign_name,
                last.status,
                Totals.of(group_rows),
                campaign_totals[cid].cost,
            )
        )
    groups.sort(key=lambda g: (-g.totals.cost, g.campaign_id, g.asset_group_id))

    campaigns = [
        PmaxCampaign(
            cid,
            campaign_rows[-1].campaign_name,
            campaign_totals[cid],
            len({r.asset_group_id for r in campaign_rows}),
        )
        for cid, campaign_rows in by_campaign.items()
    ]
    campaigns.sort(key=lambda c: (-c.totals.cost, c.campaign_id))

    metric = "roas" if totals.conversion_value > 0 else "cpa"
    converting = [g for g in groups if g.totals.conversions > 0 and g.totals.cost > 0]
    if metric == "roas":
        converting.sort(key=lambda g: (-(g.totals.roas or 0.0), -g.totals.cost, g.asset_group_id))
    else:
        converting.sort(key=lambda g: (g.totals.cpa or 0.0, -g.totals.cost, g.asset_group_id))
    n_best = min(BEST_WORST, (len(converting) + 1) // 2)
    n_worst = min(BEST_WORST, len(converting) - n_best)
    return PmaxBreakdown(
        totals=totals,
        ranking_metric=metric,
        campaigns=tuple(campaigns),
        groups=tuple(groups),
        best=tuple(converting[:n_best]),
        worst=tuple(reversed(converting[len(converting) - n_worst :])),
        no_conversions=tuple(g for g in groups if g.totals.conversions == 0 and g.totals.cost > 0),
    )
