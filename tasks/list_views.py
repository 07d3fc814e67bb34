"""`/v1/lists` (the caller's task lists) and `/v1/changes` (one sync feed for lists and tasks)."""

import uuid
from typing import Any

from django.conf import settings
from django.http.response import HttpResponseBase
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from . import idempotency, list_services, selectors, sync
from .models import TaskList
from .pagination import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    PAGE_SIZE_SCHEMA,
    SIGNED_TOKEN_SCHEMA,
    KeysetPagination,
    ListPagination,
)
from .schema import (
    CHANGES_ERRORS,
    CREATE_LIST_EXAMPLES,
    LIST_ACTION_ERRORS,
    MOVE_LIST_EXAMPLES,
    RENAME_LIST_EXAMPLES,
)
from .serializers import (
    AllChangesSerializer,
    ListMoveSerializer,
    TaskListSerializer,
    TaskSerializer,
    timestamp,
)
from .views import (
    IDEMPOTENCY_KEY,
    IF_MATCH,
    IF_NONE_MATCH,
    RateLimitHeaders,
    created,
    if_match_versions,
    not_modified,
)

ETAG = OpenApiParameter(
    "ETag",
    str,
    OpenApiParameter.HEADER,
    required=True,
    response=[200, 201, 304],
    description="The list's current version, for `If-Match` and `If-None-Match`.",
)
LOCATION = OpenApiParameter(
    "Location",
    str,
    OpenApiParameter.HEADER,
    required=True,
    response=[201],
    description="The new list's URL.",
)
LIST_RESPONSE = OpenApiResponse(
    TaskListSerializer, description="The list; its `ETag` header is its current version."
)


@extend_schema_view(
    list=extend_schema(
        operation_id="listLists", summary="List the caller's task lists, in their order"
    ),
    create=extend_schema(
        operation_id="createList",
        summary="Create a list (last in the caller's order)",
        parameters=[IDEMPOTENCY_KEY, ETAG, LOCATION],
        examples=CREATE_LIST_EXAMPLES,
        responses={201: LIST_RESPONSE},
    ),
    retrieve=extend_schema(
        operation_id="getList",
        summary="Get a list",
        parameters=[IF_NONE_MATCH, ETAG],
        responses={200: LIST_RESPONSE, 304: None},
    ),
    update=extend_schema(
        operation_id="replaceList",
        summary="Rename a list",
        parameters=[IF_MATCH, ETAG],
        responses={200: LIST_RESPONSE},
        examples=RENAME_LIST_EXAMPLES,
    ),
    partial_update=extend_schema(
        operation_id="updateList",
        summary="Rename a list",
        parameters=[IF_MATCH, ETAG],
        responses={200: LIST_RESPONSE},
        examples=RENAME_LIST_EXAMPLES,
    ),
    destroy=extend_schema(
        operation_id="deleteList",
        summary="Delete a list and every task in it (not the default list)",
        parameters=[IF_MATCH],
    ),
)
class TaskListViewSet(viewsets.ModelViewSet[TaskList], RateLimitHeaders):
    """The caller's task lists; another user's list is a 404, as a missing one."""

    queryset = TaskList.objects.none()  # for schema introspection only
    action_errors = LIST_ACTION_ERRORS
    serializer_class = TaskListSerializer
    pagination_class = ListPagination

    @property
    def user_id(self) -> str:
        user_id: str = self.request.user.id  # type: ignore[assignment]
        return user_id

    def get_queryset(self) -> Any:
        return TaskList.all_objects.for_user(self.user_id)

    def get_object(self) -> TaskList:
        try:
            list_id = uuid.UUID(self.kwargs["pk"])
        except ValueError:
            raise NotFound() from None
        task_list = selectors.list_get(user_id=self.user_id, list_id=list_id)
        if task_list is None:
            raise NotFound()
        return task_list

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)

        def create() -> dict[str, Any]:
            task_list = list_services.list_create(
                user_id=self.user_id,
                title=serializer.validated_data["title"],
                max_lists=settings.MAX_LISTS_PER_USER,
            )
            return {"body": self.get_serializer(task_list).data, "etag": task_list.etag}

        return created(
            request,
            user_id=self.user_id,
            create=create,
            fingerprint=idempotency.request_fingerprint({"list": request.data}),
            collection="/v1/lists",
        )

    def retrieve(  # type: ignore[override]  # a 304 is Django's response
        self, request: Request, *args: Any, **kwargs: Any
    ) -> HttpResponseBase:
        task_list = self.get_object()
        return not_modified(request, task_list.etag) or self.list_response(task_list)

    def update(
        self, request: Request, *args: Any, partial: bool = False, **kwargs: Any
    ) -> Response:
        serializer = self.get_serializer(data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        if "title" not in serializer.validated_data:  # a PATCH that changes nothing
            return self.list_response(self.get_object())
        task_list = list_services.list_update(
            user_id=self.user_id,
            list_id=kwargs["pk"],
            title=serializer.validated_data["title"],
            versions=if_match_versions(request),
        )
        return self.list_response(task_list)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        list_services.list_delete(
            user_id=self.user_id, list_id=kwargs["pk"], versions=if_match_versions(request)
        )
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        operation_id="moveList",
        summary="Move a list in the caller's order",
        description="Puts the list right after another one (`after`), or first (`after: null`).",
        parameters=[ETAG],
        request=ListMoveSerializer,
        examples=MOVE_LIST_EXAMPLES,
        responses={200: LIST_RESPONSE},
    )
    @action(detail=True, methods=["post"], serializer_class=ListMoveSerializer)
    def move(self, request: Request, pk: str | None = None) -> Response:
        serializer = ListMoveSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        task_list = list_services.list_move(
            user_id=self.user_id, list_id=pk, after_id=serializer.validated_data["after"]
        )
        return self.list_response(task_list)

    def list_response(self, task_list: TaskList) -> Response:
        return Response(TaskListSerializer(task_list).data, headers={"ETag": task_list.etag})


