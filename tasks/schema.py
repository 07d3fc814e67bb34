"""OpenAPI generation: each operation documents the errors it can answer, in the one shape; the
schema states what the code accepts (patterns, bounds, one schema per bulk `op`) and links the
operations on one task (OpenAPI links), for clients and for schemathesis (fuzz/)."""

import copy
from typing import Any

from django.db.models import Model
from django_filters import rest_framework as filters
from drf_spectacular.contrib.django_filters import DjangoFilterExtension
from drf_spectacular.extensions import (
    OpenApiAuthenticationExtension,
    OpenApiSerializerExtension,
    OpenApiSerializerFieldExtension,
)
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import Direction, OpenApiExample
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request

from .parsers import RequestBodyTooLarge

ERROR_TYPES = ("validation_error", "client_error", "server_error")

ERROR_DESCRIPTIONS = {
    "400": "Malformed JSON, or a body that is not a JSON object.",
    "401": "Missing, malformed, expired or otherwise invalid bearer token.",
    "404": "No such task or list for the caller, in the path, the query or the body (also "
    "another user's, or a malformed id).",
    "409": "The request conflicts with what is stored; nothing was changed: the caller already "
    "has `MAX_TASKS_PER_USER` tasks (`task_limit_reached`) or `MAX_LISTS_PER_USER` lists "
    "(`list_limit_reached`), the task would recur without a `due_at` "
    "(`recurrence_needs_due_at`), the default list cannot be deleted (`default_list`), or the "
    "`Idempotency-Key` was used with another body (`idempotency_key_reused`).",
    "410": "The sync token is older than the tombstone retention: resync without `since`.",
    "412": "The task's ETag no longer matches `If-Match`; nothing was changed.",
    "413": RequestBodyTooLarge.default_detail,
    "415": "The body is not `application/json`.",
    "422": "Validation failed; each error names its field or parameter (`attr`).",
    "429": "Too many requests for this user; retry after `Retry-After` seconds.",
    "503": "The database (or the auth server's keys) is unreachable; retry after `Retry-After`.",
}

RESPONSE_HEADERS = {
    "401": {"WWW-Authenticate": 'The bearer challenge (RFC 6750), e.g. `Bearer realm="api"`.'},
    "429": {"Retry-After": "Seconds until the window resets."},
    "503": {"Retry-After": "Seconds to wait before retrying."},
}
WRITE_ACTIONS = {"update", "partial_update", "destroy", "toggle"}
# Errors a view's action answers beyond those of its method and path (a view's `action_errors`;
# an APIView's action is None).
TASK_ACTION_ERRORS: dict[str | None, set[str]] = {
    "list": {"404", "422"},  # a list or parent the caller does not have; a bad parameter
    "create": {"404", "409", "422"},
    "update": {"409"},  # recurrence without a due date
    "partial_update": {"409"},
    "bulk": {"404", "409", "422"},  # the failing operation's own error
    "changes": {"410", "422"},
    "stats": {"404", "422"},
    "clear_completed": {"404", "422"},
}
LIST_ACTION_ERRORS: dict[str | None, set[str]] = {
    "list": {"422"},
    "create": {"409", "422"},
    "destroy": {"409"},  # the default list
}
CHANGES_ERRORS: dict[str | None, set[str]] = {None: {"410", "422"}}


class ErrorItemSerializer(serializers.Serializer[Any]):
    code = serializers.CharField(help_text="Machine-readable error code.")
    detail = serializers.CharField(help_text="Human-readable message.")
    attr = serializers.CharField(
        allow_null=True, help_text="The field or parameter the error concerns, if any."
    )


class ErrorSerializer(serializers.Serializer[Any]):
    type = serializers.ChoiceField(choices=ERROR_TYPES)
    # A declared field: the metaclass takes it off the class, so `Serializer.errors` stays.
    errors = ErrorItemSerializer(many=True)  # type: ignore[assignment]

    class Meta:
        ref_name = "Error"


