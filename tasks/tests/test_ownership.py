"""No user sees, changes or learns of another user's tasks: every route answers 404 with the body
of a missing id, and the owner's task is left exactly as it was."""

import pytest

from tasks.models import Task

MISSING_ID = "00000000-0000-0000-0000-000000000000"

ROUTES = [
    ("get", "/v1/tasks/{id}", None),
    ("put", "/v1/tasks/{id}", {"title": "hijacked", "completed": True}),
    ("patch", "/v1/tasks/{id}", {"title": "hijacked"}),
    ("delete", "/v1/tasks/{id}", None),
    ("post", "/v1/tasks/{id}/toggle", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_other_users_task_is_404_like_a_missing_one_and_unchanged(
    alice, bob, make_task, method, path, body
):
    task = make_task(details="private")
    stored_before = Task.all_objects.get(pk=task["id"])

    foreign = getattr(bob, method)(path.format(id=task["id"]), body, format="json")
    missing = getattr(bob, method)(path.format(id=MISSING_ID), body, format="json")

    assert foreign.status_code == missing.status_code == 404
    assert foreign.content == missing.content
    stored_after = Task.all_objects.get(pk=task["id"])
    assert [getattr(stored_after, f.attname) for f in Task._meta.concrete_fields] == [
        getattr(stored_before, f.attname) for f in Task._meta.concrete_fields
    ]
    assert alice.get(path.format(id=task["id"]).removesuffix("/toggle")).json() == task


def test_lists_show_only_the_callers_tasks(alice, bob, make_task):
    mine = make_task(title="alice's")
    theirs = make_task(bob, title="bob's")
    assert [t["id"] for t in alice.get("/v1/tasks").json()["results"]] == [mine["id"]]
    assert [t["id"] for t in bob.get("/v1/tasks").json()["results"]] == [theirs["id"]]
    assert bob.get("/v1/tasks?completed=false").json()["results"] == [theirs]


def test_a_cursor_from_another_users_list_reveals_nothing(alice, bob, make_task):
    for number in range(3):
        make_task(title=f"alice {number}")
    next_link = alice.get("/v1/tasks?page_size=1").json()["next"]
    response = bob.get(next_link)
    assert response.status_code == 200
    assert response.json()["results"] == []


def test_a_new_task_belongs_to_the_token_user_whatever_the_body_says(alice, bob):
    task = bob.post("/v1/tasks", {"title": "x", "user_id": "alice"}, format="json").json()
    assert task["user_id"] == "bob"
    assert alice.get("/v1/tasks").json()["results"] == []
