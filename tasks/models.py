import uuid
from functools import cache

from django.db import connections, models
from django.db.models import F, Q, Value, sql
from django.utils import timezone

from . import in_doubt
from .compiled import CompiledQueries, fetch_instances

TITLE_MAX_LENGTH = 255
DETAILS_MAX_LENGTH = 10_000
USER_ID_MAX_LENGTH = 255
IDEMPOTENCY_KEY_MAX_LENGTH = 255
LABEL_MAX_LENGTH = 50
LABELS_MAX_COUNT = 20
RECURRENCE_MAX_LENGTH = 500
POSITION_MAX_LENGTH = 64
# A recurring task needs a due date (the next one is computed from it).
RECURRENCE_CHECK = "tasks_recurrence_needs_due_at"


class Priority(models.IntegerChoices):
    """Stored as its rank, so that ordering by priority is ordering by an indexed integer."""

    NONE = 0, "none"
    LOW = 1, "low"
    MEDIUM = 2, "medium"
    HIGH = 3, "high"


class NextChangeSeq(models.Func):
    """The change sequence number a write stamps on a row, for incremental sync; `owner` is the
    row's user id (a column reference in an UPDATE, a value in an INSERT).

    PostgreSQL: the writing transaction's id. A reader only hands out changes below the oldest
    transaction still in progress (see tasks.sync), so a change that commits late is never
    skipped. SQLite has one writer at a time, so the owner's `max + 1` (an index lookup) is
    already in commit order.
    """

    output_field = models.BigIntegerField()

    def __init__(self, owner) -> None:
        super().__init__(owner)

    def as_sql(self, compiler, connection, **extra):
        owner, params = compiler.compile(self.source_expressions[0])
        table = connection.ops.quote_name(Task._meta.db_table)
        return (
            f"(SELECT COALESCE(MAX(seq.change_seq), 0) + 1 FROM {table} AS seq"  # noqa: S608
            f" WHERE seq.user_id = {owner})",
            params,
        )

    def as_postgresql(self, compiler, connection, **extra):
        return "pg_current_xact_id()::text::bigint", []


class TaskQuerySet(models.QuerySet):
    # Set on the queryset `for_user()` returns; a queryset derived from it (filtered, ordered…)
    # is a new object without it.
    owner: str | None = None

    def for_user(self, user_id: str) -> "TaskQuerySet":
        """The live tasks owned by `user_id`: the ownership rule every read and write goes
        through (deleted tasks are tombstones, seen only by incremental sync)."""
        if self.query.where:
            return self.filter(user_id=user_id, deleted_at__isnull=True)
        # The filter is added to the query when something reads it (Django's related managers
        # defer theirs the same way): `fetch()` from compiled SQL never does.
        self._defer_next_filter = True
        owned = self.filter(user_id=user_id, deleted_at__isnull=True)
        owned.owner = user_id
        return owned

    def fetch(self, shape, build, **values) -> list["Task"]:
        """The rows of `build(self, **values)`: a queryset, or a pair (queryset, changes) to
        update them with, returning them. When this queryset is exactly `for_user(owner)`,
        from SQL compiled once per `shape` (see tasks.compiled): `build` may use nothing but
        its arguments, each value named after the field it goes to."""
        if self.owner is None:
            built = build(self, **values)
            if isinstance(built, tuple):
                queryset, changes = built
                return queryset.update_returning(**changes)
            return list(built)
        return COMPILED.rows(
            shape,
            lambda user_id, **values: build(Task.objects.for_user(user_id), **values),
            using=self.db,
            user_id=self.owner,
            **values,
        )

    def changes_for_user(self, user_id: str) -> "TaskQuerySet":
        """Everything of `user_id`'s that incremental sync reports: live tasks and tombstones."""
        return self.filter(user_id=user_id)

    def update_returning(self, **values) -> list["Task"]:
        """`UPDATE … RETURNING` the matched rows: one statement, no read-modify-write race.

        Django's `update()` returns only a count, so fetching the new row would take a second
        query (and could see a later write).
        """
        return fetch_instances(self.model, self.db, *self.update_returning_sql(values))

    def update_returning_sql(self, values: dict) -> tuple[str, list]:
        query = self.query.chain(sql.UpdateQuery)
        query.add_update_values({"change_seq": NextChangeSeq(F("user_id")), **values})
        update_sql, params = query.get_compiler(self.db).as_sql()
        return f"{update_sql} RETURNING {self._columns()}", params

    def create_within_limit(self, *, limit: int, **fields) -> "Task | None":
        """Insert a task unless its owner already has `limit` live tasks, in one statement
        (the count is a row of `task_counts`, which triggers keep)."""
        task = self.model(**fields)
        connection = connections[self.db]
        compiler = self.query.get_compiler(self.db)
        concrete = self.model._meta.concrete_fields
        selected, params = [], []
        for field, placeholder in zip(concrete, _insert_placeholders(self.db), strict=True):
            if field.attname == "change_seq":
                fragment, fragment_params = compiler.compile(NextChangeSeq(Value(task.user_id)))
            else:
                value = field.pre_save(task, add=True)
                fragment = placeholder
                fragment_params = [field.get_db_prep_save(value, connection)]
            selected.append(fragment)
            params += fragment_params
        table = connection.ops.quote_name(self.model._meta.db_table)
        counts = connection.ops.quote_name(TaskCount._meta.db_table)
        # Identifiers come from the model's metadata; every value is a bound parameter.
        statement = (
            f"INSERT INTO {table} ({self._columns()}) SELECT {', '.join(selected)} "  # noqa: S608
            f"WHERE COALESCE((SELECT SUM(live) FROM {counts} WHERE user_id = %s), 0)"
            f" < {typed(connection, 'bigint')}"
        )

        def insert() -> bool:
            with connection.cursor() as cursor:
                cursor.execute(statement, [*params, task.user_id, limit])
                return cursor.rowcount == 1

        def stamp() -> in_doubt.Stamp:
            return in_doubt.Stamp(self.model.objects.filter(pk=task.pk), task.updated_at)

        if not in_doubt.statement(insert, stamp, answer=bool):
            return None
        task._state.adding = False
        task._state.db = self.db
        return task

    def _columns(self) -> str:
        quote = connections[self.db].ops.quote_name
        return ", ".join(quote(field.column) for field in self.model._meta.concrete_fields)


