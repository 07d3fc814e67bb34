"""The SQL behind tasks.selectors and tasks.services, and nothing else imports this module.

Where a query's SQL comes from: a *builder* here (`page`, `by_pk`, `update`) makes it with the
ORM, from the owner's tasks (`Task.objects.for_user`), a hashable *shape* and *values* named
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
from typing import Any, NamedTuple, cast

from django.core.exceptions import EmptyResultSet
from django.db import DEFAULT_DB_ALIAS, connections, models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Case, F, Q, QuerySet, Value, When
from django.db.models.base import ModelState
from django.db.models.expressions import Combinable, RawSQL
from django.db.models.signals import post_init, pre_init
from django.db.models.sql import Query, UpdateQuery
from django.db.models.sql.compiler import SQLCompiler

from . import in_doubt
from .models import Task, TaskCount, TaskQuerySet

# Far more than the service's routes use; beyond it the oldest shape is compiled again when used.
SHAPES_KEPT = 512
# Field types whose values are always part of the key (two values: no placeholder can be unique).
SHAPED_TYPES = frozenset({"BooleanField", "NullBooleanField"})

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
    key's field), if one is given."""
    if position:
        tasks = tasks.filter(rows_after(shape.keys, tuple(position[k.field] for k in shape.keys)))
    return tasks.order_by(*(key.order_by() for key in shape.keys))[: shape.limit]


def by_pk(tasks: TaskQuerySet, shape: None, *, pk: uuid.UUID) -> TaskQuerySet:
    return tasks.filter(pk=pk)


class UpdateShape(NamedTuple):
    non_recurring: bool  # only a task without a recurrence rule
    versions: int  # how many `version__<i>` values the row's version must be one of (0: any)


def update(
    tasks: TaskQuerySet, shape: UpdateShape, *, pk: uuid.UUID, updated_at: datetime, **values: Any
) -> Built:
    """Task `pk`'s changes `values`, stamped `updated_at`, with its version bumped."""
    matching = tasks.filter(pk=pk)
    if shape.non_recurring:
        matching = matching.filter(recurrence="")
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


BUILDERS: tuple[Builder, ...] = (page, by_pk, update)


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
    """The rows of `build(Task.objects.for_user(user_id), shape, **values)` (updated and
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
    built = build(Task.objects.for_user(owner), shape, **arguments)
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
    """The change sequence number a write stamps on a row, for incremental sync; `owner` is the
    row's user id (a column reference in an UPDATE, a value in an INSERT).

    PostgreSQL: the writing transaction's id. A reader only hands out changes below the oldest
    transaction still in progress (`committed_changes`), so a change that commits late is never
    skipped. SQLite has one writer at a time, so the owner's `max + 1` (an index lookup) is
    already in commit order.
    """

    output_field = models.BigIntegerField()

    def __init__(self, owner: Combinable) -> None:
        super().__init__(owner)

    def as_sql(  # type: ignore[override]
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any
    ) -> tuple[str, list[object]]:
        owner, params = compiler.compile(self.source_expressions[0])
        table = connection.ops.quote_name(Task._meta.db_table)
        return (
            f"(SELECT COALESCE(MAX(seq.change_seq), 0) + 1 FROM {table} AS seq"  # noqa: S608
            f" WHERE seq.user_id = {owner})",
            list(params),
        )

    def as_postgresql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any
    ) -> tuple[str, list[object]]:
        return "pg_current_xact_id()::text::bigint", []


def committed_changes(tasks: QuerySet[Task]) -> QuerySet[Task]:
    """`tasks` without the rows a transaction still in progress may yet be followed by (on
    PostgreSQL, changes at or above the oldest running transaction's id)."""
    if connections[tasks.db].vendor != "postgresql":
        return tasks
    return tasks.filter(
        change_seq__lt=RawSQL("pg_snapshot_xmin(pg_current_snapshot())::text::bigint", [])
    )


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
    """Insert a task unless its owner already has `limit` live tasks, in one statement (the
    count is a row of `task_counts`, which triggers keep). None: the owner is at the limit."""
    task = Task(**fields)
    connection = connections[using]
    compiler = Query(Task).get_compiler(using)
    selected, params = [], []
    for field, placeholder_sql in zip(
        Task._meta.concrete_fields, _insert_placeholders(using), strict=True
    ):
        if field.attname == "change_seq":
            fragment, fragment_params = compiler.compile(NextChangeSeq(Value(task.user_id)))
        else:
            value = field.pre_save(task, add=True)
            fragment = placeholder_sql
            fragment_params = [field.get_db_prep_save(value, connection)]
        selected.append(fragment)
        params += fragment_params
    table = connection.ops.quote_name(Task._meta.db_table)
    counts = connection.ops.quote_name(TaskCount._meta.db_table)
    # Identifiers come from the model's metadata; every value is a bound parameter.
    statement = (
        f"INSERT INTO {table} ({_columns(using)}) SELECT {', '.join(selected)} "  # noqa: S608
        f"WHERE COALESCE((SELECT SUM(live) FROM {counts} WHERE user_id = %s), 0)"
        f" < {_typed(connection, 'bigint')}"
    )

    def insert() -> bool:
        with connection.cursor() as cursor:
            cursor.execute(statement, [*params, task.user_id, limit])
            return bool(cursor.rowcount == 1)

    def stamp() -> in_doubt.Stamp:
        return in_doubt.Stamp(Task.objects.filter(pk=task.pk), task.updated_at)

    if not in_doubt.statement(insert, stamp, answer=bool):
        return None
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