class TaskAPIAutoSchema(AutoSchema):
    def _get_response_bodies(self, direction: Direction = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        for code in self.error_status_codes():
            if code not in responses:
                responses[code] = self._get_response_for_code(ErrorSerializer, code)
                responses[code]["description"] = ERROR_DESCRIPTIONS[code]
        for code, headers in RESPONSE_HEADERS.items():
            if code in responses:
                responses[code]["headers"] = {
                    name: {"schema": {"type": "string"}, "description": description}
                    for name, description in headers.items()
                }
        return responses

    def _insert_field_validators(
        self, field: serializers.Field[Any, Any, Any, Any], schema: dict[str, Any]
    ) -> None:
        """Also publish a field's `pattern` (see serializers.StrictCharField), added after
        drf-spectacular's own: it would wrap a pattern of a blank-allowing field in a `oneOf`
        with "", which such a pattern already matches."""
        super()._insert_field_validators(field, schema)
        pattern = getattr(field, "pattern", None)
        if isinstance(pattern, str) and schema.get("type") == "string":
            schema["pattern"] = pattern

    def _map_serializer_field(
        self,
        field: serializers.Field[Any, Any, Any, Any],
        direction: Direction,
        bypass_extensions: bool = False,
    ) -> dict[str, Any] | None:
        """Also state a list serializer's `min_length` and `max_length` as minItems/maxItems."""
        schema: dict[str, Any] | None = super()._map_serializer_field(
            field, direction, bypass_extensions
        )
        if isinstance(field, serializers.ListSerializer) and schema is not None:
            # DRF's ListSerializer has both; its stubs lack them.
            lengths = (("minItems", field.min_length), ("maxItems", field.max_length))  # type: ignore[attr-defined]
            for keyword, bound in lengths:
                if bound is not None:
                    schema[keyword] = bound
        return schema

    def error_status_codes(self) -> list[str]:
        """The error statuses this operation can answer (each described in ERROR_DESCRIPTIONS)."""
        codes: set[str] = set()
        action: str | None = getattr(self.view, "action", None)
        authenticated = any(isinstance(p, IsAuthenticated) for p in self.view.get_permissions())
        if authenticated:
            codes |= {"401", "429", "503"}
        if self.method in ("POST", "PUT", "PATCH") and self.get_request_serializer():
            codes |= {"400", "413", "415", "422"}
        codes |= getattr(self.view, "action_errors", {}).get(action, set())
        if action in WRITE_ACTIONS:
            codes |= {"412"}
        if "{id}" in self.path:
            codes |= {"404"}
        return sorted(codes)


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "tasks.authentication.BearerTokenAuthentication"
    name = "bearerAuth"
    priority = 1

    def get_security_definition(self, auto_schema: AutoSchema) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A JWT whose `sub` is the user id: HS256 signed with "
            "`BETTER_AUTH_SECRET`, or (when `BETTER_AUTH_URL` is set) signed by the Better Auth "
            "server's keys, published as its JWKS.",
        }


class LiteralField(OpenApiSerializerFieldExtension):
    """serializers.Literal: an `enum` of its values."""

    target_class = "tasks.serializers.Literal"

    def map_serializer_field(self, auto_schema: AutoSchema, direction: Direction) -> dict[str, Any]:
        values = list(self.target.choices)
        kind = "boolean" if all(isinstance(value, bool) for value in values) else "string"
        return {"type": kind, "enum": values}


class AbsentField(OpenApiSerializerFieldExtension):
    """bulk.Absent: no value is valid (`{"not": {}}`), so the key must not be there."""

    target_class = "tasks.bulk.Absent"

    def map_serializer_field(self, auto_schema: AutoSchema, direction: Direction) -> dict[str, Any]:
        return {"not": {}}


