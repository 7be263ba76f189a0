"""Cron expressions: parsing, and the fire times they describe.

Syntax
------
Five fields, separated by whitespace::

    minute  hour  day-of-month  month  day-of-week
    0-59    0-23  1-31          1-12   0-7 (0 and 7 are both Sunday)

Each field is a comma-separated list of items; an item is ``*``, a number ``a``, a
range ``a-b``, or one of those with a step: ``*/n``, ``a-b/n``, and ``a/n`` (short for
``a-<field maximum>/n``). Months may be named ``jan``..``dec`` and weekdays
``sun``..``sat`` (case-insensitive), also as range ends (``mon-fri``). Ranges may not
run backwards; for "Saturday to Sunday" write ``6-7`` or ``sat,sun``.

The macros ``@hourly``, ``@daily`` (= ``@midnight``), ``@weekly``, ``@monthly`` and
``@yearly`` (= ``@annually``) stand for ``0 * * * *``, ``0 0 * * *``, ``0 0 * * 0``,
``0 0 1 * *`` and ``0 0 1 1 *``.

A timezone may prefix the expression, as in Inngest: ``TZ=Europe/Paris 0 9 * * *``
(``CRON_TZ=`` is accepted too), or be passed to `parse_cron` separately. Without one,
the schedule runs in UTC.

Day-of-month and day-of-week (classic Vixie cron)
-------------------------------------------------
If either field starts with ``*`` (``*``, ``*/2``, ...), a day must match both fields.
Otherwise both are restricted and a day matches when EITHER field matches:
``0 0 13 * fri`` fires on every 13th and on every Friday.

Daylight saving time
--------------------
A schedule names wall-clock times in its timezone. Each matching wall time fires at the
first instant at which the local clock reads that time or later. So:

* a wall time skipped by a spring-forward gap fires once, at the first valid instant
  after the gap (as cronie/Vixie cron do): ``30 2 * * *`` in Europe/Paris fires at
  03:00 local time on the spring-forward day. All skipped wall times of a gap collapse
  into that one instant; a schedule never fires twice at the same instant.
* a wall time repeated when the clocks fall back fires once, at its first occurrence
  (the one still on summer time); the repeat is not a fire time.

Fire times are whole minutes of local wall time (in every current zone, whole minutes
of UTC too).
"""

from __future__ import annotations

import bisect
import calendar
import itertools
import math
import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Never
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

__all__ = ["MAX_EXPRESSION_LENGTH", "CronError", "CronSchedule", "parse_cron"]

MAX_EXPRESSION_LENGTH = 200
_MAX_TIMEZONE_LENGTH = 100
# The Gregorian calendar repeats every 400 years (146097 days, exactly 20871 weeks), so
# a schedule that fires at all fires within any 400-year span.
_SEARCH_YEARS = 401
_MAX_YEAR = 9999

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_ONE_SECOND = timedelta(seconds=1)

_MACROS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
_MONTH_NAMES = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
        start=1,
    )
}
_DOW_NAMES = {name: number for number, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
_NUMBER = re.compile(r"[0-9]+")
_TZ_PREFIXES = ("tz=", "cron_tz=")


@attrs.frozen
class _FieldSpec:
    name: str
    low: int
    high: int
    names: dict[str, int]


_MINUTE = _FieldSpec("minute", 0, 59, {})
_HOUR = _FieldSpec("hour", 0, 23, {})
_DOM = _FieldSpec("day-of-month", 1, 31, {})
_MONTH = _FieldSpec("month", 1, 12, _MONTH_NAMES)
_DOW = _FieldSpec("day-of-week", 0, 7, _DOW_NAMES)
_FIELDS = (_MINUTE, _HOUR, _DOM, _MONTH, _DOW)
_FIELD_NAMES = frozenset(spec.name for spec in _FIELDS)


def _shown(expression: str) -> str:
    """The expression as quoted in error messages: shortened, control characters escaped."""
    if len(expression) > 60:
        expression = expression[:57] + "..."
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in expression)


