"""Cron expressions: syntax, errors, fire times, timezones and DST, against brute force."""

from __future__ import annotations

import calendar
import functools
import itertools
import math
import pickle
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deneva.engine.cron import CronError, parse_cron

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MINUTE = 60
HOUR = 3600
DAY = 86400


def at(
    year: int,
    month: int,
    day: int,
    hour: int = 0,
    minute: int = 0,
    tz: ZoneInfo | None = None,
    fold: int = 0,
) -> float:
    """A Unix timestamp from a wall time (UTC unless `tz`)."""
    return datetime(year, month, day, hour, minute, tzinfo=tz or UTC, fold=fold).timestamp()


def wall(ts: float, tz: ZoneInfo | None = None) -> str:
    """A timestamp as ISO text with its offset, for readable assertions."""
    return datetime.fromtimestamp(ts, tz or UTC).isoformat(timespec="minutes")


def walls(ticks: Sequence[float], tz: ZoneInfo | None = None) -> list[str]:
    return [wall(t, tz) for t in ticks]


# ------------------------------------------------------------------------------ syntax


@pytest.mark.parametrize(
    ("expr", "canonical"),
    [
        ("* * * * *", "* * * * *"),
        ("  *\t*  * *   *  ", "* * * * *"),
        ("0 9 * * *", "0 9 * * *"),
        ("05 09 * * *", "5 9 * * *"),
        # ranges, steps, lists
        ("10-20 * * * *", "10-20 * * * *"),
        ("*/15 * * * *", "*/15 * * * *"),
        ("0-59/15 * * * *", "*/15 * * * *"),
        ("*/1 * * * *", "* * * * *"),
        ("5-20/5 * * * *", "5-20/5 * * * *"),
        ("5/10 * * * *", "5-55/10 * * * *"),
        ("1,2,3,7 * * * *", "1-3,7 * * * *"),
        ("3,1,2,1 * * * *", "1-3 * * * *"),
        ("1,3 * * * *", "1,3 * * * *"),
        ("0,30 */6 1,15 * *", "*/30 */6 1,15 * *"),
        ("*/20,5 * * * *", "0,5,20,40 * * * *"),
        ("0 0-23/2 * * *", "0 */2 * * *"),
        ("*/7 */12 * */11 *", "*/7 */12 * 1,12 *"),
        ("*/50 * * * *", "0,50 * * * *"),
        ("0 0 * 1-12 *", "0 0 * * *"),
        # names, any case; 0 and 7 are both Sunday
        ("0 9 * jan-mar mon-fri", "0 9 * 1-3 1-5"),
        ("0 9 * JAN,Dec SUN", "0 9 * 1,12 0"),
        ("0 9 * * Sat,sun", "0 9 * * 0,6"),
        ("0 0 * * 7", "0 0 * * 0"),
        ("0 0 * * 0,7", "0 0 * * 0"),
        ("0 0 * * 5-7", "0 0 * * 0,5,6"),
        ("0 0 * * fri-7", "0 0 * * 0,5,6"),
        ("0 0 * * 0-7", "0 0 * * 0-6"),
        ("0 0 * * mon-fri/2", "0 0 * * 1-5/2"),
        # a restricted day field is never written with "*" (it would change the day rule),
        # a "*"-led one always is
        ("0 0 1-31 * fri", "0 0 1-31 * 5"),
        ("0 0 */2 * fri", "0 0 */2 * 5"),
        ("0 0 */20,5 * *", "0 0 */20,5 * *"),
        ("0 0 * * */2", "0 0 * * */2"),
        ("0 0 * * */7", "0 0 * * */7"),
        # macros
        ("@hourly", "0 * * * *"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@weekly", "0 0 * * 0"),
        ("@monthly", "0 0 1 * *"),
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@DAILY", "0 0 * * *"),
    ],
)
def test_syntax_and_canonical_text(expr: str, canonical: str) -> None:
    schedule = parse_cron(expr)
    assert schedule.expression == canonical
    assert str(schedule) == canonical
    assert schedule.timezone == "UTC"
    assert parse_cron(canonical) == schedule
    assert parse_cron(str(schedule)) == schedule


def test_equal_schedules_compare_and_hash_equal() -> None:
    assert parse_cron("@daily") == parse_cron("0 0 * * *") == parse_cron("00 00 * jan-dec *")
    assert hash(parse_cron("0 9 * * mon-fri")) == hash(parse_cron("0 9 * * 1,2,3,4,5"))
    assert parse_cron("0 9 * * *") != parse_cron("0 9 * * *", "Europe/Paris")
    assert repr(parse_cron("@hourly")) == "CronSchedule(expression='0 * * * *', timezone='UTC')"


def test_schedule_is_immutable() -> None:
    schedule = parse_cron("* * * * *")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        schedule.expression = "0 0 * * *"  # type: ignore[misc]


def test_timezone_prefix_and_argument() -> None:
    by_prefix = parse_cron("TZ=Europe/Paris 0 9 * * *")
    assert by_prefix.timezone == "Europe/Paris"
    assert by_prefix.expression == "0 9 * * *"
    assert str(by_prefix) == "TZ=Europe/Paris 0 9 * * *"
    assert parse_cron(str(by_prefix)) == by_prefix
    assert parse_cron("CRON_TZ=Europe/Paris 0 9 * * *") == by_prefix
    assert parse_cron("0 9 * * *", "Europe/Paris") == by_prefix
    assert parse_cron("TZ=Europe/Paris 0 9 * * *", "Europe/Paris") == by_prefix
    assert parse_cron("TZ=Europe/Paris @daily").expression == "0 0 * * *"
    utc = parse_cron("0 9 * * *", "UTC")
    assert utc == parse_cron("0 9 * * *")
    assert str(utc) == "0 9 * * *"


# ------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("expr", "field", "fragment"),
    [
        ("", None, "empty expression"),
        (" \t ", None, "empty expression"),
        ("* * * *", None, "expected 5 fields"),
        ("* * * * * *", None, "got 6"),
        ("* " * 101, None, "the limit is 200"),
        ("@reboot", None, "unknown macro '@reboot'"),
        ("@daily 0", None, "takes no fields"),
        ("60 * * * *", "minute", "60 is out of range 0-59"),
        ("* 24 * * *", "hour", "24 is out of range 0-23"),
        ("* * 0 * *", "day-of-month", "0 is out of range 1-31"),
        ("* * 32 * *", "day-of-month", "32 is out of range 1-31"),
        ("* * * 0 *", "month", "0 is out of range 1-12"),
        ("* * * 13 *", "month", "13 is out of range 1-12"),
        ("* * * * 8", "day-of-week", "8 is out of range 0-7"),
        ("*/0 * * * *", "minute", "step must be >= 1"),
        ("* 0-23/0 * * *", "hour", "step must be >= 1"),
        ("*/60 * * * *", "minute", "step 60 is larger than 59"),
        ("*/ * * * *", "minute", "missing step"),
        ("*/x * * * *", "minute", "step 'x' is not a number"),
        ("*/1/2 * * * *", "minute", "step '1/2' is not a number"),
        ("* * * foo *", "month", "unknown name 'foo'"),
        ("* * * mon *", "month", "unknown name 'mon'"),
        ("* * * * funday", "day-of-week", "unknown name 'funday'"),
        ("* * * * january", "day-of-week", "unknown name 'january'"),
        ("x * * * *", "minute", "'x' is not a number"),
        ("* 1.5 * * *", "hour", "'1.5' is not a number"),
        ("\uff11 * * * *", "minute", "is not a number"),  # a full-width digit
        ("-1 * * * *", "minute", "missing number"),
        ("1- * * * *", "minute", "missing number"),
        ("1-2-3 * * * *", "minute", "'2-3' is not a number"),
        ("*-5 * * * *", "minute", "'*' is not a number"),
        ("1,,2 * * * *", "minute", "empty list item"),
        ("1, * * * *", "minute", "empty list item"),
        ("30-10 * * * *", "minute", "range '30-10' runs backwards"),
        ("* * * dec-jan *", "month", "runs backwards"),
        ("* * * * sat-sun", "day-of-week", "write 7 for Sunday"),
        # syntax cronsim would accept but this module does not (a seconds field, L, W, #, ?)
        ("0 0 0 * * *", None, "expected 5 fields"),
        ("0 0 L * *", "day-of-month", "'L' is not a number"),
        ("0 0 LW * *", "day-of-month", "'LW' is not a number"),
        ("0 0 15W * *", "day-of-month", "'15W' is not a number"),
        ("0 0 ? * *", "day-of-month", "'?' is not a number"),
        ("0 0 * * 5#2", "day-of-week", "'5#2' is not a number"),
        ("0 0 * * 5L", "day-of-week", "'5L' is not a number"),
        # can never fire: no chosen day exists in any chosen month
        ("0 0 31 2 *", "day-of-month", "never fires"),
        ("0 0 30,31 feb *", "day-of-month", "never fires"),
        ("0 0 31 4,6,9,11 *", "day-of-month", "never fires"),
        ("0 0 30 2 */7", "day-of-month", "never fires"),  # "*"-led weekday: days must match both
        ("TZ=Mars/Olympus_Mons * * * * *", "timezone", "unknown timezone 'Mars/Olympus_Mons'"),
        ("CRON_TZ=../../etc/passwd * * * * *", "timezone", "unknown timezone"),
        ("TZ=/etc/localtime * * * * *", "timezone", "unknown timezone"),
        ("TZ= * * * * *", "timezone", "empty timezone"),
        ("TZ=Europe/Paris", None, "no schedule after the timezone"),
    ],
)
def test_bad_input_names_the_field(expr: str, field: str | None, fragment: str) -> None:
    with pytest.raises(CronError) as caught:
        parse_cron(expr)
    error = caught.value
    message = str(error)
    assert isinstance(error, ValueError)
    assert error.field == field
    assert message.startswith('cron "')
    assert fragment in message
    if field == "timezone":
        assert '": timezone: ' in message
    elif field is not None:
        assert f'": {field} field: ' in message


