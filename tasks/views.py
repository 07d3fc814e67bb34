import re
import uuid
from collections.abc import Callable
from functools import cached_property
from importlib import resources
from typing import Any, NoReturn
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.utils.cache import get_conditional_response
from django.utils.http import parse_etags
from django.views.decorators.http import require_http_methods
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from drf_spectacular.views import SpectacularAPIView
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from . import idempotency, selectors, services, sync, throttling
from .authentication import DEVELOPMENT_COOKIE_NAME, BearerTokenAuthentication
from .bulk import (
    MAX_OPERATIONS,
    BulkResponseSerializer,
    BulkSerializer,
    tasks_bulk,
    with_temp_ids,
)
from .exceptions import error_body
from .filters import TaskFilter
from .models import IDEMPOTENCY_KEY_MAX_LENGTH, Task, TaskQuerySet
from .pagination import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    PAGE_SIZE_SCHEMA,
    SIGNED_TOKEN_SCHEMA,
    KeysetPagination,
)
from .renderers import ORJSONRenderer
from .schema import (
    BULK_EXAMPLES,
    CREATE_TASK_EXAMPLES,
    MOVE_TASK_EXAMPLES,
    REPLACE_TASK_EXAMPLES,
    TASK_ACTION_ERRORS,
    UPDATE_TASK_EXAMPLES,
)
from .serializers import (
    ChangesSerializer,
    MoveSerializer,
    NewTaskSerializer,
    StatsSerializer,
    TaskSerializer,
    timestamp,
)

IF_MATCH = OpenApiParameter(
    "If-Match",
    str,
    OpenApiParameter.HEADER,
    description="Apply only if the task's current ETag is one of these (else 412).",
)
IF_NONE_MATCH = OpenApiParameter(
    "If-None-Match",
    str,
    OpenApiParameter.HEADER,
    description="Answer 304 (no body) if the task's ETag is one of these.",
)
IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    {"type": "string", "minLength": 1, "maxLength": IDEMPOTENCY_KEY_MAX_LENGTH},
    OpenApiParameter.HEADER,
    description="Retries with the same key (24 h, per user) replay the first 201 response and "
    "create nothing; the same key with a different body is a 409.",
)
LIST_PARAMETER = OpenApiParameter(
    "list", OpenApiTypes.UUID, description="Only this list's tasks (a list id)."
)
TASK_RESPONSE = OpenApiResponse(
    TaskSerializer,
    description="The task; its `ETag` header is its current version.",
)
# Response headers of the operations that answer with one task.
ETAG = OpenApiParameter(
    "ETag",
    str,
    OpenApiParameter.HEADER,
    required=True,
    response=[200, 201, 304],
    description="The task's current version, for `If-Match` and `If-None-Match`.",
)
LOCATION = OpenApiParameter(
    "Location",
    OpenApiTypes.URI,
    OpenApiParameter.HEADER,
    required=True,
    response=[201],
    description="The new task's URL.",
)


# The zones of the pinned tzdata package (so the schema's list is the same on every machine),
# without its "Factory" placeholder.
IANA_ZONES = frozenset(resources.files("tzdata").joinpath("zones").read_text().split()) - {
    "Factory"
}


class RateLimitHeaders(APIView):
    """Sends the throttle's RateLimit headers (tasks.throttling) with every answer."""

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)
        for header, value in getattr(request, "rate_limit_headers", {}).items():
            response[header] = value
        return response


