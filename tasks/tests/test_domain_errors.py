"""What the services refuse (tasks.errors) is answered whole, alone or inside a bulk request:
status, error type, code, detail and attr."""

import pytest
from django.db import connection

from tasks.models import Task

# The recurrence check is the database's: on PostgreSQL a refused write must commit nothing.
hits_the_check = pytest.mark.django_db(transaction=connection.vendor == "postgresql")

LIMIT = (
    409,
    "client_error",
    "task_limit_reached",
    "You have reached the maximum of 1 tasks: delete some first.",  # MAX_TASKS_PER_USER = 1
)
NEEDS_DUE_AT = (
    409,
    "client_error",
    "recurrence_needs_due_at",
    "A recurring task needs a due_at: send one, or keep the one it has.",
)


def answer(response, attr=None):
    """The response as (status, type, code, detail), checking its one error's `attr`."""
    assert response["Content-Type"] == "application/json", response.content
    body = response.json()
    [error] = body["errors"]
    assert error["attr"] == attr, body
    return response.status_code, body["type"], error["code"], error["detail"]


def test_a_stale_if_match_is_answered_412_precondition_failed(alice, make_task):
    task = make_task()
    response = alice.patch(
        f"/v1/tasks/{task['id']}", {"title": "x"}, format="json", HTTP_IF_MATCH='"99"'
    )
    assert answer(response) == (
        412,
        "client_error",
        "precondition_failed",
        "The task has changed since that ETag was read (If-Match).",
    )


def test_the_task_cap_is_answered_409_alone_and_located_in_a_batch(alice, make_task, settings):
    settings.MAX_TASKS_PER_USER = 1
    make_task()
    assert answer(alice.post("/v1/tasks", {"title": "x"}, format="json")) == LIMIT
    toggle = {"op": "toggle", "id": str(Task.all_objects.get().pk)}
    create = {"op": "create", "data": {"title": "x"}}
    batch = {"operations": [toggle, create]}
    response = alice.post("/v1/tasks/bulk", batch, format="json")
    assert answer(response, "operations.1") == LIMIT


@hits_the_check
def test_a_rule_on_an_undated_task_is_answered_409_alone_and_in_a_batch(alice, make_task):
    task = make_task()
    rule = {"recurrence": "FREQ=DAILY"}
    assert answer(alice.patch(f"/v1/tasks/{task['id']}", rule, format="json")) == NEEDS_DUE_AT
    batch = {"operations": [{"op": "update", "id": task["id"], "data": rule}]}
    response = alice.post("/v1/tasks/bulk", batch, format="json")
    assert answer(response, "operations.0") == NEEDS_DUE_AT


def test_a_reused_idempotency_key_is_answered_409(alice):
    alice.post("/v1/tasks", {"title": "a"}, format="json", HTTP_IDEMPOTENCY_KEY="k")
    response = alice.post("/v1/tasks", {"title": "b"}, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert answer(response) == (
        409,
        "client_error",
        "idempotency_key_reused",
        "This Idempotency-Key was already used with a different request body.",
    )


def test_moving_a_task_after_itself_is_answered_422_naming_after(alice, make_task):
    task = make_task()
    response = alice.post(f"/v1/tasks/{task['id']}/move", {"after": task["id"]}, format="json")
    assert answer(response, "after") == (
        422,
        "validation_error",
        "invalid",
        "A task cannot be moved after itself.",
    )
