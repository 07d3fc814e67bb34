import uuid

from django.db import connections, models
from django.db.models import sql
from django.utils import timezone

TITLE_MAX_LENGTH = 255
DETAILS_MAX_LENGTH = 10_000
USER_ID_MAX_LENGTH = 255


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
        quote = connections[self.db].ops.quote_name
        columns = ", ".join(quote(field.column) for field in self.model._meta.concrete_fields)
        returning = f"{update_sql} RETURNING {columns}"
        return list(self.model._default_manager.raw(returning, params, using=self.db))


class Task(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # The token's `sub` (Better Auth ids are 32-character strings); no user table to point at.
    user_id = models.CharField(max_length=USER_ID_MAX_LENGTH, editable=False)
    title = models.CharField(max_length=TITLE_MAX_LENGTH)
    details = models.TextField(max_length=DETAILS_MAX_LENGTH, blank=True, default="")
    completed = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

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
