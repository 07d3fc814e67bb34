"""Writes: each task operation is one function doing its work in the database.

Each takes the caller's `user_id` (ownership is `Task.all_objects.for_user`, applied in here) and,
for writes to one task, `versions`: the versions named by an `If-Match` header (None:
unconditional; `ANY_VERSION`: the task must merely exist). A conditional write is one
compare-and-set statement, so a stale writer gets PreconditionFailed and changes nothing. What
the rules refuse is a tasks.errors exception, which the exception handler answers. The SQL of
the hot writes is tasks.statements'.

Subtasks: a write that changes more than one task of a tree, or a task's place in one, first
locks the *family* it touches (the task, its subtree, its ancestors: statements.family; for a
completion, the task, its ancestors and its open descendants, the rows it can write:
statements.completion_family) or, for a new subtask, the parent's *chain* (the parent and its
ancestors), each in one statement, in id order. Any two such writes that could interfere lock
a common task (every one of them locks the chain above what it changes), so they run one after
the other, and each one's next statement sees the other's outcome; and a write touches no row
that another holds without holding it first, so none waits in a circle. What the locking
statement itself read can predate the wait (a statement's snapshot is taken before it locks);
so the rows it returns are used only where they cannot have changed meanwhile (the locked rows
themselves, and a chain that is checked to be whole), and subtrees are walked again by the
statement that writes them.
"""

from __future__ import annotations

import uuid
from typing import Any, NamedTuple

from django.db import IntegrityError
from django.db.models import Case, F, Q, QuerySet, UUIDField, Value, When
from django.db.models.lookups import LessThanOrEqual
from django.utils import timezone

from . import in_doubt, positions, recurrence, statements
from .errors import (
    Cycle,
    MovedAfterItself,
    NotASibling,
    ParentInOtherList,
    PreconditionFailed,
    RecurrenceNeedsDueAt,
    RecurringTaskInTree,
    ReferenceNotFound,
    TaskLimitReached,
    TooDeep,
)
from .models import MAX_LEVELS, RECURRENCE_CHECK, Task, TaskList, TaskQuerySet

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
    tasks = Task.all_objects.for_user(user_id)
    if _one_task(tasks.filter(recurrence="") if non_recurring else tasks, task_id).exists():
        return PreconditionFailed()
    return Task.DoesNotExist()


def _written(
    user_id: str, task_id: object, versions: Versions, *, non_recurring: bool = False, **values: Any
) -> tuple[Task, bool]:
    """Apply `values` in one `UPDATE … RETURNING` (to a task without a recurrence rule only,
    with `non_recurring`); also says whether the task just became completed (its
    `completed_at` is this write's timestamp)."""
    task = _updated(user_id, task_id, versions, non_recurring=non_recurring, **values)
    if task is None:
        raise _missing_or_stale(user_id, task_id, non_recurring=non_recurring)
    return task, task.completed and task.completed_at == task.updated_at


def _updated(
    user_id: str,
    task_id: object,
    versions: Versions,
    *,
    non_recurring: bool = False,
    outside_trees: bool = False,
    **values: Any,
) -> Task | None:
    """`values` applied in one `UPDATE … RETURNING` to task `task_id` if it matches `versions`
    (If-Match) and the conditions (statements.UpdateShape); None if it does not."""
    if versions is not None and versions != ANY_VERSION and not versions:
        raise _missing_or_stale(user_id, task_id)  # an If-Match that no version can match
    matched = sorted(set(versions)) if isinstance(versions, list) else []
    shape = statements.UpdateShape(non_recurring, len(matched), outside_trees)
    now = timezone.now()
    pk = _task_id(task_id)
    values |= {f"version__{i}": version for i, version in enumerate(matched)}
    try:
        updated: list[Task] = in_doubt.statement(
            lambda: statements.run_compiled(
                statements.update, shape, user_id=user_id, pk=pk, updated_at=now, **values
            ),
            lambda: in_doubt.Stamp(Task.all_objects.filter(pk=pk), now),
            answer=list,
        )
    except IntegrityError as error:
        raise _refused_by_check(error) from None
    return updated[0] if updated else None


def task_stamp(task: Task) -> in_doubt.Stamp:
    """How to tell that the write which returned `task` was applied (see tasks.in_doubt)."""
    return in_doubt.Stamp(Task.all_objects.filter(pk=task.pk), task.updated_at)


