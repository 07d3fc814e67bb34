"""`POST /v1/tasks/bulk`: up to 100 operations for the caller, all or nothing."""

from __future__ import annotations

from django.db import transaction
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, NotFound, ValidationError

from . import services
from .models import Task, TaskQuerySet
from .serializers import StrictUUIDField, TaskSerializer

MAX_OPERATIONS = 100
OPERATIONS = ("create", "update", "delete", "toggle")


class OperationSerializer(serializers.Serializer):
    op = serializers.ChoiceField(choices=OPERATIONS)
    id = StrictUUIDField(required=False)
    data = serializers.DictField(required=False)

    def validate(self, attrs: dict) -> dict:
        needs_id = attrs["op"] != "create"
        if needs_id and "id" not in attrs:
            raise ValidationError({"id": ["Required for this op."]}, code="required")
        if not needs_id and "id" in attrs:
            raise ValidationError({"id": ["A create takes no id."]}, code="invalid")
        if attrs["op"] in ("create", "update") and "data" not in attrs:
            raise ValidationError({"data": ["Required for this op."]}, code="required")
        return attrs


class BulkSerializer(serializers.Serializer):
    operations = OperationSerializer(many=True, min_length=1, max_length=MAX_OPERATIONS)


class BulkResultSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=[201, 200, 204])
    task = TaskSerializer(allow_null=True)


class BulkResponseSerializer(serializers.Serializer):
    results = BulkResultSerializer(many=True)


class BulkOperationFailed(APIException):
    """Operation `index` failed with `error`: the batch changed nothing. The error keeps its
    own status; its `attr` is prefixed with `operations.<index>`."""

    def __init__(self, index: int, error: APIException) -> None:
        self.index = index
        self.error = error
        self.status_code = error.status_code
        super().__init__(error.detail)


def tasks_bulk(
    *, tasks: TaskQuerySet, user_id: str, operations: list[dict], max_tasks: int, context: dict
) -> list[dict]:
    """Apply `operations` in order in one transaction; the first failure rolls all back."""
    results = []
    with transaction.atomic():
        for index, operation in enumerate(operations):
            try:
                results.append(_apply(tasks, user_id, operation, max_tasks, context))
            except Task.DoesNotExist:
                raise BulkOperationFailed(index, NotFound()) from None
            except APIException as error:
                raise BulkOperationFailed(index, error) from None
    return results


def _apply(tasks, user_id: str, operation: dict, max_tasks: int, context: dict) -> dict:
    op, task_id = operation["op"], operation.get("id")
    if op == "delete":
        services.task_delete(tasks=tasks, task_id=task_id)
        return {"status": status.HTTP_204_NO_CONTENT, "task": None}
    if op == "toggle":
        task = services.task_toggle(tasks=tasks, task_id=task_id)
        return {"status": status.HTTP_200_OK, "task": TaskSerializer(task, context=context).data}
    serializer = TaskSerializer(data=operation["data"], partial=op == "update", context=context)
    if not serializer.is_valid():
        raise ValidationError({"data": serializer.errors})
    try:
        if op == "create":
            task = services.task_create(
                user_id=user_id, fields=serializer.validated_data, max_tasks=max_tasks
            )
            code = status.HTTP_201_CREATED
        else:
            task = services.task_update(
                tasks=tasks, task_id=task_id, changes=serializer.validated_data, versions=None
            )
            code = status.HTTP_200_OK
    except ValidationError as error:  # a rule the database enforces: still about `data`
        raise ValidationError({"data": error.detail}) from None
    return {"status": code, "task": TaskSerializer(task, context=context).data}
