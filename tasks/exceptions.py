"""One error shape for every error the service answers (documented in contracts/errors.md):

    {"type": "validation_error" | "client_error" | "server_error",
     "errors": [{"code": "...", "detail": "...", "attr": "title" | null}]}

drf-standardized-errors formats it; this module maps our exceptions onto it.
"""

import logging
from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, JsonResponse
from drf_standardized_errors.formatter import ExceptionFormatter
from drf_standardized_errors.handler import ExceptionHandler
from drf_standardized_errors.handler import exception_handler as standardized_exception_handler
from drf_standardized_errors.types import ErrorResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework_simplejwt.exceptions import DetailDictMixin

from . import errors
from .in_doubt import WriteOutcomeUnknown

logger = logging.getLogger(__name__)

DATABASE_RETRY_AFTER_SECONDS = 5


class DatabaseUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The database is unavailable; retry shortly."
    default_code = "database_unavailable"
    wait: int  # seconds: DRF's handler sends it as Retry-After when it is set


# The answer to each domain error (tasks.errors) that is not its field's 422.
STATUSES: dict[type[errors.TaskError], int] = {
    errors.PreconditionFailed: status.HTTP_412_PRECONDITION_FAILED,
    errors.TaskLimitReached: status.HTTP_409_CONFLICT,
    errors.RecurrenceNeedsDueAt: status.HTTP_409_CONFLICT,
    errors.IdempotencyKeyReused: status.HTTP_409_CONFLICT,
    errors.ListLimitReached: status.HTTP_409_CONFLICT,
    errors.DefaultListUndeletable: status.HTTP_409_CONFLICT,
    errors.ReferenceNotFound: status.HTTP_404_NOT_FOUND,
}


def api_exception(
    exc: ObjectDoesNotExist | errors.TaskError | exceptions.APIException,
) -> exceptions.APIException:
    """The API's answer to a missing task, to a domain error, or to an API error (itself)."""
    if isinstance(exc, ObjectDoesNotExist):
        return exceptions.NotFound()
    if isinstance(exc, errors.TaskError):
        status_code = STATUSES.get(type(exc), status.HTTP_422_UNPROCESSABLE_ENTITY)
        if status_code == status.HTTP_422_UNPROCESSABLE_ENTITY:
            return exceptions.ValidationError({str(exc.field): [exc.message]}, code=exc.code)
        detail: Any = exc.message if exc.field is None else {exc.field: [exc.message]}
        converted = exceptions.APIException(detail, exc.code)
        converted.status_code = status_code
        return converted
    return exc


class BulkOperationFailed(exceptions.APIException):
    """Operation `index` of a bulk request failed with `error`: the batch changed nothing. The
    error keeps its own status; its `attr` is prefixed with `operations.<index>`."""

    def __init__(
        self, index: int, error: ObjectDoesNotExist | errors.TaskError | exceptions.APIException
    ) -> None:
        self.index = index
        # A domain error's field is one of the operation's `data`; a missing task, its `id`.
        self.prefix = f"operations.{index}"
        if isinstance(error, errors.TaskError) and error.field is not None:
            self.prefix += ".data"
        elif isinstance(error, ObjectDoesNotExist):
            self.prefix += ".id"
        self.error = api_exception(error)
        self.status_code = self.error.status_code
        super().__init__(self.error.detail)


class TaskAPIExceptionHandler(ExceptionHandler):
    def convert_known_exceptions(self, exc: Exception) -> Exception:
        if isinstance(exc, ObjectDoesNotExist | errors.TaskError):
            return api_exception(exc)
        if isinstance(exc, OperationalError | InterfaceError):
            # The database is unreachable (or, on SQLite, locked): a retryable outage.
            logger.warning("Database unavailable: %s", exc)
            unavailable = DatabaseUnavailable()
            unavailable.wait = DATABASE_RETRY_AFTER_SECONDS
            return unavailable
        if isinstance(exc, WriteOutcomeUnknown):
            exc.wait = DATABASE_RETRY_AFTER_SECONDS  # type: ignore[attr-defined]  # Retry-After
            return exc
        if isinstance(exc, DetailDictMixin):
            # simplejwt's details are dicts (with per-token-class messages): keep one message.
            detail = exc.detail  # type: ignore[attr-defined]  # the mixin's APIException sets it
            messages = detail.get("messages") or [{"message": detail.get("detail")}]
            converted = exceptions.AuthenticationFailed(
                detail=str(messages[0]["message"]), code="token_not_valid"
            )
            # DRF's handler reads it as WWW-Authenticate.
            converted.auth_header = getattr(exc, "auth_header", None)  # type: ignore[attr-defined]
            return converted
        return super().convert_known_exceptions(exc)

    def report_exception(self, exc: exceptions.APIException, response: Response) -> None:
        # A 503 (database or auth server unreachable) is an expected outage, logged where it is
        # detected; only unexpected 500s go to error reporting.
        if response.status_code == status.HTTP_500_INTERNAL_SERVER_ERROR:
            super().report_exception(exc, response)

    def format_exception(self, exc: exceptions.APIException) -> dict[str, Any]:
        if isinstance(exc, BulkOperationFailed):
            # The failing operation's own error, located in the batch.
            data = super().format_exception(exc.error)
            for error in data["errors"]:
                error["attr"] = f"{exc.prefix}.{error['attr']}" if error["attr"] else exc.prefix
            return data
        return super().format_exception(exc)

    def get_response(self, exc: exceptions.APIException, data: dict[str, Any]) -> Response:
        response = super().get_response(exc, data)
        if isinstance(getattr(exc, "error", exc), exceptions.ValidationError):
            # A body or parameter that parsed but is not acceptable (RFC 9110 §15.5.21).
            response.status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
        return response


exception_handler = standardized_exception_handler


class ErrorFormatter(ExceptionFormatter):
    def format_error_response(self, error_response: ErrorResponse) -> dict[str, Any]:
        # What `dataclasses.asdict` returns, without its generic deep copy (on every 401).
        return {
            "type": error_response.type,
            "errors": [
                {"code": error.code, "detail": error.detail, "attr": error.attr}
                for error in error_response.errors
            ],
        }


def error_body(code: str, detail: str, error_type: str = "client_error") -> dict[str, Any]:
    return {"type": error_type, "errors": [{"code": code, "detail": detail, "attr": None}]}


def json_not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    """handler404: Django-level 404s (outside the API views) in the same shape."""
    return JsonResponse(error_body("not_found", "Not found."), status=404)


def json_bad_request(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(error_body("bad_request", "Bad request."), status=400)


def json_server_error(request: HttpRequest) -> JsonResponse:
    return JsonResponse(error_body("error", "A server error occurred.", "server_error"), status=500)
