"""Organising tasks: due_at, completed_at, priority and labels, and the list filters on them."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tasks.models import Priority, Task


def ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [task["id"] for task in response.json()["results"]]


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --- due_at ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "answered", "stored"),
    [
        ("2026-03-01T10:30:00Z", "2026-03-01T10:30:00Z", datetime(2026, 3, 1, 10, 30, tzinfo=UTC)),
        ("2026-03-01T10:30:00+02:00", "2026-03-01T08:30:00Z",
         datetime(2026, 3, 1, 8, 30, tzinfo=UTC)),
        ("2026-03-01T10:30:00.25-05:00", "2026-03-01T15:30:00.250000Z",
         datetime(2026, 3, 1, 15, 30, 0, 250000, tzinfo=UTC)),
        ("2026-03-01", "2026-03-01T00:00:00Z", datetime(2026, 3, 1, tzinfo=UTC)),
        (None, None, None),
    ],
    ids=["utc", "offset", "fraction", "plain-date", "null"],
)  # fmt: skip
def test_due_at_takes_an_rfc3339_date_time_or_a_plain_date_at_midnight_utc(
    alice, sent, answered, stored
):
    response = alice.post("/v1/tasks", {"title": "x", "due_at": sent}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["due_at"] == answered
    assert Task.all_objects.get(pk=response.json()["id"]).due_at == stored


def test_due_at_is_null_when_not_given(alice, make_task):
    assert make_task()["due_at"] is None


@pytest.mark.parametrize(
    "value",
    [
        "2026-03-01T10:30:00",  # no offset
        "2026-03-01 10:30",
        "2026-02-30",
        "2026-13-01",
        "2026-03-01T25:00:00Z",
        "2026-03-01T10:30:00+25:00",
        "tomorrow",
        "",
        20260301,
        ["2026-03-01"],
        pytest.param("2026-W09-7"),
        pytest.param("20260301T103000Z"),
        pytest.param("2026-03-01T10Z"),
        pytest.param("2026-03-01T10:30:00+0200"),
        pytest.param("9999-12-31T23:30:00-01:00"),
        pytest.param("0001-01-01T00:30:00+01:00"),
        " 2026-03-01",
        "2026-03-01T10:30:00Z\n",
        "\uff12\uff10\uff12\uff16-03-01",
    ],
)
def test_a_bad_due_at_is_422_and_stores_nothing(alice, make_task, value):
    response = alice.post("/v1/tasks", {"title": "x", "due_at": value}, format="json")
    assert response.status_code == 422, response.content
    assert response.json()["errors"][0]["attr"] == "due_at"
    task = make_task(due_at="2026-03-01")
    response = alice.patch(f"/v1/tasks/{task['id']}", {"due_at": value}, format="json")
    assert response.status_code == 422
    assert Task.all_objects.get(pk=task["id"]).due_at == datetime(2026, 3, 1, tzinfo=UTC)
    assert Task.all_objects.count() == 1


def test_patch_null_clears_due_at_and_put_without_it_keeps_it(alice, make_task):
    task = make_task(due_at="2026-03-01T09:00:00Z")
    kept = alice.put(f"/v1/tasks/{task['id']}", {"title": "renamed"}, format="json").json()
    assert kept["due_at"] == "2026-03-01T09:00:00Z"
    cleared = alice.patch(f"/v1/tasks/{task['id']}", {"due_at": None}, format="json").json()
    assert cleared["due_at"] is None
    assert Task.all_objects.get(pk=task["id"]).due_at is None


@pytest.fixture
def dated(make_task):
    """Tasks around 2026-01-10, keyed by name."""
    return {
        "jan9": make_task(title="jan9", due_at="2026-01-09T23:59:59.999999Z")["id"],
        "jan10": make_task(title="jan10", due_at="2026-01-10T00:00:00Z")["id"],
        "jan10-late": make_task(title="jan10-late", due_at="2026-01-10T23:59:59Z")["id"],
        "jan11": make_task(title="jan11", due_at="2026-01-11T00:00:00Z")["id"],
        "undated": make_task(title="undated")["id"],
    }


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"due_after": "2026-01-10"}, {"jan10", "jan10-late", "jan11"}),
        ({"due_after": "2026-01-10T01:00:00+01:00"}, {"jan10", "jan10-late", "jan11"}),
        ({"due_after": "2026-01-10T00:00:00.000001Z"}, {"jan10-late", "jan11"}),
        ({"due_before": "2026-01-10"}, {"jan9"}),
        ({"due_before": "2026-01-10T00:00:00.000001Z"}, {"jan9", "jan10"}),
        ({"due_after": "2026-01-10", "due_before": "2026-01-11"}, {"jan10", "jan10-late"}),
        ({"due_after": "2026-01-11", "due_before": "2026-01-10"}, set()),
    ],
)
def test_due_after_is_inclusive_and_due_before_exclusive(alice, dated, params, expected):
    found = set(ids(alice.get("/v1/tasks", params)))
    assert found == {dated[name] for name in expected}


@pytest.mark.parametrize("name", ["due_after", "due_before"])
@pytest.mark.parametrize(
    "value",
    [
        "junk", "2026-01-10T10:00:00", "2026-02-30", "2026-01-10T10:00:00+25:00", "1",
        pytest.param("9999-12-31T23:30:00-01:00"), "", " 2026-01-10", "2026-01-10\n",
        "\uff12\uff10\uff12\uff16-01-10", "2026-01-10\x00",
    ],
    ids=repr,
)  # fmt: skip
def test_a_bad_due_filter_is_422(alice, name, value):
    response = alice.get("/v1/tasks", {name: value})
    assert response.status_code == 422, response.content
    assert response.json()["errors"][0]["attr"] == name


def test_overdue_means_due_before_now_and_not_completed(alice, make_task):
    now = timezone.now()
    late = make_task(title="late", due_at=iso(now - timedelta(minutes=1)))
    done_late = make_task(title="done late", due_at=iso(now - timedelta(days=2)), completed=True)
    upcoming = make_task(title="upcoming", due_at=iso(now + timedelta(hours=1)))
    undated = make_task(title="undated")
    assert ids(alice.get("/v1/tasks?overdue=true")) == [late["id"]]
    assert set(ids(alice.get("/v1/tasks?overdue=false"))) == {
        done_late["id"], upcoming["id"], undated["id"]
    }  # fmt: skip
    alice.post(f"/v1/tasks/{late['id']}/toggle")
    assert ids(alice.get("/v1/tasks?overdue=true")) == []


@pytest.mark.parametrize("value", ["1", "yes", "True", "", "now"])
def test_a_bad_overdue_value_is_422(alice, value):
    response = alice.get("/v1/tasks", {"overdue": value})
    assert response.status_code == 422
    assert response.json()["errors"][0]["attr"] == "overdue"


# --- completed_at ---------------------------------------------------------------------------

COMPLETE = [
    ("patch", "/v1/tasks/{id}", {"completed": True}),
    ("put", "/v1/tasks/{id}", {"title": "x", "completed": True}),
    ("post", "/v1/tasks/{id}/toggle", None),
]
REOPEN = [
    ("patch", "/v1/tasks/{id}", {"completed": False}),
    ("put", "/v1/tasks/{id}", {"title": "x", "completed": False}),
    ("post", "/v1/tasks/{id}/toggle", None),
]


def test_completed_at_is_null_for_an_open_task_and_set_for_one_created_completed(make_task):
    assert make_task()["completed_at"] is None
    done = make_task(completed=True)
    assert done["completed_at"] is not None
    assert Task.all_objects.get(pk=done["id"]).completed_at is not None


@pytest.mark.parametrize(("method", "path", "body"), COMPLETE, ids=["patch", "put", "toggle"])
def test_completing_sets_completed_at_in_the_same_update(alice, make_task, method, path, body):
    task = make_task()
    before = timezone.now()
    response = getattr(alice, method)(path.format(id=task["id"]), body, format="json")
    assert response.status_code == 200
    done = response.json()
    assert done["completed"] is True
    # One UPDATE sets both, with the same timestamp.
    assert done["completed_at"] == done["updated_at"]
    stored = Task.all_objects.get(pk=task["id"])
    assert before <= stored.completed_at <= timezone.now()
    assert stored.completed_at == stored.updated_at


@pytest.mark.parametrize(("method", "path", "body"), REOPEN, ids=["patch", "put", "toggle"])
def test_reopening_clears_completed_at(alice, make_task, method, path, body):
    task = make_task(completed=True)
    response = getattr(alice, method)(path.format(id=task["id"]), body, format="json")
    assert response.status_code == 200
    assert (response.json()["completed"], response.json()["completed_at"]) == (False, None)
    assert Task.all_objects.get(pk=task["id"]).completed_at is None


@pytest.mark.parametrize("method", ["patch", "put"])
def test_completing_an_already_completed_task_keeps_its_completed_at(alice, make_task, method):
    task = make_task(completed=True)
    again = getattr(alice, method)(
        f"/v1/tasks/{task['id']}", {"title": "x", "completed": True}, format="json"
    ).json()
    assert again["completed_at"] == task["completed_at"]
    assert again["updated_at"] > task["updated_at"]


def test_completed_at_cannot_be_written(alice, make_task):
    task = make_task()
    sent = {"title": "x", "completed_at": "2000-01-01T00:00:00Z"}
    assert alice.post("/v1/tasks", sent, format="json").json()["completed_at"] is None
    patched = alice.patch(f"/v1/tasks/{task['id']}", sent, format="json").json()
    assert patched["completed_at"] is None
    done = alice.patch(f"/v1/tasks/{task['id']}", {**sent, "completed": True}, format="json")
    assert not done.json()["completed_at"].startswith("2000")


# --- priority -------------------------------------------------------------------------------


@pytest.mark.parametrize(("label", "rank"), [("none", 0), ("low", 1), ("medium", 2), ("high", 3)])
def test_priority_is_a_word_on_the_wire_and_a_rank_in_the_database(alice, label, rank):
    response = alice.post("/v1/tasks", {"title": "x", "priority": label}, format="json")
    assert response.status_code == 201
    assert response.json()["priority"] == label
    assert Task.all_objects.get(pk=response.json()["id"]).priority == rank


def test_priority_defaults_to_none(make_task):
    task = make_task()
    assert task["priority"] == "none"
    assert Task.all_objects.get(pk=task["id"]).priority == Priority.NONE


@pytest.mark.parametrize("value", ["urgent", "HIGH", "", 3, None, ["high"], True])
def test_a_bad_priority_is_422(alice, make_task, value):
    response = alice.post("/v1/tasks", {"title": "x", "priority": value}, format="json")
    assert response.status_code == 422
    assert response.json()["errors"][0]["attr"] == "priority"
    task = make_task(priority="low")
    assert (
        alice.patch(f"/v1/tasks/{task['id']}", {"priority": value}, format="json").status_code
        == 422
    )
    assert Task.all_objects.get(pk=task["id"]).priority == Priority.LOW  # fmt: skip


def test_priority_filter_takes_one_or_several_values(alice, make_task):
    made = {p: make_task(title=p, priority=p)["id"] for p in ("none", "low", "medium", "high")}
    assert ids(alice.get("/v1/tasks?priority=high")) == [made["high"]]
    both = set(ids(alice.get("/v1/tasks", {"priority": ["high", "low"]})))
    assert both == {made["high"], made["low"]}
    assert ids(alice.get("/v1/tasks?priority=none")) == [made["none"]]


@pytest.mark.parametrize("query", ["priority=urgent", "priority=HIGH", "priority=high&priority=3"])
def test_a_bad_priority_filter_is_422(alice, query):
    response = alice.get(f"/v1/tasks?{query}")
    assert response.status_code == 422
    assert response.json()["errors"][0]["attr"] == "priority"


# --- labels ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ([" Work ", "Work", "work", "home"], ["Work", "work", "home"]),
        (["a", " a", "a "], ["a"]),
        ([], []),
        (["x" * 50], ["x" * 50]),
        ([f"l{n}" for n in range(20)], [f"l{n}" for n in range(20)]),
        (["Ünïcödé", "ÜNÏCÖDÉ"], ["Ünïcödé", "ÜNÏCÖDÉ"]),
    ],
    ids=["trim-case-dedupe", "trimmed-duplicates", "empty", "50-chars", "20-labels", "unicode"],
)
def test_labels_are_trimmed_case_preserved_and_deduplicated(alice, sent, kept):
    response = alice.post("/v1/tasks", {"title": "x", "labels": sent}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["labels"] == kept
    assert Task.all_objects.get(pk=response.json()["id"]).labels == kept


def test_labels_default_to_an_empty_list_and_put_without_them_keeps_them(alice, make_task):
    assert make_task()["labels"] == []
    task = make_task(labels=["a"])
    path = f"/v1/tasks/{task['id']}"
    assert alice.put(path, {"title": "y"}, format="json").json()["labels"] == ["a"]
    assert alice.patch(path, {"labels": []}, format="json").json()["labels"] == []


@pytest.mark.parametrize(
    "labels",
    [[f"l{n}" for n in range(21)], [""], ["   "], ["x" * 51], [5], [None], [["a"]], "work", None,
     {"a": 1}],
    ids=["21-labels", "empty", "blank", "51-chars", "number", "null-item", "nested", "string",
         "null", "object"],
)  # fmt: skip
def test_bad_labels_are_422_and_store_nothing(alice, make_task, labels):
    response = alice.post("/v1/tasks", {"title": "x", "labels": labels}, format="json")
    assert response.status_code == 422, response.content
    assert response.json()["errors"][0]["attr"].startswith("labels")
    task = make_task(labels=["keep"])
    response = alice.patch(f"/v1/tasks/{task['id']}", {"labels": labels}, format="json")
    assert response.status_code == 422
    assert Task.all_objects.get(pk=task["id"]).labels == ["keep"]
    assert Task.all_objects.count() == 1


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Work", {"work-task", "both"}),
        ("work", {"lower"}),
        (" Work ", {"work-task", "both"}),
        ("home", {"both"}),
        ("Wor", set()),
        ('say "hi"', {"quoted"}),
        ("back\\slash", {"quoted"}),
        ("%", set()),
        ("none-has-it", set()),
    ],
)
def test_label_filter_matches_a_whole_label_exactly(alice, bob, make_task, query, expected):
    made = {
        "work-task": make_task(labels=["Work"]),
        "both": make_task(labels=["urgent", "Work", "home"]),
        "lower": make_task(labels=["work", "homework"]),
        "quoted": make_task(labels=['say "hi"', "back\\slash"]),
        "unlabelled": make_task(),
    }
    make_task(bob, labels=["Work", "home"])
    gone = make_task(labels=["Work", "home"])
    alice.delete(f"/v1/tasks/{gone['id']}")
    found = set(ids(alice.get("/v1/tasks", {"label": query})))
    assert found == {made[name]["id"] for name in expected}


def test_all_filters_combine_in_one_query_per_page(alice, make_task, django_assert_num_queries):
    now = timezone.now()
    wanted = []
    for n in range(6):
        wanted.append(
            make_task(title=f"milk {n}", priority="high", labels=["shop"],
                      due_at=iso(now - timedelta(days=n + 1)))["id"]
        )  # fmt: skip
    make_task(
        title="milk low", priority="low", labels=["shop"], due_at=iso(now - timedelta(days=1))
    )
    make_task(title="milk unlabelled", priority="high", due_at=iso(now - timedelta(days=1)))
    make_task(title="milk done", priority="high", labels=["shop"], completed=True,
              due_at=iso(now - timedelta(days=1)))  # fmt: skip
    make_task(
        title="milk later", priority="high", labels=["shop"], due_at=iso(now + timedelta(days=1))
    )
    make_task(title="bread", priority="high", labels=["shop"], due_at=iso(now - timedelta(days=1)))
    params = {
        "q": "MILK", "label": "shop", "priority": ["high", "medium"], "completed": "false",
        "overdue": "true", "due_after": "2000-01-01", "due_before": iso(now), "ordering": "due_at",
        "page_size": "4",
    }  # fmt: skip
    with django_assert_num_queries(1):
        first = alice.get("/v1/tasks", params)
    with django_assert_num_queries(1):
        second = alice.get(first.json()["next"])
    assert ids(first) + ids(second) == list(reversed(wanted))  # earliest due first
    assert second.json()["next"] is None


LABEL_SEED = """
INSERT INTO tasks (id, user_id, title, details, completed, labels, created_at, updated_at)
SELECT gen_random_uuid(), CASE WHEN i % 2 = 0 THEN 'alice' ELSE 'user' || (i % 50) END, 't' || i,
       '', false,
       CASE WHEN i % 997 = 0 THEN '["rare"]'::jsonb
            ELSE jsonb_build_array('common', 'tag' || (i % 10)) END,
       now() - i * interval '1 second', now()
FROM generate_series(1, 6000) AS i
"""


@pytest.mark.postgresql
def test_the_label_filter_uses_the_gin_index_instead_of_a_seq_scan(alice):
    with connection.cursor() as cursor:
        cursor.execute(LABEL_SEED)
        cursor.execute("SELECT gin_clean_pending_list('tasks_labels_gin'::regclass)")
        cursor.execute("ANALYZE tasks")
    with CaptureQueriesContext(connection) as queries:
        response = alice.get("/v1/tasks?label=rare")
    assert len(ids(response)) == len([n for n in range(997, 6001, 997) if n % 2 == 0])
    assert len(queries) == 1
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + queries[0]["sql"])
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Seq Scan" not in plan, plan
    assert re.search(r"Bitmap Index Scan on tasks_labels_gin", plan), plan


def test_the_label_filter_works_on_every_database_in_one_query(
    alice, make_task, django_assert_num_queries
):
    tagged = make_task(labels=["x", "y"])
    make_task(labels=["xy"])
    with django_assert_num_queries(1):
        assert ids(alice.get("/v1/tasks?label=y")) == [tagged["id"]]
