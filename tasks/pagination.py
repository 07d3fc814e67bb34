"""Keyset (cursor) pagination over a unique ordering.

DRF's CursorPagination pages on the first ordering field plus an OFFSET for ties, answers a bad
cursor with 404 and ignores a bad `page_size`. The contract wants neither OFFSET nor COUNT (a
page's cost must not grow with the user's task count), 422 for bad parameters, and every task
visited exactly once: so each cursor carries the full sort key of the row it points at, and the
next page is `WHERE (created_at, id) < (…)`, which the (user_id, created_at, id) index serves.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

import orjson
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Q
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import BasePagination
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


@dataclass(frozen=True)
class Cursor:
    """A position: the sort key of a row, and whether to read backwards from it."""

    position: tuple
    reverse: bool = False

    def encode(self) -> str:
        payload = orjson.dumps({"p": [str(value) for value in self.position], "r": self.reverse})
        return base64.urlsafe_b64encode(payload).decode().rstrip("=")


class KeysetPagination(BasePagination):
    """Pages of `page_size` items ordered by `ordering` (field names, `-` for descending).

    The last field must be unique (the primary key) so that the order is total.
    """

    ordering: tuple[str, ...] = ("-created_at", "-id")
    cursor_query_param = "cursor"
    page_size_query_param = "page_size"

    def paginate_queryset(self, queryset, request, view=None):
        self.request = request
        self.page_size = self.get_page_size(request)
        cursor = self.decode_cursor(request, queryset.model)
        ordering = self.ordering
        if cursor and cursor.reverse:
            ordering = tuple(_flip(field) for field in ordering)
        if cursor:
            queryset = queryset.filter(_after(ordering, cursor.position))
        rows = list(queryset.order_by(*ordering)[: self.page_size + 1])
        has_more = len(rows) > self.page_size
        rows = rows[: self.page_size]
        if cursor and cursor.reverse:
            rows.reverse()
            self.next_cursor = Cursor(self.sort_key(rows[-1])) if rows else None
            self.previous_cursor = (
                Cursor(self.sort_key(rows[0]), reverse=True) if has_more else None
            )
        else:
            self.next_cursor = Cursor(self.sort_key(rows[-1])) if has_more else None
            self.previous_cursor = (
                Cursor(self.sort_key(rows[0]), reverse=True) if cursor and rows else None
            )
        return rows

    def get_paginated_response(self, data) -> Response:
        return Response(
            {
                "results": data,
                "next": self.link(self.next_cursor),
                "previous": self.link(self.previous_cursor),
            }
        )

    def get_page_size(self, request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return DEFAULT_PAGE_SIZE
        size = int(raw) if re.fullmatch(r"[0-9]{1,9}", raw) else 0
        if size < 1:
            raise ValidationError(
                {self.page_size_query_param: ["Must be a positive integer."]}, code="invalid"
            )
        return min(size, MAX_PAGE_SIZE)

    def decode_cursor(self, request, model) -> Cursor | None:
        raw = request.query_params.get(self.cursor_query_param)
        if raw is None:
            return None
        fields = [model._meta.get_field(name.lstrip("-")) for name in self.ordering]
        try:
            payload = orjson.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
            values, reverse = payload["p"], payload["r"]
            if len(values) != len(fields) or not isinstance(reverse, bool):
                raise ValueError
            position = tuple(f.to_python(v) for f, v in zip(fields, values, strict=True))
            if any(value is None for value in position):
                raise ValueError
        except (ValueError, TypeError, KeyError, binascii.Error, DjangoValidationError):
            raise ValidationError(
                {self.cursor_query_param: ["Invalid cursor."]}, code="invalid"
            ) from None
        return Cursor(position, reverse)

    def sort_key(self, row) -> tuple:
        return tuple(getattr(row, name.lstrip("-")) for name in self.ordering)

    def link(self, cursor: Cursor | None) -> str | None:
        if cursor is None:
            return None
        url = self.request.build_absolute_uri()
        return replace_query_param(url, self.cursor_query_param, cursor.encode())

    def get_schema_operation_parameters(self, view):
        return [
            {
                "name": self.cursor_query_param,
                "required": False,
                "in": "query",
                "description": "An opaque cursor from a previous page's `next` or `previous` link.",
                "schema": {"type": "string"},
            },
            {
                "name": self.page_size_query_param,
                "required": False,
                "in": "query",
                "description": f"Tasks per page (default {DEFAULT_PAGE_SIZE}; values above "
                f"{MAX_PAGE_SIZE} are capped at {MAX_PAGE_SIZE}).",
                "schema": {"type": "integer", "minimum": 1},
            },
        ]

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": ["results", "next", "previous"],
            "properties": {
                "results": schema,
                "next": {"type": "string", "format": "uri", "nullable": True},
                "previous": {"type": "string", "format": "uri", "nullable": True},
            },
        }


def _flip(field: str) -> str:
    return field[1:] if field.startswith("-") else f"-{field}"


def _after(ordering: tuple[str, ...], position: tuple) -> Q:
    """Rows strictly after `position` in `ordering`, as a lexicographic comparison.

    The extra `first <= value` (or `>=`) is implied by the rest; it is there so that the
    planner uses it as an index bound instead of filtering every row from the start.
    """
    names = [field.lstrip("-") for field in ordering]
    comparisons = ["lt" if field.startswith("-") else "gt" for field in ordering]
    keys = list(zip(names, comparisons, position, strict=True))
    name, comparison, value = keys[-1]
    after = Q(**{f"{name}__{comparison}": value})
    for name, comparison, value in reversed(keys[:-1]):
        after = Q(**{f"{name}__{comparison}": value}) | (Q(**{name: value}) & after)
    bound = "lte" if comparisons[0] == "lt" else "gte"
    return Q(**{f"{names[0]}__{bound}": position[0]}) & after