@extend_schema_view(
    list=extend_schema(operation_id="listTasks", summary="List the caller's tasks, newest first"),
    create=extend_schema(
        operation_id="createTask",
        summary="Create a task",
        request=NewTaskSerializer,
        examples=CREATE_TASK_EXAMPLES,
        parameters=[IDEMPOTENCY_KEY, ETAG, LOCATION],
        responses={201: TASK_RESPONSE},
    ),
    retrieve=extend_schema(
        operation_id="getTask",
        summary="Get a task",
        parameters=[IF_NONE_MATCH, ETAG],
        responses={200: TASK_RESPONSE, 304: None},
    ),
    update=extend_schema(
        operation_id="replaceTask",
        summary="Replace a task's writable fields (omitted optional ones stay)",
        parameters=[IF_MATCH, ETAG],
        examples=REPLACE_TASK_EXAMPLES,
        responses={200: TASK_RESPONSE},
    ),
    partial_update=extend_schema(
        operation_id="updateTask",
        summary="Change some of a task's writable fields",
        parameters=[IF_MATCH, ETAG],
        examples=UPDATE_TASK_EXAMPLES,
        responses={200: TASK_RESPONSE},
    ),
    destroy=extend_schema(
        operation_id="deleteTask", summary="Delete a task", parameters=[IF_MATCH]
    ),
)
class TaskViewSet(viewsets.ModelViewSet[Task], RateLimitHeaders):
    """Tasks of the caller (the token's `sub`); another user's task is a 404, as a missing one."""

    queryset = Task.objects.none()  # for schema introspection only; requests use get_queryset
    action_errors = TASK_ACTION_ERRORS
    serializer_class = TaskSerializer
    pagination_class = KeysetPagination
    filterset_class = TaskFilter

    @property
    def user_id(self) -> str:
        """The caller: the token's `sub` (tasks.authentication)."""
        user_id: str = self.request.user.id  # type: ignore[assignment]
        return user_id

    def get_queryset(self) -> TaskQuerySet:
        return selectors.task_list(user_id=self.user_id)

    @cached_property
    def names_filters(self) -> bool:
        """Whether this is a list that names a filter."""
        return self.action == "list" and not self.request.query_params.keys().isdisjoint(FILTERS)

    @cached_property
    def tree_filters(self) -> dict[str, uuid.UUID | None]:
        """A list filtered by `list` and `parent` alone (the view of a list, of a task's
        subtasks): their values, read from compiled SQL like an unfiltered list ({} for any
        other list; an invalid value is the FilterSet's to refuse)."""
        query = self.request.query_params
        if not self.names_filters or not query.keys() - PAGE_PARAMETERS <= TREE_FILTERS.keys():
            return {}
        values: dict[str, uuid.UUID | None] = {}
        for name, field in TREE_FILTERS.items():
            given = query.getlist(name)
            if len(given) > 1:
                return {}
            if given and name == "parent" and given[0] == "none":
                values[field] = None
            elif given:
                try:
                    values[field] = uuid.UUID(given[0])
                except ValueError:
                    return {}
        return values

    @property
    def list_is_filtered(self) -> bool:
        """Whether this list is read through the ORM (its filters by the FilterSet); a list
        without filters, or with tree_filters, is read from compiled SQL (KeysetPagination)."""
        return self.names_filters and not self.tree_filters

    def filter_queryset(self, queryset: QuerySet[Task]) -> QuerySet[Task]:  # type: ignore[override]
        # The query-string filters are the list's; a single task's lookup does not parse them,
        # and neither does a list without any (building the FilterSet's form is most of the
        # Python time of an unfiltered first page).
        if not self.list_is_filtered:
            return queryset
        return super().filter_queryset(queryset)

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        response = super().list(request, *args, **kwargs)
        if not response.data["results"] and self.names_filters:
            # An empty page: was it a list or a parent the caller does not have? (A page with
            # rows proves they exist: only their owner's tasks are in them.)
            query = request.query_params
            if "list" in query:
                named_list(self.user_id, query["list"])
            if query.get("parent", "none") != "none" and not selectors.task_exists(
                user_id=self.user_id, task_id=uuid.UUID(query["parent"])
            ):
                raise NotFound()
        return response

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = NewTaskSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)

        def create() -> dict[str, Any]:
            task = services.task_create(
                user_id=self.user_id,
                fields=serializer.validated_data,
                max_tasks=settings.MAX_TASKS_PER_USER,
            )
            return {"body": self.get_serializer(task).data, "etag": task.etag}

        return created(
            request,
            user_id=self.user_id,
            create=create,
            fingerprint=idempotency.request_fingerprint(request.data),
            collection="/v1/tasks",
        )

    def get_object(self) -> Task:
        """The caller's task named in the URL."""
        try:
            task_id = uuid.UUID(self.kwargs["pk"])
        except ValueError:
            raise NotFound() from None  # not a task id
        task = selectors.task_get(user_id=self.user_id, task_id=task_id)
        if task is None:
            raise NotFound()
        self.check_object_permissions(self.request, task)
        return task

    def retrieve(  # type: ignore[override]  # a 304 is Django's response
        self, request: Request, *args: Any, **kwargs: Any
    ) -> HttpResponseBase:
        task = self.get_object()
        return not_modified(request, task.etag) or self.task_response(task)

    def update(
        self, request: Request, *args: Any, partial: bool = False, **kwargs: Any
    ) -> Response:
        serializer = self.get_serializer(data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        task = services.task_update(
            user_id=self.user_id,
            task_id=kwargs["pk"],
            changes=serializer.validated_data,
            versions=if_match_versions(request),
        )
        return self.task_response(task)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.task_delete(
            user_id=self.user_id, task_id=kwargs["pk"], versions=if_match_versions(request)
        )
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        operation_id="toggleTask",
        summary="Flip a task's completed state atomically",
        description="Completes an open task, or reopens a completed one, in one write. "
        "Completing a recurring task also creates its next occurrence "
        "(`next_occurrence_id`).",
        parameters=[IF_MATCH, ETAG],
        request=None,
        responses={200: TASK_RESPONSE},
    )
    @action(detail=True, methods=["post"], serializer_class=serializers.Serializer)
    def toggle(self, request: Request, pk: str | None = None) -> Response:
        task = services.task_toggle(
            user_id=self.user_id, task_id=pk, versions=if_match_versions(request)
        )
        return self.task_response(task)

    @extend_schema(
        operation_id="moveTask",
        summary="Move a task among its siblings, under another parent or to another list",
        description="Puts the task right after a sibling (`after`), or first (`after: null`), "
        "optionally under another parent (`parent_id`) or in another list (`list_id`).",
        parameters=[ETAG],
        request=MoveSerializer,
        examples=MOVE_TASK_EXAMPLES,
        responses={200: TASK_RESPONSE},
    )
    @action(detail=True, methods=["post"], serializer_class=MoveSerializer)
    def move(self, request: Request, pk: str | None = None) -> Response:
        serializer = MoveSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        task = services.task_move(
            user_id=self.user_id,
            task_id=pk,
            after_id=data["after"],
            **{name: data[name] for name in ("parent_id", "list_id") if name in data},
        )
        return self.task_response(task)

    @extend_schema(
        operation_id="clearCompletedTasks",
        summary="Delete the caller's completed tasks",
        description="Deletes every completed task of the caller, or of one list with `list`.",
        parameters=[LIST_PARAMETER],
        request=None,
        responses={200: inline_serializer("Cleared", {"deleted": serializers.IntegerField()})},
    )
    @action(
        detail=False,
        methods=["post"],
        url_path="clear-completed",
        serializer_class=serializers.Serializer,  # takes no body (OPTIONS describes one)
    )
    def clear_completed(self, request: Request) -> Response:
        list_id = list_parameter(request)
        deleted = services.tasks_clear_completed(user_id=self.user_id, list_id=list_id)
        if not deleted and list_id is not None:
            named_list(self.user_id, str(list_id))
        return Response({"deleted": deleted})

    @extend_schema(
        operation_id="bulkTasks",
        summary=f"Apply up to {MAX_OPERATIONS} operations atomically (all or nothing)",
        request=BulkSerializer,
        examples=BULK_EXAMPLES,
        responses={200: BulkResponseSerializer},
    )
    @action(detail=False, methods=["post"], serializer_class=BulkSerializer)
    def bulk(self, request: Request) -> Response:
        data, temp_id_mapping, created_ids = with_temp_ids(request.data)
        serializer = BulkSerializer(data=data)
        serializer.is_valid(raise_exception=True)
        operations = serializer.validated_data["operations"]
        # One rate-limit unit per operation: the throttle has counted the first.
        throttling.charge(request, len(operations) - 1)
        results = tasks_bulk(
            user_id=self.user_id,
            operations=operations,
            max_tasks=settings.MAX_TASKS_PER_USER,
            context=self.get_serializer_context(),
            created_ids=created_ids,
        )
        return Response({"results": results, "temp_id_mapping": temp_id_mapping})

    @extend_schema(
        operation_id="getTaskStats",
        summary="Count the caller's tasks: open, completed, overdue, due today",
        description="Counts of the caller's tasks, or of one list's with `list`, in one query.",
        parameters=[
            LIST_PARAMETER,
            OpenApiParameter(
                "tz",
                str,
                enum=sorted(IANA_ZONES),
                default="UTC",
                description="IANA time zone for `due_today`.",
            ),
        ],
        responses={200: StatsSerializer},
    )
    @action(detail=False, methods=["get"], serializer_class=StatsSerializer)
    def stats(self, request: Request) -> Response:
        zone = time_zone(request.query_params.get("tz", "UTC"))
        list_id = list_parameter(request)
        counts = selectors.tasks_stats(user_id=self.user_id, zone=zone, list_id=list_id)
        if not counts["total"] and list_id is not None:
            named_list(self.user_id, str(list_id))
        return Response(counts)

    @extend_schema(
        operation_id="listTaskChanges",
        summary="Every task change since a sync token, oldest first",
        description="Tasks created or changed since `since`, and deleted ones as tombstones; "
        "without `since`, every task.",
        parameters=[
            OpenApiParameter(
                "since", SIGNED_TOKEN_SCHEMA, description="`next_since` of the previous call."
            ),
            OpenApiParameter(
                "page_size",
                PAGE_SIZE_SCHEMA,
                description=f"Changes per call (default {DEFAULT_PAGE_SIZE}; values above "
                f"{MAX_PAGE_SIZE} are capped at {MAX_PAGE_SIZE}).",
            ),
        ],
        responses={200: ChangesSerializer},
    )
    @action(detail=False, methods=["get"], serializer_class=ChangesSerializer)
    def changes(self, request: Request) -> Response:
        raw = request.query_params.get("since")
        since = sync.SyncToken.decode(raw) if raw is not None else sync.SyncToken()
        rows, has_more = sync.changes_page(
            user_id=self.user_id,
            since=since,
            page_size=KeysetPagination().get_page_size(request),
        )
        context = self.get_serializer_context()
        results = [
            {"id": str(row.id), "deleted": True, "deleted_at": timestamp(row.deleted_at)}
            if row.deleted_at
            else {**TaskSerializer(row, context=context).data, "deleted": False}
            for row in rows
        ]
        token = sync.next_token(rows, since, has_more).encode()
        return Response({"results": results, "next_since": token, "has_more": has_more})

    def task_response(self, task: Task) -> Response:
        data = TaskSerializer(task, context=self.get_serializer_context()).data
        next_occurrence = getattr(task, "next_occurrence", None)
        if next_occurrence is not None:
            data["next_occurrence_id"] = str(next_occurrence.id)
        return Response(data, headers={"ETag": task.etag})