def _target(rows: list[Task], task_id: object, versions: Versions) -> Task:
    """Task `task_id` among locked `rows`, if `versions` (If-Match) admits it."""
    pk = _task_id(task_id)
    target = next((row for row in rows if row.pk == pk), None)
    if target is None:
        raise Task.DoesNotExist
    return _check_versions(target, versions)


def _check_versions(task: Task, versions: Versions) -> Task:
    if isinstance(versions, list) and task.version not in versions:
        raise PreconditionFailed()
    return task


def _locked_family(
    user_id: str, task_id: object, versions: Versions, build: statements.Builder = statements.family
) -> Task:
    """Lock task `task_id`'s family (see the module's docstring; `build`: statements.family, or
    statements.completion_family for a write that completes or reopens it); returns the task."""
    rows = statements.run_compiled(build, None, user_id=user_id, pk=_task_id(task_id))
    return _target(rows, task_id, versions)


def _set_completed(user_id: str, task: Task, completed: bool, **values: Any) -> Task:
    """Complete `task` (locked) with its open descendants, or reopen it with its completed
    ancestors, and apply `values` to it. A recurring task (never in a tree) starts its next
    occurrence when it becomes completed."""
    if values.get("recurrence", task.recurrence):
        task, just_completed = _written(user_id, task.pk, None, completed=completed, **values)
        return _following(task, just_completed)
    if values:
        _written(user_id, task.pk, None, **values)
    build = statements.completing if completed else statements.reopening
    now = timezone.now()
    rows = statements.run_compiled(build, None, user_id=user_id, pk=task.pk, updated_at=now)
    return next(row for row in rows if row.pk == task.pk)


def _following(task: Task, just_completed: bool) -> Task:
    """`task`, having started its next occurrence if it was just completed (once per task)."""
    if just_completed and task.next_occurrence_id is None:
        following = _create_next_occurrence(task)
        if following is not None:
            task, _ = _written(task.user_id, task.pk, None, next_occurrence_id=following.pk)
            task.next_occurrence = following  # type: ignore[attr-defined]
    return task


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


STRUCTURE = frozenset({"parent_id", "list_id"})


def task_update(
    *, user_id: str, task_id: object, changes: dict[str, Any], versions: Versions
) -> Task:
    """Apply validated field changes (PUT or PATCH): one `UPDATE … RETURNING`, unless they
    complete or reopen the task, move it, or give it a rule (then its family is locked)."""
    if (
        "completed" not in changes
        and not changes.get("recurrence")
        and STRUCTURE.isdisjoint(changes)
    ):
        return _written(user_id, task_id, versions, **changes)[0]

    def locked() -> Task:
        changes_left = dict(changes)
        structure = {name: changes_left.pop(name) for name in STRUCTURE & changes.keys()}
        if structure:
            task, rows = _lock(user_id, task_id, parent_id=structure.get("parent_id"))
            _check_versions(task, versions)
            place = _place(task, rows, **structure)
            if (place.list_id, place.parent_id) != (task.list_id, task.parent_id):
                task = _moved(user_id, task, place, positions.for_new_task())
        else:
            task = _locked_family(user_id, task_id, versions, statements.completion_family)
        if changes_left.get("recurrence"):
            _check_can_recur(user_id, task)
        if "completed" in changes_left:
            return _set_completed(user_id, task, changes_left.pop("completed"), **changes_left)
        if changes_left:
            task = _written(user_id, task.pk, None, **changes_left)[0]
        return task

    try:
        return in_doubt.atomic(locked, task_stamp)
    except IntegrityError as error:
        raise _refused_by_check(error) from None


def _check_can_recur(user_id: str, task: Task) -> None:
    """A task with a parent or subtasks cannot get a rule (asked after its family is locked, so
    no subtask can be added meanwhile)."""
    subtasks = Task.all_objects.for_user(user_id).filter(parent_id=task.pk)
    if task.parent_id is not None or subtasks.exists():
        raise RecurringTaskInTree("recurrence")


def task_toggle(*, user_id: str, task_id: object, versions: Versions = None) -> Task:
    """Flip `completed`: completing a task completes its open descendants, reopening it reopens
    its completed ancestors. A task outside any tree (no parent, never had a subtask: see
    Task.may_have_subtasks; no recurrence rule) in one `UPDATE … SET completed = NOT completed`.
    Any other after that UPDATE matched nothing, in two statements whatever the subtree's size:
    the family's lock, then one UPDATE of the subtree (or of the chain above).

    Two concurrent toggles both apply, one after the other: the second reads the first's
    outcome under the lock.
    """
    toggled = _updated(
        user_id,
        task_id,
        versions,
        non_recurring=True,
        outside_trees=True,
        completed=~F("completed"),
    )
    if toggled is not None:
        return toggled

    def locked() -> Task:
        task = _locked_family(user_id, task_id, versions, statements.completion_family)
        return _set_completed(user_id, task, not task.completed)

    return in_doubt.atomic(locked, task_stamp)