class CronError(ValueError):
    """An invalid cron expression (or timezone). The message names the field and value.

    For example ``cron "*/0 * * * *": minute field: step must be >= 1``.
    """

    def __init__(self, expression: str, reason: str, field: str | None = None) -> None:
        self.expression = expression
        self.reason = reason
        self.field = field
        if field is None:
            where = ""
        elif field in _FIELD_NAMES:
            where = f"{field} field: "
        else:
            where = f"{field}: "
        super().__init__(f'cron "{_shown(expression)}": {where}{reason}')

    def __reduce__(self) -> tuple[type[CronError], tuple[str, str, str | None]]:
        return (type(self), (self.expression, self.reason, self.field))


# --------------------------------------------------------------------------- parsing


@attrs.frozen
class _Item:
    """One list item of a field: `start`-`end` every `step`; `star` if written `*`."""

    start: int
    end: int
    step: int
    star: bool
    text: str  # normalised spelling: names as numbers, no leading zeros

    def values(self) -> range:
        return range(self.start, self.end + 1, self.step)


@attrs.frozen
class _Field:
    values: tuple[int, ...]  # sorted, distinct; day-of-week folded into 0-6
    star: bool  # the field text starts with "*" (Vixie's DOM_STAR / DOW_STAR)
    items: tuple[_Item, ...]


def _parse_value(text: str, spec: _FieldSpec, fail: _Fail) -> int:
    lowered = text.lower()
    if lowered in spec.names:
        return spec.names[lowered]
    if not text:
        fail("missing number")
    if not _NUMBER.fullmatch(text):
        if spec.names and text.isalpha():
            fail(f"unknown name {text!r}")
        fail(f"{text!r} is not a number")
    value = int(text)
    if not spec.low <= value <= spec.high:
        fail(f"{value} is out of range {spec.low}-{spec.high}")
    return value


def _parse_step(text: str, spec: _FieldSpec, fail: _Fail) -> int:
    if not _NUMBER.fullmatch(text):
        fail(f"step {text!r} is not a number" if text else "missing step after '/'")
    step = int(text)
    if step < 1:
        fail("step must be >= 1")
    if step > spec.high:
        fail(f"step {step} is larger than {spec.high}")
    return step


def _parse_item(text: str, spec: _FieldSpec, fail: _Fail) -> _Item:
    if not text:
        fail("empty list item")
    base, slash, step_text = text.partition("/")
    step = _parse_step(step_text, spec, fail) if slash else 1
    suffix = f"/{step}" if slash else ""
    if base == "*":
        return _Item(spec.low, spec.high, step, True, "*" + suffix)
    first, dash, last = base.partition("-")
    start = _parse_value(first, spec, fail)
    if dash:
        end = _parse_value(last, spec, fail)
        if start > end:
            hint = " (write 7 for Sunday at the end of a range)" if spec is _DOW else ""
            fail(f"range {base!r} runs backwards{hint}")
        return _Item(start, end, step, False, f"{start}-{end}{suffix}")
    if slash:  # "a/n": from a to the field maximum
        return _Item(start, spec.high, step, False, f"{start}{suffix}")
    return _Item(start, start, 1, False, str(start))


def _parse_field(text: str, spec: _FieldSpec, fail: _Fail) -> _Field:
    items = tuple(_parse_item(part, spec, fail) for part in text.split(","))
    values: set[int] = set()
    for item in items:
        values.update(item.values())
    if spec is _DOW and 7 in values:
        values.discard(7)
        values.add(0)
    return _Field(tuple(sorted(values)), text.startswith("*"), items)


class _Fail:
    """Raises CronError for one expression and (optionally) one field."""

    def __init__(self, expression: str, field: str | None = None) -> None:
        self.expression = expression
        self.field = field

    def __call__(self, reason: str) -> Never:
        raise CronError(self.expression, reason, self.field)


def _split_timezone(tokens: list[str]) -> tuple[str | None, list[str]]:
    if tokens and tokens[0].lower().startswith(_TZ_PREFIXES):
        return tokens[0].partition("=")[2], tokens[1:]
    return None, tokens


