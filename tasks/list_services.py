"""Writes of task lists: each a function taking the caller's `user_id` (ownership is
`TaskList.all_objects.for_user`, applied in here). Lists are few per user and rarely written, so
these use the ORM in a transaction, locking the list they change: a list's deletion holds
its row's lock (FOR UPDATE) while it deletes the list's tasks, and every insert or move of a
task into a list reads the list under a key-share lock, so no task lands in a list being
deleted (tasks.statements.live_list)."""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import Count, F, Max
from django.utils import timezone

from . import in_doubt, positions, statements
from .errors import (
    DefaultListUndeletable,
    ListLimitReached,
    MovedAfterItself,
    PreconditionFailed,
    ReferenceNotFound,
)
from .models import Task, TaskList, TaskListQuerySet
from .services import ANY_VERSION, TOMBSTONE, Versions, key_after


def default_list(*, user_id: str) -> None:
    """Make sure `user_id` has their default list (made by the first request that needs it)."""
    statements.insert_default_list(user_id)


def list_stamp(task_list: TaskList) -> in_doubt.Stamp:
    """How to tell that the write which returned `task_list` was applied (tasks.in_doubt)."""
    return in_doubt.Stamp(TaskList.all_objects.filter(pk=task_list.pk), task_list.updated_at)


def _list_id(list_id: object) -> uuid.UUID:
    try:
        return uuid.UUID(str(list_id))
    except ValueError:
        raise TaskList.DoesNotExist from None


def _locked(user_id: str, list_id: object, versions: Versions) -> TaskList:
    """The caller's list `list_id`, locked until the transaction ends, if `versions` (If-Match)
    admits it."""
    task_list = TaskList.all_objects.for_user(user_id).select_for_update().get(pk=_list_id(list_id))
    if versions is not None and versions != ANY_VERSION and task_list.version not in versions:
        raise PreconditionFailed()
    return task_list


def _written(lists: TaskListQuerySet, **values: Any) -> TaskList:
    """Apply `values` to the (locked) list of `lists`, as a change for sync; the list after."""
    changes = {
        "version": F("version") + 1,
        "updated_at": timezone.now(),
        "change_seq": statements.NextChangeSeq(F("user_id")),
        **values,
    }
    lists.update(**changes)
    return lists.get()


def list_create(*, user_id: str, title: str, max_lists: int) -> TaskList:
    """A new list, last in the caller's order, unless they have `max_lists` already
    (ListLimitReached: nothing stored). The default list's row is locked meanwhile, so that
    concurrent creates count one after the other."""

    def locked() -> TaskList:
        default_list(user_id=user_id)
        lists = TaskList.all_objects.for_user(user_id)
        list(lists.filter(is_default=True).select_for_update())
        counted = lists.aggregate(count=Count("id"), last=Max("position"))
        if counted["count"] >= max_lists:
            raise ListLimitReached(max_lists)
        now = timezone.now()
        created = TaskList.all_objects.create(
            user_id=user_id,
            title=title,
            position=positions.between(counted["last"], None),
            created_at=now,
            updated_at=now,
        )
        return _written(TaskList.all_objects.filter(pk=created.pk), version=1)

    return in_doubt.atomic(locked, list_stamp)


def list_update(*, user_id: str, list_id: object, title: str, versions: Versions) -> TaskList:
    def locked() -> TaskList:
        task_list = _locked(user_id, list_id, versions)
        return _written(TaskList.all_objects.filter(pk=task_list.pk), title=title)

    return in_doubt.atomic(locked, list_stamp)


def list_delete(*, user_id: str, list_id: object, versions: Versions) -> None:
    """Delete a list and every task in it (tombstones, for sync), in one transaction. The
    default list stays (DefaultListUndeletable).

    Its tasks are locked before the list (a new subtask locks its parent, then reads the list
    under a key-share lock: the other order would deadlock with it), and written after the list's
    lock, which keeps any new task out."""

    def locked() -> TaskList:
        tasks = Task.all_objects.for_user(user_id).filter(list_id=_list_id(list_id))
        list(tasks.order_by("pk").select_for_update().values_list("pk", flat=True))
        task_list = _locked(user_id, list_id, versions)
        if task_list.is_default:
            raise DefaultListUndeletable()
        now = timezone.now()
        tasks.update(
            **TOMBSTONE,
            deleted_at=now,
            updated_at=now,
            version=F("version") + 1,
            change_seq=statements.NextChangeSeq(F("user_id")),
        )
        lists = TaskList.all_objects.filter(pk=task_list.pk)
        return _written(lists, deleted_at=now)

    in_doubt.atomic(locked, list_stamp)


def list_move(*, user_id: str, list_id: object, after_id: uuid.UUID | None) -> TaskList:
    """Put a list right after another (`after_id`), or first (None)."""
    if after_id is not None and str(after_id) == str(list_id):
        raise MovedAfterItself()

    def locked() -> TaskList:
        moving = _locked(user_id, list_id, None)
        others = (
            TaskList.all_objects.for_user(user_id).exclude(pk=moving.pk).order_by("position", "id")
        )
        for _attempt in range(2):
            key = _key_after(others, after_id)
            if key is not None and len(key) <= positions.MAX_KEY_LENGTH:
                break
            _rebalance(others)
        return _written(TaskList.all_objects.filter(pk=moving.pk), position=key)

    return in_doubt.atomic(locked, list_stamp)


def _key_after(others: TaskListQuerySet, after_id: uuid.UUID | None) -> str | None:
    anchor = None
    if after_id is not None:
        anchor = others.filter(pk=after_id).first()
        if anchor is None:
            raise ReferenceNotFound("after", "list")
    return key_after(others, anchor)


def _rebalance(others: TaskListQuerySet) -> None:
    ordered = list(others)
    for task_list, key in zip(ordered, positions.spread(len(ordered)), strict=True):
        _written(TaskList.all_objects.filter(pk=task_list.pk), position=key)
