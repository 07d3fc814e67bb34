"""RFC 5545 recurrence rules (RRULE): the grammar the API accepts, and the next due date.

The grammar is one regular expression, `RRULE_PATTERN`: the service accepts exactly the strings it
matches, and the OpenAPI schema publishes it as the `recurrence` field's `pattern`. It is `FREQ`
first (optionally after `RRULE:`), then any of the parts below, in any order, each at most once,
and never both `COUNT` and `UNTIL`. Weekly and daily rules take weekdays (`BYDAY=MO,WE`); monthly
and yearly ones also take `BYMONTH`, `BYMONTHDAY`, and numbered weekdays instead (`BYDAY=-1FR`).

python-dateutil computes the occurrences. Whether a rule has a next occurrence depends on the
task's `due_at` (`FREQ=DAILY;INTERVAL=7;BYDAY=MO` never meets a Tuesday, `BYMONTH=2;BYMONTHDAY=30`
no date at all), so that is not a validation rule: such a rule ends the series, as an exhausted
`COUNT` or `UNTIL` does. dateutil looks for it period by period up to year 9999: at most about
0.5 s of CPU, on completion only, for the worst rule the grammar allows (DAILY or WEEKLY rules
cannot filter by month, which would cost ten times that).
"""

from __future__ import annotations

import re
from datetime import datetime

from dateutil.rrule import rrulestr

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


def next_due(rule: str, due_at: datetime) -> datetime | None:
    """The first occurrence after `due_at` of the series that `due_at` starts, or None when the
    series ends there (COUNT or UNTIL exhausted, or no further occurrence before year 10000)."""
    parts = dict(part.split("=", 1) for part in rule.split(";"))
    if int(parts.get("COUNT", 2)) <= 1:
        return None
    # COUNT counts the whole series, of which `due_at` is the current occurrence.
    return rrulestr(rule, dtstart=due_at).replace(count=None).after(due_at)
