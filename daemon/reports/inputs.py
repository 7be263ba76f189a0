"""Input rows of the report analyses, and their loud validation.

The adapters (`deneva.adapters`) normalise each platform's API rows into plain
dicts; those dicts map onto these classes field for field, through `from_dict`
(one row) or `rows_from_dicts` (a list, with row indexes in errors):

- `CampaignDay`: one campaign on one day (account health, budget optimizer,
  weekly anomaly). Google, Meta and TikTok campaign reports all map onto it;
  `daily_budget` and `budget_lost_share` are None where a platform has no such
  number (Meta and TikTok have no "impression share lost to budget").
- `SearchTermRow`: one search term in one campaign over the period (Google),
  with its targeting status where known (already a keyword, already excluded).
- `KeywordRow`: one keyword (ad-group criterion) over the period, with its
  current quality score (None when Google has not scored it).
- `AuctionRow`: one domain in the auction insights report; the account's own row
  has `is_self=True` or the domain "You" (any case).
- `AssetGroupRow`: one Performance Max asset group over the period.

Conventions: money is in the account currency as a float (not micros), at most
1e12; ratios are fractions in 0..1 (not percentages); counts are non-negative
ints; ids are strings of 1 to 64 characters without control characters (an int id
is accepted and turned into a string); text holds no NUL (Postgres cannot store one,
so a report with one could never be cached); dates are `date` objects or ISO "YYYY-MM-DD" strings. A field
with a default in the class may be left out; `KeywordRow.quality_score` must be
present but may be null. An unknown key is ignored. Anything else wrong (a
missing required field, a wrong type, NaN, a negative amount, a ratio outside
0..1) raises `ReportInputError` naming the field and, from `rows_from_dicts`,
the row index. Constructing a row directly validates the same way.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any, ClassVar, Self, TypeVar, cast

import attrs

from deneva.errors import DenevaError

__all__ = [
    "AssetGroupRow",
    "AuctionRow",
    "CampaignDay",
    "KeywordRow",
    "ReportInputError",
    "SearchTermRow",
    "rows_from_dicts",
]


class ReportInputError(DenevaError, ValueError):
    """A report input row or argument is malformed; the message names the field (and row)."""

    def __init__(self, message: str, *, field: str | None = None, index: int | None = None) -> None:
        self.field = field
        self.index = index
        self.reason = message
        where = []
        if index is not None:
            where.append(f"row {index}")
        if field is not None:
            where.append(f"field {field!r}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)

    def at(self, index: int) -> ReportInputError:
        """The same error, located at row `index`."""
        return ReportInputError(self.reason, field=self.field, index=index)


# Field kinds: how a value is checked (every kind) and coerced (from_dict only).
_TEXT = "text"  # str
_ID = "id"  # str, or int turned into str
_DATE = "date"  # date (not datetime), or ISO string
_COUNT = "count"  # int >= 0
_AMOUNT = "amount"  # finite float >= 0 (an int is accepted)
_RATIO = "ratio"  # finite float in 0..1
_SCORE = "score"  # int in 1..10
_FLAG = "flag"  # bool


# Bounds far above any real account, so that sums and ratios stay finite floats.
MAX_AMOUNT = 1e12
MAX_COUNT = 10**15
MAX_ID_LENGTH = 64


def _has_control_character(value: str) -> bool:
    return any(unicodedata.category(c) == "Cc" for c in value)


def _type_name(value: object) -> str:
    return type(value).__name__


def _check(kind: str, name: str, value: object) -> None:
    """Raise ReportInputError unless `value` is a valid, already coerced value of `kind`."""
    if kind in (_TEXT, _ID):
        if not isinstance(value, str):
            raise ReportInputError(f"must be a string, got {_type_name(value)}", field=name)
        if kind == _ID and not 0 < len(value) <= MAX_ID_LENGTH:
            raise ReportInputError(f"must be 1 to {MAX_ID_LENGTH} characters, got {len(value)}", field=name)
        if kind == _ID and _has_control_character(value):
            raise ReportInputError("must not contain control characters", field=name)
        if "\x00" in value:
            raise ReportInputError("must not contain NUL characters", field=name)
    elif kind == _DATE:
        if not isinstance(value, date) or isinstance(value, datetime):
            raise ReportInputError(f"must be a date, got {_type_name(value)}", field=name)
    elif kind in (_COUNT, _SCORE):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ReportInputError(f"must be an integer, got {_type_name(value)}", field=name)
        if kind == _COUNT and not 0 <= value <= MAX_COUNT:
            raise ReportInputError(f"must be between 0 and {MAX_COUNT}, got {value}", field=name)
        if kind == _SCORE and not 1 <= value <= 10:
            raise ReportInputError(f"must be between 1 and 10, got {value}", field=name)
    elif kind in (_AMOUNT, _RATIO):
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ReportInputError(f"must be a number, got {_type_name(value)}", field=name)
        if not math.isfinite(value):
            raise ReportInputError(f"must be a finite number, got {value}", field=name)
        if not 0 <= value <= MAX_AMOUNT:
            raise ReportInputError(f"must be between 0 and {MAX_AMOUNT:g}, got {value}", field=name)
        if kind == _RATIO and value > 1:
            raise ReportInputError(f"must be a fraction between 0 and 1, got {value}", field=name)
    elif kind == _FLAG:
        if not isinstance(value, bool):
            raise ReportInputError(f"must be a boolean, got {_type_name(value)}", field=name)
    else:  # pragma: no cover - a programming error in a _KINDS table
        raise AssertionError(f"unknown field kind {kind!r}")


def _coerce(kind: str, name: str, value: object) -> object:
    """The lenient part of from_dict: ISO date strings, int ids, int amounts."""
    if kind == _DATE and isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ReportInputError(f"must be an ISO date (YYYY-MM-DD), got {value!r}", field=name) from None
    if kind == _ID and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if kind in (_AMOUNT, _RATIO) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


_R = TypeVar("_R", bound="_RowBase")


def _fields(cls: type) -> tuple[attrs.Attribute[Any], ...]:
    fields: tuple[attrs.Attribute[Any], ...] = attrs.fields(cast(Any, cls))
    return fields


class _RowBase:
    """Shared validation: each subclass lists its fields' kinds in `_KINDS`.

    A field in `_NULLABLE` may be None; a field with a default may be left out of a
    dict. Every other field is required and must have its kind.
    """

    _KINDS: ClassVar[dict[str, str]] = {}
    _NULLABLE: ClassVar[frozenset[str]] = frozenset()

    def __attrs_post_init__(self) -> None:
        for field in _fields(type(self)):
            value = getattr(self, field.name)
            if value is None and field.name in self._NULLABLE:
                continue
            kind = self._KINDS[field.name]
            _check(kind, field.name, value)
            if kind in (_AMOUNT, _RATIO):
                # Ints given as amounts become floats, and -0.0 becomes 0.0.
                object.__setattr__(self, field.name, float(value) + 0.0)

    @classmethod
    def from_dict(cls, data: Mapping[str, object], index: int | None = None) -> Self:
        """Build a row from an adapter's normalised dict; raise ReportInputError if malformed."""
        try:
            if not isinstance(data, Mapping):
                raise ReportInputError(f"must be a mapping (dict), got {_type_name(data)}")
            values: dict[str, Any] = {}
            for field in _fields(cls):
                if field.name not in data:
                    if field.default is attrs.NOTHING:
                        raise ReportInputError("is missing", field=field.name)
                    continue
                value = data[field.name]
                if value is None and field.name in cls._NULLABLE:
                    values[field.name] = None
                    continue
                values[field.name] = _coerce(cls._KINDS[field.name], field.name, value)
            return cls(**values)
        except ReportInputError as exc:
            raise (exc if index is None else exc.at(index)) from None