def test_error_message_format() -> None:
    with pytest.raises(CronError) as caught:
        parse_cron("*/0 * * * *")
    assert str(caught.value) == 'cron "*/0 * * * *": minute field: step must be >= 1'
    assert caught.value.expression == "*/0 * * * *"
    assert caught.value.reason == "step must be >= 1"


def test_error_survives_pickling_and_quotes_safely() -> None:
    with pytest.raises(CronError) as caught:
        parse_cron("* * * * * \n\x1b[31m" + "x" * 100)
    message = str(caught.value)
    assert "\n" not in message and "\x1b" not in message
    assert len(message) < 200
    copy = pickle.loads(pickle.dumps(caught.value))
    assert isinstance(copy, CronError)
    assert str(copy) == message
    assert copy.field == caught.value.field


@pytest.mark.parametrize(
    ("timezone", "fragment"),
    [
        ("Mars/Olympus_Mons", "unknown timezone"),
        ("Europe", "unknown timezone"),
        ("europe/paris ", "unknown timezone"),
        ("", "empty timezone"),
        ("A" * 101, "longer than 100 characters"),
    ],
)
def test_bad_timezone_argument(timezone: str, fragment: str) -> None:
    with pytest.raises(CronError) as caught:
        parse_cron("0 9 * * *", timezone)
    assert caught.value.field == "timezone"
    assert fragment in str(caught.value)


