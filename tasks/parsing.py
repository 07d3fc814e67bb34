"""What the API accepts as text, read the same way wherever it arrives (a body field or a query
parameter): the text patterns the schema publishes, and due dates."""

import datetime as dt
import re

# What the text fields accept, as JSON Schema patterns (TaskAPIAutoSchema publishes a field's
# `pattern`). U+0000 is refused everywhere (PostgreSQL cannot store it). A trimmed field must keep
# a character that is not whitespace as Python's `str.isspace()` (DRF's trimming) sees it, spelled
# out because `\s` differs between regex engines.
WHITESPACE = r"\t-\r\u001c-\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
NO_NUL = r"^[^\u0000]*$"
NOT_BLANK = rf"^[^\u0000]*[^\u0000{WHITESPACE}][^\u0000]*$"

RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"([Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2}))?"
)
# `due_at` and the due-date filters, as the schema states them.
DUE_SCHEMA = {"type": "string", "anyOf": [{"format": "date-time"}, {"format": "date"}]}
DUE_INVALID = "Must be an RFC 3339 date-time with an offset, or a YYYY-MM-DD date."


def parse_due(value: str) -> dt.datetime | None:
    """RFC 3339 date-time with an offset, or a plain `YYYY-MM-DD` (that day, 00:00 UTC)."""
    if not RFC3339.fullmatch(value):
        return None
    try:
        if len(value) == 10:
            return dt.datetime.combine(dt.date.fromisoformat(value), dt.time(), dt.UTC)
        return dt.datetime.fromisoformat(value.upper().replace("Z", "+00:00")).astimezone(dt.UTC)
    except (ValueError, OverflowError):  # e.g. 9999-12-31T23:30:00-01:00 is past year 9999 in UTC
        return None
