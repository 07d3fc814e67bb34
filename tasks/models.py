from __future__ import annotations

import uuid
from typing import TypeVar

from django.db import models
from django.db.models import Q
from django.utils import timezone

TITLE_MAX_LENGTH = 255
DETAILS_MAX_LENGTH = 10_000
USER_ID_MAX_LENGTH = 255
IDEMPOTENCY_KEY_MAX_LENGTH = 255
LABEL_MAX_LENGTH = 50
LABELS_MAX_COUNT = 20
RECURRENCE_MAX_LENGTH = 500
POSITION_MAX_LENGTH = 64
LIST_TITLE_MAX_LENGTH = 200
DEFAULT_LIST_TITLE = "Tasks"
# A top-level task is level 1; a subtask is one level below its parent.
MAX_LEVELS = 5
# A recurring task needs a due date (the next one is computed from it).
RECURRENCE_CHECK = "tasks_recurrence_needs_due_at"


class Priority(models.IntegerChoices):
    """Stored as its rank, so that ordering by priority is ordering by an indexed integer."""

    NONE = 0, "none"
    LOW = 1, "low"
    MEDIUM = 2, "medium"
    HIGH = 3, "high"


M = TypeVar("M", bound=models.Model)


class LiveManager(models.Manager[M]):
    """Live rows only: deleted ones are tombstones, kept for incremental sync until purged.
    The default manager (`objects`), for the shell and ad-hoc code; the service reads through
    `all_objects.for_user(...)`, which says whether it wants tombstones."""

    def get_queryset(self) -> models.QuerySet[M]:
        return super().get_queryset().filter(deleted_at__isnull=True)


class TaskListQuerySet(models.QuerySet["TaskList"]):
    def for_user(self, user_id: str, *, tombstones: bool = False) -> TaskListQuerySet:
        """The lists owned by `user_id` (deleted ones only with `tombstones`)."""
        if tombstones:
            return self.filter(user_id=user_id)
        return self.filter(user_id=user_id, deleted_at__isnull=True)


class TaskQuerySet(models.QuerySet["Task"]):
    def for_user(self, user_id: str, *, tombstones: bool = False) -> TaskQuerySet:
        """The tasks owned by `user_id`: the ownership rule every read and write goes through.
        Deleted tasks are tombstones, left out unless `tombstones` (incremental sync reports
        them)."""
        if not self.query.where:
            # Added to the query when something reads it (Django's related managers defer
            # theirs the same way): a list page read from compiled SQL (tasks.statements) never
            # does, and building the filter is most of what `for_user` costs.
            self._defer_next_filter = True
        if tombstones:
            return self.filter(user_id=user_id)
        return self.filter(user_id=user_id, deleted_at__isnull=True)


LIVE = Q(deleted_at__isnull=True)


class TaskList(models.Model):
    """A list of tasks (a sidebar entry): every task is in one. Each user has exactly one
    default list, made by the first request that needs it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user_id = models.CharField(max_length=USER_ID_MAX_LENGTH, editable=False)
    title = models.CharField(max_length=LIST_TITLE_MAX_LENGTH)
    is_default = models.BooleanField(default=False, editable=False)
    position = models.CharField(max_length=POSITION_MAX_LENGTH, default="", editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now, editable=False)
    version = models.PositiveIntegerField(default=1, editable=False)
    deleted_at = models.DateTimeField(null=True, blank=True, editable=False)
    change_seq = models.BigIntegerField(default=0, editable=False)

    objects = LiveManager["TaskList"]()
    all_objects = TaskListQuerySet.as_manager()  # tombstones too

    class Meta:
        db_table = "task_lists"
        indexes = [
            models.Index(
                fields=["user_id", "position", "id"], name="lists_user_position_id", condition=LIVE
            ),
            models.Index(fields=["user_id", "change_seq", "id"], name="lists_user_change_seq_id"),
        ]
        constraints = [
            # What makes the default list's creation race-free: a second one cannot be inserted.
            models.UniqueConstraint(
                fields=["user_id"], condition=Q(is_default=True), name="lists_one_default"
            )
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def etag(self) -> str:
        return f'"{self.version}"'


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
    # The task's list (TaskList) and parent task, if it is a subtask. Plain ids, no foreign
    # keys: ownership and liveness are checked by the statements that write them (tasks.trees),
    # and a foreign key's check would cost every insert a lookup of its own.
    # Nullable only for the rows written by the previous release during the upgrade (0007).
    list_id = models.UUIDField(null=True)
    parent_id = models.UUIDField(null=True, blank=True)
    # Set by a trigger (migration 0008) when the task gains a subtask, whatever writes it; never
    # cleared. A toggle of a task with neither a parent nor this flag is one UPDATE that
    # requires both (tasks.services.task_toggle).
    may_have_subtasks = models.BooleanField(default=False, db_default=False, editable=False)

    objects = LiveManager["Task"]()
    all_objects = TaskQuerySet.as_manager()  # tombstones too

    # The editable fields a delete keeps (every other one is erased in the tombstone), and those
    # the next occurrence of a recurring task sets itself (every other one is copied to it): a
    # new editable field is erased by a delete and copied by a recurrence unless named here.
    KEPT_BY_DELETE = frozenset({"completed", "priority", "position", "list_id", "parent_id"})
    SET_BY_NEXT_OCCURRENCE = frozenset({"completed", "recurrence", "due_at", "position"})

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
            # A list's top level in the user's order (`list=…&parent=none&ordering=position`):
            # partial, because `parent_id IS NULL` is no equality, and an index on (list_id,
            # parent_id, position) would not give that order (docs/performance.md's plans).
            models.Index(
                fields=["list_id", "position", "id"],
                name="tasks_list_top_position_id",
                condition=LIVE & Q(parent_id__isnull=True),
            ),
            # A task's subtasks in order (`parent=…`), and the walk down a subtree.
            models.Index(
                fields=["parent_id", "position", "id"],
                name="tasks_parent_position_id",
                condition=LIVE & Q(parent_id__isnull=False),
            ),
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
