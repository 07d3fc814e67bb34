import copy
import datetime as dt
import re
import uuid
from typing import Any, ClassVar

import orjson
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema_field
from rest_framework import serializers
from rest_framework.utils import html

from . import recurrence
from .models import (
    DETAILS_MAX_LENGTH,
    LABEL_MAX_LENGTH,
    LABELS_MAX_COUNT,
    LIST_TITLE_MAX_LENGTH,
    RECURRENCE_MAX_LENGTH,
    TITLE_MAX_LENGTH,
    Priority,
    Task,
    TaskList,
)
from .parsing import DUE_INVALID, DUE_SCHEMA, NO_NUL, NOT_BLANK, parse_due

PRIORITY_LABELS = dict(Priority.choices)


def timestamp(value: dt.datetime | None) -> str | None:
    """RFC 3339 in UTC with a `Z`, as DRF's DateTimeField writes it (`isoformat()`), written
    by orjson: the same text for less CPU, on every timestamp of every response."""
    if value is None:
        return None
    if value.tzinfo is not dt.UTC:
        value = value.astimezone(dt.UTC)
    return orjson.dumps(value, option=orjson.OPT_UTC_Z)[1:-1].decode()


def _from_html_form(field: serializers.Field[Any, Any, Any, Any]) -> bool:
    return html.is_html_input(getattr(field.root, "initial_data", None))


class StrictCharField(serializers.CharField):
    """A JSON string only (DRF's CharField would turn `1` or `1.5` into `"1"` or `"1.5"`), no
    longer than `max_length` as sent (DRF checks the trimmed value)."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        if self.max_length is not None and len(data) > self.max_length:
            self.fail("max_length", max_length=self.max_length)
        return super().to_internal_value(data)

    @property
    def pattern(self) -> str:
        """The strings this field accepts, as a JSON Schema `pattern`."""
        return NOT_BLANK if self.trim_whitespace and not self.allow_blank else NO_NUL


class StrictBooleanField(serializers.BooleanField):
    """A JSON `true`/`false` only: DRF's BooleanField also takes `"true"`, `"1"`, `1`, `"yes"`.

    The browsable API's HTML form (DEBUG only) sends text, so it keeps DRF's reading.
    """

    default_error_messages = {"invalid": "Must be `true` or `false`."}

    def to_internal_value(self, data: Any) -> bool:
        if isinstance(data, bool):
            return data
        if _from_html_form(self):
            return super().to_internal_value(data)
        self.fail("invalid", input=data)


# What an HTML form's `datetime-local` input sends: a date and a time, with no offset.
DATETIME_LOCAL = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?")


@extend_schema_field(DUE_SCHEMA)
class DueAtField(serializers.DateTimeField):
    """An RFC 3339 date-time, or a plain date meaning that day at 00:00 UTC.

    The browsable API's HTML form (DEBUG only) has a `datetime-local` input, which sends no
    offset: from that form only, such a value is read as UTC. JSON stays strict.
    """

    default_error_messages = {"invalid": DUE_INVALID}

    def to_internal_value(self, value: Any) -> dt.datetime:
        if isinstance(value, str) and _from_html_form(self) and DATETIME_LOCAL.fullmatch(value):
            try:
                return dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC)
            except ValueError:
                self.fail("invalid")
        if not isinstance(value, str) or (parsed := parse_due(value)) is None:
            self.fail("invalid")
        return parsed


class PriorityField(serializers.ChoiceField):
    """`none`, `low`, `medium`, `high` on the wire; their rank in the database."""

    default_error_messages = {
        "invalid_choice": f'"{{input}}" is not a priority: use {", ".join(Priority.labels)}.'
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=Priority.choices, **kwargs)
        self.choices = {label: label for label in Priority.labels}

    def to_internal_value(self, data: Any) -> int:  # type: ignore[override]  # a rank, not a label
        if data not in Priority.labels:
            self.fail("invalid_choice", input=data)
        return Priority.labels.index(data)

    def to_representation(self, value: int) -> str:  # type: ignore[override]
        return Priority(value).label


class LabelsField(serializers.ListField):
    """Up to 20 labels of 1 to 50 characters: trimmed, case kept, first of duplicates kept.

    The browsable API's HTML form (DEBUG only) shows them as one text input, comma-separated
    (tasks.browsable): from that form only, each value sent is split at its commas.
    """

    def __init__(self, **kwargs: Any) -> None:
        child = StrictCharField(max_length=LABEL_MAX_LENGTH, allow_blank=False)
        style = {
            "base_template": "input.html",
            "input_type": "text",
            "placeholder": "home, errands",
            "comma_separated": True,
            "form_help_text": "Comma-separated.",
        }
        super().__init__(child=child, max_length=LABELS_MAX_COUNT, style=style, **kwargs)

    def to_internal_value(self, data: Any) -> list[str]:
        if _from_html_form(self) and isinstance(data, list):
            data = [
                label.strip()
                for value in data
                for label in (value.split(",") if isinstance(value, str) else [value])
                if not isinstance(label, str) or label.strip()
            ]
        labels = super().to_internal_value(data)
        return list(dict.fromkeys(labels))


class RecurrenceField(StrictCharField):
    """An RFC 5545 RRULE (`FREQ=WEEKLY;BYDAY=MO,WE`, optionally prefixed `RRULE:`) in the grammar
    of `recurrence.RRULE_PATTERN`; "" for none."""

    pattern = recurrence.RRULE_PATTERN

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            max_length=RECURRENCE_MAX_LENGTH, allow_blank=True, trim_whitespace=False, **kwargs
        )

    def to_internal_value(self, data: Any) -> str:
        try:
            return recurrence.validate(super().to_internal_value(data))
        except recurrence.InvalidRule as exc:
            raise serializers.ValidationError(f"Not a valid RRULE: {exc}", code="invalid") from exc


class StrictUUIDField(serializers.UUIDField):
    """A UUID in a JSON string only: DRF's UUIDField would read the number 5 as UUID(int=5)."""

    def to_internal_value(self, data: Any) -> uuid.UUID:
        if not isinstance(data, str):
            self.fail("invalid", value=data)
        return super().to_internal_value(data)


