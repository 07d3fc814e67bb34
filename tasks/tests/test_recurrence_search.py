"""The next-occurrence search: the same dates as python-dateutil's RFC 5545 engine, at a bounded
cost for every rule the grammar accepts (the worst one included), and remembered once exhausted."""

import time
from datetime import UTC, datetime, timedelta

import pytest
from dateutil.rrule import rrulestr
from hypothesis import HealthCheck, example, given, settings, target
from hypothesis import strategies as st

from tasks import recurrence

pytestmark = pytest.mark.database_independent

WEEKDAYS = st.sampled_from(recurrence.WEEKDAYS)
CPU_BUDGET_SECONDS = 0.050
CYCLE_YEARS = 400  # the Gregorian calendar repeats, weekdays included


@st.composite
def rules(draw) -> str:
    """Any rule of the accepted grammar (asserted), with its parts in any order."""
    frequency = draw(st.sampled_from(recurrence.FREQUENCIES))
    parts = []
    if draw(st.booleans()):
        interval = draw(st.integers(1, 12) | st.integers(1, 9999))
        parts.append(f"INTERVAL={interval}")
    ending = draw(st.sampled_from(["", "COUNT", "UNTIL"]))
    if ending == "COUNT":
        parts.append(f"COUNT={draw(st.integers(1, 30))}")
    if ending == "UNTIL":
        until = draw(st.datetimes(datetime(1990, 1, 1), datetime(2300, 1, 1)))
        parts.append(f"UNTIL={until:%Y%m%dT%H%M%S}Z")
    if draw(st.booleans()):
        parts.append(f"WKST={draw(WEEKDAYS)}")
    numbered = frequency in {"MONTHLY", "YEARLY"} and draw(st.booleans())
    if draw(st.booleans()):
        if numbered:
            nth = st.integers(1, 5).map(str) | st.integers(-5, -1).map(str)
            days = st.lists(st.tuples(nth, WEEKDAYS).map("".join), min_size=1, max_size=8)
        else:
            days = st.lists(WEEKDAYS, min_size=1, max_size=7)
        parts.append("BYDAY=" + ",".join(draw(days)))
    if frequency in {"MONTHLY", "YEARLY"}:
        if draw(st.booleans()):
            day = st.integers(1, 31) | st.integers(-31, -1)
            month_days = draw(st.lists(day, min_size=1, max_size=8))
            parts.append("BYMONTHDAY=" + ",".join(map(str, month_days)))
        if draw(st.booleans()):
            months = draw(st.lists(st.integers(1, 12), min_size=1, max_size=4, unique=True))
            parts.append("BYMONTH=" + ",".join(map(str, months)))
    rule = ";".join([f"FREQ={frequency}", *draw(st.permutations(parts))])
    assert recurrence.validate(rule) == rule
    return rule


DUE_DATES = st.datetimes(datetime(1970, 1, 1), datetime(2150, 12, 31)).map(
    lambda due: due.replace(microsecond=0, tzinfo=UTC)
)


def dateutil_next(rule: str, due_at: datetime) -> datetime | None:
    """The reference: dateutil's next occurrence (it searches up to year 9999)."""
    if int(recurrence.parse(rule).count or 2) <= 1:
        return None
    return rrulestr(rule, dtstart=due_at).replace(count=None).after(due_at)


def shifted(rule: str, years: int) -> str:
    """The rule with its UNTIL moved by `years` (None when that leaves year 9999)."""
    until = recurrence.parse(rule).until
    if until is None:
        return rule
    if until.year + years > recurrence.LAST_YEAR:
        return None
    parts = [part for part in rule.split(";") if not part.startswith("UNTIL=")]
    return ";".join([*parts, f"UNTIL={until.replace(year=until.year + years):%Y%m%dT%H%M%SZ}"])


def plus_years(moment: datetime, years: int) -> datetime:
    return moment.replace(year=moment.year + years)


