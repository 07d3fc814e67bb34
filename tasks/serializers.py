from rest_framework import serializers
from rest_framework.utils import html

from .models import DETAILS_MAX_LENGTH, TITLE_MAX_LENGTH, Task


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

    class Meta:
        model = Task
        fields = ["id", "user_id", "title", "details", "completed", "created_at", "updated_at"]
        read_only_fields = ["id", "user_id", "created_at", "updated_at"]

    def validate_details(self, value: str | None) -> str:
        return value or ""