def rows_from_dicts(row_type: type[_R], items: Iterable[Mapping[str, object]]) -> list[_R]:
    """Build rows from an adapter's list of dicts; errors name the row index (0-based)."""
    return [row_type.from_dict(item, index) for index, item in enumerate(items)]


@attrs.frozen
class CampaignDay(_RowBase):
    """One campaign on one day."""

    date: date
    campaign_id: str
    campaign_name: str
    status: str
    impressions: int
    clicks: int
    cost: float
    conversions: float
    conversion_value: float
    daily_budget: float | None = None
    budget_lost_share: float | None = None

    _KINDS: ClassVar[dict[str, str]] = {
        "date": _DATE,
        "campaign_id": _ID,
        "campaign_name": _TEXT,
        "status": _TEXT,
        "impressions": _COUNT,
        "clicks": _COUNT,
        "cost": _AMOUNT,
        "conversions": _AMOUNT,
        "conversion_value": _AMOUNT,
        "daily_budget": _AMOUNT,
        "budget_lost_share": _RATIO,
    }
    _NULLABLE: ClassVar[frozenset[str]] = frozenset({"daily_budget", "budget_lost_share"})


@attrs.frozen
class SearchTermRow(_RowBase):
    """One search term in one campaign, summed over the period.

    `status` is Google's targeting status of the term (ADDED, EXCLUDED,
    ADDED_EXCLUDED, NONE), None where unknown.
    """

    search_term: str
    campaign_id: str
    campaign_name: str
    impressions: int
    clicks: int
    cost: float
    conversions: float
    conversion_value: float
    status: str | None = None

    _KINDS: ClassVar[dict[str, str]] = {
        "search_term": _TEXT,
        "campaign_id": _ID,
        "campaign_name": _TEXT,
        "impressions": _COUNT,
        "clicks": _COUNT,
        "cost": _AMOUNT,
        "conversions": _AMOUNT,
        "conversion_value": _AMOUNT,
        "status": _TEXT,
    }
    _NULLABLE: ClassVar[frozenset[str]] = frozenset({"status"})


