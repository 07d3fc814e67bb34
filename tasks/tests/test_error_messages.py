"""Error messages say what to do: the valid values, the id at fault, the limit."""

import pytest

MISSING_ID = "00000000-0000-0000-0000-000000000000"


def only_error(response, status: int) -> dict:
    assert response.status_code == status, response.content
    [error] = response.json()["errors"]
    return error


@pytest.mark.parametrize(
    ("query", "attr", "names"),
    [
        ("completed=yes", "completed", "`true` or `false`"),
        ("overdue=maybe", "overdue", "`true` or `false`"),
        ("priority=urgent", "priority", "none, low, medium, high"),
        ("ordering=title", "ordering", "-created_at, created_at"),
        ("list=abc", "list", "a list id"),
        ("parent=abc", "parent", "a task id or `none`"),
    ],
)
def test_a_bad_query_parameter_names_what_it_accepts(alice, query, attr, names):
    error = only_error(alice.get(f"/v1/tasks?{query}"), 422)
    assert error["attr"] == attr and names in error["detail"]


@pytest.mark.parametrize(
    ("body", "attr", "names"),
    [
        ({"title": "x", "priority": "urgent"}, "priority", "none, low, medium, high"),
        ({"title": "x", "completed": "yes"}, "completed", "`true` or `false`"),
    ],
)
def test_a_bad_field_names_what_it_accepts(alice, body, attr, names):
    error = only_error(alice.post("/v1/tasks", body, format="json"), 422)
    assert error["attr"] == attr and names in error["detail"]


def test_an_empty_or_oversized_batch_states_the_limit_on_operations(alice):
    for operations in ([], [{"op": "toggle", "id": MISSING_ID}] * 101):
        body = {"operations": operations}
        error = only_error(alice.post("/v1/tasks/bulk", body, format="json"), 422)
        assert error["attr"] == "operations"
        assert f"1 to 100 operations (this batch has {len(operations)})" in error["detail"]


def test_an_unknown_operation_names_the_operations(alice):
    body = {"operations": [{"op": "x"}]}
    error = only_error(alice.post("/v1/tasks/bulk", body, format="json"), 422)
    assert error["attr"] == "operations.0.op"
    assert "create, update, delete, toggle" in error["detail"]


def test_a_missing_id_names_where_it_was(alice, make_task):
    task = make_task()
    move = alice.post(f"/v1/tasks/{task['id']}/move", {"after": MISSING_ID}, format="json")
    after = only_error(move, 404)
    assert (after["code"], after["attr"]) == ("not_found", "after")
    listed = only_error(
        alice.post("/v1/tasks", {"title": "x", "list_id": MISSING_ID}, format="json"), 404
    )
    assert (listed["attr"], listed["detail"]) == (
        "list_id",
        "No list of yours has the id in `list_id`.",
    )
    in_bulk = only_error(
        alice.post(
            "/v1/tasks/bulk", {"operations": [{"op": "toggle", "id": MISSING_ID}]}, format="json"
        ),
        404,
    )
    assert in_bulk["attr"] == "operations.0.id"
    parent = only_error(
        alice.post(
            "/v1/tasks/bulk",
            {"operations": [{"op": "create", "data": {"title": "x", "parent_id": MISSING_ID}}]},
            format="json",
        ),
        404,
    )
    assert parent["attr"] == "operations.0.data.parent_id"


def test_the_task_limit_is_stated(alice, make_task, settings):
    settings.MAX_TASKS_PER_USER = 2
    make_task(), make_task()
    error = only_error(alice.post("/v1/tasks", {"title": "x"}, format="json"), 409)
    assert error["code"] == "task_limit_reached" and "maximum of 2 tasks" in error["detail"]


def test_the_list_limit_is_stated(alice, settings):
    settings.MAX_LISTS_PER_USER = 1  # the default list is one
    error = only_error(alice.post("/v1/lists", {"title": "x"}, format="json"), 409)
    assert error["code"] == "list_limit_reached" and "maximum of 1 lists" in error["detail"]
