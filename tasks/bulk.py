"""`POST /v1/tasks/bulk`: up to 100 operations for the caller, all or nothing."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.fields import empty

from . import in_doubt, services
from .errors import TaskError
from .exceptions import BulkOperationFailed
from .models import Task
from .serializers import Literal, NewTaskSerializer, StrictUUIDField, TaskSerializer

MAX_OPERATIONS = 100


class Absent(serializers.Field[Any, Any, Any, Any]):
    """A key the object must not have (`{"not": {}}` in the schema)."""

    def __init__(self, message: str, **kwargs: Any) -> None:
        self.message = message
        super().__init__(required=False, **kwargs)

    def run_validation(self, data: Any = empty) -> Any:
        if data is empty:
            raise serializers.SkipField()
        raise ValidationError(self.message, code="invalid")


# The operation's task fields, checked by TaskSerializer when the operation runs (so that its
# errors come in order with those of the operations before it).
@extend_schema_field(NewTaskSerializer)
class TaskFields(serializers.DictField):
    pass


@extend_schema_field(TaskSerializer(partial=True))
class TaskChanges(serializers.DictField):
    pass


class CreateOperationSerializer(serializers.Serializer[Any]):
    """Create a task."""

    op = Literal("create")
    id = Absent("A create takes no id.")
    data = TaskFields()  # type: ignore[assignment]  # the operation's `data`, not Serializer.data


class UpdateOperationSerializer(serializers.Serializer[Any]):
    """Change some fields of task `id`, as PATCH does."""

    op = Literal("update")
    id = StrictUUIDField()
    data = TaskChanges()  # type: ignore[assignment]  # the operation's `data`, not Serializer.data


class TaskOperationSerializer(serializers.Serializer[Any]):
    """Delete task `id`, or flip its `completed`."""

    op = Literal("delete", "toggle")
    id = StrictUUIDField()


OPERATIONS = {
    "create": CreateOperationSerializer,
    "update": UpdateOperationSerializer,
    "delete": TaskOperationSerializer,
    "toggle": TaskOperationSerializer,
}


class OperationSerializer(serializers.Serializer[Any]):
    """One operation: what else it takes depends on its `op` (documented as their `oneOf`)."""

    op = serializers.ChoiceField(choices=list(OPERATIONS))

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        operation = OPERATIONS[super().to_internal_value(data)["op"]](data=data)
        operation.is_valid(raise_exception=True)
        validated: dict[str, Any] = operation.validated_data
        return validated


class BulkSerializer(serializers.Serializer[Any]):
    # ListSerializer arguments, which the stubs do not know
    operations = OperationSerializer(many=True, min_length=1, max_length=MAX_OPERATIONS)  # type: ignore[call-arg]


class BulkResultSerializer(serializers.Serializer[Any]):
    status = serializers.ChoiceField(choices=[201, 200, 204])
    task = TaskSerializer(allow_null=True)


class BulkResponseSerializer(serializers.Serializer[Any]):
    results = BulkResultSerializer(many=True)


def tasks_bulk(
    *, user_id: str, operations: list[dict[str, Any]], max_tasks: int, context: dict[str, Any]
) -> list[dict[str, Any]]:
    """Apply `operations` in order in one transaction; the first failure rolls all back."""

    def apply_all() -> list[tuple[dict[str, Any], Task]]:
        applied = []
        for index, operation in enumerate(operations):
            try:
                applied.append(_apply(user_id, operation, max_tasks, context))
            except (Task.DoesNotExist, TaskError, APIException) as error:
                raise BulkOperationFailed(index, error) from None
        return applied

    # All or nothing: the last row written tells whether the batch was committed.
    applied = in_doubt.atomic(apply_all, lambda applied: services.task_stamp(applied[-1][1]))
    return [result for result, _ in applied]


def _apply(
    user_id: str, operation: dict[str, Any], max_tasks: int, context: dict[str, Any]
) -> tuple[dict[str, Any], Task]:
    """The operation's result, and the row it wrote."""
    op, task_id = operation["op"], operation.get("id")
    if op == "delete":
        tombstone = services.task_delete(user_id=user_id, task_id=task_id)
        return {"status": status.HTTP_204_NO_CONTENT, "task": None}, tombstone
    if op == "toggle":
        task = services.task_toggle(user_id=user_id, task_id=task_id)
        data = TaskSerializer(task, context=context).data
        return {"status": status.HTTP_200_OK, "task": data}, task
    serializer: serializers.Serializer[Any]
    if op == "create":
        serializer = NewTaskSerializer(data=operation["data"], context=context)
    else:
        serializer = TaskSerializer(data=operation["data"], partial=True, context=context)
    if not serializer.is_valid():
        raise ValidationError({"data": serializer.errors})
    if op == "create":
        task = services.task_create(
            user_id=user_id, fields=serializer.validated_data, max_tasks=max_tasks
        )
        code: int = status.HTTP_201_CREATED
    else:
        task = services.task_update(
            user_id=user_id, task_id=task_id, changes=serializer.validated_data, versions=None
        )
        code = status.HTTP_200_OK
    return {"status": code, "task": TaskSerializer(task, context=context).data}, task
