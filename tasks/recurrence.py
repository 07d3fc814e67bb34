"""RFC 5545 recurrence rules (RRULE): the grammar the API accepts, and the next due date.

The grammar is one regular expression, `RRULE_PATTERN`: the service accepts exactly the strings it
matches, and the OpenAPI schema publishes it as the `recurrence` field's `pattern`. It is `FREQ`
first (optionally after `RRULE:`), then any of the parts below, in any order, each at most once,
and never both `COUNT` and `UNTIL`. Weekly and daily rules take weekdays (`BYDAY=MO,WE`); monthly
and yearly ones also take `BYMONTH`, `BYMONTHDAY`, and numbered weekdays instead (`BYDAY=-1FR`).

`next_due` computes the occurrences, with RFC 5545's semantics for this grammar (the tests
check it date for date against python-dateutil's engine). Whether a rule has a next occurrence
depends on the task's `due_at` (`FREQ=DAILY;INTERVAL=7;BYDAY=MO` never meets a Tuesday,
`BYMONTH=2;BYMONTHDAY=30` no date at all), so that is not a validation rule: such a rule ends the
series, as an exhausted `COUNT` or `UNTIL` does. Unlike dateutil, which looks for a date period by
period up to year 9999, the search is bounded by what can still change: a daily rule's weekday
cycles within seven steps, every week holds every weekday, and the calendar repeats every 400
years.
"""

from __future__ import annotations

import calendar
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

FREQUENCIES = ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")
_DAY = "(?:MO|TU|WE|TH|FR|SA|SU)"
_NUMBER = "[1-9][0-9]{0,3}"  # 1 to 9999
_MONTH_DAY = "[+-]?(?:[1-9]|[12][0-9]|3[01])"
_MONTH = "(?:[1-9]|1[0-2])"
_NTH_DAY = f"[+-]?[1-5]{_DAY}"  # the first (1MO) to fifth, or the last (-1MO) to fifth last
# UNTIL: a UTC date-time that exists (29 February in leap years only), years 1000 to 9999.
_YEAR = "[1-9][0-9]{3}"
_LEAP_YEAR = "(?:[1-9][0-9](?:0[48]|[2468][048]|[13579][26])|(?:[2468][048]|[13579][26])00)"
_MONTH_AND_DAY = (
    "(?:(?:0[1-9]|1[0-2])(?:0[1-9]|1[0-9]|2[0-8])|(?:0[13-9]|1[0-2])(?:29|30)|(?:0[13578]|1[02])31)"
)
_DATE = f"(?:{_YEAR}{_MONTH_AND_DAY}|{_LEAP_YEAR}0229)"
_UNTIL = f"{_DATE}T(?:[01][0-9]|2[0-3])[0-5][0-9][0-5][0-9]Z"


def _list(item: str) -> str:
    return f"{item}(?:,{item})*"


# The parts each frequency takes: NAME -> the grammar of its value.
_COMMON = {"INTERVAL": _NUMBER, "COUNT": _NUMBER, "UNTIL": _UNTIL, "WKST": _DAY}
PARTS = {
    "DAILY": {**_COMMON, "BYDAY": _list(_DAY)},
    "WEEKLY": {**_COMMON, "BYDAY": _list(_DAY)},
    "MONTHLY": {
        **_COMMON,
        # Weekdays, or numbered ones: dateutil would read a mix as both at once, not either.
        "BYDAY": f"(?:{_list(_DAY)}|{_list(_NTH_DAY)})",
        "BYMONTHDAY": _list(_MONTH_DAY),
        "BYMONTH": _list(_MONTH),
    },
}
PARTS["YEARLY"] = PARTS["MONTHLY"]


def _rule(frequencies: tuple[str, ...]) -> str:
    parts = "|".join(f"{name}={value}" for name, value in PARTS[frequencies[0]].items())
    return f"FREQ=(?:{'|'.join(frequencies)})(?:;(?:{parts}))*"