def test_conflicting_timezones() -> None:
    with pytest.raises(CronError, match="timezone: expression says 'Europe/Paris'"):
        parse_cron("TZ=Europe/Paris 0 9 * * *", "America/New_York")


@pytest.mark.parametrize("expr", ["0 0 29 2 *", "0 0 31 2 mon", "0 0 30 2 1", "0 0 29 2 */7", "0 0 31 * *"])
def test_rare_but_possible_expressions_parse(expr: str) -> None:
    schedule = parse_cron(expr)
    assert schedule.next_after(at(2025, 1, 1)) > at(2025, 1, 1)


def test_bad_timestamps() -> None:
    schedule = parse_cron("* * * * *")
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError, match="finite"):
            schedule.next_after(bad)
    with pytest.raises(ValueError, match="out of range"):
        schedule.next_after(1e12)
    with pytest.raises(ValueError, match="limit"):
        schedule.ticks_between(0, DAY, limit=-1)
    with pytest.raises(ValueError, match="NaN"):
        schedule.ticks_between(0, math.nan)


def test_no_fire_time_before_the_year_10000() -> None:
    assert parse_cron("* * * * *").next_after(at(9999, 12, 31, 23, 58)) == at(9999, 12, 31, 23, 59)
    with pytest.raises(CronError, match="no fire time .* before the year 10000"):
        parse_cron("0 0 1 1 *").next_after(at(9999, 6, 1))


# ------------------------------------------------------------------------ next_after