# What a delete writes over a task's contents (see Task.KEPT_BY_DELETE): each erased field's
# empty value.
TOMBSTONE: dict[str, Any] = {
    field.attname: None if field.null else field.get_default()
    for field in Task._meta.concrete_fields
    if field.editable and field.name not in Task.KEPT_BY_DELETE
}


def task_delete(*, user_id: str, task_id: object, versions: Versions = None) -> Task:
    """Leave a tombstone (contents erased) of the task and of each task of its subtree, for
    incremental sync; they are gone from every read. Returns the task's tombstone."""

    def locked() -> Task:
        task = _locked_family(user_id, task_id, versions)
        now = timezone.now()
        rows = statements.run_compiled(
            statements.deleting, None, user_id=user_id, pk=task.pk, updated_at=now, **TOMBSTONE
        )
        return next(row for row in rows if row.pk == task.pk)

    return in_doubt.atomic(locked, task_stamp)


def tasks_clear_completed(*, user_id: str, list_id: uuid.UUID | None = None) -> int:
    """Delete the caller's completed tasks (of one list, with `list_id`), as Google Tasks'
    `clear` does; returns how many. A completed task's subtree is completed too, so it goes
    whole."""
    now = timezone.now()
    changes = {"deleted_at": now, "updated_at": now, "version": F("version") + 1, **TOMBSTONE}
    completed = Task.all_objects.for_user(user_id).filter(completed=True)
    if list_id is not None:
        completed = completed.filter(list_id=list_id)
    cleared: list[Task] = in_doubt.statement(
        lambda: statements.update_returning(completed, changes),
        lambda: in_doubt.Stamp(
            Task.all_objects.for_user(user_id, tombstones=True).filter(deleted_at=now), now
        ),
        answer=list,
    )
    return len(cleared)


def task_create(*, user_id: str, fields: dict[str, Any], max_tasks: int) -> Task:
    """A new task for `user_id` in its list (`list_id`; the default list if it names none),
    unless they already have `max_tasks` (TaskLimitReached: nothing stored). A subtask
    (`parent_id`) goes in its parent's list, and reopens its parent if it is completed."""
    now = timezone.now()
    fields = {"position": positions.for_new_task(), "created_at": now, **fields}
    if fields.get("completed"):
        fields["completed_at"] = now
    if fields.get("parent_id") is None:
        return _inserted(user_id, fields, max_tasks)

    def locked() -> Task:
        parent, level = _locked_chain(user_id, fields["parent_id"])
        if fields.get("recurrence"):
            raise RecurringTaskInTree("recurrence")
        _check_new_parent(parent, level, levels=1, recurring=False)
        if fields.get("list_id", parent.list_id) != parent.list_id:
            raise ParentInOtherList()
        task = _inserted(user_id, {**fields, "list_id": parent.list_id}, max_tasks)
        if parent.completed and not task.completed:
            _reopened(user_id, parent)
        return task

    return in_doubt.atomic(locked, task_stamp)


def _inserted(user_id: str, fields: dict[str, Any], max_tasks: int) -> Task:
    """Insert the task (statements.insert_within_limit); says why when nothing was."""
    for attempt in range(2):
        try:
            task = statements.insert_within_limit(limit=max_tasks, user_id=user_id, **fields)
        except IntegrityError as error:
            raise _refused_by_check(error) from None
        if task is not None:
            return task
        if fields.get("list_id") is not None:
            if not _list_exists(user_id, fields["list_id"]):
                raise ReferenceNotFound("list_id", "list")
            break
        if attempt == 0:  # perhaps the user's first task: their default list, then again
            statements.insert_default_list(user_id)
    raise TaskLimitReached(max_tasks)


def _list_exists(user_id: str, list_id: uuid.UUID | None) -> bool:
    """Whether `list_id` is one of the caller's live lists (asked only after a write failed)."""
    return (
        list_id is not None and TaskList.all_objects.for_user(user_id).filter(pk=list_id).exists()
    )