_NAMES = "|".join(PARTS["MONTHLY"])
# The published grammar ("" is no recurrence). The lookaheads refuse a part given twice, and COUNT
# with UNTIL (RFC 5545 §3.3.10).
RRULE_PATTERN = (
    f"^(?!.*;({_NAMES})=.*;\\1=)(?!.*;COUNT=.*;UNTIL=)(?!.*;UNTIL=.*;COUNT=)"
    f"(?:(?:RRULE:)?(?:{_rule(('DAILY', 'WEEKLY'))}|{_rule(('MONTHLY', 'YEARLY'))}))?$"
)
_RRULE = re.compile(RRULE_PATTERN)


class InvalidRule(ValueError):
    pass


def validate(rule: str) -> str:
    """The rule without an `RRULE:` prefix, if `RRULE_PATTERN` matches it; else InvalidRule,
    naming what is wrong."""
    if _RRULE.fullmatch(rule):
        return rule.removeprefix("RRULE:")
    raise InvalidRule(_reason(rule.removeprefix("RRULE:")))


def _reason(rule: str) -> str:
    first, *rest = rule.split(";")
    frequency = first.removeprefix("FREQ=")
    if frequency not in FREQUENCIES or not first.startswith("FREQ="):
        return f"FREQ= must come first, with {', '.join(FREQUENCIES[:-1])} or {FREQUENCIES[-1]}."
    seen = set()
    for part in rest:
        name, _, value = part.partition("=")
        grammar = PARTS[frequency].get(name)
        if grammar is None:
            supported = ", ".join(PARTS[frequency])
            return f"FREQ={frequency} takes only these parts (NAME=VALUE): {supported}."
        if not re.fullmatch(grammar, value):
            return f"{name}={value} is not a valid {name}."
        if name in seen:
            return f"{name} is given twice."
        seen.add(name)
    if {"COUNT", "UNTIL"} <= seen:
        return "COUNT and UNTIL cannot be combined (RFC 5545 §3.3.10)."
    return "Not a supported RRULE."


WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
# The Gregorian calendar, weekdays included, repeats every 400 years (146,097 days: 20,871 weeks):
# a monthly or yearly rule that matches no date in one whole cycle never will.
CYCLE_MONTHS = 4800
MONTH_LENGTHS = {
    month: (28, 29) if month == 2 else (calendar.monthrange(2001, month)[1],)
    for month in range(1, 13)
}
LAST_YEAR = 9999


@dataclass(frozen=True)
class Rule:
    """A rule of the accepted grammar, read once; the defaults RFC 5545 takes from the start
    date (the day of the month, the weekday…) are applied by `next_due`."""

    frequency: str
    interval: int
    count: int | None
    until: datetime | None
    week_start: int
    weekdays: frozenset[int]  # BYDAY=MO,WE
    nth_weekdays: tuple[tuple[int, int], ...]  # BYDAY=-1FR: (-1, 4)
    month_days: tuple[int, ...]  # BYMONTHDAY, from the end when negative
    months: frozenset[int]  # BYMONTH


@lru_cache(maxsize=1024)
def parse(rule: str) -> Rule:
    """A rule that `validate` accepted (its parts, by name)."""
    parts = dict(part.split("=", 1) for part in rule.removeprefix("RRULE:").split(";"))
    weekdays, nth_weekdays = set(), []
    for day in filter(None, parts.get("BYDAY", "").split(",")):
        if len(day) == 2:
            weekdays.add(WEEKDAYS.index(day))
        else:
            nth_weekdays.append((int(day[:-2]), WEEKDAYS.index(day[-2:])))
    until = parts.get("UNTIL")
    return Rule(
        frequency=parts["FREQ"],
        interval=int(parts.get("INTERVAL", 1)),
        count=int(parts["COUNT"]) if "COUNT" in parts else None,
        until=datetime.strptime(until, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC) if until else None,
        week_start=WEEKDAYS.index(parts.get("WKST", "MO")),
        weekdays=frozenset(weekdays),
        nth_weekdays=tuple(sorted(set(nth_weekdays))),  # a rule may repeat a day
        month_days=tuple(
            sorted({int(day) for day in filter(None, parts.get("BYMONTHDAY", "").split(","))})
        ),
        months=frozenset(int(month) for month in filter(None, parts.get("BYMONTH", "").split(","))),
    )