class BulkOperation(OpenApiSerializerExtension):
    """A bulk operation: one of the schemas of its `op`s."""

    target_class = "tasks.bulk.OperationSerializer"

    def map_serializer(self, auto_schema: AutoSchema, direction: Direction) -> dict[str, Any]:
        from .bulk import OPERATIONS

        variants = dict.fromkeys(OPERATIONS.values())  # in order, each once
        refs = [auto_schema.resolve_serializer(variant, direction).ref for variant in variants]
        return {"oneOf": refs}


class TaskFilterParameters(DjangoFilterExtension):
    """django-filter's parameters, keeping a filter's `help_text` as the description also when
    its schema is given with `extend_schema_field`; a multiple choice takes each choice once
    (tasks.filters.TaskFilterForm refuses a repeat)."""

    priority = 1

    def resolve_filter_field(
        self,
        auto_schema: AutoSchema,
        model: type[Model],
        filterset_class: type[filters.FilterSet],
        field_name: str,
        filter_field: filters.Filter,
    ) -> list[dict[str, Any]]:
        parameters: list[dict[str, Any]] = super().resolve_filter_field(
            auto_schema, model, filterset_class, field_name, filter_field
        )
        help_text = filter_field.extra.get("help_text")
        for parameter in parameters:
            if help_text:
                parameter.setdefault("description", str(help_text))
            if isinstance(filter_field, filters.MultipleChoiceFilter):  # each choice once
                choices = parameter["schema"]["items"]["enum"]
                parameter["schema"].update(uniqueItems=True, maxItems=len(choices))
        return parameters


