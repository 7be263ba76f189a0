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

What is the library's, and what is ours
---------------------------------------
The search for the next matching wall time is cronsim's (the healthchecks.io author's
cron library), given the canonical text and a naive local wall time. What stays here
is what cronsim 2.8 does not do, as read in its source and tested:

* the ``TZ=`` / ``CRON_TZ=`` prefix, the macros and the length bound: it has none;
* validation: its errors say only "Bad minute", and it accepts more than the syntax
  above (a sixth, seconds, field; ``L``, ``LW``, ``#`` and ``5L``; steps larger than
  the field, ``*/60`` meaning minute 0);
* the canonical text that equality rests on: it has none;
* the daylight saving rules: it applies its own only when neither the minute nor the
  hour field starts with ``*``, and walks real instants otherwise, so ``0 * * * *``
  fires twice in a repeated hour and ``* 2 * * *`` not at all on a spring-forward day;
  started inside a repeated hour, ``30 2 * * *`` gives a time before the start.
  Wall times are therefore mapped to instants here (`CronSchedule._instant`).
"""

from __future__ import annotations

import calendar
import itertools
import math
import re
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Never
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs
from cronsim import CronSim, CronSimError

__all__ = ["MAX_EXPRESSION_LENGTH", "CronError", "CronSchedule", "parse_cron"]

MAX_EXPRESSION_LENGTH = 200
_MAX_TIMEZONE_LENGTH = 100

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_ONE_SECOND = timedelta(seconds=1)
# Any naive time: parse_cron has cronsim parse the canonical text once, starting here.
_PROBE_WALL = datetime(2000, 1, 1)

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
# Hand-written validation, for messages that name what is wrong and to keep out what
# cronsim would accept beyond this syntax (module docstring). The values it yields feed
# only the canonical text; the fire times come from cronsim's reading of that text.


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
        # (2000 is a leap year, so February 29 counts as existing). cronsim makes the
        # same check, but says only "Bad day-of-month".
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
    try:
        # The fire times are cronsim's reading of the canonical text: have it read the
        # text now, so that a disagreement shows as a CronError here, not in the scheduler.
        CronSim(canonical, _PROBE_WALL)
    except CronSimError as error:
        fail(f"cronsim rejects the canonical form {canonical!r}: {error}")
    return CronSchedule(expression=canonical, timezone=zone.key, zone=zone)


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
    _zone: ZoneInfo = attrs.field(eq=False, repr=False)

    def __str__(self) -> str:
        if self.timezone == "UTC":
            return self.expression
        return f"TZ={self.timezone} {self.expression}"

    # -- public

    def next_after(self, ts: float) -> float:
        """The first fire time strictly after Unix timestamp `ts` (seconds).

        Computed in the schedule's timezone, with the DST rules of the module docstring.
        Raises CronError only when the next fire time would fall after the year 9999.
        """
        return float(next(self._fire_times(ts)))

    def ticks_between(self, start: float, end: float, limit: int = 10000) -> list[float]:
        """Fire times t with ``start < t <= end``, in order; at most `limit` (the earliest)."""
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        if math.isnan(end):
            raise ValueError("end must not be NaN")
        ticks: list[float] = []
        if limit == 0:
            return ticks
        for instant in self._fire_times(start):
            if instant > end:
                break
            ticks.append(float(instant))
            if len(ticks) == limit:
                break
        return ticks

    # -- fire times

    def _fire_times(self, ts: float) -> Iterator[int]:
        """Fire instants (Unix seconds) strictly after `ts`, in order, without end.

        cronsim walks the matching naive wall times after the local time of `ts`; each
        becomes the first instant at which the clock reads it (`_instant`). Instants
        never decrease along the walk: those not after the last one are wall times that
        fired already (a repeated hour) or collapse into one instant (a gap).
        """
        seconds = _seconds(ts)
        try:
            local = (_EPOCH + timedelta(seconds=seconds)).astimezone(self._zone)
        except OverflowError:
            raise ValueError(f"timestamp {ts!r} is out of range") from None
        walls = CronSim(self.expression, local.replace(tzinfo=None))
        last, after = seconds, ts
        while True:
            try:
                wall = next(walls)
            except (OverflowError, StopIteration):
                # OverflowError: the walk passed the year 9999. StopIteration (cronsim gives
                # up after 50 years without a match) cannot come first: the rarest valid
                # schedule, February 29th on a Sunday, fires at least every 40 years.
                raise CronError(
                    self.expression, f"no fire time after {after!r} before the year 10000"
                ) from None
            instant = self._instant(wall)
            if instant > last:
                last = instant
                after = float(instant)
                yield instant

    # -- wall time to instant

    def _wall_at(self, seconds: int) -> datetime:
        return (_EPOCH + timedelta(seconds=seconds)).astimezone(self._zone).replace(tzinfo=None)

    def _instant(self, wall: datetime) -> int:
        """The first instant at which the local clock reads `wall` or later.

        Hand-written: cronsim's DST handling is not these rules (module docstring).
        """
        naive = (wall.toordinal() - _EPOCH_ORDINAL) * 86400 + (
            wall.hour * 3600 + wall.minute * 60 + wall.second
        )
        if self.timezone == "UTC":
            return naive
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
