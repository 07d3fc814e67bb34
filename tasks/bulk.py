"""`POST /v1/tasks/bulk`: up to 100 operations for the caller, all or nothing."""

from __future__ import annotations

import uuid
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
TEMP_ID_MAX_LENGTH = 64


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
    """Create a task; `temp_id` names it for the operations after it (`id`, `data.parent_id`)."""

    op = Literal("create")
    id = Absent("A create takes no id.")
    temp_id = serializers.CharField(
        required=False,
        min_length=1,
        max_length=TEMP_ID_MAX_LENGTH,
        help_text="A name of the client's for the new task (not a UUID, unique in the batch), "
        "usable as its id by the operations after this one; `temp_id_mapping` gives its id.",
    )
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


class OperationListSerializer(serializers.ListSerializer[Any]):
    """The operations: 1 to MAX_OPERATIONS, said on `operations` itself (DRF would say
    "at least 1 elements" under `operations.non_field_errors`)."""

    def to_internal_value(self, data: Any) -> list[Any]:
        if isinstance(data, list) and not 1 <= len(data) <= MAX_OPERATIONS:
            raise ValidationError(
                [f"Send 1 to {MAX_OPERATIONS} operations (this batch has {len(data)})."],
                code="min_length" if not data else "max_length",
            )
        operations: list[Any] = super().to_internal_value(data)
        return operations


class OperationSerializer(serializers.Serializer[Any]):
    """One operation: what else it takes depends on its `op` (documented as their `oneOf`)."""

    op = serializers.ChoiceField(
        choices=list(OPERATIONS),
        error_messages={
            "invalid_choice": f'"{{input}}" is not an operation: use {", ".join(OPERATIONS)}.'
        },
    )

    class Meta:
        list_serializer_class = OperationListSerializer

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
    temp_id_mapping = serializers.DictField(
        child=serializers.UUIDField(), help_text="Each create's `temp_id`: the id it got."
    )


def with_temp_ids(data: Any) -> tuple[Any, dict[str, str], dict[int, str]]:
    """The request's operations with each temp id replaced by the id its create will get; the
    mapping; and the id of each create (by index) that named a temp id. A temp id that is not a
    string of 1 to 64 characters, is a UUID, repeats, or is used before its create fails the
    batch (422): the operations are otherwise checked as usual."""
    operations = data.get("operations") if isinstance(data, dict) else None
    if not isinstance(operations, list):
        return data, {}, {}
    mapping: dict[str, str] = {}
    created: dict[int, str] = {}
    resolved = []
    for index, operation in enumerate(operations):
        if not isinstance(operation, dict):
            resolved.append(operation)
            continue
        operation = dict(operation)
        if operation.get("op") != "create":
            operation["id"] = _resolved(index, "id", operation.get("id"), mapping)
        task_data = operation.get("data")
        if isinstance(task_data, dict) and "parent_id" in task_data:
            parent_id = _resolved(index, "data.parent_id", task_data["parent_id"], mapping)
            operation["data"] = {**task_data, "parent_id": parent_id}
        if operation.get("op") == "create" and "temp_id" in operation:
            temp_id = operation.pop("temp_id")
            _check_temp_id(index, temp_id, mapping)
            mapping[temp_id] = created[index] = str(uuid.uuid4())
        resolved.append(operation)
    return {**data, "operations": resolved}, mapping, created


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _check_temp_id(index: int, temp_id: object, mapping: dict[str, str]) -> None:
    if not isinstance(temp_id, str) or not 1 <= len(temp_id) <= TEMP_ID_MAX_LENGTH:
        message = f"Must be a string of 1 to {TEMP_ID_MAX_LENGTH} characters."
    elif _is_uuid(temp_id):
        message = "Must not be a UUID (it names a task that does not exist yet)."
    elif temp_id in mapping:
        message = "Repeats the temp_id of an earlier create in this batch."
    else:
        return
    raise BulkOperationFailed(index, ValidationError({"temp_id": [message]}, code="invalid"))


def _resolved(index: int, attr: str, value: Any, mapping: dict[str, str]) -> Any:
    """`value` (a task id), or the id of the temp id it names."""
    if not isinstance(value, str) or _is_uuid(value):
        return value
    if value in mapping:
        return mapping[value]
    detail: Any = [
        f"{value[:TEMP_ID_MAX_LENGTH]!r} is neither a task id nor the temp_id of an earlier "
        "create in this batch."
    ]
    for key in reversed(attr.split(".")):
        detail = {key: detail}
    raise BulkOperationFailed(index, ValidationError(detail, code="unknown_temp_id"))


def tasks_bulk(
    *,
    user_id: str,
    operations: list[dict[str, Any]],
    max_tasks: int,
    context: dict[str, Any],
    created_ids: dict[int, str],
) -> list[dict[str, Any]]:
    """Apply `operations` in order in one transaction; the first failure rolls all back.
    `created_ids`: the id each create of these indexes gives its task (see with_temp_ids)."""

    def apply_all() -> list[tuple[dict[str, Any], Task]]:
        applied = []
        for index, operation in enumerate(operations):
            if index in created_ids:
                operation = {**operation, "new_id": uuid.UUID(created_ids[index])}
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
        fields = serializer.validated_data
        if "new_id" in operation:
            fields = {**fields, "id": operation["new_id"]}
        task = services.task_create(user_id=user_id, fields=fields, max_tasks=max_tasks)
        code: int = status.HTTP_201_CREATED
    else:
        task = services.task_update(
            user_id=user_id, task_id=task_id, changes=serializer.validated_data, versions=None
        )
        code = status.HTTP_200_OK
    return {"status": code, "task": TaskSerializer(task, context=context).data}, task