def _load_timezone(key: str, fail: _Fail) -> ZoneInfo:
    if not key:
        fail("empty timezone")
    if len(key) > _MAX_TIMEZONE_LENGTH:
        fail(f"timezone name is longer than {_MAX_TIMEZONE_LENGTH} characters")
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        fail(f"unknown timezone {key!r}")


def parse_cron(expr: str, timezone: str | None = None) -> CronSchedule:
    """Parse a cron expression (see the module docstring) into a `CronSchedule`.

    `timezone` is an IANA zone name (``"Europe/Paris"``); it may instead be given as a
    ``TZ=`` / ``CRON_TZ=`` prefix of `expr`. Giving two different zones is an error.
    Raises `CronError` for anything invalid, including expressions that can never fire
    (``0 0 31 2 *``).
    """
    fail = _Fail(expr)
    if len(expr) > MAX_EXPRESSION_LENGTH:
        fail(f"expression is {len(expr)} characters long, the limit is {MAX_EXPRESSION_LENGTH}")
    prefix_zone, tokens = _split_timezone(expr.split())
    if not tokens:
        fail("empty expression" if prefix_zone is None else "no schedule after the timezone")

    tz_fail = _Fail(expr, "timezone")
    if prefix_zone is not None and timezone is not None and prefix_zone != timezone:
        tz_fail(f"expression says {prefix_zone!r} but the timezone argument says {timezone!r}")
    zone_key = prefix_zone if prefix_zone is not None else timezone
    zone = _load_timezone(zone_key, tz_fail) if zone_key is not None else ZoneInfo("UTC")

    if tokens[0].startswith("@"):
        macro = tokens[0].lower()
        if macro not in _MACROS:
            fail(f"unknown macro {tokens[0]!r} (known: {', '.join(_MACROS)})")
        if len(tokens) > 1:
            fail(f"macro {tokens[0]} takes no fields, got {len(tokens) - 1} more")
        tokens = _MACROS[macro].split()
    if len(tokens) != len(_FIELDS):
        fail(
            f"expected {len(_FIELDS)} fields (minute hour day-of-month month day-of-week), got {len(tokens)}"
        )
    minute, hour, dom, month, dow = (
        _parse_field(token, spec, _Fail(expr, spec.name)) for token, spec in zip(tokens, _FIELDS, strict=True)
    )
    day_or = not dom.star and not dow.star
    if not day_or and not any(day <= _days_in_month(2000, m) for m in month.values for day in dom.values):
        # Only day-of-month decides, and no chosen day exists in any chosen month
        # (2000 is a leap year, so February 29 counts as existing).
        _Fail(expr, _DOM.name)(
            f"no day in {tokens[2]!r} exists in month {tokens[3]!r}, so the schedule never fires"
        )

    fields = (minute, hour, dom, month, dow)
    texts = [_render(field, spec) for field, spec in zip(fields, _FIELDS, strict=True)]
    canonical = " ".join(texts)
    if len(canonical) > MAX_EXPRESSION_LENGTH:
        # Pathological lists can render longer than written; keep the (never longer)
        # normalised spelling so that the canonical text always parses again.
        canonical = " ".join(",".join(item.text for item in field.items) for field in fields)
    return CronSchedule(
        expression=canonical,
        timezone=zone.key,
        minutes=minute.values,
        hours=hour.values,
        days=dom.values,
        months=month.values,
        weekdays=frozenset(dow.values),
        day_or=day_or,
        zone=zone,
    )


# ------------------------------------------------------------------- canonical text


def _progression_text(values: Sequence[int]) -> str | None:
    """``a-b/n`` if `values` (sorted, >= 3 of them) is an arithmetic progression."""
    if len(values) < 3:
        return None
    step = values[1] - values[0]
    if step < 2 or any(b - a != step for a, b in itertools.pairwise(values)):
        return None
    return f"{values[0]}-{values[-1]}/{step}"


def _list_text(values: Sequence[int]) -> str:
    """Values as runs (``a-b``) and singles; never starts with ``*``."""
    progression = _progression_text(values)
    if progression is not None:
        return progression
    parts: list[str] = []
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[j] + 1:
            j += 1
        if j - i >= 2:
            parts.append(f"{values[i]}-{values[j]}")
        else:
            parts.extend(str(v) for v in values[i : j + 1])
        i = j + 1
    return ",".join(parts)


