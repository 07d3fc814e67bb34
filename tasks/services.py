"""Task operations that are more than CRUD; each is one function doing its work in the database."""

import uuid

from django.db.models import F
from django.utils import timezone

from .models import Task, TaskQuerySet


def task_toggle(*, tasks: TaskQuerySet, task_id: str) -> Task:
    """Flip `completed` in one `UPDATE … SET completed = NOT completed … RETURNING`.

    `tasks` is the caller's queryset (ownership is already in it). Two concurrent toggles both
    apply: the database serialises them on the row lock, neither reads a stale value.
    """
    try:
        task_uuid = uuid.UUID(str(task_id))
    except ValueError:
        raise Task.DoesNotExist from None
    updated = tasks.filter(pk=task_uuid).update_returning(
        completed=~F("completed"), updated_at=timezone.now()
    )
    if not updated:
        raise Task.DoesNotExist
    return updated[0]
