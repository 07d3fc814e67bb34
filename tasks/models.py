import uuid

from django.db import connections, models
from django.db.models import sql
from django.utils import timezone

TITLE_MAX_LENGTH = 255
DETAILS_MAX_LENGTH = 10_000
USER_ID_MAX_LENGTH = 255
IDEMPOTENCY_KEY_MAX_LENGTH = 255


class TaskQuerySet(models.QuerySet):
    def for_user(self, user_id: str) -> "TaskQuerySet":
        """The tasks owned by `user_id`: the ownership rule every read and write goes through."""
        return self.filter(user_id=user_id)

    def update_returning(self, **values) -> list["Task"]:
        """`UPDATE … RETURNING` the matched rows: one statement, no read-modify-write race.

        Django's `update()` returns only a count, so fetching the new row would take a second
        query (and could see a later write).
        """
        query = self.query.chain(sql.UpdateQuery)
        query.add_update_values(values)
        update_sql, params = query.get_compiler(self.db).as_sql()
        returning = f"{update_sql} RETURNING {self._columns()}"
        return list(self.model._default_manager.raw(returning, params, using=self.db))

    def create_within_limit(self, *, limit: int, **fields) -> "Task | None":
        """Insert a task unless its owner already has `limit` tasks, in one statement.

        The count stops at `limit` (`LIMIT` in the subquery), so it costs at most `limit`
        index entries, and nothing for a typical user.
        """
        task = self.model(**fields)
        connection = connections[self.db]
        concrete = self.model._meta.concrete_fields
        values = [f.get_db_prep_save(f.pre_save(task, add=True), connection) for f in concrete]
        table = connection.ops.quote_name(self.model._meta.db_table)
        owner = connection.ops.quote_name(self.model._meta.get_field("user_id").column)
        placeholders = ", ".join(["%s"] * len(values))
        # Identifiers come from the model's metadata; every value is a bound parameter.
        statement = (
            f"INSERT INTO {table} ({self._columns()}) SELECT {placeholders} "  # noqa: S608
            f"WHERE (SELECT COUNT(*) FROM (SELECT 1 FROM {table} WHERE {owner} = %s LIMIT %s)"
            f" AS owned) < %s"
        )
        with connection.cursor() as cursor:
            cursor.execute(statement, [*values, task.user_id, limit, limit])
            inserted = cursor.rowcount == 1
        if not inserted:
            return None
        task._state.adding = False
        task._state.db = self.db
        return task

    def _columns(self) -> str:
        quote = connections[self.db].ops.quote_name
        return ", ".join(quote(field.column) for field in self.model._meta.concrete_fields)


class Task(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # The token's `sub` (Better Auth ids are 32-character strings); no user table to point at.
    user_id = models.CharField(max_length=USER_ID_MAX_LENGTH, editable=False)
    title = models.CharField(max_length=TITLE_MAX_LENGTH)
    details = models.TextField(max_length=DETAILS_MAX_LENGTH, blank=True, default="")
    completed = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    # Bumped by every write; the task's ETag, so a conditional write is a compare-and-set.
    version = models.PositiveIntegerField(default=1, db_default=1, editable=False)

    objects = TaskQuerySet.as_manager()

    class Meta:
        db_table = "tasks"
        indexes = [
            # The list query: one user's tasks, newest first, keyset-paginated. Its leading
            # column also serves every lookup by owner, so user_id needs no index of its own.
            models.Index(fields=["user_id", "created_at", "id"], name="tasks_user_created_id"),
            # The same with the `completed` filter.
            models.Index(
                fields=["user_id", "completed", "created_at", "id"],
                name="tasks_user_done_created_id",
            ),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def etag(self) -> str:
        return f'"{self.version}"'


class IdempotencyKey(models.Model):
    """The first response to a create sent with an `Idempotency-Key`, replayed for retries."""

    user_id = models.CharField(max_length=USER_ID_MAX_LENGTH)
    key = models.CharField(max_length=IDEMPOTENCY_KEY_MAX_LENGTH)
    request_fingerprint = models.CharField(max_length=64)
    response = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "idempotency_keys"
        constraints = [
            models.UniqueConstraint(fields=["user_id", "key"], name="idempotency_user_key")
        ]
        indexes = [models.Index(fields=["created_at"], name="idempotency_created")]

    def __str__(self) -> str:
        return f"{self.user_id}:{self.key}"