@settings(max_examples=600, deadline=None)
@given(rule=rules(), due_at=DUE_DATES)
@example(rule="FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29", due_at=datetime(2096, 2, 29, 9, tzinfo=UTC))
@example(rule="FREQ=YEARLY;BYMONTH=2;BYDAY=5FR", due_at=datetime(2026, 12, 8, 9, tzinfo=UTC))
@example(rule="FREQ=YEARLY;BYDAY=20MO", due_at=datetime(2026, 12, 8, 9, tzinfo=UTC))
@example(
    rule="FREQ=MONTHLY;BYDAY=-1FR;BYMONTHDAY=-7,-6,-5,-4,-3,-2,-1",
    due_at=datetime(2026, 1, 30, tzinfo=UTC),
)
@example(
    rule="FREQ=WEEKLY;INTERVAL=3;WKST=SU;BYDAY=SU,SA", due_at=datetime(2026, 12, 5, tzinfo=UTC)
)
@example(  # 73 months: January again every 73 years, a whole cycle is 4,800 periods long
    rule="FREQ=MONTHLY;INTERVAL=73;BYDAY=-1MO;BYMONTHDAY=26;BYMONTH=1",
    due_at=datetime(2000, 1, 1, tzinfo=UTC),
)
def test_the_next_occurrence_is_dateutils(rule, due_at):
    found = recurrence.next_due(rule, due_at)
    if found is not None:
        assert found == dateutil_next(rule, due_at)
        return
    # dateutil would scan to year 9999: ask it about the same date a whole number of calendar
    # cycles later, where that takes at most one cycle (the dates are the same, shifted).
    years = (recurrence.LAST_YEAR - CYCLE_YEARS - due_at.year) // CYCLE_YEARS * CYCLE_YEARS
    late_rule = shifted(rule, years)
    if late_rule is not None:
        assert dateutil_next(late_rule, plus_years(due_at, years)) is None
        assert recurrence.next_due(late_rule, plus_years(due_at, years)) is None


def cpu_seconds(rule: str, due_at: datetime) -> float:
    recurrence.next_due.cache_clear()
    recurrence.parse.cache_clear()
    started = time.process_time()
    recurrence.next_due(rule, due_at)
    return time.process_time() - started


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rule=rules(), due_at=DUE_DATES)
@example(rule="FREQ=MONTHLY;BYMONTH=2;BYMONTHDAY=30", due_at=datetime(1970, 1, 1, tzinfo=UTC))
@example(
    rule="FREQ=YEARLY;BYMONTHDAY=31;BYMONTH=2,4,6,9,11", due_at=datetime(1970, 1, 1, tzinfo=UTC)
)
@example(rule="FREQ=DAILY;INTERVAL=7;BYDAY=MO", due_at=datetime(2026, 12, 8, tzinfo=UTC))
def test_no_rule_costs_more_than_the_cpu_budget(rule, due_at):
    spent = cpu_seconds(rule, due_at)
    target(spent)  # hypothesis steers towards the slowest rules it can find
    assert spent < CPU_BUDGET_SECONDS, (rule, due_at, spent)


def test_the_longest_rule_the_grammar_accepts_stays_within_the_budget():
    every_day = ",".join(str(day) for day in [*range(1, 32), *range(-31, 0)])
    numbered = ",".join(f"{n}{day}" for n in (5, -5) for day in recurrence.WEEKDAYS)
    rule = f"FREQ=MONTHLY;BYMONTHDAY={every_day};BYDAY={numbered};BYMONTH=2"
    assert len(rule) <= 500
    assert recurrence.validate(rule)
    assert cpu_seconds(rule, datetime(2029, 3, 1, tzinfo=UTC)) < CPU_BUDGET_SECONDS


@pytest.mark.parametrize(
    ("rule", "due", "following"),
    [
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29", "2096-02-29", "2104-02-29"),
        ("FREQ=MONTHLY;BYMONTH=2;BYMONTHDAY=30", "2026-02-01", None),
        ("FREQ=DAILY;INTERVAL=7;BYDAY=MO", "2026-12-08", None),
        ("FREQ=YEARLY;UNTIL=99991231T235959Z", "9999-06-01", None),
        ("FREQ=DAILY", "9999-12-31", None),
    ],
)
def test_the_search_ends_where_the_series_does(rule, due, following):
    due_at = datetime.fromisoformat(due).replace(tzinfo=UTC)
    expected = following and datetime.fromisoformat(following).replace(tzinfo=UTC)
    assert recurrence.next_due(rule, due_at) == expected


def test_an_exhausted_rule_is_not_searched_again_when_the_task_is_completed_again(
    alice, make_task, monkeypatch
):
    searches = []
    search = recurrence._next_date
    monkeypatch.setattr(recurrence, "_next_date", lambda *args: searches.append(1) or search(*args))
    due = (datetime.now(UTC) + timedelta(days=1)).replace(month=3, day=1)
    task = make_task(recurrence="FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", due_at=due.isoformat())
    for _ in range(3):  # complete, reopen, complete
        response = alice.post(f"/v1/tasks/{task['id']}/toggle")
        assert response.status_code == 200
    assert response.json()["completed"] is True
    assert response.json().get("next_occurrence_id") is None
    assert len(searches) == 1
