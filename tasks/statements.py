"""The SQL behind tasks.selectors and tasks.services, and nothing else imports this module.

Where a query's SQL comes from: a *builder* here (`page`, `by_pk`, `update`) makes it with the
ORM, from the owner's tasks (`Task.all_objects.for_user`), a hashable *shape* and *values* named
after the fields they go to (`version__0`: the first of several for `version`). A selector or
service runs a builder one of two ways, and says which:

- `run_compiled`: the SQL is compiled once per key and run again with each request's values.
  For a one-row lookup Django spends longer building and compiling a query than PostgreSQL
  spends answering it; a query's SQL depends on its shape, not on its values. The key is
  derived, never written by a caller: (builder, shape, database, the values' names, and the
  value itself where it changes the SQL: None, a boolean, an expression). A builder is a
  module-level function of this module with no closure and no defaults (checked before it is
  compiled), so nothing but its arguments can reach its SQL.
- `run_orm`: the same builder over a queryset, through the ORM (a filtered list).

Also here: the statements the ORM cannot write (`UPDATE … RETURNING`, the INSERT under the
per-user cap, the change sequence and its PostgreSQL snapshot bound). Rows become model
instances through Django's own converters, with what `Model.from_db` would set.

Private Django APIs used (check them when upgrading Django):
- `sql.Query(model).get_compiler()`, `SQLCompiler.as_sql()`, `SQLCompiler.select` (column,
  SQL, alias triples), `get_converters()`, `apply_converters()` and `compile()`;
- `QuerySet.query.chain(sql.UpdateQuery)` and `UpdateQuery.add_update_values()`;
- `ModelState` and `Model.__new__`, to load a row as `Model.from_db` does;
- `QuerySet._defer_next_filter`, in models.TaskQuerySet.for_user.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import cache
from typing import Any, NamedTuple, TypeVar, cast

from django.core.exceptions import EmptyResultSet
from django.db import DEFAULT_DB_ALIAS, connections, models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Case, F, Q, QuerySet, Value, When
from django.db.models.base import ModelState
from django.db.models.expressions import Combinable, RawSQL
from django.db.models.signals import post_init, pre_init
from django.db.models.sql import Query, UpdateQuery
from django.db.models.sql.compiler import SQLCompiler
from django.utils import timezone

from . import in_doubt, positions
from .models import DEFAULT_LIST_TITLE, Task, TaskCount, TaskList, TaskQuerySet

# Far more than the service's routes use; beyond it the oldest shape is compiled again when used.
SHAPES_KEPT = 512
# Field types whose values are always part of the key (two values: no placeholder can be unique).
SHAPED_TYPES = frozenset({"BooleanField", "NullBooleanField"})

M = TypeVar("M", bound=models.Model)
Built = QuerySet[Task] | tuple[QuerySet[Task], dict[str, Any]]
Builder = Callable[..., Built]


# --- Builders -------------------------------------------------------------------------------


class Key(NamedTuple):
    """One column of a sort order. A nullable column sorts its nulls last (first when the
    order is read backwards, for `previous` pages). (A tuple: it is hashed into every compiled
    list page's key.)"""

    field: str
    descending: bool
    nullable: bool = False
    nulls_first: bool = False

    def flipped(self) -> Key:
        return self._replace(descending=not self.descending, nulls_first=not self.nulls_first)

    def order_by(self) -> models.OrderBy:
        expression = F(self.field)
        if not self.nullable:
            return expression.desc() if self.descending else expression.asc()
        nulls = {"nulls_first": True} if self.nulls_first else {"nulls_last": True}
        return expression.desc(**nulls) if self.descending else expression.asc(**nulls)

    def beyond(self, value: object) -> Q:
        """Rows strictly after `value` in this column's order."""
        if value is None:
            return Q(**{f"{self.field}__isnull": False}) if self.nulls_first else NOTHING
        after = Q(**{f"{self.field}__{'lt' if self.descending else 'gt'}": value})
        if self.nullable and not self.nulls_first:
            after |= Q(**{f"{self.field}__isnull": True})
        return after

    def equal(self, value: object) -> Q:
        return Q(**{f"{self.field}__isnull": True}) if value is None else Q(**{self.field: value})


NOTHING = Q(pk__in=[])


def rows_after(keys: tuple[Key, ...], position: tuple[object, ...]) -> Q:
    """Rows strictly after `position` in the order of `keys`, as a lexicographic comparison.

    For a non-nullable first column, the extra `first <= value` (or `>=`) is implied by the
    rest; it is there so that the planner uses it as an index bound instead of filtering every
    row from the start.
    """
    pairs = list(zip(keys, position, strict=True))
    last_key, last_value = pairs[-1]
    after = last_key.beyond(last_value)
    for key, value in reversed(pairs[:-1]):
        after = key.beyond(value) | (key.equal(value) & after)
    first_key, first_value = pairs[0]
    if first_key.nullable:
        return after
    bound = "lte" if first_key.descending else "gte"
    return Q(**{f"{first_key.field}__{bound}": first_value}) & after


class PageShape(NamedTuple):
    keys: tuple[Key, ...]
    limit: int


def page(tasks: TaskQuerySet, shape: PageShape, **position: object) -> TaskQuerySet:
    """The first `shape.limit` rows in the order of `shape.keys`; after `position` (a value per
    key's field), if one is given; in one list and under one parent (None: the top level) with
    `list_id` and `parent_id`."""
    for tree_field in ("list_id", "parent_id"):
        if tree_field in position:
            tasks = tasks.filter(**{tree_field: position.pop(tree_field)})
    if position:
        tasks = tasks.filter(rows_after(shape.keys, tuple(position[k.field] for k in shape.keys)))
    return tasks.order_by(*(key.order_by() for key in shape.keys))[: shape.limit]


def by_pk(tasks: TaskQuerySet, shape: None, *, pk: uuid.UUID) -> TaskQuerySet:
    return tasks.filter(pk=pk)


class UpdateShape(NamedTuple):
    non_recurring: bool  # only a task without a recurrence rule
    versions: int  # how many `version__<i>` values the row's version must be one of (0: any)
    outside_trees: bool = False  # only a task without a parent that never had subtasks


def update(
    tasks: TaskQuerySet, shape: UpdateShape, *, pk: uuid.UUID, updated_at: datetime, **values: Any
) -> Built:
    """Task `pk`'s changes `values`, stamped `updated_at`, with its version bumped."""
    matching = tasks.filter(pk=pk)
    if shape.non_recurring:
        matching = matching.filter(recurrence="")
    if shape.outside_trees:
        matching = matching.filter(parent_id=None, may_have_subtasks=False)
    if shape.versions:
        versions = [values.pop(f"version__{i}") for i in range(shape.versions)]
        matching = matching.filter(version__in=versions)
    if "completed" in values:
        values |= _completion(values["completed"], updated_at)
    return matching, {**values, "version": F("version") + 1, "updated_at": updated_at}


def _completion(completed: object, now: datetime) -> dict[str, Any]:
    """The `completed_at` that goes with a new `completed` value, in the same UPDATE: kept if
    the task was already completed, `now` when it becomes so, cleared when it is reopened."""
    if completed is False:
        return {"completed_at": None}
    if completed is True:
        kept = When(completed=True, then=F("completed_at"))
        return {"completed_at": Case(kept, default=Value(now))}
    # A toggle: the new value is NOT the old one.
    return {"completed_at": Case(When(completed=True, then=Value(None)), default=Value(now))}


# --- Subtrees --------------------------------------------------------------------------------
# A subtask names its parent (`parent_id`); a subtree is walked with a recursive query, at most
# models.MAX_LEVELS deep. UNION (not UNION ALL): a walk ends even over rows written by hand.

# Constant SQL (no value is ever formatted into it): the statements below compose these.
_SUBTREE = """subtree(id) AS (
    SELECT id FROM tasks WHERE id = %s AND deleted_at IS NULL
    UNION SELECT child.id FROM tasks AS child JOIN subtree ON child.parent_id = subtree.id
    WHERE child.parent_id IS NOT NULL AND child.deleted_at IS NULL)"""
_CHAIN = """chain(id, parent_id) AS (
    SELECT id, parent_id FROM tasks WHERE id = %s AND deleted_at IS NULL
    UNION SELECT parent.id, parent.parent_id FROM tasks AS parent
    JOIN chain ON parent.id = chain.parent_id WHERE parent.deleted_at IS NULL)"""


def _ids(using: str, sql: str, *task_ids: object) -> RawSQL:
    connection = connections[using]
    params = [Task._meta.pk.get_db_prep_value(task_id, connection) for task_id in task_ids]
    return RawSQL(sql, params)  # noqa: S611 -- constant SQL, values bound


# A task and the open part of its subtree: no open task is under a completed one
# (tasks.services keeps it so), so the walk stops at completed tasks.
_OPEN_BELOW = """open_below(id) AS (
    SELECT id FROM tasks WHERE id = %s AND deleted_at IS NULL
    UNION SELECT child.id FROM tasks AS child JOIN open_below ON child.parent_id = open_below.id
    WHERE child.parent_id IS NOT NULL AND child.deleted_at IS NULL AND NOT child.completed)"""


def open_below_ids(task_id: object, using: str) -> RawSQL:
    """The ids of task `task_id` and of the open tasks of its subtree (for `pk__in`)."""
    return _ids(using, f"WITH RECURSIVE {_OPEN_BELOW} SELECT id FROM open_below", task_id)  # noqa: S608


def completion_ids(task_id: object, using: str) -> RawSQL:
    """The ids of task `task_id`, its ancestors and the open tasks of its subtree (for
    `pk__in`). One subquery, as the others: `pk IN (…) OR pk IN (…)` is planned as a scan of
    the whole table (4.7 ms against 0.3 ms at 25,000 tasks)."""
    sql = f"WITH RECURSIVE {_OPEN_BELOW}, {_CHAIN} SELECT id FROM open_below UNION SELECT id FROM chain"  # noqa: S608, E501
    return _ids(using, sql, task_id, task_id)


def subtree_ids(task_id: object, using: str) -> RawSQL:
    """The ids of task `task_id` and of its live descendants (for `pk__in`)."""
    return _ids(using, f"WITH RECURSIVE {_SUBTREE} SELECT id FROM subtree", task_id)  # noqa: S608


def chain_ids(task_id: object, using: str) -> RawSQL:
    """The ids of task `task_id` and of its ancestors (for `pk__in`)."""
    return _ids(using, f"WITH RECURSIVE {_CHAIN} SELECT id FROM chain", task_id)  # noqa: S608


def family_ids(task_id: object, using: str) -> RawSQL:
    """The ids of task `task_id`, its live descendants and its ancestors (for `pk__in`)."""
    sql = f"WITH RECURSIVE {_SUBTREE}, {_CHAIN} SELECT id FROM subtree UNION SELECT id FROM chain"  # noqa: S608
    return _ids(using, sql, task_id, task_id)


def move_ids(
    task_id: object, parent_id: object | None, after_id: object | None, using: str
) -> RawSQL:
    """The ids a move locks (for `pk__in`): task `task_id`'s family, the new parent's chain and
    the task to go after (if given), in one subquery."""
    chain_of_parent = _CHAIN.replace("chain", "parent_chain")
    ctes, selects, ids = [_SUBTREE, _CHAIN], ["subtree", "chain"], [task_id, task_id]
    if parent_id is not None:
        ctes.append(chain_of_parent)
        selects.append("parent_chain")
        ids.append(parent_id)
    unions = " UNION ".join(f"SELECT id FROM {name}" for name in selects)  # noqa: S608
    sql = f"WITH RECURSIVE {', '.join(ctes)} {unions}"
    if after_id is not None:
        sql += " UNION SELECT %s"
        ids.append(after_id)
    return _ids(using, sql, *ids)


def subtree_levels(task_id: object, using: str) -> RawSQL:
    """How many levels task `task_id`'s subtree spans (1: no subtasks), as a value."""
    sql = """WITH RECURSIVE down(id, level) AS (
        SELECT id, 1 FROM tasks WHERE id = %s AND deleted_at IS NULL
        UNION SELECT child.id, down.level + 1 FROM tasks AS child JOIN down
        ON child.parent_id = down.id WHERE child.parent_id IS NOT NULL
        AND child.deleted_at IS NULL) SELECT MAX(level) FROM down"""
    connection = connections[using]
    param = Task._meta.pk.get_db_prep_value(task_id, connection)
    return RawSQL(sql, [param], output_field=models.IntegerField())  # noqa: S611 -- values bound


def live_list(list_id: object, user_id: str, using: str) -> RawSQL:
    """Whether list `list_id` is `user_id`'s and live (a condition), read under a key-share lock
    on PostgreSQL: a list's deletion locks it first, so no task moves into a list being
    deleted."""
    connection = connections[using]
    lock = " FOR KEY SHARE" if connection.vendor == "postgresql" else ""
    table = connection.ops.quote_name(TaskList._meta.db_table)
    param = TaskList._meta.pk.get_db_prep_value(list_id, connection)
    return RawSQL(  # noqa: S611 -- identifiers from metadata, values bound
        f"EXISTS (SELECT 1 FROM {table} WHERE id = %s AND user_id = %s"  # noqa: S608
        f" AND deleted_at IS NULL{lock})",
        [param, user_id],
        output_field=models.BooleanField(),
    )


def family(tasks: TaskQuerySet, shape: None, *, pk: uuid.UUID) -> QuerySet[Task]:
    """Task `pk`, its subtree and its ancestors, locked in id order (two writers that lock
    overlapping families wait for each other, never deadlock). Every write that changes more
    than one task of a tree, or a task's place in one, locks the families it touches first:
    tasks.services says why."""
    return tasks.filter(pk__in=family_ids(pk, tasks.db)).order_by("pk").select_for_update()


def completion_family(tasks: TaskQuerySet, shape: None, *, pk: uuid.UUID) -> QuerySet[Task]:
    """Task `pk`, its ancestors and its open descendants, locked in id order: every row that
    completing or reopening `pk` can write. (A completed descendant is written by neither: the
    completed ones of a parent toggled again and again are not locked again and again.)"""
    return tasks.filter(pk__in=completion_ids(pk, tasks.db)).order_by("pk").select_for_update()


def chain(tasks: TaskQuerySet, shape: None, *, pk: uuid.UUID) -> QuerySet[Task]:
    """Task `pk` and its ancestors, locked in id order (a new subtask's parent)."""
    return tasks.filter(pk__in=chain_ids(pk, tasks.db)).order_by("pk").select_for_update()


def _changed(updated_at: datetime, **values: Any) -> dict[str, Any]:
    return {**values, "version": F("version") + 1, "updated_at": updated_at}


def completing(tasks: TaskQuerySet, shape: None, *, pk: uuid.UUID, updated_at: datetime) -> Built:
    """Task `pk` completed, with every open task of its subtree (each gets `completed_at`)."""
    rows = tasks.filter(pk__in=open_below_ids(pk, tasks.db))
    return rows, _changed(updated_at, completed=True, **_completion(True, updated_at))


def reopening(tasks: TaskQuerySet, shape: None, *, pk: uuid.UUID, updated_at: datetime) -> Built:
    """Task `pk` reopened, with every completed task above it."""
    rows = tasks.filter(pk__in=chain_ids(pk, tasks.db)).filter(Q(pk=pk) | Q(completed=True))
    return rows, _changed(updated_at, completed=False, completed_at=None)


def deleting(
    tasks: TaskQuerySet, shape: None, *, pk: uuid.UUID, updated_at: datetime, **tombstone: Any
) -> Built:
    """Task `pk` and its subtree left as tombstones (`tombstone`: the erased fields)."""
    rows = tasks.filter(pk__in=subtree_ids(pk, tasks.db))
    return rows, _changed(updated_at, deleted_at=updated_at, **tombstone)


BUILDERS: tuple[Builder, ...] = (
    page,
    by_pk,
    update,
    family,
    completion_family,
    chain,
    completing,
    reopening,
    deleting,
)


# --- Running a builder ----------------------------------------------------------------------


@dataclass(frozen=True)
class Compiled:
    sql: str | None  # None: the shape matches nothing, whatever the values
    params: tuple[object, ...]
    # A parameter's name -> its field, and the indexes of `params` its value goes to.
    slots: dict[str, tuple[models.Field[Any, Any], tuple[int, ...]]]


_compiled: dict[tuple[Hashable, ...], Compiled] = {}


def run_compiled(
    build: Builder,
    shape: Hashable,
    /,
    *,
    user_id: str,
    using: str = DEFAULT_DB_ALIAS,
    **values: Any,
) -> list[Task]:
    """The rows of `build(Task.all_objects.for_user(user_id), shape, **values)` (updated and
    returned, if it builds an update), from SQL compiled once per key."""
    values["user_id"] = user_id
    # A value that changes the SQL (None, a boolean, an expression) is in the key as (name,
    # value); any other is a parameter, in the key by its name only.
    key = (
        build,
        shape,
        using,
        *[
            (name, value)
            if value is None or value.__class__ is bool or hasattr(value, "resolve_expression")
            else name
            for name, value in values.items()
        ],
    )
    compiled = _compiled.get(key)
    if compiled is None:
        parameters = {entry for entry in key[3:] if isinstance(entry, str)}
        compiled = _compile(build, shape, using, values, parameters)
        if len(_compiled) >= SHAPES_KEPT:  # shapes a client invents (If-Match lists)
            _compiled.pop(next(iter(_compiled)), None)
        _compiled[key] = compiled
    if compiled.sql is None:
        return []
    connection = connections[using]
    params = list(compiled.params)
    for name, (field, indexes) in compiled.slots.items():
        prepared = field.get_db_prep_value(values[name], connection, prepared=False)
        for index in indexes:
            params[index] = prepared
    return fetch(using, compiled.sql, params)


def run_orm(build: Builder, shape: Hashable, tasks: QuerySet[Task], /, **values: Any) -> list[Task]:
    """The rows of `build(tasks, shape, **values)` through the ORM (updated and returned, if it
    builds an update)."""
    built = build(tasks, shape, **values)
    if isinstance(built, tuple):
        return update_returning(*built)
    return list(built)


def check_builder(build: Builder) -> None:
    """A builder can use nothing but its arguments: a module-level function of this module, no
    closure (a captured value would reuse the SQL of another), no defaults (the same)."""
    if (
        build.__module__ != __name__
        or build.__qualname__ != build.__name__
        or build.__closure__ is not None
        or build.__defaults__
        or build.__kwdefaults__
    ):
        raise TypeError(f"{build.__qualname__} is not a builder of {__name__}")


def _compile(
    build: Builder, shape: Hashable, using: str, values: dict[str, Any], parameters: set[str]
) -> Compiled:
    """`build`'s SQL, with a placeholder for each of the `parameters` (names of `values`)."""
    check_builder(build)
    connection = connections[using]
    arguments: dict[str, object] = {}  # what `build` is called with
    for name, value in values.items():
        if name in parameters:
            value = placeholder(_field(name), connection, arguments.values())
        arguments[name] = value
    owner = cast(str, arguments.pop("user_id"))
    built = build(Task.all_objects.for_user(owner), shape, **arguments)
    arguments["user_id"] = owner
    try:
        if isinstance(built, tuple):
            sql, params = _update_returning_sql(*built)
        else:
            compiler = built.query.get_compiler(using)
            sql, params = compiler.as_sql()
            selected = [column.target for column, _, _ in compiler.select]
            if selected != list(Task._meta.concrete_fields):
                raise ValueError("only querysets of whole task rows are compiled")
    except EmptyResultSet:
        return Compiled(sql=None, params=(), slots={})
    slots = {}
    for name in parameters:
        field, value = _field(name), arguments[name]
        prepared = _unwrapped(field.get_db_prep_value(value, connection, prepared=False))
        indexes = tuple(i for i, param in enumerate(params) if _unwrapped(param) == prepared)
        if not indexes:
            raise ValueError(f"{name!r} is not a parameter of the query")
        slots[name] = field, indexes
    return Compiled(sql=sql, params=tuple(params), slots=slots)


def _field(name: str) -> models.Field[Any, Any]:
    name = name.partition("__")[0]
    return cast(
        "models.Field[Any, Any]", Task._meta.pk if name == "pk" else Task._meta.get_field(name)
    )


def _unwrapped(param: object) -> object:
    """A parameter's value: JSON goes to psycopg wrapped (`Jsonb(value)`), compared by identity."""
    return getattr(param, "obj", param)


def placeholder(
    field: models.Field[Any, Any], connection: BaseDatabaseWrapper, taken: Iterable[object]
) -> object:
    """A value of the field's type that no other parameter of the query will equal."""
    taken = list(taken)
    while (value := _random_value(field, connection)) in taken:
        pass
    return value


def _random_value(field: models.Field[Any, Any], connection: BaseDatabaseWrapper) -> object:
    kind = field.get_internal_type()
    if kind in SHAPED_TYPES:
        raise TypeError(f"a {kind} value is part of the shape, never a parameter")
    if kind.endswith(("IntegerField", "AutoField")):
        # Within the column's range: Django compiles an out-of-range comparison away.
        _, highest = connection.ops.integer_field_range(kind)
        return highest // 2 + secrets.randbelow(highest // 2)
    if kind in _RANDOM_VALUES:
        return _RANDOM_VALUES[kind](field)
    raise TypeError(f"no placeholder for a {kind}: add one to tasks.statements._RANDOM_VALUES")


def _text(field: models.Field[Any, Any]) -> str:
    return f"placeholder-{secrets.token_hex(8)}"


def _decimal(field: models.Field[Any, Any]) -> Decimal:
    decimal = cast("models.DecimalField[Any, Any]", field)
    places, digits = decimal.decimal_places, decimal.max_digits
    return Decimal(secrets.randbelow(10**digits - 1) + 1).scaleb(-places)


_RANDOM_VALUES: dict[str, Callable[[models.Field[Any, Any]], object]] = {
    "UUIDField": lambda field: uuid.uuid4(),
    "DateTimeField": lambda field: datetime(
        1, 1, 1, microsecond=secrets.randbelow(10**6), tzinfo=UTC
    ),
    "DateField": lambda field: date(1, 1, 1) + timedelta(days=secrets.randbelow(2_900_000)),
    "TimeField": lambda field: time(0, 0, 0, secrets.randbelow(10**6)),
    "DurationField": lambda field: timedelta(microseconds=secrets.randbelow(10**12) + 1),
    "DecimalField": _decimal,
    "FloatField": lambda field: secrets.randbelow(10**9) + 0.5,
    "CharField": _text,
    "TextField": _text,
    "SlugField": _text,
    "FilePathField": _text,
    "FileField": _text,
    "JSONField": lambda field: [_text(field)],
    "BinaryField": lambda field: secrets.token_bytes(16),
    "GenericIPAddressField": lambda field: f"2001:db8::{secrets.randbelow(0xFFFF):x}:1",
}


# --- Rows to tasks --------------------------------------------------------------------------


def fetch(using: str, sql: str, params: Sequence[Any]) -> list[Task]:
    """Runs `sql`, which selects (or returns) the task columns in their order, and makes its
    rows tasks as the ORM would (converters, then `Model.from_db`)."""
    with connections[using].cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    field_names, compiler, converters = _row_reader(using)
    if converters:
        rows = list(compiler.apply_converters(rows, converters))
    if pre_init.has_listeners(Task) or post_init.has_listeners(Task):
        return [Task.from_db(using, field_names, row) for row in rows]
    return [_loaded(using, field_names, row) for row in rows]


def _loaded(using: str, field_names: list[str], row: tuple[object, ...]) -> Task:
    """`Task.from_db(using, field_names, row)` for a whole row, when no init signal listens.

    `Model.__init__` checks each value against the field's descriptor and keyword rules, a
    quarter of a 50-task page's time; a loaded row needs none of it: the values go where
    `__init__` would put them (the instance's `__dict__`, by attribute name).
    """
    instance = Task.__new__(Task)
    instance.__dict__.update(zip(field_names, row, strict=True))
    state = instance._state = ModelState()
    state.adding = False
    state.db = using
    return instance


@cache
def _row_reader(using: str) -> tuple[list[str], SQLCompiler, dict[int, Any]]:
    fields = Task._meta.concrete_fields
    compiler = Query(Task).get_compiler(using)
    columns = [field.get_col(Task._meta.db_table) for field in fields]
    return [field.attname for field in fields], compiler, compiler.get_converters(columns)


def _columns(using: str) -> str:
    quote = connections[using].ops.quote_name
    return ", ".join(quote(field.column) for field in Task._meta.concrete_fields)


# --- Statements the ORM cannot write --------------------------------------------------------


class NextChangeSeq(models.Func):
    """The change sequence number a write stamps on a task or a list, for incremental sync;
    `owner` is the row's user id (a column reference in an UPDATE, a value in an INSERT).

    PostgreSQL: the writing transaction's id. A reader only hands out changes below the oldest
    transaction still in progress (`committed_changes`), so a change that commits late is never
    skipped. SQLite has one writer at a time, so the owner's `max + 1` over both tables (two
    index lookups) is already in commit order.
    """

    output_field = models.BigIntegerField()

    def __init__(self, owner: Combinable) -> None:
        super().__init__(owner)

    def as_sql(  # type: ignore[override]
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any
    ) -> tuple[str, list[object]]:
        owner, params = compiler.compile(self.source_expressions[0])
        latest = [
            f"COALESCE((SELECT MAX(seq.change_seq) FROM {connection.ops.quote_name(table)}"  # noqa: S608
            f" AS seq WHERE seq.user_id = {owner}), 0)"
            for table in (Task._meta.db_table, TaskList._meta.db_table)
        ]
        return f"(MAX({', '.join(latest)}) + 1)", [*params, *params]

    def as_postgresql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any
    ) -> tuple[str, list[object]]:
        return "pg_current_xact_id()::text::bigint", []


