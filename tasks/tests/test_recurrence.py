"""Recurring tasks: RRULE validation, and the next occurrence created on completion."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection, connections

from tasks.models import Task
from tasks.tests.conftest import client_for

DUE = "2026-01-09T10:00:00Z"  # a Friday

# On PostgreSQL the CHECK constraint (recurrence needs due_at) aborts the transaction that
# pytest-django wraps each test in; those tests commit for real there.
hits_the_check = pytest.mark.django_db(transaction=connection.vendor == "postgresql")


def recurring(make_task, rule="FREQ=DAILY", due=DUE, **fields) -> dict:
    return make_task(title="Water plants", due_at=due, recurrence=rule, **fields)


# --- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("FREQ=DAILY", "FREQ=DAILY"),
        ("RRULE:FREQ=WEEKLY;BYDAY=MO,WE", "FREQ=WEEKLY;BYDAY=MO,WE"),
        ("FREQ=MONTHLY;BYMONTHDAY=1,15", "FREQ=MONTHLY;BYMONTHDAY=1,15"),
        ("FREQ=YEARLY;INTERVAL=2;COUNT=5", "FREQ=YEARLY;INTERVAL=2;COUNT=5"),
        ("FREQ=DAILY;UNTIL=20300101T000000Z", "FREQ=DAILY;UNTIL=20300101T000000Z"),
        ("FREQ=WEEKLY;WKST=SU;INTERVAL=2;BYDAY=SU,SA",
         "FREQ=WEEKLY;WKST=SU;INTERVAL=2;BYDAY=SU,SA"),
        ("FREQ=MONTHLY;BYDAY=-1FR,+2MO", "FREQ=MONTHLY;BYDAY=-1FR,+2MO"),
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;UNTIL=20960229T120000Z",
         "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;UNTIL=20960229T120000Z"),
        # It never occurs: the series ends at the first completion (see below).
        ("FREQ=MONTHLY;BYMONTHDAY=31;BYMONTH=2", "FREQ=MONTHLY;BYMONTHDAY=31;BYMONTH=2"),
        ("", ""),
    ],
)  # fmt: skip
def test_a_valid_rule_is_stored(alice, sent, stored):
    response = alice.post(
        "/v1/tasks", {"title": "x", "due_at": DUE, "recurrence": sent}, format="json"
    )
    assert response.status_code == 201, response.content
    assert response.json()["recurrence"] == stored
    assert Task.all_objects.get(pk=response.json()["id"]).recurrence == stored


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=HOURLY", "FREQ=MINUTELY", "FREQ=SECONDLY", "FREQ=FORTNIGHTLY", "INTERVAL=2",
        "FREQ=DAILY;INTERVAL=x", "FREQ=WEEKLY;BYDAY=XX", "FREQ=DAILY;COUNT=x",
        "FREQ=DAILY;UNTIL=tomorrow", "FREQ=DAILY;FOO=1", "not a rule", "FREQ=DAILY;" + "x" * 500,
        "DTSTART:20260101T000000Z\nRRULE:FREQ=DAILY", 5, None, ["FREQ=DAILY"],
        "FREQ=DAILY;INTERVAL=0", "FREQ=DAILY;INTERVAL=-1", "FREQ=MONTHLY;BYMONTHDAY=32",
        "FREQ=MONTHLY;BYMONTHDAY=0", "FREQ=DAILY;COUNT=0",
        "FREQ=DAILY;COUNT=3;UNTIL=20300101T000000Z",
        "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30",  # no month filters on daily or weekly rules
        "FREQ=WEEKLY;BYMONTHDAY=1", "FREQ=WEEKLY;BYDAY=1MO", "FREQ=MONTHLY;BYDAY=MO,1TU",
        "FREQ=DAILY;BYSETPOS=5;BYDAY=MO", "FREQ=MONTHLY;BYDAY=6MO",
        "  FREQ=DAILY", "FREQ=DAILY ", "freq=weekly;byday=fr", "rrule:FREQ=DAILY",
        "INTERVAL=2;FREQ=DAILY", "FREQ=DAILY;INTERVAL=2;INTERVAL=3", "FREQ=DAILY;;COUNT=2",
        "FREQ=DAILY;INTERVAL=10000", "FREQ=DAILY;UNTIL=20270229T000000Z",
        "FREQ=DAILY;UNTIL=20300101", "FREQ=DAILY;UNTIL=20300101T000000",
        "FREQ=MONTHLY;BYMONTH=13", "FREQ=MONTHLY;BYMONTHDAY=-32", "FREQ=DAILY\n",
    ],
    ids=lambda rule: repr(rule)[:40],
)  # fmt: skip
def test_an_invalid_rule_is_422_and_stores_nothing(alice, make_task, rule):
    response = alice.post(
        "/v1/tasks", {"title": "x", "due_at": DUE, "recurrence": rule}, format="json"
    )
    assert response.status_code == 422, response.content
    assert response.json()["errors"][0]["attr"] == "recurrence"
    task = recurring(make_task)
    response = alice.patch(f"/v1/tasks/{task['id']}", {"recurrence": rule}, format="json")
    assert response.status_code == 422
    assert Task.all_objects.get(pk=task["id"]).recurrence == "FREQ=DAILY"
    assert Task.all_objects.count() == 1


def needs_due_at(response) -> bool:
    """A 409 `recurrence_needs_due_at` (a conflict with the stored task, not bad data)."""
    assert response.status_code == 409, response.content
    return [e["code"] for e in response.json()["errors"]] == ["recurrence_needs_due_at"]


def test_a_new_task_with_a_rule_and_no_due_date_is_422_naming_recurrence(alice):
    for body in (
        {"title": "x", "recurrence": "FREQ=DAILY"},
        {"title": "x", "recurrence": "FREQ=DAILY", "due_at": None},
    ):
        response = alice.post("/v1/tasks", body, format="json")
        assert response.status_code == 422, response.content
        [error] = response.json()["errors"]
        assert (error["attr"], error["code"]) == ("recurrence", "recurrence_needs_due_at")
    bulk = {"operations": [{"op": "create", "data": {"title": "x", "recurrence": "FREQ=DAILY"}}]}
    response = alice.post("/v1/tasks/bulk", bulk, format="json")
    assert response.status_code == 422, response.content
    assert response.json()["errors"][0]["attr"] == "operations.0.data.recurrence"
    assert Task.all_objects.count() == 0


@hits_the_check
def test_a_rule_without_a_due_date_on_a_stored_task_is_409(alice, make_task):
    undated = make_task(title="undated")
    path = f"/v1/tasks/{undated['id']}"
    assert needs_due_at(alice.patch(path, {"recurrence": "FREQ=DAILY"}, format="json"))
    assert alice.get(f"/v1/tasks/{undated['id']}").json() == undated
    # Removing the due date of a recurring task is refused the same way.
    task = recurring(make_task)
    for method, body in (("patch", {"due_at": None}), ("put", {"title": "x", "due_at": None})):
        response = getattr(alice, method)(f"/v1/tasks/{task['id']}", body, format="json")
        assert needs_due_at(response)
    assert alice.get(f"/v1/tasks/{task['id']}").json() == task
    assert Task.all_objects.count() == 2


def test_a_rule_and_a_due_date_can_be_set_or_cleared_together(alice, make_task):
    task = make_task()
    both = {"due_at": DUE, "recurrence": "FREQ=WEEKLY"}
    set_ = alice.patch(f"/v1/tasks/{task['id']}", both, format="json").json()
    assert (set_["due_at"], set_["recurrence"]) == (DUE, "FREQ=WEEKLY")
    cleared = alice.patch(
        f"/v1/tasks/{task['id']}", {"due_at": None, "recurrence": ""}, format="json"
    ).json()
    assert (cleared["due_at"], cleared["recurrence"]) == (None, "")


# --- completion -----------------------------------------------------------------------------

COMPLETE = [
    ("post", "/v1/tasks/{id}/toggle", None),
    ("patch", "/v1/tasks/{id}", {"completed": True}),
    ("put", "/v1/tasks/{id}", {"title": "Water plants", "completed": True}),
]


@pytest.mark.parametrize(("method", "path", "body"), COMPLETE, ids=["toggle", "patch", "put"])
def test_completing_a_recurring_task_creates_its_next_occurrence(
    alice, make_task, method, path, body
):
    task = recurring(
        make_task, "FREQ=WEEKLY;BYDAY=MO,WE", details="the ferns", priority="high",
        labels=["home", "Garden"],
    )  # fmt: skip
    response = getattr(alice, method)(path.format(id=task["id"]), body, format="json")
    assert response.status_code == 200, response.content
    done = response.json()
    assert done["completed"] is True and done["completed_at"] is not None
    assert done["due_at"] == DUE
    following = alice.get(f"/v1/tasks/{done['next_occurrence_id']}").json()
    assert following["due_at"] == "2026-01-12T10:00:00Z"  # the Monday after
    for field in ("title", "details", "priority", "labels", "recurrence", "user_id"):
        assert following[field] == task[field], field
    assert (following["completed"], following["completed_at"]) == (False, None)
    assert following["id"] != task["id"]
    assert Task.all_objects.for_user("alice").count() == 2
    listed = {t["id"] for t in alice.get("/v1/tasks?completed=false").json()["results"]}
    assert listed == {following["id"]}


@pytest.mark.parametrize(
    ("rule", "due", "following"),
    [
        ("FREQ=DAILY", DUE, "2026-01-10T10:00:00Z"),
        ("FREQ=DAILY;INTERVAL=3", DUE, "2026-01-12T10:00:00Z"),
        ("FREQ=WEEKLY", DUE, "2026-01-16T10:00:00Z"),
        ("FREQ=WEEKLY;INTERVAL=2;BYDAY=FR", DUE, "2026-01-23T10:00:00Z"),
        ("FREQ=WEEKLY;BYDAY=SA,SU", DUE, "2026-01-10T10:00:00Z"),
        ("FREQ=MONTHLY", DUE, "2026-02-09T10:00:00Z"),
        ("FREQ=MONTHLY;BYMONTHDAY=1,15", DUE, "2026-01-15T10:00:00Z"),
        ("FREQ=MONTHLY;BYMONTHDAY=-1", DUE, "2026-01-31T10:00:00Z"),
        ("FREQ=MONTHLY;BYDAY=2MO", DUE, "2026-01-12T10:00:00Z"),
        ("FREQ=MONTHLY", "2026-01-31T08:00:00Z", "2026-03-31T08:00:00Z"),
        ("FREQ=YEARLY", DUE, "2027-01-09T10:00:00Z"),
        ("FREQ=YEARLY", "2024-02-29T00:00:00Z", "2028-02-29T00:00:00Z"),
        ("FREQ=DAILY;UNTIL=20260110T100000Z", DUE, "2026-01-10T10:00:00Z"),
        ("FREQ=DAILY", "2026-01-09", "2026-01-10T00:00:00Z"),
    ],
)
def test_the_next_due_date_follows_the_rule(alice, make_task, rule, due, following):
    task = recurring(make_task, rule, due)
    done = alice.post(f"/v1/tasks/{task['id']}/toggle").json()
    assert alice.get(f"/v1/tasks/{done['next_occurrence_id']}").json()["due_at"] == following


def test_a_count_is_shared_by_the_whole_series(alice, make_task):
    task, series = recurring(make_task, "FREQ=DAILY;COUNT=3"), []
    while task is not None:
        series.append((task["due_at"], task["recurrence"]))
        done = alice.patch(f"/v1/tasks/{task['id']}", {"completed": True}, format="json").json()
        following = done.get("next_occurrence_id")
        task = following and alice.get(f"/v1/tasks/{following}").json()
    assert series == [
        ("2026-01-09T10:00:00Z", "FREQ=DAILY;COUNT=3"),
        ("2026-01-10T10:00:00Z", "FREQ=DAILY;COUNT=2"),
        ("2026-01-11T10:00:00Z", "FREQ=DAILY;COUNT=1"),
    ]
    assert Task.all_objects.count() == 3


@pytest.mark.parametrize(
    "rule",
    ["FREQ=DAILY;COUNT=1", "FREQ=DAILY;UNTIL=20200101T000000Z",
     "FREQ=DAILY;UNTIL=20260109T100000Z", "FREQ=MONTHLY;BYMONTHDAY=31;BYMONTH=2",
     "FREQ=DAILY;INTERVAL=7;BYDAY=MO"],
    ids=["count-1", "until-past", "until-this-one", "never", "never-on-a-friday"],
)  # fmt: skip
def test_an_exhausted_rule_creates_no_next_occurrence(alice, make_task, rule):
    task = recurring(make_task, rule)
    response = alice.post(f"/v1/tasks/{task['id']}/toggle")
    assert response.status_code == 200
    assert response.json()["completed"] is True
    assert "next_occurrence_id" not in response.json()
    assert Task.all_objects.count() == 1


def test_only_the_transition_to_completed_creates_an_occurrence(alice, make_task):
    task = recurring(make_task)
    first = alice.patch(f"/v1/tasks/{task['id']}", {"completed": True}, format="json").json()
    assert "next_occurrence_id" in first
    again = alice.patch(f"/v1/tasks/{task['id']}", {"completed": True}, format="json").json()
    assert "next_occurrence_id" not in again
    put = alice.put(f"/v1/tasks/{task['id']}", {"title": "x", "completed": True}, format="json")
    assert "next_occurrence_id" not in put.json()
    edited = alice.patch(f"/v1/tasks/{task['id']}", {"details": "d"}, format="json").json()
    assert "next_occurrence_id" not in edited
    reopened = alice.post(f"/v1/tasks/{task['id']}/toggle").json()
    assert reopened["completed"] is False and "next_occurrence_id" not in reopened
    assert Task.all_objects.count() == 2


def test_a_task_without_a_rule_has_no_next_occurrence(alice, make_task):
    task = make_task(due_at=DUE)
    assert "next_occurrence_id" not in alice.post(f"/v1/tasks/{task['id']}/toggle").json()
    assert Task.all_objects.count() == 1


def test_completing_as_a_bulk_operation_creates_the_next_occurrence_too(alice, make_task):
    task = recurring(make_task)
    response = alice.post(
        "/v1/tasks/bulk", {"operations": [{"op": "toggle", "id": task["id"]}]}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["results"][0]["task"]["completed"] is True
    following = Task.all_objects.exclude(pk=task["id"]).get()
    assert following.recurrence == "FREQ=DAILY" and following.completed is False


def test_another_user_cannot_complete_a_recurring_task(alice, bob, make_task):
    task = recurring(make_task)
    for method, path, body in COMPLETE:
        response = getattr(bob, method)(path.format(id=task["id"]), body, format="json")
        assert response.status_code == 404
    assert Task.all_objects.count() == 1
    assert alice.get(f"/v1/tasks/{task['id']}").json() == task


def test_a_put_that_adds_a_rule_and_completes_creates_the_next_occurrence(alice, make_task):
    task = make_task(due_at=DUE)
    body = {"title": "x", "due_at": DUE, "recurrence": "FREQ=DAILY", "completed": True}
    response = alice.put(f"/v1/tasks/{task['id']}", body, format="json")
    assert response.status_code == 200
    assert "next_occurrence_id" in response.json()


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("how", ["patch", "put"])
def test_concurrent_completes_create_exactly_one_next_occurrence(make_task, how):
    task = recurring(make_task)
    path = f"/v1/tasks/{task['id']}"

    def complete(_):
        try:
            body = {"completed": True} if how == "patch" else {"title": "x", "completed": True}
            response = getattr(client_for("alice"), how)(path, body, format="json")
            return response.status_code, response.json().get("next_occurrence_id")
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(complete, range(16)))
    assert [status for status, _ in answers] == [200] * 16
    created = [following for _, following in answers if following]
    assert len(created) == 1
    assert Task.all_objects.count() == 2
    assert str(Task.all_objects.exclude(pk=task["id"]).get().pk) == created[0]


def test_reopening_and_completing_again_starts_no_second_occurrence(alice, make_task):
    task = recurring(make_task)
    first = alice.post(f"/v1/tasks/{task['id']}/toggle").json()
    assert "next_occurrence_id" in first
    alice.post(f"/v1/tasks/{task['id']}/toggle")  # reopened
    again = alice.post(f"/v1/tasks/{task['id']}/toggle").json()
    assert again["completed"] is True
    assert "next_occurrence_id" not in again
    assert Task.all_objects.count() == 2
