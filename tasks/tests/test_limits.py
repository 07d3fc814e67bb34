"""Resource limits (OWASP API4): a per-user task cap, and list requests whose cost the caller's
parameters cannot inflate."""

import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.models import Sum
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tasks import services
from tasks.models import Task, TaskCount
from tasks.tests.test_pagination import seed


def test_a_create_over_the_per_user_cap_is_409_and_stores_nothing(alice, bob, settings):
    settings.MAX_TASKS_PER_USER = 3
    for n in range(3):
        assert alice.post("/v1/tasks", {"title": f"t{n}"}, format="json").status_code == 201
    response = alice.post("/v1/tasks", {"title": "one too many"}, format="json")
    assert response.status_code == 409
    assert response.json()["errors"][0]["code"] == "task_limit_reached"
    assert Task.all_objects.for_user("alice").count() == 3
    # Other users have their own allowance, and a delete frees a place.
    assert bob.post("/v1/tasks", {"title": "bob's"}, format="json").status_code == 201
    alice.delete(f"/v1/tasks/{Task.all_objects.for_user('alice').first().pk}")
    assert alice.post("/v1/tasks", {"title": "fits again"}, format="json").status_code == 201


def test_an_idempotent_create_over_the_cap_is_409_and_keeps_the_key_free(alice, settings):
    settings.MAX_TASKS_PER_USER = 0
    response = alice.post("/v1/tasks", {"title": "x"}, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert response.status_code == 409
    settings.MAX_TASKS_PER_USER = 1
    response = alice.post("/v1/tasks", {"title": "x"}, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert response.status_code == 201


def live_counts() -> dict[str, int]:
    totals = TaskCount.objects.values("user_id").annotate(total=Sum("live"))
    return {row["user_id"]: row["total"] for row in totals if row["total"]}


def actual_counts() -> dict[str, int]:
    owners = Task.all_objects.filter(deleted_at__isnull=True).values_list("user_id", flat=True)
    return dict(Counter(owners))


def test_the_cap_counts_live_tasks_however_they_are_written(alice, bob, make_task, settings):
    """The per-user count the cap reads is kept by the database (triggers), through every path
    that adds or removes a live task: API creates, bulk, deletes, clear-completed, recurrence,
    SQL by hand, and purges of tombstones."""
    seed("alice", 5)  # bulk_create: one multi-row INSERT
    tasks = [make_task(title=f"t{n}") for n in range(4)]
    assert bob.post("/v1/tasks", {"title": "b"}, format="json").status_code == 201
    assert actual_counts() == live_counts() == {"alice": 9, "bob": 1}

    alice.delete(f"/v1/tasks/{tasks[0]['id']}")
    alice.post(f"/v1/tasks/{tasks[1]['id']}/toggle")
    alice.post("/v1/tasks/clear-completed")
    bulk = {"operations": [{"op": "create", "data": {"title": "n"}},
                           {"op": "delete", "id": tasks[2]["id"]}]}  # fmt: skip
    assert alice.post("/v1/tasks/bulk", bulk, format="json").status_code == 200
    recurring = {"title": "r", "due_at": "2030-01-01", "recurrence": "FREQ=DAILY"}
    recurring_id = alice.post("/v1/tasks", recurring, format="json").json()["id"]
    alice.post(f"/v1/tasks/{recurring_id}/toggle")  # completes it and creates the next one
    Task.all_objects.filter(user_id="bob").delete()  # a hard delete of a live task
    settings.TOMBSTONE_RETENTION_DAYS = 0
    call_command("purge_tombstones", stdout=StringIO())  # tombstones were not counted
    assert actual_counts() == live_counts() == {"alice": 9}

    settings.MAX_TASKS_PER_USER = 9
    assert alice.post("/v1/tasks", {"title": "x"}, format="json").status_code == 409


WORST_LIST = "/v1/tasks?completed=false&page_size=200"


@pytest.mark.postgresql
def test_the_most_expensive_list_request_is_one_indexed_query_without_a_sort(alice):
    seed("alice", 3000)
    seed("bob", 3000)
    Task.all_objects.filter(title__endswith="7").update(completed=True)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE tasks")
    deep_page = alice.get(WORST_LIST).json()
    for _ in range(5):
        deep_page = alice.get(deep_page["next"]).json()
    with CaptureQueriesContext(connection) as queries:
        response = alice.get(deep_page["next"])
    assert response.status_code == 200
    assert len(queries) == 1
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + queries[0]["sql"])
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert re.search(r"Index (Only )?Scan( Backward)? using tasks_user_(done_)?created_id", plan)
    assert "Index Cond" in plan and "created_at <=" in plan, plan  # the cursor bounds the scan
    assert "Sort" not in plan, plan
    assert "Seq Scan" not in plan, plan


@pytest.mark.django_db(transaction=True)
def test_upgrading_counts_the_tasks_already_stored():
    before = ("tasks", "0005_next_occurrence_and_due_desc_index")
    executor = MigrationExecutor(connection)
    executor.migrate([before])
    OldTask = executor.loader.project_state(before).apps.get_model("tasks", "Task")
    for user_id, deleted_at in [("u1", None), ("u1", None), ("u1", timezone.now()), ("u2", None)]:
        OldTask.objects.create(user_id=user_id, title="t", deleted_at=deleted_at)
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    assert live_counts() == {"u1": 2, "u2": 1}


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_one_users_concurrent_creates_keep_an_exact_count_over_shards():
    """Writes through different connections count into different rows (no queue on one row
    lock); their sum is exact."""

    def create_some(_):
        try:
            for _ in range(25):
                services.task_create(user_id="busy", fields={"title": "t"}, max_tasks=10**6)
        finally:
            connection.close()

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(create_some, range(4)))
    assert live_counts() == actual_counts() == {"busy": 100}
    assert TaskCount.objects.filter(user_id="busy").count() > 1
