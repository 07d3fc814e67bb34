"""Reads: each one function taking the caller's `user_id` (ownership is `Task.all_objects.for_user`,
applied in here), and saying whether it reads from compiled SQL (tasks.statements, for the hot
paths) or through the ORM."""

from __future__ import annotations

import uuid
from datetime import datetime, time, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from django.db.models import Count, Model, Q, QuerySet
from django.utils import timezone

from . import statements
from .models import Task, TaskList, TaskQuerySet
from .statements import Key as Key  # the orderings' type, for tasks.pagination

M = TypeVar("M", bound=Model)


def ordered(field: str, descending: bool, nullable: bool = False) -> tuple[Key, ...]:
    # The primary key breaks ties, so the order is total and no row is seen twice.
    return (Key(field, descending, nullable), Key("id", descending))


# The orders a task list can be read in (`ordering=`), each served by an index.
ORDERINGS = {
    "-created_at": ordered("created_at", True),
    "created_at": ordered("created_at", False),
    "due_at": ordered("due_at", False, nullable=True),
    "-due_at": ordered("due_at", True, nullable=True),
    "priority": ordered("priority", False),
    "-priority": ordered("priority", True),
    "position": ordered("position", False),
    "-updated_at": ordered("updated_at", True),
}
DEFAULT_ORDERING = "-created_at"
# Incremental sync: oldest change first.
CHANGES_ORDER = ordered("change_seq", False)


def task_list(*, user_id: str) -> TaskQuerySet:
    """The caller's tasks, for a list's filters to narrow (django-filter works on a queryset);
    `task_page` reads a page of them."""
    return Task.all_objects.for_user(user_id)


def task_get(*, user_id: str, task_id: uuid.UUID) -> Task | None:
    """The caller's task `task_id` (compiled: the lookup's hot path)."""
    found = statements.run_compiled(statements.by_pk, None, user_id=user_id, pk=task_id)
    return found[0] if found else None


def task_page(
    *,
    user_id: str,
    filtered: QuerySet[Task] | None,
    within: dict[str, uuid.UUID | None],
    keys: tuple[Key, ...],
    position: tuple[object, ...] | None,
    limit: int,
) -> list[Task]:
    """The first `limit` of the caller's tasks in the order of `keys`, after `position` (a value
    per key) if one is given. `filtered`: the caller's tasks narrowed by the list's filters,
    read through the ORM; None: from compiled SQL (the list's hot paths), all of them or those
    `within` a list and under a parent (`list_id`, `parent_id`: None for the top level)."""
    shape = statements.PageShape(keys, limit)
    values: dict[str, Any] = (
        {} if position is None else {k.field: v for k, v in zip(keys, position, strict=True)}
    )
    if filtered is None:
        values |= within
        return statements.run_compiled(statements.page, shape, user_id=user_id, **values)
    return statements.run_orm(statements.page, shape, filtered, **values)


def task_changes(
    *,
    user_id: str,
    after: tuple[int, uuid.UUID] | None,
    limit: int,
    horizon: int | None = None,
) -> list[Task]:
    """The first `limit` of the caller's changed tasks (tombstones included) after `after` (a
    change sequence number and an id), oldest change first; only changes that no transaction
    still in progress can precede (below `horizon`, if given: statements.change_horizon)."""
    return _changes(Task.all_objects.for_user(user_id, tombstones=True), after, limit, horizon)


def list_changes(
    *, user_id: str, after: tuple[int, uuid.UUID] | None, limit: int, horizon: int | None
) -> list[TaskList]:
    """As `task_changes`, for the caller's lists, below `horizon` (statements.change_horizon)."""
    return _changes(TaskList.all_objects.for_user(user_id, tombstones=True), after, limit, horizon)


def _changes(
    rows: QuerySet[M], after: tuple[int, uuid.UUID] | None, limit: int, horizon: int | None = None
) -> list[M]:
    if after is not None:
        rows = rows.filter(statements.rows_after(CHANGES_ORDER, after))
    rows = statements.committed_changes(rows, horizon)
    return list(rows.order_by(*(key.order_by() for key in CHANGES_ORDER))[:limit])


# A list of lists is read in the user's order.
LIST_ORDER = ordered("position", False)


def list_page(
    *, user_id: str, position: tuple[object, ...] | None, keys: tuple[Key, ...], limit: int
) -> list[TaskList]:
    """The first `limit` of the caller's lists in the order of `keys` (LIST_ORDER, or it
    flipped), after `position` if given."""
    lists: QuerySet[TaskList] = TaskList.all_objects.for_user(user_id)
    if position is not None:
        lists = lists.filter(statements.rows_after(keys, position))
    return list(lists.order_by(*(key.order_by() for key in keys))[:limit])


def list_get(*, user_id: str, list_id: uuid.UUID) -> TaskList | None:
    return TaskList.all_objects.for_user(user_id).filter(pk=list_id).first()


def list_exists(*, user_id: str, list_id: uuid.UUID) -> bool:
    return TaskList.all_objects.for_user(user_id).filter(pk=list_id).exists()


def task_exists(*, user_id: str, task_id: uuid.UUID) -> bool:
    return Task.all_objects.for_user(user_id).filter(pk=task_id).exists()


def tasks_stats(
    *, user_id: str, zone: ZoneInfo, list_id: uuid.UUID | None = None
) -> dict[str, int]:
    """Counts of the caller's tasks (of one list, with `list_id`), in one aggregate query;
    `due_today` is today in `zone`."""
    now = timezone.now()
    today = now.astimezone(zone).date()
    today_start = datetime.combine(today, time(), zone)
    today_end = datetime.combine(today + timedelta(days=1), time(), zone)
    open_ = Q(completed=False)
    # Aliases may not shadow field names (`completed`), hence the `n_` prefix.
    tasks = Task.all_objects.for_user(user_id)
    if list_id is not None:
        tasks = tasks.filter(list_id=list_id)
    counts = tasks.aggregate(
        n_total=Count("id"),
        n_open=Count("id", filter=open_),
        n_completed=Count("id", filter=Q(completed=True)),
        n_overdue=Count("id", filter=open_ & Q(due_at__lt=now)),
        n_due_today=Count("id", filter=open_ & Q(due_at__gte=today_start, due_at__lt=today_end)),
    )
    return {name.removeprefix("n_"): count for name, count in counts.items()}
