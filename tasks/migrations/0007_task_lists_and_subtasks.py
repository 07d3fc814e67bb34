"""Task lists and subtasks, without downtime on a large `tasks` table.

Adding the two nullable columns changes only the catalogue (PostgreSQL and SQLite alike), so the
table's lock is held for an instant. Every existing task then goes into its owner's default list
in batches of BATCH_SIZE rows, each its own short transaction, and the new indexes are built
CONCURRENTLY on PostgreSQL (the migration is not atomic, so that each step commits on its own).
Ids, versions (ETags), positions, `updated_at` and `change_seq` are not touched: nothing looks
changed to a client, and sync tokens stay valid. docs/postgresql.md has the measured figure.
"""

import uuid

import django.utils.timezone
from django.db import migrations, models

BATCH_SIZE = 5000
DEFAULT_LIST_POSITION = "V"  # positions.between(None, None): the middle of the key space

DEFAULT_LISTS = """
    INSERT INTO task_lists
        (id, user_id, title, is_default, position, created_at, updated_at, version, change_seq)
    SELECT {uuid}, owners.user_id, 'Tasks', TRUE, %s, {now}, {now}, 1, 0
    FROM (SELECT DISTINCT user_id FROM tasks) AS owners
    WHERE TRUE  -- (SQLite needs it to read the next line as an upsert clause)
    ON CONFLICT DO NOTHING
"""
IN_DEFAULT_LIST = """
    UPDATE tasks SET list_id = (
        SELECT lists.id FROM task_lists AS lists
        WHERE lists.user_id = tasks.user_id AND lists.is_default
    )
    WHERE list_id IS NULL
"""
LOWEST_ID = {"postgresql": "00000000-0000-0000-0000-000000000000", "sqlite": ""}


def into_default_lists(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor == "postgresql":
        default_lists = DEFAULT_LISTS.format(uuid="gen_random_uuid()", now="now()")
    else:
        default_lists = DEFAULT_LISTS.format(
            uuid="lower(hex(randomblob(16)))", now="strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now')"
        )
    with connection.cursor() as cursor:
        cursor.execute(default_lists, [DEFAULT_LIST_POSITION])
        # Batches by primary key: each an index range, whatever the table's size.
        last = LOWEST_ID[connection.vendor]
        while True:
            cursor.execute(
                "SELECT id FROM tasks WHERE id > %s ORDER BY id LIMIT 1 OFFSET %s",
                [last, BATCH_SIZE - 1],
            )
            row = cursor.fetchone()
            if row is None:
                break
            cursor.execute(f"{IN_DEFAULT_LIST} AND id > %s AND id <= %s", [last, row[0]])
            last = row[0]
        # The last partial batch, and what the previous release wrote meanwhile (by new users
        # too: their default lists first).
        cursor.execute(default_lists, [DEFAULT_LIST_POSITION])
        cursor.execute(IN_DEFAULT_LIST)


def add_task_indexes(apps, schema_editor):
    task = apps.get_model("tasks", "Task")
    concurrently = schema_editor.connection.vendor == "postgresql"
    for index in TASK_INDEXES:
        if concurrently:
            schema_editor.add_index(task, index, concurrently=True)
        else:
            schema_editor.add_index(task, index)


def remove_task_indexes(apps, schema_editor):
    task = apps.get_model("tasks", "Task")
    for index in TASK_INDEXES:
        schema_editor.remove_index(task, index)


TASK_INDEXES = [
    models.Index(
        condition=models.Q(("deleted_at__isnull", True)),
        fields=["list_id", "parent_id", "position", "id"],
        name="tasks_list_parent_position_id",
    ),
    models.Index(
        condition=models.Q(("deleted_at__isnull", True), ("parent_id__isnull", False)),
        fields=["parent_id", "position", "id"],
        name="tasks_parent_position_id",
    ),
]


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("tasks", "0006_task_counts"),
    ]

    operations = [
        migrations.CreateModel(
            name="TaskList",
            fields=[
                (
                    "id",
                    models.UUIDField(
                        default=uuid.uuid4, editable=False, primary_key=True, serialize=False
                    ),
                ),
                ("user_id", models.CharField(editable=False, max_length=255)),
                ("title", models.CharField(max_length=200)),
                ("is_default", models.BooleanField(default=False, editable=False)),
                ("position", models.CharField(default="", editable=False, max_length=64)),
                (
                    "created_at",
                    models.DateTimeField(default=django.utils.timezone.now, editable=False),
                ),
                (
                    "updated_at",
                    models.DateTimeField(default=django.utils.timezone.now, editable=False),
                ),
                ("version", models.PositiveIntegerField(default=1, editable=False)),
                ("deleted_at", models.DateTimeField(blank=True, editable=False, null=True)),
                ("change_seq", models.BigIntegerField(default=0, editable=False)),
            ],
            options={
                "db_table": "task_lists",
            },
        ),
        migrations.AddIndex(
            model_name="tasklist",
            index=models.Index(
                condition=models.Q(("deleted_at__isnull", True)),
                fields=["user_id", "position", "id"],
                name="lists_user_position_id",
            ),
        ),
        migrations.AddIndex(
            model_name="tasklist",
            index=models.Index(
                fields=["user_id", "change_seq", "id"], name="lists_user_change_seq_id"
            ),
        ),
        migrations.AddConstraint(
            model_name="tasklist",
            constraint=models.UniqueConstraint(
                condition=models.Q(("is_default", True)),
                fields=("user_id",),
                name="lists_one_default",
            ),
        ),
        migrations.AddField(
            model_name="task",
            name="list_id",
            field=models.UUIDField(null=True),
        ),
        migrations.AddField(
            model_name="task",
            name="parent_id",
            field=models.UUIDField(blank=True, null=True),
        ),
        migrations.RunPython(into_default_lists, migrations.RunPython.noop),
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(add_task_indexes, remove_task_indexes)],
            state_operations=[
                migrations.AddIndex(model_name="task", index=index) for index in TASK_INDEXES
            ],
        ),
    ]