def _render(field: _Field, spec: _FieldSpec) -> str:
    """The canonical text of a field: depends only on its values (and, for the two day
    fields, on whether it is written with a leading ``*``)."""
    values = field.values
    full = range(spec.low, (6 if spec is _DOW else spec.high) + 1)
    if spec not in (_DOM, _DOW):
        # "*/n" where it reads naturally: n divides the range, or gives 3+ values
        # ("*/30" and "*/7" for minutes, but "0,50" rather than "*/50").
        for step in range(1, len(full)):
            covered = full[::step]
            if values == tuple(covered) and (len(full) % step == 0 or len(covered) >= 3):
                return "*" if step == 1 else f"*/{step}"
        return _list_text(values)
    if not field.star:
        # Not "*"-led: must stay so, or the day-of-month/day-of-week rule would change.
        return _list_text(values)
    # A "*"-led field holds the field minimum: write it as the smallest "*/n" it
    # covers plus whatever else it holds.
    present = set(values)
    step = next(n for n in range(1, len(full) + 1) if present.issuperset(full[::n]))
    head = "*" if step == 1 else f"*/{step}"
    rest = sorted(present.difference(full[::step]))
    return f"{head},{_list_text(rest)}" if rest else head


# ------------------------------------------------------------------------- schedule


def _days_in_month(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1]


def _first_at_least(values: Sequence[int], value: int) -> int | None:
    index = bisect.bisect_left(values, value)
    return values[index] if index < len(values) else None


def _seconds(ts: float) -> int:
    if not math.isfinite(ts):
        raise ValueError(f"timestamp must be finite, got {ts!r}")
    return math.floor(ts)