@lru_cache(maxsize=4096)
def next_due(rule: str, due_at: datetime) -> datetime | None:
    """The first occurrence after `due_at` of the series that `due_at` starts, or None when the
    series ends there (COUNT or UNTIL exhausted, or no further date: never one after a whole
    400-year cycle of the calendar, nor after year 9999).

    The search is bounded whatever the rule: at most 7 days for a daily rule, 2 weeks for a
    weekly one and one 400-year cycle of the calendar (at most 4,800 periods) for a monthly
    or yearly one. An exhausted rule is remembered
    (the answer is a function of the rule and the date), so completing a task again costs
    nothing.
    """
    parsed = parse(rule)
    if parsed.count is not None and parsed.count <= 1:
        return None  # COUNT counts the whole series, of which `due_at` is the current occurrence.
    following = _next_date(_with_defaults(parsed, due_at.date()), due_at.date())
    if following is None:
        return None
    occurrence = datetime.combine(following, due_at.timetz())
    if parsed.until is not None and occurrence > parsed.until:
        return None
    return occurrence


def _with_defaults(rule: Rule, start: date) -> Rule:
    """RFC 5545 §3.3.10: what the start date supplies when the rule names no day."""
    if rule.weekdays or rule.nth_weekdays or rule.month_days:
        return rule
    if rule.frequency == "YEARLY":
        return replace(
            rule, months=rule.months or frozenset({start.month}), month_days=(start.day,)
        )
    if rule.frequency == "MONTHLY":
        return replace(rule, month_days=(start.day,))
    if rule.frequency == "WEEKLY":
        return replace(rule, weekdays=frozenset({start.weekday()}))
    return rule


def _next_date(rule: Rule, start: date) -> date | None:
    if rule.frequency == "DAILY":
        # The weekday is the only filter, and it cycles within seven steps.
        for step in range(1, 8):
            following = _plus_days(start, step * rule.interval)
            if following is None:
                return None
            if not rule.weekdays or following.weekday() in rule.weekdays:
                return following
        return None
    if rule.frequency == "WEEKLY":
        # Every week holds every weekday: the start's week or the next period's has the date.
        week = start - timedelta(days=(start.weekday() - rule.week_start) % 7)
        for period in range(2):
            days = sorted((day - rule.week_start) % 7 for day in rule.weekdays)
            for offset in days:
                following = _plus_days(week, period * 7 * rule.interval + offset)
                if following is None:
                    return None
                if following > start:
                    return following
        return None
    return _next_monthly_or_yearly(rule, start)


def _next_monthly_or_yearly(rule: Rule, start: date) -> date | None:
    if not _admits_some_date(rule):
        return None
    step = rule.interval * (12 if rule.frequency == "YEARLY" else 1)
    first = start.year * 12 + (start.month - 1 if rule.frequency == "MONTHLY" else 0)
    # The periods' places in the calendar's cycle repeat after this many steps (and the first
    # period may end before the start, hence one more).
    periods = CYCLE_MONTHS // math.gcd(step, CYCLE_MONTHS) + 1
    # What a month admits depends only on its shape (the weekday it starts on, its length), and
    # a year's numbered weekdays on the year's (its first weekday, whether it is a leap year):
    # each shape is worked out once per search.
    month_shapes: dict[tuple[int, int], list[int]] = {}
    year_shapes: dict[tuple[int, bool], list[tuple[int, int]]] = {}
    for month_index in range(first, first + periods * step, step):
        year = month_index // 12
        if year > LAST_YEAR:
            return None
        if rule.frequency == "YEARLY":
            dates: Iterable[date] = _yearly_dates(rule, year, month_shapes, year_shapes)
        else:
            month = month_index % 12 + 1
            if rule.months and month not in rule.months:
                continue
            days = _days_of(rule, year, month, rule.nth_weekdays, month_shapes)
            dates = (date(year, month, day) for day in days)
        following = next((day for day in dates if day > start), None)
        if following is not None:
            return following
    return None