FILTERS = frozenset(TaskFilter.base_filters)
TREE_FILTERS = {"list": "list_id", "parent": "parent_id"}  # query parameter: field
PAGE_PARAMETERS = frozenset({"cursor", "page_size", "ordering"})


def list_parameter(request: Request) -> uuid.UUID | None:
    """The `list` query parameter: a list id, or None (422 if it is not an id)."""
    raw = request.query_params.get("list")
    if raw is None:
        return None
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise ValidationError({"list": ["Must be a list id."]}, code="invalid") from None


def named_list(user_id: str, raw: str) -> None:
    """404 unless `raw` is one of the caller's lists (the same answer as for a missing one)."""
    if not selectors.list_exists(user_id=user_id, list_id=uuid.UUID(raw)):
        raise NotFound()


def time_zone(name: str) -> ZoneInfo:
    # Looked up in the list first: ZoneInfo also opens paths ("Europe" is a directory).
    if name not in IANA_ZONES:
        raise ValidationError({"tz": ["Not an IANA time zone."]}, code="invalid")
    return ZoneInfo(name)


def created(
    request: Request,
    *,
    user_id: str,
    create: Callable[[], dict[str, Any]],
    fingerprint: str,
    collection: str,
) -> Response:
    """The 201 of a create: `create()` returns the new resource's body and ETag; with an
    `Idempotency-Key`, it runs once per key and a retry replays its answer (tasks.idempotency)."""
    key = idempotency.request_key(request)
    if key is None:
        result, replayed = create(), False
    else:
        result, replayed = idempotency.create_idempotent(
            user_id=user_id, key=key, fingerprint=fingerprint, create=create
        )
    headers = {
        "ETag": result["etag"],
        "Location": request.build_absolute_uri(f"{collection}/{result['body']['id']}"),
    }
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return Response(result["body"], status=status.HTTP_201_CREATED, headers=headers)