@pytest.mark.parametrize(
    ("expr", "after", "expected"),
    [
        # minutes
        ("* * * * *", at(2025, 5, 1, 12, 0), at(2025, 5, 1, 12, 1)),
        ("* * * * *", at(2025, 5, 1, 12, 0) + 30.5, at(2025, 5, 1, 12, 1)),
        ("* * * * *", at(2025, 5, 1, 12, 0) - 0.001, at(2025, 5, 1, 12, 0)),
        ("*/15 * * * *", at(2025, 5, 1, 12, 14), at(2025, 5, 1, 12, 15)),
        ("*/15 * * * *", at(2025, 5, 1, 12, 15), at(2025, 5, 1, 12, 30)),
        # hour boundary
        ("*/20 * * * *", at(2025, 5, 1, 12, 41), at(2025, 5, 1, 13, 0)),
        ("30 9-17 * * *", at(2025, 5, 1, 12, 31), at(2025, 5, 1, 13, 30)),
        # day boundary
        ("0 0 * * *", at(2025, 5, 1, 23, 59) + 59.9, at(2025, 5, 2)),
        ("30 9-17 * * *", at(2025, 5, 1, 17, 30), at(2025, 5, 2, 9, 30)),
        # month boundary, including months without the day
        ("0 0 1 * *", at(2025, 1, 31, 12), at(2025, 2, 1)),
        ("0 12 31 * *", at(2025, 1, 31, 13), at(2025, 3, 31, 12)),
        ("0 12 31 * *", at(2025, 3, 31, 12), at(2025, 5, 31, 12)),
        ("0 0 30 * *", at(2025, 1, 30), at(2025, 3, 30)),
        ("0 0 1 */3 *", at(2025, 1, 1), at(2025, 4, 1)),
        # year boundary
        ("0 0 1 1 *", at(2024, 12, 31, 23, 59), at(2025, 1, 1)),
        ("0 0 1 1 *", at(2025, 1, 1), at(2026, 1, 1)),
        ("59 23 31 12 *", at(2025, 1, 1), at(2025, 12, 31, 23, 59)),
        ("0 0 * 2 *", at(2025, 2, 28, 0, 1), at(2026, 2, 1)),
        # weekdays (2025-01-01 is a Wednesday)
        ("0 0 * * 0", at(2025, 1, 1), at(2025, 1, 5)),
        ("0 0 * * 7", at(2025, 1, 1), at(2025, 1, 5)),
        ("0 9 * * mon-fri", at(2025, 1, 3, 9), at(2025, 1, 6, 9)),
        ("0 0 * jun sun", at(2025, 1, 1), at(2025, 6, 1)),
        # before 1970
        ("0 0 1 1 *", at(1969, 6, 1), 0.0),
        ("15 6 * * *", at(1900, 1, 1), at(1900, 1, 1, 6, 15)),
    ],
)
def test_next_after(expr: str, after: float, expected: float) -> None:
    got = parse_cron(expr).next_after(after)
    assert (wall(got), got) == (wall(expected), expected)
    assert isinstance(got, float)
    assert got % 60 == 0


def test_february_29() -> None:
    leap = parse_cron("0 0 29 2 *")
    assert walls(leap.ticks_between(at(2023, 1, 1), at(2041, 1, 1))) == [
        f"{year}-02-29T00:00+00:00" for year in (2024, 2028, 2032, 2036, 2040)
    ]
    # 2100 is not a leap year: eight years between two February 29ths.
    assert wall(leap.next_after(at(2096, 3, 1))) == "2104-02-29T00:00+00:00"
    # Only February 29ths that fall on a Sunday (a "*"-led weekday field: AND).
    sunday = parse_cron("0 0 29 2 */7")
    got = [datetime.fromtimestamp(t, UTC) for t in sunday.ticks_between(at(2000, 1, 1), at(2100, 1, 1))]
    assert [(d.year, d.month, d.day) for d in got] == [(y, 2, 29) for y in (2004, 2032, 2060, 2088)]
    assert all(d.isoweekday() == 7 for d in got)


def test_rare_schedules_step_from_match_to_match() -> None:
    """A hundred February 29ths in a row (about 400 years), found by stepping from match to
    match: a scan minute by minute would take hours. Not a timed test: the answers are
    checked, and a slow scan shows as a suite that does not finish."""
    leap_days = parse_cron("0 0 29 2 *")
    t = at(1980, 1, 1)
    found = []
    for _ in range(100):
        t = leap_days.next_after(t)
        found.append(t)
    years = [y for y in range(1980, 2500) if calendar.isleap(y)][:100]
    assert [datetime.fromtimestamp(f, UTC).date() for f in found] == [date(y, 2, 29) for y in years]


def test_forty_years_between_fire_times() -> None:
    # The rarest schedule that can fire: February 29th on a Sunday, 40 years apart across
    # 2100 (not a leap year). cronsim gives up after 50 years without a match.
    sunday = parse_cron("0 0 29 2 */7")
    assert walls(sunday.ticks_between(at(2080, 1, 1), at(2140, 1, 1))) == [
        "2088-02-29T00:00+00:00",
        "2128-02-29T00:00+00:00",
    ]
    assert wall(sunday.next_after(at(2088, 3, 1))) == "2128-02-29T00:00+00:00"


def test_day_of_month_or_day_of_week() -> None:
    january = (at(2025, 1, 1) - 1, at(2025, 1, 31, 23, 59))

    def days(expr: str) -> list[int]:
        return [datetime.fromtimestamp(t, UTC).day for t in parse_cron(expr).ticks_between(*january)]

    fridays = [3, 10, 17, 24, 31]
    assert days("0 0 * * fri") == fridays
    assert days("0 0 13 * *") == [13]
    # both restricted: either matches
    assert days("0 0 13 * fri") == [3, 10, 13, 17, 24, 31]
    assert days("0 0 1-31 * fri") == list(range(1, 32))
    assert days("0 0 1,2 * 5-7") == [1, 2, 3, 4, 5, 10, 11, 12, 17, 18, 19, 24, 25, 26, 31]
    # one of them "*"-led: both must match
    assert days("0 0 */2 * fri") == [3, 17, 31]
    assert days("0 0 13 * */7") == []  # January 13th 2025 is a Monday
    assert days("0 0 5 * */7") == [5]  # a Sunday
    assert days("0 0 * * *") == list(range(1, 32))


