"""Writes: each task operation is one function doing its work in the database.

Each takes the caller's `user_id` (ownership is `Task.objects.for_user`, applied in here) and,
for writes to one task, `versions`: the versions named by an `If-Match` header (None:
unconditional; `ANY_VERSION`: the task must merely exist). A conditional write is one
compare-and-set statement, so a stale writer gets PreconditionFailed and changes nothing. What
the rules refuse is a tasks.errors exception, which the exception handler answers. The SQL of
the hot writes is tasks.statements'.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db import IntegrityError
from django.db.models import F, Q
from django.utils import timezone

from . import in_doubt, positions, recurrence, statements
from .errors import MovedAfterItself, PreconditionFailed, RecurrenceNeedsDueAt, TaskLimitReached
from .models import RECURRENCE_CHECK, Task, TaskQuerySet

ANY_VERSION = "*"
UNLIMITED = 2**62

Versions = list[int] | str | None


def _refused_by_check(error: IntegrityError) -> Exception:
    """The domain error for a write the recurrence check constraint refused (any other integrity
    error is a bug, and stays one)."""
    if RECURRENCE_CHECK in str(error):
        return RecurrenceNeedsDueAt()
    return error


def _task_id(task_id: object) -> uuid.UUID:
    try:
        return uuid.UUID(str(task_id))
    except ValueError:
        raise Task.DoesNotExist from None


def _one_task(tasks: TaskQuerySet, task_id: object) -> TaskQuerySet:
    return tasks.filter(pk=_task_id(task_id))


def _missing_or_stale(user_id: str, task_id: object, *, non_recurring: bool = False) -> Exception:
    """Why a conditional write matched nothing (only asked on that failure path)."""
    tasks = Task.objects.for_user(user_id)
    if _one_task(tasks.filter(recurrence="") if non_recurring else tasks, task_id).exists():
        return PreconditionFailed()
    return Task.DoesNotExist()


def _written(
    user_id: str, task_id: object, versions: Versions, *, non_recurring: bool = False, **values: Any
) -> tuple[Task, bool]:
    """Apply `values` in one `UPDATE … RETURNING` (to a task without a recurrence rule only,
    with `non_recurring`); also says whether the task just became completed (its
    `completed_at` is this write's timestamp)."""
    if versions is not None and versions != ANY_VERSION and not versions:
        raise _missing_or_stale(user_id, task_id)  # an If-Match that no version can match
    matched = sorted(set(versions)) if isinstance(versions, list) else []
    shape = statements.UpdateShape(non_recurring=non_recurring, versions=len(matched))
    now = timezone.now()
    pk = _task_id(task_id)
    values |= {f"version__{i}": version for i, version in enumerate(matched)}
    try:
        updated: list[Task] = in_doubt.statement(
            lambda: statements.run_compiled(
                statements.update, shape, user_id=user_id, pk=pk, updated_at=now, **values
            ),
            lambda: in_doubt.Stamp(Task.objects.filter(pk=pk), now),
            answer=list,
        )
    except IntegrityError as error:
        raise _refused_by_check(error) from None
    if not updated:
        raise _missing_or_stale(user_id, task_id, non_recurring=non_recurring)
    task = updated[0]
    return task, task.completed and task.completed_at == now


def task_stamp(task: Task) -> in_doubt.Stamp:
    """How to tell that the write which returned `task` was applied (see tasks.in_doubt)."""
    return in_doubt.Stamp(Task.objects.filter(pk=task.pk), task.updated_at)


def _completing(user_id: str, task_id: object, versions: Versions, **values: Any) -> Task:
    """A write that may complete a task. A non-recurring task (the common case) is one
    statement; a recurring one is locked, written and followed by its next occurrence in one
    transaction, so the next occurrence is created exactly once however many completes race."""
    if not values.get("recurrence"):  # a write that adds a rule takes the locked path
        try:
            task, _ = _written(user_id, task_id, versions, non_recurring=True, **values)
            return task
        except Task.DoesNotExist:
            pass  # missing, or recurring: find out under the lock

    def locked() -> Task:
        list(_one_task(Task.objects.for_user(user_id), task_id).select_for_update())
        task, just_completed = _written(user_id, task_id, versions, **values)
        if just_completed and task.recurrence and task.next_occurrence_id is None:
            following = _create_next_occurrence(task)
            if following is not None:
                task, _ = _written(user_id, task.pk, None, next_occurrence_id=following.pk)
                task.next_occurrence = following  # type: ignore[attr-defined]
        return task

    return in_doubt.atomic(locked, task_stamp)


# The fields the next occurrence of a recurring task copies (see Task.SET_BY_NEXT_OCCURRENCE).
COPIED_BY_NEXT_OCCURRENCE = tuple(
    field.attname
    for field in Task._meta.concrete_fields
    if field.editable and field.name not in Task.SET_BY_NEXT_OCCURRENCE
)


def _create_next_occurrence(task: Task) -> Task | None:
    due_at = recurrence.next_due(task.recurrence, task.due_at)
    if due_at is None:  # the rule is exhausted (COUNT or UNTIL)
        return None
    # Through insert_within_limit so the row gets its change_seq; the next occurrence replaces
    # the completed one in the series, so the per-user cap does not stop it.
    return statements.insert_within_limit(
        limit=UNLIMITED,
        user_id=task.user_id,
        **{name: getattr(task, name) for name in COPIED_BY_NEXT_OCCURRENCE},
        recurrence=_remaining(task.recurrence),
        due_at=due_at,
        position=positions.for_new_task(),
    )


def _remaining(rule: str) -> str:
    """The rule for the rest of the series: a COUNT shrinks by one occurrence."""
    parts = [part for part in rule.split(";") if part]
    for index, part in enumerate(parts):
        name, _, value = part.partition("=")
        if name.upper() == "COUNT":
            parts[index] = f"{name}={int(value) - 1}"
    return ";".join(parts)


def task_update(
    *, user_id: str, task_id: object, changes: dict[str, Any], versions: Versions
) -> Task:
    """Apply validated field changes (PUT or PATCH) in one `UPDATE … RETURNING`."""
    if changes.get("completed"):
        return _completing(user_id, task_id, versions, **changes)
    return _written(user_id, task_id, versions, **changes)[0]


def task_toggle(*, user_id: str, task_id: object, versions: Versions = None) -> Task:
    """Flip `completed` in one `UPDATE … SET completed = NOT completed … RETURNING`.

    Two concurrent toggles both apply: the database serialises them on the row lock, neither
    reads a stale value.
    """
    return _completing(user_id, task_id, versions, completed=~F("completed"))


# What a delete writes over a task's contents (see Task.KEPT_BY_DELETE): each erased field's
# empty value.
TOMBSTONE: dict[str, Any] = {
    field.attname: None if field.null else field.get_default()
    for field in Task._meta.concrete_fields
    if field.editable and field.name not in Task.KEPT_BY_DELETE
}


def task_delete(*, user_id: str, task_id: object, versions: Versions = None) -> Task:
    """Leave a tombstone (contents erased) for incremental sync; it is gone from every read.
    Returns the tombstone."""
    return _written(user_id, task_id, versions, deleted_at=timezone.now(), **TOMBSTONE)[0]


def tasks_clear_completed(*, user_id: str) -> int:
    """Delete the caller's completed tasks, as Google Tasks' `clear` does; returns how many."""
    now = timezone.now()
    changes = {"deleted_at": now, "updated_at": now, "version": F("version") + 1, **TOMBSTONE}
    cleared: list[Task] = in_doubt.statement(
        lambda: statements.update_returning(
            Task.objects.for_user(user_id).filter(completed=True), changes
        ),
        lambda: in_doubt.Stamp(
            Task.objects.for_user(user_id, tombstones=True).filter(deleted_at=now), now
        ),
        answer=list,
    )
    return len(cleared)


def task_create(*, user_id: str, fields: dict[str, Any], max_tasks: int) -> Task:
    """A new task for `user_id`, unless they already have `max_tasks` (TaskLimitReached:
    nothing stored)."""
    now = timezone.now()
    fields = {"position": positions.for_new_task(), "created_at": now, **fields}
    if fields.get("completed"):
        fields["completed_at"] = now
    try:
        task = statements.insert_within_limit(limit=max_tasks, user_id=user_id, **fields)
    except IntegrityError as error:
        raise _refused_by_check(error) from None
    if task is None:
        raise TaskLimitReached()
    return task


def task_move(*, user_id: str, task_id: object, after_id: uuid.UUID | None) -> Task:
    """Put a task right after another (`after_id`), or first (None): one row rewritten, unless
    the keys around it have run out of room and the user's keys are spread out again."""
    if after_id is not None and str(after_id) == str(task_id):
        raise MovedAfterItself()
    tasks = Task.objects.for_user(user_id)

    def locked() -> Task:
        moving = _one_task(tasks, task_id).select_for_update().get()
        others = tasks.exclude(pk=moving.pk).order_by("position", "id")
        for _attempt in range(2):
            key = _key_after(others, after_id)
            if key is not None and len(key) <= positions.MAX_KEY_LENGTH:
                break
            _rebalance(tasks)
        task, _ = _written(user_id, moving.pk, None, position=key)
        return task

    return in_doubt.atomic(locked, task_stamp)


def _key_after(others: TaskQuerySet, after_id: uuid.UUID | None) -> str | None:
    """A key for the gap after `after_id` (None: the start); None if the gap has no room."""
    if after_id is None:
        return positions.first(others.values_list("position", flat=True).first())
    anchor = _one_task(others, after_id).get()
    following = (
        others.filter(
            Q(position__gt=anchor.position) | Q(position=anchor.position, id__gt=anchor.id)
        )
        .values_list("position", flat=True)
        .first()
    )
    if following is not None and following <= anchor.position:
        return None  # equal keys: no room between them
    return positions.between(anchor.position, following)


def _rebalance(tasks: TaskQuerySet) -> None:
    """Spread the user's keys evenly, keeping their order (the occasional O(n) step)."""
    ordered = list(tasks.order_by("position", "id").only("id", "position"))
    for task, key in zip(ordered, positions.spread(len(ordered)), strict=True):
        task.position = key
    Task.objects.bulk_update(ordered, ["position"], batch_size=1000)
    # Sync clients and ETag holders must see the new positions as changes.
    tasks.update(change_seq=statements.NextChangeSeq(F("user_id")), version=F("version") + 1)
