import datetime as dt
import re

from dateutil.rrule import rrulestr
from django.utils import timezone
from rest_framework import serializers
from rest_framework.utils import html

from .models import (
    DETAILS_MAX_LENGTH,
    LABEL_MAX_LENGTH,
    LABELS_MAX_COUNT,
    RECURRENCE_MAX_LENGTH,
    TITLE_MAX_LENGTH,
    Priority,
    Task,
)

SUPPORTED_FREQUENCIES = ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")
# RFC 5545 §3.3.10 value ranges that dateutil does not check (absolute values; 0 is never valid).
RULE_RANGES = {"BYMONTHDAY": (1, 31), "BYMONTH": (1, 12), "BYYEARDAY": (1, 366),
               "BYWEEKNO": (1, 53), "INTERVAL": (1, 9999), "COUNT": (1, 9999)}  # fmt: skip
POSITIVE_ONLY = {"BYMONTH", "INTERVAL", "COUNT"}
PRIORITY_LABELS = dict(Priority.choices)


def timestamp(value: dt.datetime | None) -> str | None:
    """RFC 3339 in UTC with a `Z`, as DRF's DateTimeField writes it."""
    if value is None:
        return None
    text = value.astimezone(dt.UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _from_html_form(field: serializers.Field) -> bool:
    return html.is_html_input(getattr(field.root, "initial_data", None))


class StrictCharField(serializers.CharField):
    """A JSON string only: DRF's CharField would turn `1` or `1.5` into `"1"` or `"1.5"`."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """A JSON `true`/`false` only: DRF's BooleanField also takes `"true"`, `"1"`, `1`, `"yes"`.

    The browsable API's HTML form (DEBUG only) sends text, so it keeps DRF's reading.
    """

    def to_internal_value(self, data):
        if isinstance(data, bool):
            return data
        if _from_html_form(self):
            return super().to_internal_value(data)
        self.fail("invalid", input=data)


def parse_due(value: str) -> dt.datetime | None:
    """RFC 3339 date-time with an offset, or a plain `YYYY-MM-DD` (that day, 00:00 UTC)."""
    try:
        if len(value) == 10:
            return dt.datetime.combine(dt.date.fromisoformat(value), dt.time(), dt.UTC)
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None or "T" not in value.upper():
        return None
    return parsed


class DueAtField(serializers.DateTimeField):
    """An RFC 3339 date-time, or a plain date meaning that day at 00:00 UTC."""

    default_error_messages = {
        "invalid": "Must be an RFC 3339 date-time with an offset, or a YYYY-MM-DD date."
    }

    def to_internal_value(self, value):
        if not isinstance(value, str) or (parsed := parse_due(value.strip())) is None:
            self.fail("invalid")
        return parsed


class PriorityField(serializers.ChoiceField):
    """`none`, `low`, `medium`, `high` on the wire; their rank in the database."""

    def __init__(self, **kwargs):
        super().__init__(choices=Priority.choices, **kwargs)
        self.choices = {label: label for label in Priority.labels}

    def to_internal_value(self, data):
        if data not in Priority.labels:
            self.fail("invalid_choice", input=data)
        return Priority.labels.index(data)

    def to_representation(self, value):
        return Priority(value).label


class LabelsField(serializers.ListField):
    """Up to 20 labels of 1 to 50 characters: trimmed, case kept, first of duplicates kept."""

    def __init__(self, **kwargs):
        child = StrictCharField(max_length=LABEL_MAX_LENGTH, allow_blank=False)
        super().__init__(child=child, max_length=LABELS_MAX_COUNT, **kwargs)

    def to_internal_value(self, data):
        labels = super().to_internal_value(data)
        return list(dict.fromkeys(labels))


class RecurrenceField(StrictCharField):
    """An RFC 5545 RRULE (`FREQ=WEEKLY;BYDAY=MO,WE`, optionally prefixed `RRULE:`); "" for none."""

    def __init__(self, **kwargs):
        super().__init__(max_length=RECURRENCE_MAX_LENGTH, allow_blank=True, **kwargs)

    def to_internal_value(self, data):
        rule = super().to_internal_value(data).strip()
        rule = rule.removeprefix("RRULE:").removeprefix("rrule:")
        if not rule:
            return ""
        parts = dict(part.split("=", 1) for part in rule.upper().split(";") if "=" in part)
        if "COUNT" in parts and "UNTIL" in parts:
            # RFC 5545 §3.3.10: COUNT and UNTIL MUST NOT occur in the same rule.
            raise serializers.ValidationError("COUNT and UNTIL cannot be combined.", code="invalid")
        for name, (low, high) in RULE_RANGES.items():
            for value in filter(None, parts.get(name, "").split(",")):
                number = int(value) if re.fullmatch(r"[+-]?[0-9]{1,4}", value) else 0
                if not low <= abs(number) <= high or (number < 0 and name in POSITIVE_ONLY):
                    raise serializers.ValidationError(
                        f"{name}={value} is out of range.", code="invalid"
                    )
        try:
            rrulestr(rule, dtstart=timezone.now())
        except (ValueError, TypeError, OverflowError) as exc:
            raise serializers.ValidationError(f"Not a valid RRULE: {exc}", code="invalid") from exc
        frequency = parts.get("FREQ")
        if frequency not in SUPPORTED_FREQUENCIES:
            raise serializers.ValidationError(
                f"FREQ must be one of {', '.join(SUPPORTED_FREQUENCIES)}.", code="invalid"
            )
        return rule


class TaskSerializer(serializers.ModelSerializer):
    title = StrictCharField(max_length=TITLE_MAX_LENGTH)
    details = StrictCharField(
        max_length=DETAILS_MAX_LENGTH,
        required=False,
        allow_blank=True,
        allow_null=True,
        trim_whitespace=False,
    )
    completed = StrictBooleanField(required=False)
    due_at = DueAtField(required=False, allow_null=True)
    priority = PriorityField(required=False)
    labels = LabelsField(required=False)
    recurrence = RecurrenceField(required=False)

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
        ]
        read_only_fields = [
            "id",
            "user_id",
            "created_at",
            "updated_at",
            "completed_at",
            "position",
        ]

    def validate_details(self, value: str | None) -> str:
        return value or ""

    def to_representation(self, task: Task) -> dict:
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
        }


class MoveSerializer(serializers.Serializer):
    after = serializers.UUIDField(allow_null=True)


class StatsSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    open = serializers.IntegerField()
    completed = serializers.IntegerField()
    overdue = serializers.IntegerField(help_text="Open and due before now.")
    due_today = serializers.IntegerField(help_text="Open and due today (in `tz`).")


class ChangeSerializer(TaskSerializer):
    """A changed task, or a deleted one (`{"id", "deleted": true, "deleted_at"}`)."""

    deleted = serializers.BooleanField()
    deleted_at = serializers.DateTimeField(required=False)

    class Meta(TaskSerializer.Meta):
        fields = [*TaskSerializer.Meta.fields, "deleted", "deleted_at"]
        extra_kwargs = {name: {"required": False} for name in TaskSerializer.Meta.fields}


class ChangesSerializer(serializers.Serializer):
    results = ChangeSerializer(many=True)
    next_since = serializers.CharField()
    has_more = serializers.BooleanField()