def committed_changes(rows: QuerySet[M], horizon: int | None = None) -> QuerySet[M]:
    """`rows` (tasks or lists) without those a transaction still in progress may yet be
    followed by: on PostgreSQL, changes at or above the oldest running transaction's id, or
    above `horizon` (change_horizon) if given, so that several reads share one bound."""
    if connections[rows.db].vendor != "postgresql":
        return rows
    if horizon is not None:
        return rows.filter(change_seq__lt=horizon)
    return rows.filter(change_seq__lt=RawSQL(_HORIZON, []))  # noqa: S611 -- a constant


_HORIZON = "pg_snapshot_xmin(pg_current_snapshot())::text::bigint"


def change_horizon(using: str = DEFAULT_DB_ALIAS) -> int | None:
    """The id below which every transaction has ended (PostgreSQL; None elsewhere): a bound
    that reads made after it can share, whatever commits in between."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {_HORIZON}")
        return int(cursor.fetchone()[0])


def update_returning(tasks: QuerySet[Task], changes: dict[str, Any]) -> list[Task]:
    """`UPDATE … RETURNING` the matched rows, stamped with a change sequence number: one
    statement, no read-modify-write race.

    Django's `update()` returns only a count, so fetching the new row would take a second
    query (and could see a later write).
    """
    return fetch(tasks.db, *_update_returning_sql(tasks, changes))


def _update_returning_sql(tasks: QuerySet[Task], changes: dict[str, Any]) -> tuple[str, list[Any]]:
    query = cast(UpdateQuery, tasks.query.chain(UpdateQuery))
    query.add_update_values({"change_seq": NextChangeSeq(F("user_id")), **changes})
    update_sql, params = query.get_compiler(tasks.db).as_sql()
    return f"{update_sql} RETURNING {_columns(tasks.db)}", list(params)


def insert_within_limit(*, limit: int, using: str = DEFAULT_DB_ALIAS, **fields: Any) -> Task | None:
    """Insert a task unless its owner already has `limit` live tasks, into its list (`list_id`;
    None: the owner's default list), in one statement: the count is a row of `task_counts`,
    which triggers keep, and the list must be the owner's and live, read under a key-share lock
    (a list's deletion locks it first, so no task lands in a list being deleted). None: nothing
    inserted (the owner is at the limit, or the list is missing; the caller tells which)."""
    task = Task(**fields)
    connection = connections[using]
    compiler = Query(Task).get_compiler(using)
    selected, params = [], []
    for field, placeholder_sql in zip(
        Task._meta.concrete_fields, _insert_placeholders(using), strict=True
    ):
        if field.attname == "change_seq":
            fragment, fragment_params = compiler.compile(NextChangeSeq(Value(task.user_id)))
        elif field.attname == "list_id":
            fragment, fragment_params = "lists.id", []
        else:
            value = field.pre_save(task, add=True)
            fragment = placeholder_sql
            fragment_params = [field.get_db_prep_save(value, connection)]
        selected.append(fragment)
        params += fragment_params
    quote = connection.ops.quote_name
    which_list = "lists.is_default" if task.list_id is None else "lists.id = %s"
    # Identifiers come from the models' metadata; every value is a bound parameter.
    statement = (
        f"INSERT INTO {quote(Task._meta.db_table)} ({_columns(using)})"  # noqa: S608
        f" SELECT {', '.join(selected)} FROM {quote(TaskList._meta.db_table)} AS lists"
        f" WHERE lists.user_id = %s AND lists.deleted_at IS NULL AND {which_list}"
        f" AND COALESCE((SELECT SUM(live) FROM {quote(TaskCount._meta.db_table)}"
        f" WHERE user_id = %s), 0) < {_typed(connection, 'bigint')}"
        f"{' FOR KEY SHARE OF lists' if connection.vendor == 'postgresql' else ''}"
        " RETURNING list_id"
    )
    list_field = Task._meta.get_field("list_id")
    params.append(task.user_id)
    if task.list_id is not None:
        params.append(list_field.get_db_prep_value(task.list_id, connection))
    params += [task.user_id, limit]

    def insert() -> uuid.UUID | None:
        with connection.cursor() as cursor:
            cursor.execute(statement, params)
            row = cursor.fetchone()
        return None if row is None else cast(uuid.UUID, list_field.to_python(row[0]))

    def stamp() -> in_doubt.Stamp:
        return in_doubt.Stamp(Task.all_objects.filter(pk=task.pk), task.updated_at)

    list_id = in_doubt.statement(insert, stamp, answer=lambda rows: rows[0].list_id)
    if list_id is None:
        return None
    task.list_id = list_id
    task._state.adding = False
    task._state.db = using
    return task


@cache
def _insert_placeholders(using: str) -> list[str]:
    """Each concrete field's placeholder in insert_within_limit's SELECT list."""
    connection = connections[using]
    return [
        _typed(connection, field.cast_db_type(connection))  # type: ignore[attr-defined]
        for field in Task._meta.concrete_fields
    ]


def _typed(connection: BaseDatabaseWrapper, db_type: str) -> str:
    """A placeholder with its type on PostgreSQL, where a prepared statement (server-side
    binding, DATABASE_PREPARED_STATEMENTS) cannot infer a SELECT-list parameter's type. SQLite
    needs none, and its CAST to a date type would turn the text into a number."""
    return f"CAST(%s AS {db_type})" if connection.vendor == "postgresql" else "%s"


def insert_default_list(user_id: str, using: str = DEFAULT_DB_ALIAS) -> bool:
    """Make `user_id`'s default list unless they have one; whether this made it. Race-free:
    of concurrent first requests, the unique index lets one insert and the others do nothing."""
    connection = connections[using]
    compiler = Query(TaskList).get_compiler(using)
    seq, seq_params = compiler.compile(NextChangeSeq(Value(user_id)))
    now = timezone.now()
    fields = {field.attname: field for field in TaskList._meta.concrete_fields}
    values = {
        "id": uuid.uuid4(),
        "user_id": user_id,
        "title": DEFAULT_LIST_TITLE,
        "is_default": True,
        "position": positions.between(None, None),
        "created_at": now,
        "updated_at": now,
        "version": 1,
        "deleted_at": None,
    }
    quote = connection.ops.quote_name
    columns = [*values, "change_seq"]
    params = [fields[name].get_db_prep_save(value, connection) for name, value in values.items()]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(TaskList._meta.db_table)}"  # noqa: S608 -- identifiers from metadata
            f" ({', '.join(quote(fields[name].column) for name in columns)})"
            f" VALUES ({', '.join(['%s'] * len(values))}, {seq}) ON CONFLICT DO NOTHING",
            [*params, *seq_params],
        )
        return bool(cursor.rowcount == 1)
