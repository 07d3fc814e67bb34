"""Keyset (cursor) pagination over a unique ordering.

DRF's CursorPagination pages on the first ordering field plus an OFFSET for ties, answers a bad
cursor with 404 and ignores a bad `page_size`. The contract wants neither OFFSET nor COUNT (a
page's cost must not grow with the user's task count), 422 for bad parameters, and every task
visited exactly once: so each cursor carries the full sort key of the row it points at, and the
next page is `WHERE (created_at, id) < (…)`, which the (user_id, created_at, id) index serves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any, cast

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Field, Model, QuerySet
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import BasePagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param
from rest_framework.views import APIView

from . import list_services, selectors
from .models import Task, TaskList
from .selectors import DEFAULT_ORDERING, ORDERINGS, Key
from .signing import SignedJSON

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
PAGE_SIZE_SCHEMA = {"type": "integer", "minimum": 1}
# A cursor or sync token as this service signs them (base64url, `:`, base64url): any other string
# is refused, and a real one is far shorter (which keeps a query string under the server's limit).
SIGNED_TOKEN_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "maxLength": 512,
    "pattern": "^[A-Za-z0-9_:-]+$",
}
# Only cursors this service issued are accepted (a forged one could only point into the caller's
# own tasks, but the contract says 422).
CURSORS = SignedJSON(salt="tasks.pagination.cursor")


@dataclass(frozen=True)
class Cursor:
    """A position: the ordering, the sort key of a row, and whether to read backwards."""

    ordering: str
    position: tuple[Any, ...]
    reverse: bool = False

    def encode(self) -> str:
        values = [None if value is None else str(value) for value in self.position]
        return CURSORS.encode({"o": self.ordering, "p": values, "r": self.reverse})


class KeysetPagination(BasePagination):
    """Pages of `page_size` tasks in the order `ordering=` names (default newest first)."""

    cursor_query_param = "cursor"
    page_size_query_param = "page_size"
    ordering_query_param = "ordering"
    orderings: dict[str, tuple[Key, ...]] = ORDERINGS
    model: type[Model] = Task

    def paginate_queryset(  # type: ignore[override]  # pages of tasks only
        self, queryset: QuerySet[Task], request: Request, view: APIView | None = None
    ) -> list[Task]:
        """A page of the caller's tasks: of `queryset` if the view filtered the list (read
        through the ORM), else of all of them (from compiled SQL)."""
        self.request = request
        user_id: str = request.user.id  # type: ignore[assignment]
        self.page_size = self.get_page_size(request)
        self.ordering = self.get_ordering(request)
        cursor = self.decode_cursor(request)
        keys = self.orderings[self.ordering]
        if cursor and cursor.reverse:
            keys = tuple(key.flipped() for key in keys)
        rows = self.rows(
            user_id, queryset, view, keys, cursor.position if cursor else None, self.page_size + 1
        )
        has_more = len(rows) > self.page_size
        rows = rows[: self.page_size]
        if cursor and cursor.reverse:
            rows.reverse()
            self.next_cursor = self.cursor_at(rows[-1]) if rows else None
            self.previous_cursor = self.cursor_at(rows[0], reverse=True) if has_more else None
        else:
            self.next_cursor = self.cursor_at(rows[-1]) if has_more else None
            self.previous_cursor = (
                self.cursor_at(rows[0], reverse=True) if cursor and rows else None
            )
        return rows

    def rows(
        self,
        user_id: str,
        queryset: QuerySet[Any],
        view: APIView | None,
        keys: tuple[Key, ...],
        position: tuple[object, ...] | None,
        limit: int,
    ) -> list[Any]:
        # The view is the TaskViewSet, which decides how its list is read.
        return selectors.task_page(
            user_id=user_id,
            filtered=queryset if view.list_is_filtered else None,  # type: ignore[union-attr]
            within=view.tree_filters,  # type: ignore[union-attr]
            keys=keys,
            position=position,
            limit=limit,
        )

    def get_paginated_response(self, data: Any) -> Response:
        return Response(
            {
                "results": data,
                "next": self.link(self.next_cursor),
                "previous": self.link(self.previous_cursor),
            }
        )

    def get_page_size(self, request: Request) -> int:
        """`page_size`: a positive integer in decimal digits; any above the cap is the cap."""
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return DEFAULT_PAGE_SIZE
        if not re.fullmatch(r"0*[1-9][0-9]*", raw):
            raise ValidationError(
                {self.page_size_query_param: ["Must be a positive integer."]}, code="invalid"
            )
        digits = raw.lstrip("0")  # more digits than the cap has: over it (and no int() needed)
        if len(digits) > len(str(MAX_PAGE_SIZE)):
            return MAX_PAGE_SIZE
        return min(int(digits), MAX_PAGE_SIZE)

    def get_ordering(self, request: Request) -> str:
        ordering: str = request.query_params.get(self.ordering_query_param, DEFAULT_ORDERING)
        if ordering not in self.orderings:
            raise ValidationError(
                {self.ordering_query_param: [f"Must be one of: {', '.join(self.orderings)}."]},
                code="invalid_choice",
            )
        return ordering

    def decode_cursor(self, request: Request) -> Cursor | None:
        raw = request.query_params.get(self.cursor_query_param)
        if raw is None:
            return None
        keys = self.orderings[self.ordering]
        try:
            payload = CURSORS.decode(raw)
            values, reverse = payload["p"], payload["r"]
            if payload["o"] != self.ordering or len(values) != len(keys):
                raise ValueError
            if not isinstance(reverse, bool):
                raise ValueError
            position = tuple(
                _decode(self.model, key, value) for key, value in zip(keys, values, strict=True)
            )
        except (ValueError, TypeError, KeyError, DjangoValidationError):
            raise ValidationError(
                {self.cursor_query_param: ["Invalid cursor."]}, code="invalid"
            ) from None
        return Cursor(self.ordering, position, reverse)

    def cursor_at(self, row: Task, reverse: bool = False) -> Cursor:
        position = tuple(getattr(row, key.field) for key in self.orderings[self.ordering])
        return Cursor(self.ordering, position, reverse)

    def link(self, cursor: Cursor | None) -> str | None:
        if cursor is None:
            return None
        return replace_query_param(self.url, self.cursor_query_param, cursor.encode())

    @cached_property
    def url(self) -> str:
        url: str = self.request.build_absolute_uri()
        return url

    def get_schema_operation_parameters(self, view: APIView) -> list[dict[str, Any]]:
        return [
            {
                "name": self.cursor_query_param,
                "required": False,
                "in": "query",
                "description": "An opaque cursor from a previous page's `next` or `previous` link.",
                "schema": SIGNED_TOKEN_SCHEMA,
            },
            {
                "name": self.page_size_query_param,
                "required": False,
                "in": "query",
                "description": f"Tasks per page (default {DEFAULT_PAGE_SIZE}; values above "
                f"{MAX_PAGE_SIZE} are capped at {MAX_PAGE_SIZE}).",
                "schema": PAGE_SIZE_SCHEMA,
            },
            {
                "name": self.ordering_query_param,
                "required": False,
                "in": "query",
                "description": "Sort order (ties broken by id). `priority` sorts by rank "
                "(none < low < medium < high); tasks with no `due_at` come last either way.",
                "schema": {"type": "string", "enum": list(ORDERINGS), "default": DEFAULT_ORDERING},
            },
        ]

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "required": ["results", "next", "previous"],
            "properties": {
                "results": schema,
                "next": {"type": "string", "format": "uri", "nullable": True},
                "previous": {"type": "string", "format": "uri", "nullable": True},
            },
        }


class ListPagination(KeysetPagination):
    """Pages of the caller's lists, in their order (no `ordering=`)."""

    orderings = {"position": selectors.LIST_ORDER}
    model = TaskList

    def get_ordering(self, request: Request) -> str:
        return "position"

    def rows(
        self,
        user_id: str,
        queryset: QuerySet[Any],
        view: APIView | None,
        keys: tuple[Key, ...],
        position: tuple[object, ...] | None,
        limit: int,
    ) -> list[Any]:
        rows = selectors.list_page(user_id=user_id, keys=keys, position=position, limit=limit)
        if not rows and position is None:  # a user's first request: their default list
            list_services.default_list(user_id=user_id)
            rows = selectors.list_page(user_id=user_id, keys=keys, position=None, limit=limit)
        return rows

    def get_schema_operation_parameters(self, view: APIView) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["description"] = parameter["description"].replace("Tasks", "Lists")
        return [p for p in parameters if p["name"] != self.ordering_query_param]


def _decode(model: type[Model], key: Key, value: object) -> Any:
    if value is None:
        if not key.nullable:
            raise ValueError
        return None
    if not isinstance(value, str):
        raise ValueError
    field = cast("Field[Any, Any]", model._meta.get_field(key.field))
    decoded = field.to_python(value)
    if decoded is None:
        raise ValueError
    return decoded