class TaskSerializer(serializers.ModelSerializer[Task]):
    title = StrictCharField(max_length=TITLE_MAX_LENGTH)
    details = StrictCharField(
        max_length=DETAILS_MAX_LENGTH,
        required=False,
        allow_blank=True,
        allow_null=True,
        trim_whitespace=False,
    )
    completed = StrictBooleanField(required=False)
    due_at = DueAtField(
        required=False,
        allow_null=True,
        style={"form_help_text": "A date and time in UTC (this form sends no offset)."},
    )
    priority = PriorityField(required=False)
    labels = LabelsField(required=False)
    recurrence = RecurrenceField(required=False)
    list_id = StrictUUIDField(
        required=False, help_text="The task's list (on create, the caller's default list if none)."
    )
    parent_id = StrictUUIDField(
        required=False,
        allow_null=True,
        help_text="The task this one is a subtask of (in its list), or null: top level.",
    )

    # Built once per class by get_fields and get_validators (declared here for the type checker
    # only: they must not exist on the class before they are built).
    built_fields: ClassVar[dict[str, serializers.Field[Any, Any, Any, Any]]]
    built_validators: ClassVar[list[Any]]

    class Meta:
        model = Task
        fields = [
            "id",
            "user_id",
            "title",
            "details",
            "completed",
            "created_at",
            "updated_at",
            "due_at",
            "completed_at",
            "priority",
            "labels",
            "position",
            "recurrence",
            "list_id",
            "parent_id",
        ]
        read_only_fields = [
            "id",
            "user_id",
            "created_at",
            "updated_at",
            "completed_at",
            "position",
        ]

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        # ModelSerializer inspects the model again for every serializer, and DRF deep-copies
        # each field (a measurable share of a create). What it builds depends on the
        # class alone: it is built once per class, and each serializer gets shallow copies to
        # bind (`bind()` sets the copy's own name and parent; nothing else on a field changes
        # after construction, so the parts copies share are only read).
        cls = type(self)
        if "built_fields" not in cls.__dict__:
            built = super().get_fields()
            for field in built.values():
                field.validators  # noqa: B018 -- built now, shared by the copies (stateless)
            cls.built_fields = built
        return {name: copy.copy(field) for name, field in cls.built_fields.items()}

    def get_validators(self) -> list[Any]:
        # The model's uniqueness rules, worked out from its metadata: once per class too.
        cls = type(self)
        if "built_validators" not in cls.__dict__:
            cls.built_validators = super().get_validators()
        return list(cls.built_validators)

    def validate_details(self, value: str | None) -> str:
        return value or ""

    def to_representation(self, task: Task) -> dict[str, Any]:
        # The hot path of every response (50 rows a list page): plain attribute reads, where
        # DRF would deep-copy the declared fields per serializer and call each field in turn.
        # The declared fields above still define the input rules and the OpenAPI schema, and
        # test_serializer_fast_path_matches_drf keeps this identical to DRF's own output.
        return {
            "id": str(task.id),
            "user_id": task.user_id,
            "title": task.title,
            "details": task.details,
            "completed": task.completed,
            "created_at": timestamp(task.created_at),
            "updated_at": timestamp(task.updated_at),
            "due_at": timestamp(task.due_at),
            "completed_at": timestamp(task.completed_at),
            "priority": PRIORITY_LABELS[task.priority],
            "labels": task.labels,
            "position": task.position,
            "recurrence": task.recurrence,
            "list_id": None if task.list_id is None else str(task.list_id),
            "parent_id": None if task.parent_id is None else str(task.parent_id),
        }


