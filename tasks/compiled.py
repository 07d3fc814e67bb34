"""The hot queries (task lookups, list pages, task updates), compiled to SQL once per shape and
run again with each request's values.

For a one-row lookup Django spends longer building and compiling the query (about 0.25 ms of
Python on the benchmark machine) than PostgreSQL spends answering it. A query's SQL depends on
its shape, not on its values: build it once with placeholder values, note where each one lands
among the parameters, and on later calls put the request's values there. Rows become model
instances through Django's own converters, with what `Model.from_db` would set.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache

from django.core.exceptions import EmptyResultSet
from django.db import connections, models
from django.db.models.base import ModelState
from django.db.models.signals import post_init, pre_init
from django.db.models.sql import Query

# Far more than the service's routes use; beyond it the oldest shape is compiled again when used.
SHAPES_KEPT = 512


@dataclass(frozen=True)
class Compiled:
    sql: str | None
    params: tuple
    slots: dict[str, tuple[models.Field, tuple[int, ...]]]  # name -> field, parameter indexes


def fetch_instances(model: type[models.Model], using: str, sql: str, params) -> list:
    """Runs `sql`, which selects (or returns) the model's concrete columns in their order, and
    makes its rows model instances as the ORM would (converters, then `Model.from_db`)."""
    with connections[using].cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    field_names, compiler, converters = _row_reader(model, using)
    if converters:
        rows = compiler.apply_converters(rows, converters)
    if pre_init.has_listeners(model) or post_init.has_listeners(model):
        return [model.from_db(using, field_names, row) for row in rows]
    return [_loaded(model, using, field_names, row) for row in rows]


def _loaded(model: type[models.Model], using: str, field_names: list[str], row) -> models.Model:
    """`model.from_db(using, field_names, row)` for a whole row, when no init signal listens.

    `Model.__init__` checks each value against the field's descriptor and keyword rules, a
    quarter of a 50-task page's time; a loaded row needs none of it: the values go where
    `__init__` would put them (the instance's `__dict__`, by attribute name).
    """
    instance = model.__new__(model)
    instance.__dict__.update(zip(field_names, row, strict=True))
    state = instance._state = ModelState()
    state.adding = False
    state.db = using
    return instance


@cache
def _row_reader(model: type[models.Model], using: str):
    fields = model._meta.concrete_fields
    compiler = Query(model).get_compiler(using)
    columns = [field.get_col(model._meta.db_table) for field in fields]
    return [field.attname for field in fields], compiler, compiler.get_converters(columns)


class CompiledQueries:
    """Queries of one model, by shape.

    `build(**values)` makes the query: a queryset, whose rows are read, or a pair (queryset,
    changes), whose rows are updated by `queryset.update_returning_sql(changes)` and returned.
    Each value is named after the model field it goes to, optionally suffixed (`version__0`);
    that field prepares it for the database, as the ORM would. The shape key must cover
    everything else the query depends on.
    """

    def __init__(self, model: type[models.Model]) -> None:
        self.model = model
        self._compiled: dict[tuple, Compiled] = {}

    def field(self, name: str) -> models.Field:
        name = name.partition("__")[0]
        return self.model._meta.pk if name == "pk" else self.model._meta.get_field(name)

    def rows(self, shape: Hashable, build: Callable, using: str = "default", **values) -> list:
        compiled = self._compiled.get((using, shape))
        if compiled is None:
            compiled = self._compile(build, using, values.keys())
            if len(self._compiled) >= SHAPES_KEPT:  # shapes a client invents (If-Match lists)
                self._compiled.pop(next(iter(self._compiled), None), None)
            self._compiled[using, shape] = compiled
        if compiled.sql is None:
            return []
        connection = connections[using]
        params = list(compiled.params)
        for name, (field, indexes) in compiled.slots.items():
            prepared = field.get_db_prep_value(values[name], connection, prepared=False)
            for index in indexes:
                params[index] = prepared
        return fetch_instances(self.model, using, compiled.sql, params)

    def _compile(self, build: Callable, using: str, names) -> Compiled:
        connection = connections[using]
        placeholders = {}
        for name in names:
            placeholders[name] = _placeholder(self.field(name), connection, placeholders.values())
        built = build(**placeholders)
        try:
            if isinstance(built, tuple):
                queryset, changes = built
                sql, params = queryset.update_returning_sql(changes)
            else:
                compiler = built.query.get_compiler(using)
                sql, params = compiler.as_sql()
                selected = [column.target for column, _, _ in compiler.select]
                if selected != list(self.model._meta.concrete_fields):
                    raise ValueError("only querysets of whole model rows are compiled")
        except EmptyResultSet:  # a shape that can match nothing, whatever the values
            return Compiled(sql=None, params=(), slots={})
        slots = {}
        for name, value in placeholders.items():
            field = self.field(name)
            prepared = _unwrapped(field.get_db_prep_value(value, connection, prepared=False))
            indexes = tuple(i for i, param in enumerate(params) if _unwrapped(param) == prepared)
            if not indexes:
                raise ValueError(f"{name!r} is not a parameter of the query")
            slots[name] = field, indexes
        return Compiled(sql=sql, params=tuple(params), slots=slots)


def _unwrapped(param):
    """A parameter's value: JSON goes to psycopg wrapped (`Jsonb(value)`), compared by identity."""
    return getattr(param, "obj", param)


def _placeholder(field: models.Field, connection, taken) -> object:
    """A value of the field's type that no other parameter of the query will equal."""
    taken = list(taken)
    while (value := _random_value(field, connection)) in taken:
        pass
    return value


def _random_value(field: models.Field, connection) -> object:
    kind = field.get_internal_type()
    if kind == "UUIDField":
        return uuid.uuid4()
    if kind == "DateTimeField":
        return datetime(1, 1, 1, microsecond=secrets.randbelow(10**6), tzinfo=UTC)
    if kind.endswith("IntegerField"):
        # Within the column's range: Django compiles an out-of-range comparison away.
        _, highest = connection.ops.integer_field_range(kind)
        return highest // 2 + secrets.randbelow(highest // 2)
    if kind == "JSONField":
        return [f"placeholder-{secrets.token_hex(8)}"]
    return f"placeholder-{secrets.token_hex(8)}"
