"""POST /v1/tasks/clear-completed, POST /v1/tasks/bulk (all or nothing) and GET /v1/tasks/stats."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from tasks.models import Task

MISSING_ID = "00000000-0000-0000-0000-000000000000"


def snapshot() -> dict[str, tuple]:
    fields = Task._meta.concrete_fields
    return {
        str(row.pk): tuple(getattr(row, f.attname) for f in fields)
        for row in Task.all_objects.all()
    }


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --- clear-completed ------------------------------------------------------------------------


def test_clear_completed_deletes_only_the_callers_completed_tasks(alice, bob, make_task):
    done = [make_task(title=f"done {n}", completed=True)["id"] for n in range(2)]
    open_ = make_task(title="open")["id"]
    bobs = make_task(bob, title="bob's", completed=True)["id"]
    response = alice.post("/v1/tasks/clear-completed")
    assert response.status_code == 200
    assert response.json() == {"deleted": 2}
    assert [t["id"] for t in alice.get("/v1/tasks").json()["results"]] == [open_]
    assert all(alice.get(f"/v1/tasks/{pk}").status_code == 404 for pk in done)
    assert all(Task.all_objects.get(pk=pk).deleted_at is not None for pk in done)
    assert bob.get(f"/v1/tasks/{bobs}").json()["completed"] is True
    assert alice.post("/v1/tasks/clear-completed").json() == {"deleted": 0}


def test_clear_completed_takes_no_parameters_that_widen_it(alice, make_task):
    make_task(completed=True)
    keep = make_task()["id"]
    response = alice.post("/v1/tasks/clear-completed?completed=false", {"all": True}, format="json")
    assert response.json() == {"deleted": 1}
    assert alice.get(f"/v1/tasks/{keep}").status_code == 200
    assert alice.get("/v1/tasks/clear-completed").status_code == 405


@pytest.mark.parametrize(
    "path", ["/v1/tasks", "/v1/tasks/clear-completed", "/v1/tasks/bulk", "/v1/tasks/stats",
             "/v1/tasks/changes"],
)  # fmt: skip
def test_options_describes_every_collection_route(alice, path):
    assert alice.options(path).status_code == 200


# --- bulk -----------------------------------------------------------------------------------


def bulk(client, *operations):
    return client.post("/v1/tasks/bulk", {"operations": list(operations)}, format="json")


def test_bulk_applies_every_operation_in_order(alice, make_task):
    edited, toggled, removed = make_task(title="e"), make_task(title="t"), make_task(title="r")
    response = bulk(
        alice,
        {"op": "create", "data": {"title": "new", "priority": "high", "labels": ["x"]}},
        {"op": "update", "id": edited["id"], "data": {"title": "edited", "due_at": "2026-05-01"}},
        {"op": "toggle", "id": toggled["id"]},
        {"op": "delete", "id": removed["id"]},
        {"op": "update", "id": edited["id"], "data": {"details": "then more"}},
    )
    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert [r["status"] for r in results] == [201, 200, 200, 204, 200]
    created = results[0]["task"]
    assert (created["title"], created["priority"], created["labels"]) == ("new", "high", ["x"])
    assert alice.get(f"/v1/tasks/{created['id']}").json() == created
    assert results[1]["task"]["title"] == "edited"
    assert results[2]["task"]["completed"] is True
    assert results[3]["task"] is None
    assert alice.get(f"/v1/tasks/{edited['id']}").json() == results[4]["task"]
    assert results[4]["task"]["due_at"] == "2026-05-01T00:00:00Z"
    assert results[4]["task"]["details"] == "then more"
    assert alice.get(f"/v1/tasks/{removed['id']}").status_code == 404
    assert Task.all_objects.get(pk=toggled["id"]).completed_at is not None


def test_bulk_takes_up_to_100_operations(alice):
    ops = [{"op": "create", "data": {"title": f"t{n}"}} for n in range(101)]
    response = bulk(alice, *ops)
    assert response.status_code == 422
    assert response.json()["errors"][0]["attr"].startswith("operations")
    assert Task.all_objects.count() == 0
    assert bulk(alice).status_code == 422  # none at all
    response = bulk(alice, *ops[:100])
    assert response.status_code == 200
    assert [r["status"] for r in response.json()["results"]] == [201] * 100
    assert Task.all_objects.for_user("alice").count() == 100


@pytest.mark.parametrize(
    ("failing", "status", "attr"),
    [
        ({"op": "update", "id": "{mine}", "data": {"title": ""}}, 422, "operations.2.data.title"),
        ({"op": "create", "data": {"title": "x", "priority": "urgent"}}, 422,
         "operations.2.data.priority"),
        ({"op": "create", "data": {"details": "no title"}}, 422, "operations.2.data.title"),
        ({"op": "update", "id": "{mine}", "data": {"completed": "true"}}, 422,
         "operations.2.data.completed"),
        ({"op": "update", "id": "{mine}", "data": {"recurrence": "FREQ=DAILY"}}, 409,
         "operations.2"),  # no due_at: the database's CHECK constraint refuses it
        ({"op": "create", "data": {"title": "x", "recurrence": "FREQ=DAILY"}}, 422,
         "operations.2.data.recurrence"),  # a new task has no stored due_at: a body error
        ({"op": "update", "id": MISSING_ID, "data": {"title": "x"}}, 404, "operations.2"),
        ({"op": "toggle", "id": MISSING_ID}, 404, "operations.2"),
        ({"op": "delete", "id": MISSING_ID}, 404, "operations.2"),
        ({"op": "update", "id": "{theirs}", "data": {"title": "hijacked"}}, 404, "operations.2"),
        ({"op": "toggle", "id": "{theirs}"}, 404, "operations.2"),
        ({"op": "delete", "id": "{theirs}"}, 404, "operations.2"),
        ({"op": "delete", "id": "{deleted}"}, 404, "operations.2"),
        ({"op": "update", "id": "{deleted_in_batch}", "data": {"title": "x"}}, 404, "operations.2"),
    ],
    ids=["blank-title", "bad-priority", "no-title", "string-boolean", "rule-without-due-date",
         "created-rule-without-due-date", "missing-update",
         "missing-toggle", "missing-delete", "foreign-update", "foreign-toggle", "foreign-delete",
         "already-deleted", "deleted-earlier-in-the-batch"],
)  # fmt: skip
def test_a_batch_with_one_failing_operation_changes_nothing(
    alice, bob, make_task, failing, status, attr
):
    mine, other = make_task(title="mine"), make_task(title="other", completed=True)
    theirs = make_task(bob, title="bob's")
    deleted = make_task(title="deleted")
    alice.delete(f"/v1/tasks/{deleted['id']}")
    names = {"mine": mine["id"], "theirs": theirs["id"], "deleted": deleted["id"],
             "deleted_in_batch": other["id"]}  # fmt: skip
    if "id" in failing:
        failing = {**failing, "id": failing["id"].format(**names)}
    before = snapshot()
    response = bulk(
        alice,
        {"op": "create", "data": {"title": "created then rolled back"}},
        # The same task deleted by an earlier operation of the batch, or toggled.
        {"op": "delete" if failing.get("id") == other["id"] else "toggle", "id": other["id"]},
        failing,
        {"op": "update", "id": mine["id"], "data": {"title": "after the failure"}},
    )
    assert response.status_code == status, response.content
    errors = response.json()["errors"]
    assert errors[0]["attr"].startswith(attr)
    assert all(e["attr"].startswith("operations.2") for e in errors)
    assert snapshot() == before
    assert alice.get(f"/v1/tasks/{mine['id']}").json() == mine


@pytest.mark.parametrize(
    ("operation", "attr"),
    [
        ({"op": "frobnicate", "id": MISSING_ID}, "operations.1.op"),
        ({"id": MISSING_ID}, "operations.1.op"),
        ({"op": "update", "data": {"title": "x"}}, "operations.1.id"),
        ({"op": "delete"}, "operations.1.id"),
        ({"op": "create", "id": MISSING_ID, "data": {"title": "x"}}, "operations.1.id"),
        ({"op": "create"}, "operations.1.data"),
        ({"op": "update", "id": MISSING_ID}, "operations.1.data"),
        ({"op": "toggle", "id": "not-a-uuid"}, "operations.1.id"),
        ({"op": "update", "id": MISSING_ID, "data": ["title"]}, "operations.1.data"),
        ("create", "operations.1"),
        pytest.param({"op": "delete", "id": 5}, "operations.1.id"),
    ],
    ids=["unknown-op", "no-op", "update-without-id", "delete-without-id", "create-with-id",
         "create-without-data", "update-without-data", "malformed-id", "data-not-object",
         "not-an-object", "number-as-id"],
)  # fmt: skip
def test_a_malformed_operation_is_422_and_nothing_runs(alice, make_task, operation, attr):
    task = make_task()
    before = snapshot()
    response = bulk(alice, {"op": "toggle", "id": task["id"]}, operation)
    assert response.status_code == 422, response.content
    assert response.json()["errors"][0]["attr"].startswith(attr)
    assert snapshot() == before


@pytest.mark.parametrize("body", [{}, {"operations": {}}, {"operations": "x"}, {"ops": []}])
def test_a_bulk_body_without_an_operations_list_is_422(alice, body):
    response = alice.post("/v1/tasks/bulk", body, format="json")
    assert response.status_code == 422
    assert response.json()["errors"][0]["attr"].startswith("operations")


def test_a_bulk_create_respects_the_per_user_cap(alice, make_task, settings):
    settings.MAX_TASKS_PER_USER = 3
    make_task()
    before = snapshot()
    ops = [{"op": "create", "data": {"title": f"t{n}"}} for n in range(3)]
    response = bulk(alice, *ops)
    assert response.status_code == 409
    assert response.json()["errors"][0]["attr"] == "operations.2"
    assert snapshot() == before


# --- stats ----------------------------------------------------------------------------------


def utc_day(moment: datetime, zone=UTC) -> tuple[datetime, datetime]:
    local = moment.astimezone(zone).date()
    start = datetime.combine(local, datetime.min.time(), zone)
    return start, datetime.combine(local + timedelta(days=1), datetime.min.time(), zone)


def test_stats_counts_the_callers_tasks_in_one_query(
    alice, bob, make_task, django_assert_num_queries
):
    now = timezone.now()
    today_start, _ = utc_day(now)
    make_task(title="overdue", due_at=iso(now - timedelta(days=2)))
    make_task(title="due today, overdue", due_at=iso(today_start))
    make_task(title="next week", due_at=iso(now + timedelta(days=7)))
    make_task(title="done late", due_at=iso(now - timedelta(days=2)), completed=True)
    make_task(title="done today", due_at=iso(today_start), completed=True)
    make_task(title="undated")
    gone = make_task(title="deleted, overdue", due_at=iso(now - timedelta(days=2)))
    alice.delete(f"/v1/tasks/{gone['id']}")
    make_task(bob, title="bob's, overdue", due_at=iso(now - timedelta(days=2)))
    with django_assert_num_queries(1):
        response = alice.get("/v1/tasks/stats")
    assert response.status_code == 200
    assert response.json() == {
        "total": 6, "open": 4, "completed": 2, "overdue": 2, "due_today": 1
    }  # fmt: skip
    assert bob.get("/v1/tasks/stats").json() == {
        "total": 1, "open": 1, "completed": 0, "overdue": 1, "due_today": 0
    }  # fmt: skip


def test_stats_of_a_user_without_tasks_are_zeros(alice, django_assert_num_queries):
    with django_assert_num_queries(1):
        response = alice.get("/v1/tasks/stats?tz=Europe/Paris")
    assert response.json() == {"total": 0, "open": 0, "completed": 0, "overdue": 0, "due_today": 0}


@pytest.mark.parametrize("zone", ["Pacific/Kiritimati", "Pacific/Pago_Pago", "Asia/Kolkata"])
def test_due_today_follows_the_tz_parameter(alice, make_task, zone):
    """A moment in the zone's today but not in UTC's (and one the other way round)."""
    now, local = timezone.now(), ZoneInfo(zone)
    utc_start, utc_end = utc_day(now)
    local_start, local_end = utc_day(now, local)
    local_only = next(m for m in (local_start, local_end - timedelta(seconds=1))
                      if not utc_start <= m < utc_end)  # fmt: skip
    utc_only = next(m for m in (utc_start, utc_end - timedelta(seconds=1))
                    if not local_start <= m < local_end)  # fmt: skip
    task = make_task(due_at=iso(local_only))
    assert alice.get("/v1/tasks/stats").json()["due_today"] == 0
    assert alice.get("/v1/tasks/stats", {"tz": zone}).json()["due_today"] == 1
    alice.patch(f"/v1/tasks/{task['id']}", {"due_at": iso(utc_only)}, format="json")
    assert alice.get("/v1/tasks/stats").json()["due_today"] == 1
    assert alice.get("/v1/tasks/stats", {"tz": zone}).json()["due_today"] == 0
    assert alice.get("/v1/tasks/stats", {"tz": "UTC"}).json()["due_today"] == 1


@pytest.mark.parametrize(
    "zone",
    [
        "Mars/Olympus", "", "utc ", "../../etc/passwd", "/etc/localtime", "Europe/", "Etc/GMT+15",
        "zone.tab", "UTC\x00",
        pytest.param("Europe"),
        pytest.param("x" * 300),
        pytest.param("localtime"),
    ],
    ids=lambda zone: repr(zone[:20]),
)  # fmt: skip
def test_a_bad_tz_is_422(alice, zone):
    response = alice.get("/v1/tasks/stats", {"tz": zone})
    assert response.status_code == 422, response.content
    assert response.json()["errors"][0]["attr"] == "tz"


def test_routes_without_an_id_are_not_taken_for_task_ids(alice, make_task):
    make_task(completed=True)
    paths = ["/v1/tasks/stats", "/v1/tasks/changes", "/v1/tasks/bulk", "/v1/tasks/clear-completed"]
    for path in paths:
        assert alice.delete(path).status_code == 405, path
        assert alice.put(path, {"title": "x"}, format="json").status_code == 405, path