class AllChangesView(RateLimitHeaders):
    """`GET /v1/changes`: every list and task changed since a sync token."""

    action_errors = CHANGES_ERRORS

    @extend_schema(
        operation_id="listChanges",
        summary="Every change to the caller's lists and tasks since a sync token, oldest first",
        parameters=[
            OpenApiParameter(
                "since", SIGNED_TOKEN_SCHEMA, description="`next_since` of the previous call."
            ),
            OpenApiParameter(
                "page_size",
                PAGE_SIZE_SCHEMA,
                description="Changes per call, lists and tasks together (default "
                f"{DEFAULT_PAGE_SIZE}; values above {MAX_PAGE_SIZE} are capped at "
                f"{MAX_PAGE_SIZE}).",
            ),
        ],
        responses={200: AllChangesSerializer},
    )
    def get(self, request: Request) -> Response:
        user_id: str = request.user.id  # type: ignore[assignment]
        raw = request.query_params.get("since")
        since = sync.SyncToken.decode(raw) if raw is not None else sync.SyncToken()
        if raw is None:
            list_services.default_list(user_id=user_id)
        rows, has_more = sync.all_changes_page(
            user_id=user_id, since=since, page_size=KeysetPagination().get_page_size(request)
        )
        lists: list[dict[str, Any]] = []
        tasks: list[dict[str, Any]] = []
        for row in rows:
            if row.deleted_at:
                entry = {
                    "id": str(row.id),
                    "deleted": True,
                    "deleted_at": timestamp(row.deleted_at),
                }
            elif isinstance(row, TaskList):
                entry = {**TaskListSerializer(row).data, "deleted": False}
            else:
                entry = {**TaskSerializer(row).data, "deleted": False}
            (lists if isinstance(row, TaskList) else tasks).append(entry)
        token = sync.next_token(rows, since, has_more).encode()
        return Response({"lists": lists, "tasks": tasks, "next_since": token, "has_more": has_more})