def without_trailing_slashes(endpoints: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Document `/v1/tasks/{id}` rather than the router's optional-slash form `/v1/tasks/{id}/`."""
    return [(path.rstrip("/") or "/", *rest) for path, *rest in endpoints]


# OpenAPI links: how the task in one response is addressed by the operations on it, with its ETag
# as `If-Match`, so that a chain of conditional writes uses the version it was just given.
_TASK_ID = {"id": "$response.body#/id"}
_IF_MATCH = {"header.If-Match": "$response.header.ETag"}
TASK_LINKS = {
    "GetTask": {"operationId": "getTask", "parameters": _TASK_ID},
    "ReplaceTask": {"operationId": "replaceTask", "parameters": {**_TASK_ID, **_IF_MATCH}},
    "ChangeTask": {"operationId": "updateTask", "parameters": {**_TASK_ID, **_IF_MATCH}},
    "ToggleTask": {"operationId": "toggleTask", "parameters": {**_TASK_ID, **_IF_MATCH}},
    "DeleteTask": {"operationId": "deleteTask", "parameters": {**_TASK_ID, **_IF_MATCH}},
    # To the top (`after: null`): any other `after` must name another of the caller's live tasks.
    "MoveTaskFirst": {
        "operationId": "moveTask",
        "parameters": _TASK_ID,
        "requestBody": {"after": None},
    },
}
# The responses that carry one task and its ETag: (operationId, status).
TASK_RESPONSES = {
    ("createTask", "201"),
    ("getTask", "200"),
    ("replaceTask", "200"),
    ("updateTask", "200"),
    ("toggleTask", "200"),
}


NEXT_OCCURRENCE_ID = {
    "type": "string",
    "format": "uuid",
    "readOnly": True,
    "description": "Only in the answer to the write that completed a recurring task: the id of "
    "the next occurrence it created.",
}


# A new task with a rule needs a due date (serializers.NewTaskSerializer), in JSON Schema: no
# rule, or a `due_at` that is a string (not null).
RULE_NEEDS_DUE_AT = [
    {"properties": {"recurrence": {"maxLength": 0}}},
    {"required": ["due_at"], "properties": {"due_at": {"type": "string"}}},
]


def add_task_links(
    result: dict[str, Any], generator: SchemaGenerator, request: Request | None, public: bool
) -> dict[str, Any]:
    """Postprocessing hook: the links of TASK_LINKS on every response of TASK_RESPONSES, and
    the `next_occurrence_id` that such a response may carry (views.task_response adds it)."""
    schemas = result["components"]["schemas"]
    schemas["Task"]["properties"]["next_occurrence_id"] = NEXT_OCCURRENCE_ID
    schemas["NewTaskRequest"]["anyOf"] = RULE_NEEDS_DUE_AT
    for item in result["paths"].values():
        for operation in item.values():
            for status, response in operation.get("responses", {}).items():
                if (operation.get("operationId"), status) in TASK_RESPONSES:
                    response["links"] = copy.deepcopy(TASK_LINKS)
    return result


# Request-body examples: what Swagger UI's "Try it out" sends as is, so each one succeeds for any
# signed-in user (tasks/tests/test_schema_examples.py runs them all). Hence no ids: a task or list
# id in an example would name nobody's task; a bulk batch names its new tasks by `temp_id`. The
# first example of an operation is the one Swagger UI fills in.
def _request_example(name: str, value: Any, description: str = "") -> OpenApiExample:
    return OpenApiExample(name, value=value, description=description, request_only=True)


EXAMPLE_DUE_AT = "2030-06-07T17:00:00Z"

CREATE_TASK_EXAMPLES = [
    _request_example(
        "A task with a due date and a label",
        {"title": "Buy milk", "due_at": EXAMPLE_DUE_AT, "labels": ["home"], "priority": "medium"},
    ),
    _request_example("Just a title", {"title": "Call the plumber"}),
    _request_example(
        "A weekly task",
        {
            "title": "Take out the recycling",
            "details": "Blue bin: paper and cans.",
            "due_at": "2030-06-03",
            "recurrence": "FREQ=WEEKLY;BYDAY=MO",
            "labels": ["home", "chores"],
        },
        "A recurring task needs a `due_at`: completing it creates the next occurrence.",
    ),
]
REPLACE_TASK_EXAMPLES = [
    _request_example(
        "Every writable field",
        {
            "title": "Buy oat milk",
            "details": "Two cartons, unsweetened.",
            "completed": False,
            "due_at": EXAMPLE_DUE_AT,
            "priority": "high",
            "labels": ["home", "groceries"],
            "recurrence": "",
        },
    ),
]
UPDATE_TASK_EXAMPLES = [
    _request_example("Complete it", {"completed": True}),
    _request_example("Reschedule it", {"due_at": "2030-06-08", "priority": "high"}),
    _request_example("Clear the due date", {"due_at": None}),
]
MOVE_TASK_EXAMPLES = [
    _request_example(
        "To the top",
        {"after": None},
        "`after` may name a sibling instead; `parent_id` and `list_id` move it elsewhere.",
    ),
    _request_example("To the top level, first", {"after": None, "parent_id": None}),
]
BULK_EXAMPLES = [
    _request_example(
        "A task with two subtasks",
        {
            "operations": [
                {
                    "op": "create",
                    "temp_id": "trip",
                    "data": {"title": "Plan the trip", "due_at": "2030-07-01"},
                },
                {
                    "op": "create",
                    "temp_id": "tickets",
                    "data": {"title": "Book the train tickets", "parent_id": "trip"},
                },
                {
                    "op": "create",
                    "temp_id": "packing",
                    "data": {"title": "Pack", "parent_id": "trip", "labels": ["travel"]},
                },
                {"op": "update", "id": "tickets", "data": {"priority": "high"}},
                {"op": "toggle", "id": "packing"},
            ]
        },
        "Operations after a create name its task by its `temp_id`; `temp_id_mapping` in the "
        "answer gives the ids.",
    ),
]
CREATE_LIST_EXAMPLES = [_request_example("A list", {"title": "Groceries"})]
RENAME_LIST_EXAMPLES = [_request_example("A new title", {"title": "Weekend groceries"})]
MOVE_LIST_EXAMPLES = [_request_example("To the top", {"after": None})]
