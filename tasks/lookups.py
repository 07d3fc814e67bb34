"""Lookups that behave alike on PostgreSQL and SQLite.

`labels__has_label="x"`: a JSON array of strings that contains "x".

PostgreSQL: `labels @> '["x"]'`, served by the GIN index on labels. SQLite (no JSON
containment, and Django's `contains` is not supported there): `EXISTS` over `json_each`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created
from django.db.models import Lookup
from django.db.models.lookups import IContains
from django.dispatch import receiver

from .models import Task

if TYPE_CHECKING:
    from django.db.models.sql.compiler import SQLCompiler, _AsSqlType


# Lookup is generic only in django-stubs; subscripting it at run time would need a monkeypatch.
class HasLabel(Lookup):  # type: ignore[type-arg]
    lookup_name = "has_label"
    prepare_rhs = False

    def get_db_prep_lookup(self, value: Any, connection: BaseDatabaseWrapper) -> _AsSqlType:
        return "%s", [value]

    def as_sql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> _AsSqlType:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        return (
            f"EXISTS (SELECT 1 FROM json_each({lhs}) WHERE json_each.value = %s)",  # noqa: S608
            [*lhs_params, self.rhs],
        )

    def as_postgresql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> _AsSqlType:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        return f"{lhs} @> %s::jsonb", [*lhs_params, orjson.dumps([self.rhs]).decode()]


class Search(Lookup):  # type: ignore[type-arg]
    """`title__search="x"`: case-insensitive substring match.

    PostgreSQL: Django's `icontains` (`UPPER(title) LIKE UPPER('%x%')`), which the trigram
    indexes serve. SQLite's LIKE folds ASCII only, so there both sides go through Python's
    `str.casefold` (registered on each SQLite connection by `register_casefold`).
    """

    lookup_name = "search"
    prepare_rhs = False

    def as_sql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> _AsSqlType:
        return IContains(self.lhs, self.rhs).as_sql(compiler, connection)

    def as_sqlite(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> _AsSqlType:
        contains = IContains(self.lhs, self.rhs)  # its escaping of % and _, and the %…% around
        lhs, lhs_params = contains.process_lhs(compiler, connection)
        rhs, rhs_params = contains.process_rhs(compiler, connection)
        return f"casefold({lhs}) LIKE casefold({rhs}) ESCAPE '\\'", [*lhs_params, *rhs_params]


# On the fields that use them, not on every field of their class in the process.
Task._meta.get_field("labels").register_lookup(HasLabel)
Task._meta.get_field("title").register_lookup(Search)
Task._meta.get_field("details").register_lookup(Search)


def _casefold(value: str | None) -> str | None:
    return None if value is None else value.casefold()


@receiver(connection_created, dispatch_uid="tasks.sqlite_casefold")
def register_casefold(
    sender: type[BaseDatabaseWrapper], connection: BaseDatabaseWrapper, **kwargs: Any
) -> None:
    if connection.vendor == "sqlite":
        connection.connection.create_function("casefold", 1, _casefold, deterministic=True)