def _locked_chain(user_id: str, task_id: object) -> tuple[Task, int]:
    """Lock task `task_id` and its ancestors; returns the task and its level (1: top level).
    Read again if a move changed the chain while the lock was awaited."""
    pk = _task_id(task_id)
    while True:
        rows = statements.run_compiled(statements.chain, None, user_id=user_id, pk=pk)
        chain = _chain({row.pk: row for row in rows}, pk)
        if chain is not None:
            return chain[0], len(chain)


def _check_new_parent(parent: Task, level: int, *, levels: int, recurring: bool) -> None:
    """Whether a subtree spanning `levels` levels (recurring or not) may go under `parent`, at
    `level`."""
    if recurring or parent.recurrence:
        raise RecurringTaskInTree("parent_id")
    if level + levels > MAX_LEVELS:
        raise TooDeep(MAX_LEVELS)


def _reopened(user_id: str, task: Task) -> Task:
    """Task `task` (completed) reopened, with its completed ancestors."""
    rows = statements.run_compiled(
        statements.reopening, None, user_id=user_id, pk=task.pk, updated_at=timezone.now()
    )
    return next(row for row in rows if row.pk == task.pk)


UNCHANGED: Any = object()


class Place(NamedTuple):
    """Where a task goes: a list, and a parent in it (None: the top level) at `level`."""

    list_id: uuid.UUID | None  # None only for a task the previous release wrote (see 0007)
    parent: Task | None
    level: int  # the parent's level; 0 at the top level

    @property
    def parent_id(self) -> uuid.UUID | None:
        return None if self.parent is None else self.parent.pk


def _lock(
    user_id: str, task_id: object, *, parent_id: object = None, after_id: object = None
) -> tuple[Task, dict[uuid.UUID, Task]]:
    """Lock task `task_id`'s family, with the chain of a new parent and the task to move after,
    in one statement; returns the task and the locked rows. Read again if a move changed the
    parent's chain while the lock was awaited."""
    pk = _task_id(task_id)
    tasks = Task.all_objects.for_user(user_id)
    parent = None if parent_id is None else _task_id(parent_id)
    after = None if after_id is None else _task_id(after_id)
    wanted = Q(pk__in=statements.move_ids(pk, parent, after, tasks.db))
    while True:
        rows = {row.pk: row for row in tasks.filter(wanted).order_by("pk").select_for_update()}
        if pk not in rows:
            raise Task.DoesNotExist
        if parent_id is None or _chain(rows, _task_id(parent_id)) is not None:
            return rows[pk], rows


def _chain(rows: dict[uuid.UUID, Task], pk: uuid.UUID) -> list[Task] | None:
    """Parent `pk` and its ancestors, up from it, if `rows` hold them all (None if not)."""
    if pk not in rows:
        raise ReferenceNotFound("parent_id")
    chain = [rows[pk]]
    while chain[-1].parent_id is not None:
        if chain[-1].parent_id not in rows:
            return None
        chain.append(rows[chain[-1].parent_id])
    return chain


def _place(
    task: Task,
    rows: dict[uuid.UUID, Task],
    *,
    parent_id: uuid.UUID | None = UNCHANGED,
    list_id: uuid.UUID | None = UNCHANGED,
) -> Place:
    """Where `task` goes under `parent_id` (None: the top level) in `list_id`; omitted, each
    stays, except that another list without a parent means its top level. Checks the rules."""
    if parent_id is UNCHANGED:
        if list_id is UNCHANGED or list_id == task.list_id:
            parent_id, list_id = task.parent_id, task.list_id
        else:
            parent_id = None
    if parent_id is None:
        return Place(task.list_id if list_id is UNCHANGED else list_id, None, 0)
    chain = _chain(rows, parent_id) or []  # whole: _lock read it so
    parent = chain[0]
    if list_id is not UNCHANGED and list_id != parent.list_id:
        raise ParentInOtherList()
    if any(ancestor.pk == task.pk for ancestor in chain):
        raise Cycle()
    if task.recurrence:
        raise RecurringTaskInTree("parent_id")
    _check_new_parent(parent, len(chain), levels=1, recurring=False)
    return Place(parent.list_id, parent, len(chain))


