"""The query budget per route (authentication adds none; a list page is one query)."""

import os
import uuid

import pytest
from django.db import connection
from django.db.models.sql.compiler import SQLCompiler, SQLUpdateCompiler

from tasks import selectors, statements
from tasks.tests.test_pagination import seed


def test_the_suite_runs_on_the_database_it_was_given():
    """A PostgreSQL run that silently fell back to SQLite would prove nothing."""
    url = os.environ.get("DATABASE_URL", "")
    expected = "postgresql" if url.startswith(("postgres://", "postgresql://")) else "sqlite"
    assert connection.vendor == expected


def test_a_list_page_is_one_query_however_many_tasks(alice, django_assert_num_queries):
    seed("alice", 120)
    with django_assert_num_queries(1):
        first = alice.get("/v1/tasks?page_size=50").json()
    with django_assert_num_queries(1):
        alice.get(first["next"])
    with django_assert_num_queries(1):
        alice.get("/v1/tasks?completed=false&page_size=200")


@pytest.mark.parametrize(
    ("method", "path", "body", "queries"),
    [
        ("post", "/v1/tasks", {"title": "x"}, 1),
        ("get", "/v1/tasks/{id}", None, 1),
        ("put", "/v1/tasks/{id}", {"title": "y"}, 1),
        # Completing, reopening and deleting reach a task's subtasks: the family's lock first;
        # except a toggle of a task that never had subtasks and has no parent.
        ("patch", "/v1/tasks/{id}", {"completed": True}, 2),
        ("post", "/v1/tasks/{id}/toggle", None, 1),
        ("delete", "/v1/tasks/{id}", None, 2),
    ],
)
def test_each_route_is_one_or_two_queries(
    alice, make_task, assert_statements, method, path, body, queries
):
    task = make_task()
    with assert_statements(queries):
        response = getattr(alice, method)(path.format(id=task["id"]), body, format="json")
    assert response.status_code < 300


@pytest.mark.parametrize("toggled", ["parent", "subtask"])
def test_a_toggle_in_a_tree_is_the_attempt_alone_then_the_familys_lock_and_update(
    alice, make_task, assert_statements, toggled
):
    parent = make_task()
    tasks = {"parent": parent, "subtask": make_task(parent_id=parent["id"])}
    with assert_statements(3):
        response = alice.post(f"/v1/tasks/{tasks[toggled]['id']}/toggle")
    assert response.json()["completed"] is True


def test_a_conditional_write_is_still_one_query(alice, make_task, django_assert_num_queries):
    task = make_task()
    with django_assert_num_queries(1):
        response = alice.patch(
            f"/v1/tasks/{task['id']}", {"title": "z"}, format="json", HTTP_IF_MATCH='"1"'
        )
    assert response.status_code == 200


def test_a_rejected_token_costs_no_query(api_client, db, django_assert_num_queries):
    api_client.credentials(HTTP_AUTHORIZATION="Bearer not.a.token")
    with django_assert_num_queries(0):
        assert api_client.get("/v1/tasks").status_code == 401


def test_healthz_does_not_touch_the_database(api_client, db, django_assert_num_queries):
    with django_assert_num_queries(0):
        assert api_client.get("/healthz").json() == {"status": "ok"}


def test_the_hot_reads_are_compiled_to_sql_once(alice, bob, make_task, monkeypatch):
    """A task lookup and an unfiltered list page reuse their SQL (tasks.statements): Django's
    compiler runs for the first request of a shape only, whoever the caller."""
    monkeypatch.setattr(statements, "_compiled", {})  # as in a new worker
    compiled = []
    as_sql = SQLCompiler.as_sql
    monkeypatch.setattr(
        SQLCompiler, "as_sql", lambda self, *a, **kw: compiled.append(1) or as_sql(self, *a, **kw)
    )
    seed("alice", 3)
    task = make_task()
    seed("bob", 3)
    for client in (alice, bob, alice):
        assert client.get(f"/v1/tasks/{task['id']}").status_code in (200, 404)
        first = client.get("/v1/tasks?page_size=2").json()
        assert len(first["results"]) == 2
        assert client.get(first["next"]).status_code == 200
    # One compile per shape: the lookup, the first page, the page after a cursor.
    assert len(compiled) == 3


