"""Resource limits (OWASP API4): a per-user task cap, and list requests whose cost the caller's
parameters cannot inflate."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tasks.models import Task
from tasks.tests.test_pagination import seed


def test_a_create_over_the_per_user_cap_is_409_and_stores_nothing(alice, bob, settings):
    settings.MAX_TASKS_PER_USER = 3
    for n in range(3):
        assert alice.post("/v1/tasks", {"title": f"t{n}"}, format="json").status_code == 201
    response = alice.post("/v1/tasks", {"title": "one too many"}, format="json")
    assert response.status_code == 409
    assert response.json()["errors"][0]["code"] == "task_limit_reached"
    assert Task.objects.for_user("alice").count() == 3
    # Other users have their own allowance, and a delete frees a place.
    assert bob.post("/v1/tasks", {"title": "bob's"}, format="json").status_code == 201
    alice.delete(f"/v1/tasks/{Task.objects.for_user('alice').first().pk}")
    assert alice.post("/v1/tasks", {"title": "fits again"}, format="json").status_code == 201


def test_an_idempotent_create_over_the_cap_is_409_and_keeps_the_key_free(alice, settings):
    settings.MAX_TASKS_PER_USER = 0
    response = alice.post("/v1/tasks", {"title": "x"}, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert response.status_code == 409
    settings.MAX_TASKS_PER_USER = 1
    response = alice.post("/v1/tasks", {"title": "x"}, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert response.status_code == 201


WORST_LIST = "/v1/tasks?completed=false&page_size=200"


@pytest.mark.postgresql
def test_the_most_expensive_list_request_is_one_indexed_query_without_a_sort(alice):
    seed("alice", 3000)
    seed("bob", 3000)
    Task.objects.filter(title__endswith="7").update(completed=True)
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
