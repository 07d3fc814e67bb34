"""Task lists and subtasks, without downtime on a large `tasks` table.

Adding the two nullable columns changes only the catalogue (PostgreSQL and SQLite alike), so the
table's lock is held for an instant. From then on a task the previous release inserts goes into
its owner's default list (a trigger, on PostgreSQL); every existing task then goes into its
owner's default list in batches of BATCH_SIZE rows, each its own short transaction, and the new
indexes are built CONCURRENTLY on PostgreSQL (the migration is not atomic, so that each step
commits on its own).
Ids, versions (ETags), positions, `updated_at` and `change_seq` are not touched: nothing looks
changed to a client, and sync tokens stay valid. docs/postgresql.md has the measured figure.
"""

import uuid

import django.utils.timezone
from django.db import migrations, models

from tasks.migrations import run_on_postgresql

# A batch's UPDATE holds its rows' locks until it commits: small enough that a write of the
# previous release to one of them waits a few tens of milliseconds (docs/postgresql.md).
BATCH_SIZE = 1000
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

# PostgreSQL: a task the previous release inserts (it knows no lists) goes into its owner's
# default list, made if need be, as it is inserted: during the migration and after it, until
# the previous release is gone. The new release always names a list, and the trigger's WHEN
# skips its inserts without a call. (SQLite serves one development process: the sweep at the
# end of the backfill is enough there.)
DEFAULT_LIST_TRIGGER = [
    """
    CREATE FUNCTION tasks_into_default_list() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO task_lists
            (id, user_id, title, is_default, position, created_at, updated_at, version,
             change_seq)
        VALUES (gen_random_uuid(), NEW.user_id, 'Tasks', TRUE, 'V',
                now(), now(), 1, 0)
        ON CONFLICT DO NOTHING;
        SELECT id INTO NEW.list_id FROM task_lists
        WHERE user_id = NEW.user_id AND is_default;
        RETURN NEW;
    END $$
    """,
    """
    CREATE TRIGGER tasks_into_default_list BEFORE INSERT ON tasks FOR EACH ROW
    WHEN (NEW.list_id IS NULL) EXECUTE FUNCTION tasks_into_default_list()
    """,
]
DROP_DEFAULT_LIST_TRIGGER = [
    "DROP TRIGGER IF EXISTS tasks_into_default_list ON tasks",
    "DROP FUNCTION IF EXISTS tasks_into_default_list()",
]


def into_default_lists(apps, schema_editor):
    """Every task without a list into its owner's default list, BATCH_SIZE rows a transaction:
    first by primary key ranges (an index range each, whatever the table's size), then the
    rows the previous release wrote behind the cursor, found by a read that takes no lock."""
    connection = schema_editor.connection
    if connection.vendor == "postgresql":
        default_lists = DEFAULT_LISTS.format(uuid="gen_random_uuid()", now="now()")
    else:
        default_lists = DEFAULT_LISTS.format(
            uuid="lower(hex(randomblob(16)))", now="strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now')"
        )
    with connection.cursor() as cursor:
        cursor.execute(default_lists, [DEFAULT_LIST_POSITION])
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
        cursor.execute(default_lists, [DEFAULT_LIST_POSITION])  # owners new since the first
        cursor.execute("SELECT id FROM tasks WHERE list_id IS NULL")
        unlisted = [row[0] for row in cursor.fetchall()]
        for start in range(0, len(unlisted), BATCH_SIZE):
            batch = unlisted[start : start + BATCH_SIZE]
            placeholders = ", ".join(["%s"] * len(batch))
            cursor.execute(f"{IN_DEFAULT_LIST} AND id IN ({placeholders})", batch)


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
        condition=models.Q(("deleted_at__isnull", True), ("parent_id__isnull", True)),
        fields=["list_id", "position", "id"],
        name="tasks_list_top_position_id",
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
        migrations.RunPython(
            run_on_postgresql(DEFAULT_LIST_TRIGGER), run_on_postgresql(DROP_DEFAULT_LIST_TRIGGER)
        ),
        migrations.RunPython(into_default_lists, migrations.RunPython.noop),
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(add_task_indexes, remove_task_indexes)],
            state_operations=[
                migrations.AddIndex(model_name="task", index=index) for index in TASK_INDEXES
            ],
        ),
    ]
