"""Migrations 0007 (task lists and subtasks) and 0008 (the subtask flag) on data stored before
level in its owner's default list, with its id, version (ETag), position, `updated_at` and
`change_seq` unchanged; on PostgreSQL a task the previous release inserts afterwards (without a
list) goes into its owner's default list too. Its timing on 1,000,000 tasks under load is
bench/upgrade.py's (docs/postgresql.md)."""

import uuid

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from tasks.tests.conftest import client_for

BEFORE = ("tasks", "0006_task_counts")
KEPT = ("id", "user_id", "version", "position", "updated_at", "change_seq", "completed")


def migrate(target) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.migrate([target] if isinstance(target, tuple) else target)
    return executor


@pytest.mark.django_db(transaction=True)
def test_existing_tasks_go_top_level_into_their_owners_default_list_unchanged():
    executor = migrate(BEFORE)
    OldTask = executor.loader.project_state(BEFORE).apps.get_model("tasks", "Task")
    for n, user_id in enumerate(["u1", "u1", "u1", "u2"] * 3):
        OldTask.objects.create(
            user_id=user_id, title=f"t{n}", version=n + 1, position=f"p{n:02}", change_seq=n + 1
        )
    OldTask.objects.filter(title="t0").update(deleted_at=timezone.now())  # a tombstone too
    before = {row[0]: row for row in OldTask.objects.values_list(*KEPT)}

    executor = migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
    Task = executor.loader.project_state(executor.loader.graph.leaf_nodes()).apps.get_model(
        "tasks", "Task"
    )
    TaskList = executor.loader.project_state(executor.loader.graph.leaf_nodes()).apps.get_model(
        "tasks", "TaskList"
    )
    defaults = dict(TaskList.objects.filter(is_default=True).values_list("user_id", "id"))
    assert sorted(defaults) == ["u1", "u2"]
    assert TaskList.objects.count() == 2
    after = {row[0]: row for row in Task.objects.values_list(*KEPT)}
    assert after == before
    for user_id, list_id, parent_id in Task.objects.values_list("user_id", "list_id", "parent_id"):
        assert (list_id, parent_id) == (defaults[user_id], None)
    # Through the API: the same tasks, in the same order, in the default list.
    alice_view = client_for("u1").get("/v1/tasks?ordering=position&page_size=200").json()
    positions = [task["position"] for task in alice_view["results"]]
    assert positions == sorted(positions) and len(positions) == 8  # 9, one deleted
    lists = client_for("u1").get("/v1/lists").json()["results"]
    assert [(x["id"], x["title"], x["is_default"]) for x in lists] == [
        (str(defaults["u1"]), "Tasks", True)
    ]


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_a_task_the_previous_release_inserts_goes_into_the_default_list():
    """The previous release inserts tasks without a list while (and after) 0007 runs."""
    with connection.cursor() as cursor:
        for user_id in ("known", "known", "brand-new"):
            cursor.execute(
                "INSERT INTO tasks (id, user_id, title, details, completed, created_at,"
                " updated_at, version, priority, labels, position, recurrence, change_seq)"
                " VALUES (%s, %s, 'old release', '', false, now(), now(), 1, 0, '[]', 'V', '', 1)",
                [uuid.uuid4(), user_id],
            )
        cursor.execute(
            "SELECT t.user_id, count(*) FROM tasks t JOIN task_lists l ON l.id = t.list_id"
            " AND l.user_id = t.user_id AND l.is_default GROUP BY t.user_id ORDER BY 1"
        )
        assert cursor.fetchall() == [("brand-new", 1), ("known", 2)]
        cursor.execute("SELECT count(*) FROM task_lists")
        assert cursor.fetchone() == (2,)


MARKED_BEFORE = ("tasks", "0007_task_lists_and_subtasks")


@pytest.mark.django_db(transaction=True)
def test_0008_marks_the_tasks_that_have_subtasks_and_the_trigger_marks_later_ones():
    """Parents stored before 0008 are marked by its batches; a subtask the previous release
    inserts afterwards (it does not know the column) marks its parent through the trigger."""
    executor = migrate(MARKED_BEFORE)
    OldTask = executor.loader.project_state(MARKED_BEFORE).apps.get_model("tasks", "Task")
    list_id = uuid.uuid4()
    parents = [
        OldTask.objects.create(user_id="u1", title=f"p{n}", list_id=list_id) for n in range(3)
    ]
    OldTask.objects.create(user_id="u1", title="c0", list_id=list_id, parent_id=parents[0].pk)
    grandchild_parent = OldTask.objects.create(
        user_id="u1", title="c1", list_id=list_id, parent_id=parents[1].pk
    )
    OldTask.objects.create(
        user_id="u1", title="c1.1", list_id=list_id, parent_id=grandchild_parent.pk
    )
    OldTask.objects.create(
        user_id="u1",
        title="gone",
        list_id=list_id,
        parent_id=parents[2].pk,
        deleted_at=timezone.now(),
    )

    migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
    later = OldTask.objects.create(user_id="u1", title="later", list_id=list_id)
    OldTask.objects.create(user_id="u1", title="c2", list_id=list_id, parent_id=later.pk)

    with connection.cursor() as cursor:
        cursor.execute("SELECT title FROM tasks WHERE may_have_subtasks ORDER BY title")
        assert [row[0] for row in cursor.fetchall()] == ["c1", "later", "p0", "p1"]