def not_modified(request: Request, etag: str) -> HttpResponseBase | None:
    """A 304 (with the ETag) when `If-None-Match` names the resource's current ETag."""
    response = get_conditional_response(request, etag=etag)
    if response is not None:
        response["ETag"] = etag
    return response


def if_match_versions(request: Request) -> services.Versions:
    """The task versions an `If-Match` header accepts (RFC 9110 §13.1.1: strong comparison)."""
    header = request.headers.get("If-Match")
    if header is None:
        return None
    etags = parse_etags(header)
    if etags == ["*"]:
        return services.ANY_VERSION
    return [int(etag[1:-1]) for etag in etags if re.fullmatch(r'"[0-9]{1,9}"', etag)]


class SchemaView(SpectacularAPIView):
    """The OpenAPI document, in YAML (or JSON); its own errors (405) are JSON, as under /v1."""

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        if response.status_code >= status.HTTP_400_BAD_REQUEST:
            request.accepted_renderer, request.accepted_media_type = (
                ORJSONRenderer(),
                "application/json",
            )
        return super().finalize_response(request, response, *args, **kwargs)


class UnknownAPIPath(APIView):
    """Any path under /v1 that no route serves: a JSON 404, with DEBUG on or off."""

    authentication_classes = []
    permission_classes = []
    schema = None

    def http_method_not_allowed(self, request: HttpRequest, *args: Any, **kwargs: Any) -> NoReturn:
        raise NotFound()

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> NoReturn:
        raise NotFound()