@attrs.frozen
class KeywordRow(_RowBase):
    """One keyword (ad-group criterion) summed over the period, with its current quality score."""

    keyword: str
    match_type: str
    campaign_id: str
    ad_group_id: str
    quality_score: int | None
    impressions: int
    clicks: int
    cost: float
    conversions: float
    campaign_name: str | None = None

    _KINDS: ClassVar[dict[str, str]] = {
        "keyword": _TEXT,
        "match_type": _TEXT,
        "campaign_id": _ID,
        "ad_group_id": _ID,
        "quality_score": _SCORE,
        "impressions": _COUNT,
        "clicks": _COUNT,
        "cost": _AMOUNT,
        "conversions": _AMOUNT,
        "campaign_name": _TEXT,
    }
    _NULLABLE: ClassVar[frozenset[str]] = frozenset({"quality_score", "campaign_name"})


@attrs.frozen
class AuctionRow(_RowBase):
    """One domain in the auction insights report (the account itself: `is_self` or domain "You")."""

    domain: str
    impression_share: float
    overlap_rate: float | None = None
    outranking_share: float | None = None
    position_above_rate: float | None = None
    top_of_page_rate: float | None = None
    is_self: bool = False

    _KINDS: ClassVar[dict[str, str]] = {
        "domain": _TEXT,
        "impression_share": _RATIO,
        "overlap_rate": _RATIO,
        "outranking_share": _RATIO,
        "position_above_rate": _RATIO,
        "top_of_page_rate": _RATIO,
        "is_self": _FLAG,
    }
    _NULLABLE: ClassVar[frozenset[str]] = frozenset(
        {"overlap_rate", "outranking_share", "position_above_rate", "top_of_page_rate"}
    )

    @property
    def is_account(self) -> bool:
        """True for the account's own row."""
        return self.is_self or self.domain.strip().casefold() == "you"


@attrs.frozen
class AssetGroupRow(_RowBase):
    """One Performance Max asset group summed over the period."""

    asset_group_id: str
    asset_group_name: str
    campaign_id: str
    campaign_name: str
    status: str
    impressions: int
    clicks: int
    cost: float
    conversions: float
    conversion_value: float

    _KINDS: ClassVar[dict[str, str]] = {
        "asset_group_id": _ID,
        "asset_group_name": _TEXT,
        "campaign_id": _ID,
        "campaign_name": _TEXT,
        "status": _TEXT,
        "impressions": _COUNT,
        "clicks": _COUNT,
        "cost": _AMOUNT,
        "conversions": _AMOUNT,
        "conversion_value": _AMOUNT,
    }