class NewTaskSerializer(TaskSerializer):
    """A create's body: a task that does not exist yet has no stored `due_at` to recur from."""

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("recurrence") and attrs.get("due_at") is None:
            raise serializers.ValidationError(
                {"recurrence": ["A recurring task needs a due_at: send one with the rule."]},
                code="recurrence_needs_due_at",
            )
        return attrs


class MoveSerializer(serializers.Serializer[Any]):
    after = StrictUUIDField(
        allow_null=True,
        help_text="The sibling to put the task after (under the target parent, in the target "
        "list), or null: first.",
    )
    parent_id = StrictUUIDField(
        required=False,
        allow_null=True,
        help_text="The new parent (null: top level). Omitted: the task keeps its parent, unless "
        "`list_id` names another list.",
    )
    list_id = StrictUUIDField(
        required=False,
        help_text="The new list: the task goes there with its subtasks, at the top level unless "
        "`parent_id` names a task in it.",
    )


class ListMoveSerializer(serializers.Serializer[Any]):
    after = StrictUUIDField(
        allow_null=True, help_text="The list to put this one after, or null: first."
    )


class TaskListSerializer(serializers.ModelSerializer[TaskList]):
    title = StrictCharField(max_length=LIST_TITLE_MAX_LENGTH)

    class Meta:
        model = TaskList
        fields = ["id", "title", "is_default", "position", "created_at", "updated_at"]
        read_only_fields = ["id", "is_default", "position", "created_at", "updated_at"]

    def to_representation(self, task_list: TaskList) -> dict[str, Any]:
        return {
            "id": str(task_list.id),
            "title": task_list.title,
            "is_default": task_list.is_default,
            "position": task_list.position,
            "created_at": timestamp(task_list.created_at),
            "updated_at": timestamp(task_list.updated_at),
        }


class StatsSerializer(serializers.Serializer[Any]):
    total = serializers.IntegerField()
    open = serializers.IntegerField()
    completed = serializers.IntegerField()
    overdue = serializers.IntegerField(help_text="Open and due before now.")
    due_today = serializers.IntegerField(help_text="Open and due today (in `tz`).")


class Literal(serializers.ChoiceField):
    """One of a few fixed values, documented as a bare JSON Schema `enum` of them."""

    def __init__(self, *values: Any, **kwargs: Any) -> None:
        super().__init__(choices=values, **kwargs)


class ChangedTaskSerializer(TaskSerializer):
    """A task created or changed since the sync token."""

    deleted = Literal(False)

    class Meta(TaskSerializer.Meta):
        fields = [*TaskSerializer.Meta.fields, "deleted"]


class TombstoneSerializer(serializers.Serializer[Any]):
    """A task deleted since the sync token: its id and when, nothing else."""

    id = serializers.UUIDField()
    deleted = Literal(True)
    deleted_at = serializers.DateTimeField()


class ChangedListSerializer(TaskListSerializer):
    """A list created or changed since the sync token."""

    deleted = Literal(False)

    class Meta(TaskListSerializer.Meta):
        fields = [*TaskListSerializer.Meta.fields, "deleted"]


class ListTombstoneSerializer(TombstoneSerializer):
    """A list deleted since the sync token (its tasks are tombstones in `tasks`)."""


class AllChangesSerializer(serializers.Serializer[Any]):
    """Schema only (`/v1/changes` writes its response directly)."""

    lists = PolymorphicProxySerializer(
        component_name="ListChange",
        serializers=[ChangedListSerializer, ListTombstoneSerializer],
        resource_type_field_name=None,
        many=True,
    )
    tasks = PolymorphicProxySerializer(
        component_name="TaskChange",
        serializers=[ChangedTaskSerializer, TombstoneSerializer],
        resource_type_field_name=None,
        many=True,
    )
    next_since = serializers.CharField()
    has_more = serializers.BooleanField()


class ChangesSerializer(serializers.Serializer[Any]):
    """Schema only (`changes` writes its response directly)."""

    results = PolymorphicProxySerializer(
        component_name="Change",
        serializers=[ChangedTaskSerializer, TombstoneSerializer],
        resource_type_field_name=None,
        many=True,
    )
    next_since = serializers.CharField()
    has_more = serializers.BooleanField()