_status = inline_serializer("Status", {"status": serializers.CharField()})


class Healthz(APIView):
    authentication_classes = []
    permission_classes = []

    @extend_schema(
        operation_id="healthz",
        summary="Liveness: the process answers (no database)",
        responses={200: _status},
    )
    def get(self, request: Request) -> Response:
        return Response({"status": "ok"})


class Readyz(APIView):
    authentication_classes = []
    permission_classes = []

    @extend_schema(
        operation_id="readyz",
        summary="Readiness: the database answers",
        responses={200: _status, 503: _status},
    )
    def get(self, request: Request) -> Response:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
        except DatabaseError:
            return Response({"status": "unavailable"}, status=503, headers={"Retry-After": "5"})
        return Response({"status": "ok"})


@require_http_methods(["GET", "POST"])
def development_login(request: HttpRequest) -> HttpResponse:
    """DEBUG only: hand the browser a token (as a cookie) for the browsable API; a POST with
    `logout` takes it back."""
    if request.method == "POST" and request.POST.get("logout"):
        response = HttpResponseRedirect("/dev/login")
        response.delete_cookie(DEVELOPMENT_COOKIE_NAME, samesite="Strict")
        return response
    if request.method == "POST" and request.POST.get("token"):
        response = HttpResponseRedirect("/v1/tasks")
        response.set_cookie(
            DEVELOPMENT_COOKIE_NAME,
            request.POST["token"].strip(),
            httponly=True,
            samesite="Strict",
        )
        return response
    if request.method == "POST":
        body = error_body("required", "Paste a token.", "validation_error")
        return JsonResponse(body, status=422)
    raw_token = request.COOKIES.get(DEVELOPMENT_COOKIE_NAME, "")
    return render(
        request,
        "tasks/development_login.html",
        {"has_cookie": bool(raw_token), "signed_in_as": development_user_id(raw_token)},
    )


def development_user_id(raw_token: str) -> str | None:
    """The user id of the development cookie's token, if it is (still) a valid one."""
    if not raw_token:
        return None
    authentication = BearerTokenAuthentication()
    try:
        user = authentication.get_user(authentication.get_validated_token(raw_token.encode()))
        user_id: str = user.id  # type: ignore[attr-defined]  # a TokenUser: the token's sub
    except APIException:  # an invalid token (simplejwt's InvalidToken), or no keys to check it
        return None
    return user_id
