from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

from django import forms
from django.db.models import Q, QuerySet
from django.utils import timezone
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema_field

from .models import LABEL_MAX_LENGTH, Priority, Task
from .parsing import DUE_INVALID, DUE_SCHEMA, NO_NUL, parse_due

BOOLEAN_WORDS = {"true": True, "false": False}
TRUE_OR_FALSE = "Must be `true` or `false`."
SEARCH_MAX_LENGTH = 200


class TaskFilterForm(forms.Form):
    def clean(self) -> dict[str, Any] | None:
        cleaned = super().clean()
        # Each priority at most once (which also bounds the query string).
        priorities = self.data.getlist("priority")  # type: ignore[attr-defined]  # a QueryDict
        if len(set(priorities)) < len(priorities):
            self.add_error("priority", forms.ValidationError("Repeats a value.", "invalid"))
        if self.data.get("list") == "" and "list" not in self.errors:
            self.add_error("list", forms.ValidationError("Must be a list id (a UUID).", "invalid"))
        parent = self.data.get("parent")
        if parent is not None and parent != "none" and "parent" not in self.errors:
            try:
                uuid.UUID(parent)
            except ValueError:
                self.add_error(
                    "parent", forms.ValidationError("Must be a task id or `none`.", "invalid")
                )
        # `?completed=` or `?overdue=` is a value too, and not one of the two allowed.
        for name in ("completed", "overdue"):
            if (
                name in self.data
                and name not in self.errors
                and self.cleaned_data.get(name) not in BOOLEAN_WORDS
            ):
                self.add_error(name, forms.ValidationError(TRUE_OR_FALSE, "invalid"))
        return cleaned


class DueField(forms.CharField):
    """A due-date bound, as `due_at` takes it: not trimmed, and `?due_after=` is an error."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strip=False, **kwargs)

    def clean(self, value: Any) -> dt.datetime | None:
        if value is None:  # not in the query string
            return None
        parsed = parse_due(super().clean(value))
        if parsed is None:
            raise forms.ValidationError(DUE_INVALID, "invalid")
        return parsed


@extend_schema_field(DUE_SCHEMA)
class DueFilter(filters.Filter):
    field_class = DueField


class TaskFilter(filters.FilterSet):
    # Exactly `true` or `false`: django-filter's BooleanFilter also takes `1`, `True`, `yes`.
    completed = filters.ChoiceFilter(
        choices=[(word, word) for word in BOOLEAN_WORDS],
        error_messages={"invalid_choice": TRUE_OR_FALSE},
        method="filter_completed",
        help_text="Only completed (`true`) or only open (`false`) tasks.",
    )
    due_after = DueFilter(
        field_name="due_at", lookup_expr="gte", help_text="Due at or after (inclusive)."
    )
    due_before = DueFilter(
        field_name="due_at", lookup_expr="lt", help_text="Due before (exclusive)."
    )
    overdue = filters.ChoiceFilter(
        choices=[(word, word) for word in BOOLEAN_WORDS],
        error_messages={"invalid_choice": TRUE_OR_FALSE},
        method="filter_overdue",
        help_text="`true`: due before now and not completed; `false`: the others.",
    )
    priority = filters.MultipleChoiceFilter(
        choices=[(label, label) for label in Priority.labels],
        error_messages={
            "invalid_choice": f"%(value)s is not a priority: use {', '.join(Priority.labels)}."
        },
        method="filter_priority",
        help_text="One or more priorities (repeat the parameter).",
    )
    label = filters.CharFilter(
        method="filter_label",
        max_length=LABEL_MAX_LENGTH,  # no label is longer
        strip=False,  # the length is checked as sent
        help_text="Tasks carrying this label.",
    )
    list = filters.UUIDFilter(
        field_name="list_id",
        help_text="Only this list's tasks.",
        error_messages={"invalid": "Must be a list id (a UUID)."},
    )
    parent = filters.CharFilter(
        method="filter_parent",
        help_text="Only this task's direct subtasks; `none`: only top-level tasks.",
    )
    q = filters.CharFilter(
        method="filter_search",
        max_length=SEARCH_MAX_LENGTH,
        strip=False,  # the length is checked as sent
        help_text="Case-insensitive text in the title or details.",
    )

    class Meta:
        form = TaskFilterForm

    def filter_completed(self, queryset: QuerySet[Task], name: str, value: str) -> QuerySet[Task]:
        return queryset.filter(completed=BOOLEAN_WORDS[value])

    def filter_overdue(self, queryset: QuerySet[Task], name: str, value: str) -> QuerySet[Task]:
        overdue = Q(completed=False, due_at__lt=timezone.now())
        return queryset.filter(overdue if BOOLEAN_WORDS[value] else ~overdue)

    def filter_priority(
        self, queryset: QuerySet[Task], name: str, value: Sequence[str]
    ) -> QuerySet[Task]:
        if not value:
            return queryset
        return queryset.filter(priority__in=[Priority.labels.index(v) for v in value])

    @extend_schema_field({"type": "string", "maxLength": LABEL_MAX_LENGTH, "pattern": NO_NUL})
    def filter_label(self, queryset: QuerySet[Task], name: str, value: str) -> QuerySet[Task]:
        return queryset.filter(labels__has_label=value.strip())

    @extend_schema_field(
        {"oneOf": [{"type": "string", "format": "uuid"}, {"type": "string", "enum": ["none"]}]}
    )
    def filter_parent(self, queryset: QuerySet[Task], name: str, value: str) -> QuerySet[Task]:
        return queryset.filter(parent_id=None if value == "none" else value)

    @extend_schema_field({"type": "string", "maxLength": SEARCH_MAX_LENGTH, "pattern": NO_NUL})
    def filter_search(self, queryset: QuerySet[Task], name: str, value: str) -> QuerySet[Task]:
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(Q(title__search=value) | Q(details__search=value))