# ------------------------------------------------------------------------- timezones


def test_timezone_moves_the_fire_time() -> None:
    nine = parse_cron("0 9 * * *", "America/New_York")
    assert wall(nine.next_after(at(2025, 1, 15))) == "2025-01-15T14:00+00:00"  # EST
    assert wall(nine.next_after(at(2025, 7, 15))) == "2025-07-15T13:00+00:00"  # EDT
    assert wall(nine.next_after(at(2025, 7, 15)), NEW_YORK) == "2025-07-15T09:00-04:00"
    assert parse_cron("TZ=America/New_York 0 9 * * *").next_after(at(2025, 1, 15)) == at(2025, 1, 15, 14)
    assert parse_cron("0 9 * * *", "Asia/Kolkata").next_after(at(2025, 1, 15)) == at(2025, 1, 15, 3, 30)
    assert parse_cron("0 9 * * *").next_after(at(2025, 1, 15)) == at(2025, 1, 15, 9)


def test_timezone_decides_the_day() -> None:
    # Monday 00:00 in Tokyo is Sunday 15:00 UTC.
    monday = parse_cron("0 0 * * mon", "Asia/Tokyo")
    assert wall(monday.next_after(at(2025, 1, 1))) == "2025-01-05T15:00+00:00"
    # New Year in Auckland, in the UTC previous year.
    new_year = parse_cron("@yearly", "Pacific/Auckland")
    assert wall(new_year.next_after(at(2025, 6, 1))) == "2025-12-31T11:00+00:00"


def test_dst_gap_fires_once_at_the_end_of_the_gap() -> None:
    # Europe/Paris, 2025-03-30: 02:00 CET jumps to 03:00 CEST (01:00 UTC).
    half_past_two = parse_cron("30 2 * * *", "Europe/Paris")
    ticks = half_past_two.ticks_between(at(2025, 3, 28, 12), at(2025, 4, 1, 12))
    assert walls(ticks, PARIS) == [
        "2025-03-29T02:30+01:00",
        "2025-03-30T03:00+02:00",  # 02:30 does not exist
        "2025-03-31T02:30+02:00",
        "2025-04-01T02:30+02:00",
    ]
    assert ticks[1] == at(2025, 3, 30, 1)
    # Every skipped wall time lands on the same instant, which fires once.
    two_and_three = parse_cron("0,30 2 * * *", "Europe/Paris")
    assert walls(two_and_three.ticks_between(at(2025, 3, 30), at(2025, 3, 30, 12)), PARIS) == [
        "2025-03-30T03:00+02:00"
    ]
    assert walls(
        parse_cron("0 2,3 * * *", "Europe/Paris").ticks_between(at(2025, 3, 30), at(2025, 3, 30, 12)),
        PARIS,
    ) == ["2025-03-30T03:00+02:00"]
    quarter = parse_cron("*/15 * * * *", "Europe/Paris")
    assert walls(quarter.ticks_between(at(2025, 3, 30, 0, 15), at(2025, 3, 30, 1, 30)), PARIS) == [
        "2025-03-30T01:30+01:00",
        "2025-03-30T01:45+01:00",
        "2025-03-30T03:00+02:00",
        "2025-03-30T03:15+02:00",
        "2025-03-30T03:30+02:00",
    ]
    # New York, 2025-03-09: 02:00 EST jumps to 03:00 EDT.
    new_york = parse_cron("30 2 * * *", "America/New_York")
    assert wall(new_york.next_after(at(2025, 3, 9)), NEW_YORK) == "2025-03-09T03:00-04:00"


def test_dst_overlap_fires_only_the_first_time() -> None:
    # Europe/Paris, 2025-10-26: 03:00 CEST falls back to 02:00 CET (01:00 UTC).
    half_past_two = parse_cron("30 2 * * *", "Europe/Paris")
    ticks = half_past_two.ticks_between(at(2025, 10, 25, 12), at(2025, 10, 27, 12))
    assert walls(ticks, PARIS) == ["2025-10-26T02:30+02:00", "2025-10-27T02:30+01:00"]
    assert ticks[0] == at(2025, 10, 26, 0, 30)
    half_hourly = parse_cron("*/30 * * * *", "Europe/Paris")
    assert walls(half_hourly.ticks_between(at(2025, 10, 25, 23, 45), at(2025, 10, 26, 2)), PARIS) == [
        "2025-10-26T02:00+02:00",
        "2025-10-26T02:30+02:00",
        # 02:00 and 02:30 CET repeat wall times that have fired
        "2025-10-26T03:00+01:00",
    ]
    # From inside the repeated hour, the next fire time is after it.
    inside = at(2025, 10, 26, 2, 10, tz=PARIS, fold=1)
    assert wall(inside) == "2025-10-26T01:10+00:00"
    assert wall(half_hourly.next_after(inside), PARIS) == "2025-10-26T03:00+01:00"
    assert wall(parse_cron("*/15 * * * *", "Europe/Paris").next_after(inside), PARIS) == (
        "2025-10-26T03:00+01:00"
    )


