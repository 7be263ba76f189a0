"""The GAQL parser: what reporting queries need, and Google's error names for the rest."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deneva.sandbox import gaql
from deneva.sandbox.data import account_for
from deneva.sandbox.google import QueryFailure, execute


def test_parses_a_full_reporting_query() -> None:
    query = gaql.parse(
        "SELECT campaign.id, campaign.name, metrics.cost_micros FROM campaign "
        "WHERE segments.date BETWEEN '2024-05-01' AND '2024-05-31' "
        "AND campaign.status IN ('ENABLED', 'PAUSED') AND metrics.impressions > 0 "
        "AND campaign.name LIKE '%Brand%' "
        "ORDER BY metrics.cost_micros DESC, campaign.id LIMIT 10 PARAMETERS include_drafts = true"
    )
    assert query.fields == ("campaign.id", "campaign.name", "metrics.cost_micros")
    assert query.resource == "campaign"
    assert [c.operator for c in query.conditions] == ["BETWEEN", "IN", ">", "LIKE"]
    assert query.conditions[0].values == ("2024-05-01", "2024-05-31")
    assert query.conditions[1].values == ("ENABLED", "PAUSED")
    assert query.conditions[2].values == (0,)
    assert query.order_by == (
        gaql.Ordering("metrics.cost_micros", True),
        gaql.Ordering("campaign.id", False),
    )
    assert query.limit == 10
    assert query.parameters == (("include_drafts", "true"),)


def test_keywords_are_case_insensitive_and_during_takes_a_constant() -> None:
    query = gaql.parse("select segments.date from campaign where segments.date during LAST_7_DAYS")
    assert query.conditions == (gaql.Condition("segments.date", "DURING", ("LAST_7_DAYS",)),)


def test_null_checks_and_negations() -> None:
    query = gaql.parse(
        "SELECT ad_group_criterion.keyword.text FROM keyword_view WHERE "
        "ad_group_criterion.quality_info.quality_score IS NOT NULL "
        "AND campaign.status NOT IN ('REMOVED') AND ad_group.name NOT LIKE 'x%' "
        "AND campaign.status != 'PAUSED'"
    )
    assert [c.operator for c in query.conditions] == ["IS NOT NULL", "NOT IN", "NOT LIKE", "!="]


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("", "UNEXPECTED_END_OF_QUERY"),
        ("SELEC campaign.id FROM campaign", "EXPECTED_SELECT"),
        ("SELECT campaign.id campaign", "EXPECTED_FROM"),
        ("SELECT campaign.id FROM", "UNEXPECTED_END_OF_QUERY"),
        ("SELECT FROM campaign", "BAD_FIELD_NAME"),
        ("SELECT campaign.id, FROM campaign", "BAD_FIELD_NAME"),
        ("SELECT campaign.id FROM campaign WHERE", "UNEXPECTED_END_OF_QUERY"),
        ("SELECT campaign.id FROM campaign WHERE campaign.id", "UNEXPECTED_END_OF_QUERY"),
        ("SELECT campaign.id FROM campaign WHERE campaign.name = 'open", "STRING_NOT_TERMINATED"),
        (
            "SELECT campaign.id FROM campaign WHERE campaign.id IN ()",
            "PROHIBITED_EMPTY_LIST_IN_CONDITION",
        ),
        ("SELECT campaign.id FROM campaign WHERE campaign.id IN (1, 2 LIMIT 3", "EXPECTED_LIST"),
        (
            "SELECT campaign.id FROM campaign WHERE segments.date BETWEEN '2024-01-01' OR '2024'",
            "EXPECTED_AND",
        ),
        (
            "SELECT campaign.id FROM campaign WHERE segments.date BETWEEN '2024-01-01'",
            "UNEXPECTED_END_OF_QUERY",
        ),
        ("SELECT campaign.id FROM campaign WHERE campaign.id ~ 3", "BAD_SYMBOL"),
        ("SELECT campaign.id FROM campaign LIMIT 0", "LIMIT_VALUE_TOO_LOW"),
        ("SELECT campaign.id FROM campaign LIMIT ten", "BAD_LIMIT_VALUE"),
        ("SELECT campaign.id FROM campaign ORDER campaign.id", "EXPECTED_BY"),
        ("SELECT campaign.id FROM campaign extra", "UNEXPECTED_INPUT"),
        ("SELECT campaign.id, campaign.id FROM campaign", "DUPLICATE_FIELDS_IN_SELECT_CLAUSE"),
    ],
)
def test_syntax_errors_carry_google_query_error_names(text: str, code: str) -> None:
    with pytest.raises(gaql.GaqlError) as raised:
        gaql.parse(text)
    assert raised.value.code == code


_WORDS = st.sampled_from(
    [
        "SELECT", "FROM", "WHERE", "AND", "ORDER", "BY", "LIMIT", "DURING", "BETWEEN", "IN", "NOT",
        "LIKE", "IS", "NULL", "campaign", "campaign.id", "campaign.status", "metrics.clicks",
        "segments.date", "keyword_view", "LAST_7_DAYS", "'2024-05-01'", "'ENABLED'", "3", "-1",
        "(", ")", ",", "=", "!=", ">", "'", "DESC", "%", "search_term_view", "metrics.ctr",
        "segments.auction_insight_domain", "metrics.auction_insight_search_impression_share",
    ]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(_WORDS, max_size=14) | st.text(max_size=60))
def test_any_text_parses_or_fails_as_a_query_error(tokens: list[str] | str) -> None:
    text = tokens if isinstance(tokens, str) else " ".join(tokens)
    account = account_for("google", "1234567890")
    try:
        execute(gaql.parse(text), account, date(2024, 6, 1))
    except (gaql.GaqlError, QueryFailure):
        pass
