"""Fractional (lexicographic) position keys: the order a user chose, O(1) writes per move.

A key is a string of base-62 digits read as a fraction in [0, 1); between any two keys there is
another (`between`), so a move rewrites only the moved task. Keys grow by about one digit per
six moves into the same gap; past `MAX_KEY_LENGTH` the user's keys are spread out again
(`spread`), which is the occasional O(n) rebalance.

New tasks get a key that counts down with time (`for_new_task`), so they come first without a
query; rebalanced keys live above every such key (`SPREAD_PREFIX`), so new tasks stay first.
"""

from __future__ import annotations

import time

DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
BASE = len(DIGITS)
MAX_KEY_LENGTH = 48
_TIME_DIGITS = 10
_TIME_SPAN = BASE**_TIME_DIGITS
SPREAD_PREFIX = "zz"


def between(low: str | None, high: str | None) -> str:
    """A key strictly between `low` and `high` (None: the start or the end of the list)."""
    low = low or ""
    if high is not None and low >= high:
        raise ValueError(f"{low!r} is not below {high!r}")
    return _midpoint(low, high)


def _midpoint(low: str, high: str | None) -> str:
    # After Evan Wallace's fractional indexing: keys never end in the zero digit.
    if high is not None:
        common = 0
        while common < len(high) and (low[common] if common < len(low) else "0") == high[common]:
            common += 1
        if common:
            return high[:common] + _midpoint(low[common:], high[common:])
    low_digit = DIGITS.index(low[0]) if low else 0
    high_digit = DIGITS.index(high[0]) if high else BASE
    if high_digit - low_digit > 1:
        return DIGITS[(low_digit + high_digit) // 2]
    if high and len(high) > 1:
        return high[0]
    return DIGITS[low_digit] + _midpoint(low[1:], None)


def for_new_task() -> str:
    """A key that puts a new task before every older one, with no query: it counts down from
    the end of time, so the user's order starts out newest first, like the default list."""
    remaining = _TIME_SPAN - 1 - time.time_ns() // 1000
    digits = []
    for _ in range(_TIME_DIGITS):
        remaining, digit = divmod(remaining, BASE)
        digits.append(DIGITS[digit])
    return "".join(reversed(digits)) + "V"  # a key must not end in the zero digit


def first(current_first: str | None) -> str:
    """A key before `current_first` (the user's first task now), near the new-task keys so that
    tasks created later still come before it."""
    newest = for_new_task()
    if current_first is None:
        return newest
    if newest < current_first:
        return between(newest, current_first)
    return between(None, current_first)


def spread(count: int) -> list[str]:
    """`count` evenly spaced keys, in order, after every new-task key: the rebalance."""
    width = 1
    while BASE**width <= count:
        width += 1
    step = BASE**width // (count + 1)
    keys = []
    for n in range(1, count + 1):
        value, digits = n * step, []
        for _ in range(width):
            value, digit = divmod(value, BASE)
            digits.append(DIGITS[digit])
        keys.append(SPREAD_PREFIX + "".join(reversed(digits)).rstrip("0"))
    return keys