def test_dst_gap_with_a_star_led_minute_or_hour() -> None:
    # cronsim keeps to wall times only when neither field starts with "*"; otherwise it
    # walks real instants and would not fire these at 03:00. The module maps them itself.
    during = parse_cron("* 2 * * *", "Europe/Paris")
    assert walls(during.ticks_between(at(2025, 3, 29, 12), at(2025, 3, 31, 2, 1, tz=PARIS)), PARIS) == [
        "2025-03-30T03:00+02:00",  # all of 02:00-02:59 is skipped: one fire time
        "2025-03-31T02:00+02:00",
        "2025-03-31T02:01+02:00",
    ]
    odd = parse_cron("5-55/10 * * * *", "Europe/Paris")
    assert walls(
        odd.ticks_between(at(2025, 3, 30, 1, 50, tz=PARIS), at(2025, 3, 30, 3, 15, tz=PARIS)), PARIS
    ) == [
        "2025-03-30T01:55+01:00",
        "2025-03-30T03:00+02:00",  # 02:05..02:55 are skipped
        "2025-03-30T03:05+02:00",
        "2025-03-30T03:15+02:00",
    ]


def test_dst_overlap_with_fixed_times_from_inside_the_repeat() -> None:
    # From 02:10 CET (the repeat), 02:30 has fired already at 02:30 CEST. cronsim alone
    # answers 02:30 CEST here: a time before the start.
    inside = at(2025, 10, 26, 2, 10, tz=PARIS, fold=1)
    for expr in ("30 2 * * *", "0,30 2 * * *", "30 1-3 * * *"):
        got = parse_cron(expr, "Europe/Paris").next_after(inside)
        assert got > inside
    assert (
        wall(parse_cron("30 2 * * *", "Europe/Paris").next_after(inside), PARIS) == "2025-10-27T02:30+01:00"
    )
    assert (
        wall(parse_cron("30 1-3 * * *", "Europe/Paris").next_after(inside), PARIS) == "2025-10-26T03:30+01:00"
    )


def test_hourly_on_dst_days() -> None:
    hourly = parse_cron("0 * * * *", "Europe/Paris")
    spring = hourly.ticks_between(at(2025, 3, 30, tz=PARIS), at(2025, 3, 31, tz=PARIS))
    autumn = hourly.ticks_between(at(2025, 10, 26, tz=PARIS), at(2025, 10, 27, tz=PARIS))
    assert len(spring) == 23  # a 23-hour day; wall hour 2 is 03:00
    assert len(autumn) == 24  # a 25-hour day; wall hour 2 fires once
    assert all(b - a == HOUR for a, b in itertools.pairwise(spring))
    assert sorted(b - a for a, b in itertools.pairwise(autumn))[-1] == 2 * HOUR


# ---------------------------------------------------------------------- ticks_between


@pytest.mark.parametrize(
    ("expr", "count"),
    [
        ("*/5 * * * *", 288),
        ("0 * * * *", 24),
        ("*/50 * * * *", 48),
        ("* * * * *", 1440),
        ("@daily", 1),
        ("0 0 3 * *", 0),
    ],
)
def test_ticks_in_one_day(expr: str, count: int) -> None:
    start = at(2025, 6, 1)
    ticks = parse_cron(expr).ticks_between(start, start + DAY)
    assert len(ticks) == count
    assert ticks == sorted(set(ticks))
    assert all(start < t <= start + DAY for t in ticks)


def test_step_fifty_fires_at_zero_and_fifty() -> None:
    start = at(2025, 6, 1)
    ticks = parse_cron("*/50 * * * *").ticks_between(start, start + DAY)
    assert {datetime.fromtimestamp(t, UTC).minute for t in ticks} == {0, 50}
    assert walls(ticks[:3]) == [
        "2025-06-01T00:50+00:00",
        "2025-06-01T01:00+00:00",
        "2025-06-01T01:50+00:00",
    ]
    assert ticks[-1] == start + DAY


