"""`may_have_subtasks`: set on a task when it gains a subtask, by a trigger, whatever writes it
(this release, the previous one during the upgrade, SQL by hand); never cleared.

What it is for: a toggle of a task outside any tree is one `UPDATE … WHERE parent_id IS NULL AND
NOT may_have_subtasks` (tasks.services.task_toggle). On PostgreSQL a subtask's insert locks its
parent first and the trigger writes the parent's row, so a toggle of the parent waiting on that
lock re-reads the row and sees the flag: it never completes a parent without the subtask that
was added meanwhile (a `NOT EXISTS (subtasks)` in the same UPDATE would, being read from the
statement's snapshot).

Without downtime: the column with a constant default is a catalogue change on PostgreSQL and an
`ADD COLUMN` on SQLite (no table rebuild: the triggers of 0006 stay); the trigger exists before
the existing parents are marked, BATCH_SIZE at a time, each batch its own transaction.
On SQLite, Django rebuilds a table for most schema changes, which drops its triggers: a later
migration that alters `tasks` must create these again (as 0006 says of its own).
"""

from django.db import migrations, models

from tasks.migrations import run_per_vendor

BATCH_SIZE = 1000
LOWEST_ID = {"postgresql": "00000000-0000-0000-0000-000000000000", "sqlite": ""}
MARK_PARENT = (
    "UPDATE tasks SET may_have_subtasks = TRUE WHERE id = NEW.parent_id AND NOT may_have_subtasks"
)

ADD = {
    "postgresql": [
        "ALTER TABLE tasks ADD COLUMN may_have_subtasks boolean NOT NULL DEFAULT false",
        f"""
        CREATE FUNCTION tasks_mark_parent() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            {MARK_PARENT};
            RETURN NULL;
        END $$
        """,
        """
        CREATE TRIGGER tasks_mark_parent AFTER INSERT OR UPDATE OF parent_id ON tasks
        FOR EACH ROW WHEN (NEW.parent_id IS NOT NULL) EXECUTE FUNCTION tasks_mark_parent()
        """,
    ],
    "sqlite": [
        "ALTER TABLE tasks ADD COLUMN may_have_subtasks bool NOT NULL DEFAULT 0",
        f"""
        CREATE TRIGGER tasks_mark_parent_insert AFTER INSERT ON tasks
        WHEN NEW.parent_id IS NOT NULL BEGIN {MARK_PARENT}; END
        """,
        f"""
        CREATE TRIGGER tasks_mark_parent_move AFTER UPDATE OF parent_id ON tasks
        WHEN NEW.parent_id IS NOT NULL BEGIN {MARK_PARENT}; END
        """,
    ],
}
DROP = {
    "postgresql": [
        "DROP TRIGGER IF EXISTS tasks_mark_parent ON tasks",
        "DROP FUNCTION IF EXISTS tasks_mark_parent()",
        "ALTER TABLE tasks DROP COLUMN may_have_subtasks",
    ],
    "sqlite": [
        "DROP TRIGGER IF EXISTS tasks_mark_parent_insert",
        "DROP TRIGGER IF EXISTS tasks_mark_parent_move",
        "ALTER TABLE tasks DROP COLUMN may_have_subtasks",
    ],
}


def mark_parents(apps, schema_editor):
    """Every task that has a live subtask, marked BATCH_SIZE parents a transaction, in the order
    of the subtasks' index on `parent_id`."""
    connection = schema_editor.connection
    last = LOWEST_ID[connection.vendor]
    with connection.cursor() as cursor:
        while True:
            cursor.execute(
                "SELECT DISTINCT parent_id FROM tasks WHERE parent_id > %s"
                " AND deleted_at IS NULL ORDER BY parent_id LIMIT %s",
                [last, BATCH_SIZE],
            )
            parents = [row[0] for row in cursor.fetchall()]
            if not parents:
                break
            placeholders = ", ".join(["%s"] * len(parents))
            cursor.execute(
                f"UPDATE tasks SET may_have_subtasks = TRUE WHERE id IN ({placeholders})",  # noqa: S608
                parents,
            )
            last = parents[-1]


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("tasks", "0007_task_lists_and_subtasks"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(run_per_vendor(ADD), run_per_vendor(DROP))],
            state_operations=[
                migrations.AddField(
                    model_name="task",
                    name="may_have_subtasks",
                    field=models.BooleanField(db_default=False, default=False, editable=False),
                )
            ],
        ),
        migrations.RunPython(mark_parents, migrations.RunPython.noop),
    ]
