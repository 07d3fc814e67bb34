"""RFC 5545 recurrence rules (RRULE), parsed with python-dateutil.

dateutil searches period by period until year 9999 for a rule that never occurs
(`FREQ=MONTHLY;BYMONTHDAY=31;BYDAY=MO` does, `FREQ=DAILY;BYMONTHDAY=30` with a February
start only rarely): every search here is bounded by `HORIZON`, and a rule with no occurrence
within it is refused.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from dateutil.parser import isoparse
from dateutil.rrule import rrulestr

SUPPORTED_FREQUENCIES = ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")
SUPPORTED_PARTS = {"FREQ", "INTERVAL", "BYDAY", "BYMONTHDAY", "BYMONTH", "COUNT", "UNTIL", "WKST"}
# RFC 5545 §3.3.10 value ranges that dateutil does not check (absolute values; 0 is never valid).
RANGES = {"BYMONTHDAY": (1, 31), "BYMONTH": (1, 12), "INTERVAL": (1, 9999), "COUNT": (1, 9999)}
POSITIVE_ONLY = {"BYMONTH", "INTERVAL", "COUNT"}
# Long enough for the rarest supported pattern (a weekday on the 29th of February: 28 years).
HORIZON = timedelta(days=366 * 30)


class InvalidRule(ValueError):
    pass


def parts_of(rule: str) -> dict[str, str]:
    try:
        return dict(part.split("=", 1) for part in rule.upper().split(";") if part)
    except ValueError:
        raise InvalidRule("Each part must be NAME=VALUE.") from None


def validate(rule: str, *, now: datetime) -> str:
    """The rule, normalised (no `RRULE:` prefix); raises InvalidRule with the reason."""
    rule = rule.strip().removeprefix("RRULE:").removeprefix("rrule:")
    parts = parts_of(rule)
    if unknown := set(parts) - SUPPORTED_PARTS:
        raise InvalidRule(f"Unsupported parts: {', '.join(sorted(unknown))}.")
    if parts.get("FREQ") not in SUPPORTED_FREQUENCIES:
        raise InvalidRule(f"FREQ must be one of {', '.join(SUPPORTED_FREQUENCIES)}.")
    if "COUNT" in parts and "UNTIL" in parts:
        raise InvalidRule("COUNT and UNTIL cannot be combined (RFC 5545 §3.3.10).")
    for name, (low, high) in RANGES.items():
        for value in filter(None, parts.get(name, "").split(",")):
            number = int(value) if value.lstrip("+-").isdigit() and len(value) <= 5 else 0
            if not low <= abs(number) <= high or (number < 0 and name in POSITIVE_ONLY):
                raise InvalidRule(f"{name}={value} is out of range.")
    try:
        rrulestr(rule, dtstart=now)
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidRule(str(exc)) from exc
    if not _exhausted(parts, now) and _next(rule, parts, now) is None:
        raise InvalidRule("The rule never occurs.")
    return rule


def next_due(rule: str, due_at: datetime) -> datetime | None:
    """The first occurrence after `due_at` of the series that `due_at` starts, or None when the
    rule is exhausted (COUNT, UNTIL)."""
    parts = parts_of(rule)
    if _exhausted(parts, due_at):
        return None
    return _next(rule, parts, due_at)


def _exhausted(parts: dict[str, str], start: datetime) -> bool:
    if "COUNT" in parts and int(parts["COUNT"]) <= 1:
        return True
    return "UNTIL" in parts and _until(parts["UNTIL"], start) <= start


def _next(rule: str, parts: dict[str, str], start: datetime) -> datetime | None:
    horizon = start + HORIZON
    if "UNTIL" in parts:
        horizon = min(horizon, _until(parts["UNTIL"], start))
    bounded = rrulestr(rule, dtstart=start).replace(count=None, until=horizon)
    return bounded.after(start)


def _until(value: str, start: datetime) -> datetime:
    until = isoparse(value)
    return until if until.tzinfo else until.replace(tzinfo=start.tzinfo)