def test_ticks_between_bounds_and_limit() -> None:
    hourly = parse_cron("0 * * * *")
    start = at(2025, 6, 1)
    # start exclusive, end inclusive
    assert hourly.ticks_between(start, start + HOUR) == [start + HOUR]
    assert hourly.ticks_between(start - 1, start + HOUR - 1) == [start]
    assert hourly.ticks_between(start, start + HOUR - 1) == []
    assert hourly.ticks_between(start, start) == []
    assert hourly.ticks_between(start, start - DAY) == []
    # at most `limit`, the earliest
    assert hourly.ticks_between(start, start + DAY, limit=3) == [start + h * HOUR for h in (1, 2, 3)]
    assert hourly.ticks_between(start, start + DAY, limit=0) == []
    assert len(parse_cron("* * * * *").ticks_between(start, start + 365 * DAY)) == 10000
    assert len(hourly.ticks_between(start, math.inf, limit=50)) == 50


# ----------------------------------------------------------- against brute force


class Spec(NamedTuple):
    """An expression with its meaning worked out independently of the module."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    day_or: bool

    def day_matches(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        by_dom = day.day in self.days
        by_dow = day.isoweekday() % 7 in self.weekdays
        return (by_dom or by_dow) if self.day_or else (by_dom and by_dow)

    def matches(self, moment: datetime) -> bool:
        return self.day_matches(moment.date()) and moment.hour in self.hours and moment.minute in self.minutes

    def can_fire(self) -> bool:
        """Whether some chosen day exists in some chosen month (2000 is a leap year)."""

        def length(month: int) -> int:
            return (date(2000 + month // 12, month % 12 + 1, 1) - date(2000, month, 1)).days

        return self.day_or or any(day <= length(m) for m in self.months for day in self.days)


MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
KINDS = ("*/n", "a", "a", "a-b", "a-b/n", "a/n")


# Strategies are cached: building them afresh on every draw is most of the cost.
@functools.cache
def _ints(low: int, high: int) -> st.SearchStrategy[int]:
    return st.integers(low, high)


@functools.cache
def _sampled(options: tuple[str, ...]) -> st.SearchStrategy[str]:
    return st.sampled_from(options)


@functools.cache
def _value(low: int, high: int, names: tuple[str, ...], offset: int) -> st.SearchStrategy[tuple[int, str]]:
    """A number in low..high, spelled as a number or (where it has one) a name in any case."""

    @st.composite
    def draw_value(draw: st.DrawFn) -> tuple[int, str]:
        value = draw(_ints(low, high))
        if names and value - offset < len(names) and draw(st.booleans()):
            name = names[value - offset]
            return value, draw(_sampled((name, name.upper(), name.title())))
        return value, str(value)

    return draw_value()


@functools.cache
def _field(
    low: int, high: int, names: tuple[str, ...] = (), offset: int = 0, star_weight: int = 1
) -> st.SearchStrategy[tuple[str, frozenset[int], bool]]:
    """A field's text, its values worked out with `range`, and whether it starts with "*"."""
    kinds = ("*",) * star_weight + KINDS

    @st.composite
    def draw_field(draw: st.DrawFn) -> tuple[str, frozenset[int], bool]:
        parts: list[str] = []
        values: set[int] = set()
        for _ in range(draw(_ints(1, 3))):
            kind = draw(_sampled(kinds))
            step = draw(_ints(1, high))
            if kind == "*":
                parts.append("*")
                values.update(range(low, high + 1))
            elif kind == "*/n":
                parts.append(f"*/{step}")
                values.update(range(low, high + 1, step))
            else:
                a, a_text = draw(_value(low, high, names, offset))
                if kind == "a":
                    parts.append(a_text)
                    values.add(a)
                elif kind == "a/n":
                    parts.append(f"{a_text}/{step}")
                    values.update(range(a, high + 1, step))
                else:
                    b, b_text = draw(_value(a, high, names, offset))
                    stepped = kind == "a-b/n"
                    values.update(range(a, b + 1, step if stepped else 1))
                    parts.append(f"{a_text}-{b_text}" + (f"/{step}" if stepped else ""))
        return ",".join(parts), frozenset(values), parts[0].startswith("*")

    return draw_field()


@st.composite
def specs(draw: st.DrawFn, dense: bool = False) -> Spec:
    """Random expressions; `dense` makes hour, day and month fields mostly "*"."""
    star_days = 30 if dense else 1
    minute, minutes, _ = draw(_field(0, 59))
    hour, hours, _ = draw(_field(0, 23, star_weight=4 if dense else 1))
    dom, days, dom_star = draw(_field(1, 31, star_weight=star_days))
    month, months, _ = draw(_field(1, 12, MONTHS, 1, star_weight=star_days))
    dow, weekdays, dow_star = draw(_field(0, 7, WEEKDAYS, 0, star_weight=star_days))
    separator = draw(_sampled((" ", "  ", "\t")))
    return Spec(
        text=separator.join([minute, hour, dom, month, dow]),
        minutes=minutes,
        hours=hours,
        days=days,
        months=months,
        weekdays=frozenset(d % 7 for d in weekdays),
        day_or=not dom_star and not dow_star,
    )