LIVE = Q(deleted_at__isnull=True)


@cache
def _insert_placeholders(using: str) -> list[str]:
    """Each concrete field's placeholder in create_within_limit's SELECT list."""
    connection = connections[using]
    return [
        typed(connection, field.cast_db_type(connection)) for field in Task._meta.concrete_fields
    ]


def typed(connection, db_type: str) -> str:
    """A placeholder with its type on PostgreSQL, where a prepared statement (server-side
    binding, DATABASE_PREPARED_STATEMENTS) cannot infer a SELECT-list parameter's type. SQLite
    needs none, and its CAST to a date type would turn the text into a number."""
    return f"CAST(%s AS {db_type})" if connection.vendor == "postgresql" else "%s"


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
    due_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True, editable=False)
    priority = models.PositiveSmallIntegerField(
        choices=Priority.choices, default=Priority.NONE, db_default=Priority.NONE
    )
    labels = models.JSONField(default=list, db_default=models.Value("[]"), blank=True)
    # A fractional (lexicographic) key: the order the user chose, see tasks.positions.
    position = models.CharField(max_length=POSITION_MAX_LENGTH, default="", db_default="")
    recurrence = models.CharField(
        max_length=RECURRENCE_MAX_LENGTH, blank=True, default="", db_default=""
    )
    # Set on delete: the row stays as a tombstone (for incremental sync) until purged.
    deleted_at = models.DateTimeField(null=True, blank=True, editable=False)
    change_seq = models.BigIntegerField(default=0, db_default=0, editable=False)
    # The occurrence created when this recurring task was completed: set once, so reopening and
    # completing it again does not start a second one.
    next_occurrence_id = models.UUIDField(null=True, blank=True, editable=False)

    objects = TaskQuerySet.as_manager()

    class Meta:
        db_table = "tasks"
        indexes = [
            # The list query: one user's tasks, newest first, keyset-paginated. Its leading
            # column also serves every lookup by owner, so user_id needs no index of its own.
            models.Index(
                fields=["user_id", "created_at", "id"], name="tasks_user_created_id", condition=LIVE
            ),
            models.Index(
                fields=["user_id", "completed", "created_at", "id"],
                name="tasks_user_done_created_id",
                condition=LIVE,
            ),
            # One per `ordering=` choice and the due-date filters, so no page needs a sort.
            models.Index(
                fields=["user_id", "due_at", "id"], name="tasks_user_due_id", condition=LIVE
            ),
            models.Index(
                fields=["user_id", "priority", "id"], name="tasks_user_priority_id", condition=LIVE
            ),
            models.Index(
                fields=["user_id", "position", "id"], name="tasks_user_position_id", condition=LIVE
            ),
            models.Index(
                fields=["user_id", "updated_at", "id"], name="tasks_user_updated_id", condition=LIVE
            ),
            # Incremental sync, tombstones included. (PostgreSQL-only indexes: labels and
            # search in migration 0004, `-due_at` with its nulls last in 0005.)
            models.Index(fields=["user_id", "change_seq", "id"], name="tasks_user_change_seq_id"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(recurrence="") | Q(due_at__isnull=False),
                name=RECURRENCE_CHECK,
            )
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def etag(self) -> str:
        return f'"{self.version}"'


class TaskCount(models.Model):
    """How many live tasks a user has: the sum of the user's rows (PostgreSQL spreads them over
    shards, one per connection, so that concurrent writes do not queue on one row). Written only
    by triggers on `tasks` (migration 0006), whatever changes it; read by the per-user cap."""

    pk = models.CompositePrimaryKey("user_id", "shard")
    user_id = models.CharField(max_length=USER_ID_MAX_LENGTH)
    shard = models.SmallIntegerField()
    live = models.IntegerField(default=0)

    class Meta:
        db_table = "task_counts"

    def __str__(self) -> str:
        return f"{self.user_id}#{self.shard}: {self.live}"


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


COMPILED = CompiledQueries(Task)
