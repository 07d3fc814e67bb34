"""OpenAPI generation: each operation documents the errors it can answer, in the one shape."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated

ERROR_TYPES = ("validation_error", "client_error", "server_error")

ERROR_DESCRIPTIONS = {
    "400": "Malformed JSON, or a body that is not a JSON object.",
    "401": "Missing, malformed, expired or otherwise invalid bearer token.",
    "404": "No such task for the caller (also another user's task, or a malformed id).",
    "409": "The caller already has `MAX_TASKS_PER_USER` tasks; nothing was stored.",
    "410": "The sync token is older than the tombstone retention: resync without `since`.",
    "412": "The task's ETag no longer matches `If-Match`; nothing was changed.",
    "413": "The request body is over 1 MiB.",
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
# Errors an action answers beyond those of its method and path.
ACTION_ERRORS = {
    "list": {"422"},  # a bad query parameter
    "create": {"409", "422"},  # 422 also for a reused Idempotency-Key
    "bulk": {"404", "409", "422"},  # the failing operation's own error
    "changes": {"410", "422"},
    "stats": {"422"},
}


class ErrorItemSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Machine-readable error code.")
    detail = serializers.CharField(help_text="Human-readable message.")
    attr = serializers.CharField(
        allow_null=True, help_text="The field or parameter the error concerns, if any."
    )


class ErrorSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=ERROR_TYPES)
    errors = ErrorItemSerializer(many=True)

    class Meta:
        ref_name = "Error"


class TaskAPIAutoSchema(AutoSchema):
    def _get_response_bodies(self, direction="response"):
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

    def error_status_codes(self) -> list[str]:
        codes = set()
        action = getattr(self.view, "action", None)
        authenticated = any(isinstance(p, IsAuthenticated) for p in self.view.get_permissions())
        if authenticated:
            codes |= {"401", "429", "503"}
        if self.method in ("POST", "PUT", "PATCH") and self.get_request_serializer():
            codes |= {"400", "413", "415", "422"}
        codes |= ACTION_ERRORS.get(action, set())
        if action in WRITE_ACTIONS:
            codes |= {"412"}
        if "{id}" in self.path:
            codes |= {"404"}
        return sorted(codes)


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "tasks.authentication.BearerTokenAuthentication"
    name = "bearerAuth"
    priority = 1

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A JWT whose `sub` is the user id: HS256 signed with "
            "`BETTER_AUTH_SECRET`, or (when `BETTER_AUTH_URL` is set) signed by the Better Auth "
            "server's keys, published as its JWKS.",
        }


def without_trailing_slashes(endpoints):
    """Document `/v1/tasks/{id}` rather than the router's optional-slash form `/v1/tasks/{id}/`."""
    return [(path.rstrip("/") or "/", *rest) for path, *rest in endpoints]