def test_a_lists_view_and_a_subtask_page_are_compiled_to_sql_once(alice, bob, monkeypatch):
    """`list=…&parent=none` (a list's view) and `parent=…` (a task's subtasks) are read from
    compiled SQL too, with the same rows as the ORM's FilterSet gives (with another filter)."""
    monkeypatch.setattr(statements, "_compiled", {})
    compiled = []
    as_sql = SQLCompiler.as_sql
    monkeypatch.setattr(
        SQLCompiler, "as_sql", lambda self, *a, **kw: compiled.append(1) or as_sql(self, *a, **kw)
    )
    pages = {}
    for client in (alice, bob, alice):
        task_list = client.post("/v1/lists", {"title": "L"}, format="json").json()
        parent = client.post(
            "/v1/tasks", {"title": "p", "list_id": task_list["id"]}, format="json"
        ).json()
        for n in range(3):
            client.post("/v1/tasks", {"title": f"s{n}", "parent_id": parent["id"]}, format="json")
        compiled.clear()
        view = f"/v1/tasks?list={task_list['id']}&parent=none&ordering=position&page_size=1"
        subtasks = f"/v1/tasks?parent={parent['id']}&ordering=position&page_size=2"
        for path in (view, subtasks):
            first = client.get(path).json()
            assert client.get(first["next"]).status_code == 200 if first["next"] else True
            # The same page through the FilterSet (completed=false forces it):
            assert client.get(f"{path}&completed=false").json()["results"] == first["results"]
            pages[path.split("?")[1].split("=")[0]] = first["results"]
    assert [t["title"] for t in pages["list"]] == ["p"]
    assert sorted(t["title"] for t in pages["parent"]) == ["s1", "s2"]
    # The last round compiled only the FilterSet's queries: the tree pages reused their SQL.
    assert len(compiled) == 2


def test_the_hot_writes_are_compiled_to_sql_once(alice, bob, monkeypatch):
    """Toggle, PUT and delete reuse their UPDATE … RETURNING for every request of the same
    shape (which fields, null or not, how many If-Match versions), whoever the caller."""
    monkeypatch.setattr(statements, "_compiled", {})
    compiled = []
    as_sql = SQLUpdateCompiler.as_sql
    monkeypatch.setattr(
        SQLUpdateCompiler,
        "as_sql",
        lambda self, *a, **kw: compiled.append(1) or as_sql(self, *a, **kw),
    )
    for client in (alice, bob, alice):
        task = client.post("/v1/tasks", {"title": "t"}, format="json").json()
        url = f"/v1/tasks/{task['id']}"
        assert client.post(f"{url}/toggle").json()["completed"] is True
        body = {"title": f"new {task['id']}", "labels": [task["id"][:8]]}
        changed = client.put(url, body, format="json", HTTP_IF_MATCH='"2"').json()
        assert (changed["title"], changed["labels"]) == (body["title"], body["labels"])
        assert client.delete(url, HTTP_IF_MATCH='"3"').status_code == 204
        assert client.get(url).status_code == 404
    assert len(compiled) == 3


@pytest.mark.parametrize("init_listener", [False, True])
def test_compiled_reads_make_the_tasks_the_orm_makes(alice, make_task, init_listener):
    """Compiled reads load rows without `Model.__init__` (tasks.statements._loaded) unless an init
    signal listens: either way each task is the ORM's, and saves as an update."""
    from django.db.models.signals import post_init

    from tasks.models import Task

    made = make_task(details="d", due_at="2026-03-01", priority="high", labels=["a"])
    seen = []
    if init_listener:
        post_init.connect(
            lambda instance, **kw: seen.append(instance.pk), sender=Task, weak=False, dispatch_uid=1
        )
    try:
        task = selectors.task_get(user_id="alice", task_id=uuid.UUID(made["id"]))
    finally:
        post_init.disconnect(sender=Task, dispatch_uid=1)
    orm = Task.all_objects.get(pk=made["id"])
    fields = [field.attname for field in Task._meta.concrete_fields]
    assert [getattr(task, name) for name in fields] == [getattr(orm, name) for name in fields]
    assert (task._state.adding, task._state.db) == (False, orm._state.db)
    assert seen == ([orm.pk] if init_listener else [])
    task.title = "saved"
    task.save()
    assert alice.get(f"/v1/tasks/{made['id']}").json()["title"] == "saved"