def _utc_wall(t: int) -> datetime:
    return EPOCH + timedelta(seconds=t)


def brute_next_utc(spec: Spec, ts: float) -> float:
    """The next fire time by scanning minutes (skipping days and hours that cannot match)."""
    t = (math.floor(ts) // MINUTE + 1) * MINUTE
    while True:
        moment = _utc_wall(t)
        if not spec.day_matches(moment.date()):
            t = t - t % DAY + DAY
        elif moment.hour not in spec.hours:
            t = t - t % HOUR + HOUR
        elif moment.minute not in spec.minutes:
            t += MINUTE
        else:
            return float(t)


timestamps = st.builds(
    lambda seconds, fraction, aligned: (seconds - seconds % 60 if aligned else seconds) + fraction,
    st.integers(-2_000_000_000, 4_200_000_000),
    st.sampled_from([0.0, 0.0, 0.25, 0.999]),
    st.booleans(),
)


@settings(max_examples=1000, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=specs(), moments=st.lists(timestamps, min_size=3, max_size=3))
def test_next_after_matches_brute_force_in_utc(spec: Spec, moments: list[float]) -> None:
    if not spec.can_fire():
        with pytest.raises(CronError, match="day-of-month field: .* never fires"):
            parse_cron(spec.text)
        return
    schedule = parse_cron(spec.text)
    assert parse_cron(str(schedule)) == schedule
    for ts in moments:
        expected = brute_next_utc(spec, ts)
        assert schedule.next_after(ts) == expected, (spec.text, wall(ts), wall(expected))


def _local_transitions(zone: ZoneInfo, year: int) -> list[int]:
    """Instants (to the hour) just after the zone's UTC offset changes during `year`."""
    found = []
    t = int(at(year, 1, 1))
    offset = _utc_wall(t).astimezone(zone).utcoffset()
    while t < at(year + 1, 1, 1):
        t += HOUR
        now = _utc_wall(t).astimezone(zone).utcoffset()
        if now != offset:
            found.append(t)
            offset = now
    return found


@functools.cache
def transitions() -> list[tuple[str, int]]:
    zones = ["Europe/Paris", "America/New_York", "Australia/Lord_Howe", "America/Santiago"]
    return [(name, t) for name in zones for t in _local_transitions(ZoneInfo(name), 2025)]


def brute_ticks(spec: Spec, zone: ZoneInfo, start: float, end: float) -> list[float]:
    """Fire times by scanning instants minute by minute: the instant fires if the local
    clock, moving past its previous maximum, reaches a matching wall time."""
    t = math.floor(start) // MINUTE * MINUTE - 3 * HOUR
    highest = _utc_wall(t).astimezone(zone).replace(tzinfo=None)
    ticks = []
    while t <= end - MINUTE:
        t += MINUTE
        local = _utc_wall(t).astimezone(zone).replace(tzinfo=None)
        if local <= highest:
            continue  # a repeated wall time
        reached = []
        moment = highest + timedelta(minutes=1)
        while moment <= local:  # one minute, or all minutes of a gap
            reached.append(moment)
            moment += timedelta(minutes=1)
        highest = local
        if t > start and any(spec.matches(m) for m in reached):
            ticks.append(float(t))
    return ticks


@settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    spec=specs(dense=True),
    which=st.integers(0, 10_000),
    shift=st.integers(-3 * HOUR, 3 * HOUR),
    length=st.integers(1, 12 * HOUR),
)
def test_ticks_match_brute_force_around_dst(spec: Spec, which: int, shift: int, length: int) -> None:
    name, transition = transitions()[which % len(transitions())]
    if not spec.can_fire():
        return
    schedule = parse_cron(spec.text, name)
    start = transition + shift - length / 2
    end = start + length
    expected = brute_ticks(spec, ZoneInfo(name), start, end)
    assert walls(schedule.ticks_between(start, end)) == walls(expected), (spec.text, name)


@settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=specs(dense=True), which=st.integers(0, 10_000), shift=st.integers(-3 * HOUR, 3 * HOUR))
def test_ticks_between_is_next_after_repeated(spec: Spec, which: int, shift: int) -> None:
    # ticks_between walks one cronsim iterator; next_after starts a new one each time.
    if not spec.can_fire():
        return
    name, transition = transitions()[which % len(transitions())]
    schedule = parse_cron(spec.text, name)
    start = transition + shift - 3 * HOUR
    ticks = schedule.ticks_between(start, start + 6 * HOUR, limit=50)
    chained: list[float] = []
    t: float = start
    while len(chained) < len(ticks):
        t = schedule.next_after(t)
        chained.append(t)
    assert ticks == chained, spec.text
    if len(ticks) < 50:
        assert schedule.next_after(t) > start + 6 * HOUR  # nothing left out at the end