def _moved(user_id: str, task: Task, place: Place, position: str) -> Task:
    """Put `task` (its family locked) and its subtree at `place`, at `position`: one UPDATE of
    the subtree (its tasks change list with it), which checks the subtree's depth and the
    target list as it writes."""
    tasks = Task.all_objects.for_user(user_id)
    rows = tasks.filter(pk__in=statements.subtree_ids(task.pk, tasks.db)).filter(
        Q(pk=task.pk) | ~Q(list_id=place.list_id)
    )
    if place.parent is not None:
        levels = statements.subtree_levels(task.pk, tasks.db)
        rows = rows.filter(LessThanOrEqual(levels, Value(MAX_LEVELS - place.level)))
    if place.list_id != task.list_id:
        rows = rows.filter(statements.live_list(place.list_id, user_id, tasks.db))
    itself = When(pk=task.pk, then=Value(place.parent_id, output_field=UUIDField()))
    changes = {
        "list_id": place.list_id,
        "parent_id": Case(itself, default=F("parent_id")),
        "position": Case(When(pk=task.pk, then=Value(position)), default=F("position")),
        "version": F("version") + 1,
        "updated_at": timezone.now(),
    }
    moved = [row for row in statements.update_returning(rows, changes) if row.pk == task.pk]
    if not moved:
        if not _list_exists(user_id, place.list_id):
            raise ReferenceNotFound("list_id", "list")
        raise TooDeep(MAX_LEVELS)
    if place.parent is not None and place.parent.completed and not moved[0].completed:
        _reopened(user_id, place.parent)
    return moved[0]


def task_move(
    *,
    user_id: str,
    task_id: object,
    after_id: uuid.UUID | None,
    parent_id: uuid.UUID | None = UNCHANGED,
    list_id: uuid.UUID | None = UNCHANGED,
) -> Task:
    """Put a task right after a sibling (`after_id`), or first among its siblings (None), under
    `parent_id` in `list_id` if given (see `_place`): the family's lock, a read of the next
    sibling's position, one UPDATE; unless the keys around it have run out of room and the
    siblings' keys are spread out again."""
    if after_id is not None and str(after_id) == str(task_id):
        raise MovedAfterItself()

    def locked() -> Task:
        new_parent = None if parent_id is UNCHANGED else parent_id
        task, rows = _lock(user_id, task_id, parent_id=new_parent, after_id=after_id)
        place = _place(task, rows, parent_id=parent_id, list_id=list_id)
        siblings = (
            Task.all_objects.for_user(user_id)
            .filter(list_id=place.list_id, parent_id=place.parent_id)
            .exclude(pk=task.pk)
            .order_by("position", "id")
        )
        anchor = None
        if after_id is not None:
            anchor = rows.get(after_id)
            if anchor is None:
                raise ReferenceNotFound("after")
            if (anchor.list_id, anchor.parent_id) != (place.list_id, place.parent_id):
                if not _list_exists(user_id, place.list_id):
                    raise ReferenceNotFound("list_id", "list")
                raise NotASibling()
        for _attempt in range(2):
            key = key_after(siblings, anchor)
            if key is not None and len(key) <= positions.MAX_KEY_LENGTH:
                break
            _rebalance(siblings)
            if anchor is not None:
                anchor = siblings.get(pk=anchor.pk)
        if key is None:
            raise RuntimeError("no room for a key after a rebalance")
        return _moved(user_id, task, place, key)

    return in_doubt.atomic(locked, task_stamp)


def key_after(siblings: QuerySet[Any], anchor: Task | TaskList | None) -> str | None:
    """A key for the gap after `anchor` among `siblings` (tasks or lists, in position order;
    None: the start); None if the gap has no room."""
    if anchor is None:
        return positions.first(siblings.values_list("position", flat=True).first())
    following = (
        siblings.filter(
            Q(position__gt=anchor.position) | Q(position=anchor.position, id__gt=anchor.id)
        )
        .values_list("position", flat=True)
        .first()
    )
    if following is not None and following <= anchor.position:
        return None  # equal keys: no room between them
    return positions.between(anchor.position, following)


def _rebalance(siblings: TaskQuerySet) -> None:
    """Spread the siblings' keys evenly, keeping their order (the occasional O(n) step)."""
    ordered = list(siblings.only("id", "position"))
    for task, key in zip(ordered, positions.spread(len(ordered)), strict=True):
        task.position = key
    Task.all_objects.bulk_update(ordered, ["position"], batch_size=1000)
    # Sync clients and ETag holders must see the new positions as changes.
    Task.all_objects.filter(pk__in=[task.pk for task in ordered]).update(
        change_seq=statements.NextChangeSeq(F("user_id")), version=F("version") + 1
    )