def _admits_some_date(rule: Rule) -> bool:
    """Whether any month the rule takes, of any shape the calendar has, holds a date it admits
    (for numbered weekdays counted in the year: any year of the 14 kinds). A rule that fails
    this (`BYDAY=5MO;BYMONTHDAY=15`) is answered at once instead of after a whole cycle."""
    if rule.frequency == "YEARLY" and rule.nth_weekdays and not rule.months:
        year_shapes: dict[tuple[int, bool], list[tuple[int, int]]] = {}
        # 28 consecutive years of one century start on every weekday, leap and common.
        return any(_yearly_dates(rule, year, {}, year_shapes) for year in range(2001, 2029))
    return any(
        _month_days(rule, first_weekday, length, rule.nth_weekdays)
        for month in sorted(rule.months) or range(1, 13)
        for length in MONTH_LENGTHS[month]
        for first_weekday in range(7)
    )


def _yearly_dates(
    rule: Rule,
    year: int,
    month_shapes: dict[tuple[int, int], list[int]],
    year_shapes: dict[tuple[int, bool], list[tuple[int, int]]],
) -> list[date]:
    """The dates of one year that the rule admits, in order."""
    if rule.nth_weekdays and not rule.months:
        # BYDAY=20MO in a yearly rule without BYMONTH counts weekdays in the whole year.
        shape = (date(year, 1, 1).weekday(), calendar.isleap(year))
        if shape not in year_shapes:
            first, last = date(year, 1, 1).toordinal(), date(year, 12, 31).toordinal()
            found = map(date.fromordinal, sorted(set(_nth_days(rule.nth_weekdays, first, last))))
            year_shapes[shape] = [
                (day.month, day.day)
                for day in found
                if _admits_month_day(rule, day.day, calendar.monthrange(year, day.month)[1])
            ]
        return [date(year, month, day) for month, day in year_shapes[shape]]
    months = sorted(rule.months) or range(1, 13)
    return [
        date(year, month, day)
        for month in months
        for day in _days_of(rule, year, month, rule.nth_weekdays, month_shapes)
    ]


def _days_of(
    rule: Rule,
    year: int,
    month: int,
    nth_weekdays: tuple[tuple[int, int], ...],
    month_shapes: dict[tuple[int, int], list[int]],
) -> list[int]:
    shape = calendar.monthrange(year, month)
    if shape not in month_shapes:
        month_shapes[shape] = _month_days(rule, *shape, nth_weekdays)
    return month_shapes[shape]


def _month_days(
    rule: Rule, first_weekday: int, length: int, nth_weekdays: tuple[tuple[int, int], ...]
) -> list[int]:
    """The days of a month of this shape that every BY part of the rule but BYMONTH admits, in
    order (numbered weekdays count within the month)."""
    if nth_weekdays:
        found = _nth_days(nth_weekdays, 1 + first_weekday, length + first_weekday, first_weekday)
        days = set(found)
    elif rule.month_days:
        days = {day if day > 0 else length + 1 + day for day in rule.month_days}
    else:
        days = set(range(1, length + 1))
    return [
        day
        for day in sorted(days)
        if 1 <= day <= length
        and (not rule.weekdays or (first_weekday + day - 1) % 7 in rule.weekdays)
        and (not nth_weekdays or _admits_month_day(rule, day, length))
    ]


def _admits_month_day(rule: Rule, day: int, length: int) -> bool:
    """Whether BYMONTHDAY (if any) names this day of a month of `length` days."""
    return not rule.month_days or day in rule.month_days or day - length - 1 in rule.month_days


def _nth_days(
    nth_weekdays: tuple[tuple[int, int], ...], first: int, last: int, shift: int = 0
) -> list[int]:
    """`BYDAY=2TU,-1FR` among the days numbered first..last, numbered like ordinals (day `n`
    is a Monday when `(n - 1) % 7 == 0`); each found number less `shift`."""
    found = []
    for nth, weekday in nth_weekdays:
        if nth > 0:
            day = first + (weekday - (first - 1)) % 7 + 7 * (nth - 1)
        else:
            day = last - ((last - 1) - weekday) % 7 - 7 * (-nth - 1)
        if first <= day <= last:
            found.append(day - shift)
    return found


def _plus_days(day: date, days: int) -> date | None:
    """`day` plus `days`, or None past year 9999."""
    ordinal = day.toordinal() + days
    return date.fromordinal(ordinal) if ordinal <= date.max.toordinal() else None
