"""Task operations that are more than CRUD; each is one function doing its work in the database.

Each takes `tasks`, the caller's queryset (ownership is already in it), and, for writes,
`versions`: the versions named by an `If-Match` header (None: unconditional; `ANY_VERSION`: the
task must merely exist). A conditional write is one compare-and-set statement, so a stale
writer gets 412 and changes nothing.
"""

import hashlib
import uuid
from collections.abc import Callable
from datetime import timedelta

import orjson
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from rest_framework import status
from rest_framework.exceptions import APIException, ValidationError

from .models import IdempotencyKey, Task, TaskQuerySet

ANY_VERSION = "*"
IDEMPOTENCY_KEY_LIFETIME = timedelta(hours=24)

Versions = list[int] | str | None


class PreconditionFailed(APIException):
    status_code = status.HTTP_412_PRECONDITION_FAILED
    default_detail = "The task has changed since that ETag was read (If-Match)."
    default_code = "precondition_failed"


class TaskLimitReached(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "You have reached the maximum number of tasks."
    default_code = "task_limit_reached"


def _one_task(tasks: TaskQuerySet, task_id) -> TaskQuerySet:
    try:
        return tasks.filter(pk=uuid.UUID(str(task_id)))
    except ValueError:
        raise Task.DoesNotExist from None


def _matching(tasks: TaskQuerySet, task_id, versions: Versions) -> TaskQuerySet:
    task = _one_task(tasks, task_id)
    if versions is None or versions == ANY_VERSION:
        return task
    if not versions:  # an If-Match that no version can match
        raise _missing_or_stale(tasks, task_id)
    return task.filter(version__in=versions)


def _missing_or_stale(tasks: TaskQuerySet, task_id) -> Exception:
    """Why a conditional write matched nothing (only asked on that failure path)."""
    if _one_task(tasks, task_id).exists():
        return PreconditionFailed()
    return Task.DoesNotExist()


def _written(tasks: TaskQuerySet, task_id, versions: Versions, **values) -> Task:
    updated = _matching(tasks, task_id, versions).update_returning(
        **values, version=F("version") + 1, updated_at=timezone.now()
    )
    if not updated:
        raise _missing_or_stale(tasks, task_id)
    return updated[0]


def task_update(*, tasks: TaskQuerySet, task_id, changes: dict, versions: Versions) -> Task:
    """Apply validated field changes (PUT or PATCH) in one `UPDATE … RETURNING`."""
    return _written(tasks, task_id, versions, **changes)


def task_toggle(*, tasks: TaskQuerySet, task_id, versions: Versions = None) -> Task:
    """Flip `completed` in one `UPDATE … SET completed = NOT completed … RETURNING`.

    Two concurrent toggles both apply: the database serialises them on the row lock, neither
    reads a stale value.
    """
    return _written(tasks, task_id, versions, completed=~F("completed"))


def task_delete(*, tasks: TaskQuerySet, task_id, versions: Versions = None) -> None:
    deleted, _ = _matching(tasks, task_id, versions).delete()
    if not deleted:
        raise _missing_or_stale(tasks, task_id)


def task_create(*, user_id: str, fields: dict, max_tasks: int) -> Task:
    """A new task for `user_id`, unless they already have `max_tasks` (409, nothing stored)."""
    task = Task.objects.create_within_limit(limit=max_tasks, user_id=user_id, **fields)
    if task is None:
        raise TaskLimitReached()
    return task


def request_fingerprint(data: dict) -> str:
    return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()


def task_create_idempotent(
    *,
    user_id: str,
    key: str,
    fingerprint: str,
    create: Callable[[], dict],
) -> tuple[dict, bool]:
    """Run `create` once per (user, key) within 24 h; returns (response, replayed).

    The key row is inserted in the same transaction as the task, so a concurrent duplicate
    waits on the unique index, then fails and replays the committed response: exactly one task
    is created. The same key with a different body is a 422.
    """
    IdempotencyKey.objects.filter(
        user_id=user_id, key=key, created_at__lt=timezone.now() - IDEMPOTENCY_KEY_LIFETIME
    ).delete()
    try:
        with transaction.atomic():
            record = IdempotencyKey.objects.create(
                user_id=user_id, key=key, request_fingerprint=fingerprint
            )
            record.response = create()
            record.save(update_fields=["response"])
            return record.response, False
    except IntegrityError:
        record = IdempotencyKey.objects.get(user_id=user_id, key=key)
    if record.request_fingerprint != fingerprint:
        raise ValidationError(
            {"Idempotency-Key": ["This key was already used with a different request body."]},
            code="idempotency_key_reused",
        )
    return record.response, True