@attrs.frozen
class CronSchedule:
    """A parsed cron expression; build one with `parse_cron`.

    `expression` is the canonical five-field text (macros expanded, names as numbers,
    lists normalised) and `timezone` the IANA zone name ("UTC" by default). Two
    schedules are equal when these are. ``str()`` gives ``expression``, prefixed with
    ``TZ=<zone>`` outside UTC; it parses back to an equal schedule (as does
    ``parse_cron(s.expression, s.timezone)``).
    """

    expression: str
    timezone: str
    _minutes: tuple[int, ...] = attrs.field(eq=False, repr=False)
    _hours: tuple[int, ...] = attrs.field(eq=False, repr=False)
    _days: tuple[int, ...] = attrs.field(eq=False, repr=False)
    _months: tuple[int, ...] = attrs.field(eq=False, repr=False)
    _weekdays: frozenset[int] = attrs.field(eq=False, repr=False)  # 0 = Sunday
    _day_or: bool = attrs.field(eq=False, repr=False)
    _zone: ZoneInfo = attrs.field(eq=False, repr=False)

    def __str__(self) -> str:
        if self.timezone == "UTC":
            return self.expression
        return f"TZ={self.timezone} {self.expression}"

    # -- public

    def next_after(self, ts: float) -> float:
        """The first fire time strictly after Unix timestamp `ts` (seconds).

        Computed in the schedule's timezone, with the DST rules of the module docstring.
        Skips whole months, days and hours, so rare schedules (``0 0 29 2 *``) cost no
        more than a few hundred steps. Raises CronError only when the next fire time
        would fall after the year 9999.
        """
        seconds = _seconds(ts)
        try:
            local = (_EPOCH + timedelta(seconds=seconds)).astimezone(self._zone)
        except OverflowError:
            raise ValueError(f"timestamp {ts!r} is out of range") from None
        limit_year = min(local.year + _SEARCH_YEARS, _MAX_YEAR)
        # Wall times up to the current minute have fired already (or fire at an
        # instant <= ts); start one minute later.
        year, month, day, hour, minute = (
            local.year,
            local.month,
            local.day,
            local.hour,
            local.minute + 1,
        )
        while True:
            wall = self._next_wall(year, month, day, hour, minute, limit_year)
            if wall is None:
                raise CronError(
                    self.expression,
                    f"no fire time after {ts!r} before the year {limit_year + 1}",
                )
            instant = self._instant(wall)
            if instant > seconds:
                return float(instant)
            # Only inside a repeated (fall-back) hour: this wall time fired at its
            # first occurrence, before ts.
            year, month, day, hour, minute = (
                wall.year,
                wall.month,
                wall.day,
                wall.hour,
                wall.minute + 1,
            )

    def ticks_between(self, start: float, end: float, limit: int = 10000) -> list[float]:
        """Fire times t with ``start < t <= end``, in order; at most `limit` (the earliest)."""
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        if math.isnan(end):
            raise ValueError("end must not be NaN")
        ticks: list[float] = []
        t = start
        while len(ticks) < limit:
            t = self.next_after(t)
            if t > end:
                break
            ticks.append(t)
        return ticks

    # -- matching wall times

    def _first_day(self, year: int, month: int, day: int) -> int | None:
        """The first matching day >= `day` of the month, if any."""
        last = _days_in_month(year, month)
        if day > last:
            return None
        weekday = (date(year, month, day).weekday() + 1) % 7  # cron numbering, 0 = Sunday
        if self._day_or:
            by_dom = _first_at_least(self._days, day)
            by_dow = next((day + k for k in range(7) if (weekday + k) % 7 in self._weekdays), None)
            found = min((d for d in (by_dom, by_dow) if d is not None), default=None)
            return found if found is not None and found <= last else None
        for candidate in self._days[bisect.bisect_left(self._days, day) :]:
            if candidate > last:
                break
            if (weekday + candidate - day) % 7 in self._weekdays:
                return candidate
        return None

    def _next_wall(
        self, year: int, month: int, day: int, hour: int, minute: int, limit_year: int
    ) -> datetime | None:
        """The first matching naive wall time at or after the given one.

        The components may overflow by one (minute 60, hour 24, day 32, month 13);
        each step moves forward a whole month, day or hour where nothing can match.
        """
        while year <= limit_year:
            found_month = _first_at_least(self._months, month)
            if found_month is None:
                year, month, day, hour, minute = year + 1, 1, 1, 0, 0
                continue
            if found_month != month:
                month, day, hour, minute = found_month, 1, 0, 0
            found_day = self._first_day(year, month, day)
            if found_day is None:
                month, day, hour, minute = month + 1, 1, 0, 0
                continue
            if found_day != day:
                day, hour, minute = found_day, 0, 0
            found_hour = _first_at_least(self._hours, hour)
            if found_hour is None:
                day, hour, minute = day + 1, 0, 0
                continue
            if found_hour != hour:
                hour, minute = found_hour, 0
            found_minute = _first_at_least(self._minutes, minute)
            if found_minute is None:
                hour, minute = hour + 1, 0
                continue
            return datetime(year, month, day, hour, found_minute)
        return None

    # -- wall time to instant

    def _wall_at(self, seconds: int) -> datetime:
        return (_EPOCH + timedelta(seconds=seconds)).astimezone(self._zone).replace(tzinfo=None)

    def _instant(self, wall: datetime) -> int:
        """The first instant at which the local clock reads `wall` or later."""
        naive = (wall.toordinal() - _EPOCH_ORDINAL) * 86400 + (
            wall.hour * 3600 + wall.minute * 60 + wall.second
        )
        before = wall.replace(tzinfo=self._zone, fold=0).utcoffset()
        after = wall.replace(tzinfo=self._zone, fold=1).utcoffset()
        assert before is not None and after is not None
        if before >= after:
            # Unambiguous, or repeated (fall back): fold=0 is the first occurrence.
            return naive - before // _ONE_SECOND
        # Skipped (spring forward): find the transition, the first instant whose wall
        # time is >= `wall`. lo reads earlier than `wall` (old offset), hi does not.
        lo, hi = naive - after // _ONE_SECOND, naive - before // _ONE_SECOND
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self._wall_at(mid) >= wall:
                hi = mid
            else:
                lo = mid
        return hi
