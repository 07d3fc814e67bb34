"""PostgreSQL-only indexes: trigram search over title and details, and GIN over labels.

SQLite has neither index type; there `q=` and `label=` are plain scans of one user's tasks.
"""

from django.db import migrations

from tasks.migrations import run_on_postgresql

POSTGRESQL_FORWARD = [
    # pg_trgm is a trusted extension (PostgreSQL 13+): the database owner may create it, and
    # Neon allows it.
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    # `q=` is `UPPER(title) LIKE UPPER('%…%')` (Django's icontains): index those expressions.
    "CREATE INDEX IF NOT EXISTS tasks_title_trgm ON tasks USING gin (UPPER(title) gin_trgm_ops)"
    " WHERE deleted_at IS NULL",
    "CREATE INDEX IF NOT EXISTS tasks_details_trgm ON tasks USING gin"
    " (UPPER(details) gin_trgm_ops) WHERE deleted_at IS NULL",
    # `label=` is `labels @> '["x"]'`.
    "CREATE INDEX IF NOT EXISTS tasks_labels_gin ON tasks USING gin (labels jsonb_path_ops)"
    " WHERE deleted_at IS NULL",
]
POSTGRESQL_BACKWARD = [
    "DROP INDEX IF EXISTS tasks_labels_gin",
    "DROP INDEX IF EXISTS tasks_details_trgm",
    "DROP INDEX IF EXISTS tasks_title_trgm",
]


class Migration(migrations.Migration):
    dependencies = [("tasks", "0003_task_organisation")]

    operations = [
        migrations.RunPython(
            run_on_postgresql(POSTGRESQL_FORWARD), run_on_postgresql(POSTGRESQL_BACKWARD)
        )
    ]
