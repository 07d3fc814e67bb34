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
from dataclasses import dataclass, replace
from functools import cached_property

import orjson
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.signing import BadSignature, Signer
from django.db.models import F, Q
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import BasePagination
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

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
NOTHING = Q(pk__in=[])
# Only cursors this service issued are accepted (a forged one could only point into the caller's
# own tasks, but the contract says 422).
CURSOR_SIGNER = Signer(salt="tasks.pagination.cursor")


@dataclass(frozen=True)
class Key:
    """One column of a sort order. A nullable column sorts its nulls last (first when the
    order is read backwards, for `previous` pages)."""

    field: str
    descending: bool
    nullable: bool = False
    nulls_first: bool = False

    def flipped(self) -> Key:
        return replace(self, descending=not self.descending, nulls_first=not self.nulls_first)

    def order_by(self):
        expression = F(self.field)
        if not self.nullable:
            return expression.desc() if self.descending else expression.asc()
        nulls = {"nulls_first": True} if self.nulls_first else {"nulls_last": True}
        return expression.desc(**nulls) if self.descending else expression.asc(**nulls)

    def beyond(self, value) -> Q:
        """Rows strictly after `value` in this column's order."""
        if value is None:
            return Q(**{f"{self.field}__isnull": False}) if self.nulls_first else NOTHING
        after = Q(**{f"{self.field}__{'lt' if self.descending else 'gt'}": value})
        if self.nullable and not self.nulls_first:
            after |= Q(**{f"{self.field}__isnull": True})
        return after

    def equal(self, value) -> Q:
        return Q(**{f"{self.field}__isnull": True}) if value is None else Q(**{self.field: value})


def ordered(field: str, descending: bool, nullable: bool = False) -> tuple[Key, ...]:
    # The primary key breaks ties, so the order is total and no row is seen twice.
    return (Key(field, descending, nullable), Key("id", descending))


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


@dataclass(frozen=True)
class Cursor:
    """A position: the ordering, the sort key of a row, and whether to read backwards."""

    ordering: str
    position: tuple
    reverse: bool = False

    def encode(self) -> str:
        values = [None if value is None else str(value) for value in self.position]
        payload = orjson.dumps({"o": self.ordering, "p": values, "r": self.reverse})
        return CURSOR_SIGNER.sign(base64.urlsafe_b64encode(payload).decode().rstrip("="))


class KeysetPagination(BasePagination):
    """Pages of `page_size` items in the order `ordering=` names (default newest first)."""

    cursor_query_param = "cursor"
    page_size_query_param = "page_size"
    ordering_query_param = "ordering"

    def paginate_queryset(self, queryset, request, view=None):
        self.request = request
        self.page_size = self.get_page_size(request)
        self.ordering = self.get_ordering(request)
        cursor = self.decode_cursor(request, queryset.model)
        keys = ORDERINGS[self.ordering]
        if cursor and cursor.reverse:
            keys = tuple(key.flipped() for key in keys)
        rows = page(queryset, keys, cursor.position if cursor else None, self.page_size + 1)
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

    def get_paginated_response(self, data) -> Response:
        return Response(
            {
                "results": data,
                "next": self.link(self.next_cursor),
                "previous": self.link(self.previous_cursor),
            }
        )

    def get_page_size(self, request) -> int:
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

    def get_ordering(self, request) -> str:
        ordering = request.query_params.get(self.ordering_query_param, DEFAULT_ORDERING)
        if ordering not in ORDERINGS:
            raise ValidationError(
                {self.ordering_query_param: [f"Must be one of: {', '.join(ORDERINGS)}."]},
                code="invalid_choice",
            )
        return ordering

    def decode_cursor(self, request, model) -> Cursor | None:
        raw = request.query_params.get(self.cursor_query_param)
        if raw is None:
            return None
        keys = ORDERINGS[self.ordering]
        try:
            raw = CURSOR_SIGNER.unsign(raw)
            payload = orjson.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
            values, reverse = payload["p"], payload["r"]
            if payload["o"] != self.ordering or len(values) != len(keys):
                raise ValueError
            if not isinstance(reverse, bool):
                raise ValueError
            position = tuple(
                _decode(model, key, value) for key, value in zip(keys, values, strict=True)
            )
        except (
            ValueError, TypeError, KeyError, binascii.Error, DjangoValidationError, BadSignature
        ):  # fmt: skip
            raise ValidationError(
                {self.cursor_query_param: ["Invalid cursor."]}, code="invalid"
            ) from None
        return Cursor(self.ordering, position, reverse)

    def cursor_at(self, row, reverse: bool = False) -> Cursor:
        position = tuple(getattr(row, key.field) for key in ORDERINGS[self.ordering])
        return Cursor(self.ordering, position, reverse)

    def link(self, cursor: Cursor | None) -> str | None:
        if cursor is None:
            return None
        return replace_query_param(self.url, self.cursor_query_param, cursor.encode())

    @cached_property
    def url(self) -> str:
        return self.request.build_absolute_uri()

    def get_schema_operation_parameters(self, view):
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


def _decode(model, key: Key, value):
    if value is None:
        if not key.nullable:
            raise ValueError
        return None
    if not isinstance(value, str):
        raise ValueError
    decoded = model._meta.get_field(key.field).to_python(value)
    if decoded is None:
        raise ValueError
    return decoded


def page(queryset, keys: tuple[Key, ...], position: tuple | None, limit: int) -> list:
    """The first `limit` rows of `queryset` in the order of `keys` (after `position`, if any)."""
    values = {}
    if position is not None:
        pairs = zip(keys, position, strict=True)
        values = {key.field: value for key, value in pairs if value is not None}

    def build(rows, **values):
        if position is not None:
            rows = rows.filter(rows_after(keys, tuple(values.get(key.field) for key in keys)))
        return rows.order_by(*(key.order_by() for key in keys))[:limit]

    # Everything the SQL depends on besides the values: which of them are null, and the limit.
    shape = ("page", keys, position and tuple(value is None for value in position), limit)
    return queryset.fetch(shape, build, **values)


def rows_after(keys: tuple[Key, ...], position: tuple) -> Q:
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
