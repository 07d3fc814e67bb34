from django.db import migrations, models

from tasks.migrations import run_per_vendor

# Each user's number of live tasks, kept by triggers on `tasks` whatever writes it (the API, bulk
# operations, purges, SQL by hand), so that the per-user cap reads a few rows instead of counting
# the user's tasks (a cost that grew with them; docs/performance.md has the figures).
# On PostgreSQL a user's count is split over up to 16 rows, one per connection (backend pid mod
# 16): concurrent writes by one user through several connections would otherwise queue on one
# row's lock until each commits. The cap reads their sum. SQLite has one writer at a time: shard 0.
# The triggers are created before the counts are filled in: on PostgreSQL creating them locks
# out writers until this migration commits, so no write falls between the two.
# On SQLite, Django rebuilds a table for most schema changes, which drops its triggers: a later
# migration that alters `tasks` must create these again (test_limits checks the counts).
POSTGRESQL = [
    """
    CREATE FUNCTION task_counts_add_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO task_counts AS counts (user_id, shard, live)
        SELECT user_id, pg_backend_pid() % 16, COUNT(*) FROM inserted
        WHERE deleted_at IS NULL GROUP BY user_id
        ON CONFLICT (user_id, shard) DO UPDATE SET live = counts.live + EXCLUDED.live;
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER task_counts_insert AFTER INSERT ON tasks
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION task_counts_add_inserted()
    """,
    """
    CREATE FUNCTION task_counts_update_live() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO task_counts AS counts (user_id, shard, live)
        VALUES (OLD.user_id, pg_backend_pid() % 16,
                CASE WHEN TG_OP = 'UPDATE' AND NEW.deleted_at IS NULL THEN 1 ELSE -1 END)
        ON CONFLICT (user_id, shard) DO UPDATE SET live = counts.live + EXCLUDED.live;
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER task_counts_tombstone AFTER UPDATE OF deleted_at ON tasks FOR EACH ROW
    WHEN ((OLD.deleted_at IS NULL) <> (NEW.deleted_at IS NULL))
    EXECUTE FUNCTION task_counts_update_live()
    """,
    """
    CREATE TRIGGER task_counts_delete AFTER DELETE ON tasks FOR EACH ROW
    WHEN (OLD.deleted_at IS NULL) EXECUTE FUNCTION task_counts_update_live()
    """,
]
SQLITE = [
    """
    CREATE TRIGGER task_counts_insert AFTER INSERT ON tasks WHEN NEW.deleted_at IS NULL
    BEGIN
        INSERT INTO task_counts (user_id, shard, live) VALUES (NEW.user_id, 0, 1)
        ON CONFLICT (user_id, shard) DO UPDATE SET live = live + 1;
    END
    """,
    """
    CREATE TRIGGER task_counts_tombstone AFTER UPDATE OF deleted_at ON tasks
    WHEN (OLD.deleted_at IS NULL) <> (NEW.deleted_at IS NULL)
    BEGIN
        UPDATE task_counts SET live = live + CASE WHEN NEW.deleted_at IS NULL THEN 1 ELSE -1 END
        WHERE user_id = NEW.user_id AND shard = 0;
    END
    """,
    """
    CREATE TRIGGER task_counts_delete AFTER DELETE ON tasks WHEN OLD.deleted_at IS NULL
    BEGIN
        UPDATE task_counts SET live = live - 1 WHERE user_id = OLD.user_id AND shard = 0;
    END
    """,
]
BACKFILL = (
    "INSERT INTO task_counts (user_id, shard, live)"
    " SELECT user_id, 0, COUNT(*) FROM tasks WHERE deleted_at IS NULL GROUP BY user_id"
)
TRIGGERS = ["task_counts_insert", "task_counts_tombstone", "task_counts_delete"]
DROP_POSTGRESQL = [
    *(f"DROP TRIGGER IF EXISTS {name} ON tasks" for name in TRIGGERS),
    "DROP FUNCTION IF EXISTS task_counts_add_inserted()",
    "DROP FUNCTION IF EXISTS task_counts_update_live()",
]
DROP_SQLITE = [f"DROP TRIGGER IF EXISTS {name}" for name in TRIGGERS]


class Migration(migrations.Migration):
    dependencies = [
        ("tasks", "0005_next_occurrence_and_due_desc_index"),
    ]

    operations = [
        migrations.CreateModel(
            name="TaskCount",
            fields=[
                ("pk", models.CompositePrimaryKey("user_id", "shard", serialize=False)),
                ("user_id", models.CharField(max_length=255)),
                ("shard", models.SmallIntegerField()),
                ("live", models.IntegerField(default=0)),
            ],
            options={"db_table": "task_counts"},
        ),
        migrations.RunPython(
            run_per_vendor({"postgresql": [*POSTGRESQL, BACKFILL], "sqlite": [*SQLITE, BACKFILL]}),
            run_per_vendor({"postgresql": DROP_POSTGRESQL, "sqlite": DROP_SQLITE}),
        ),
    ]
