from django.db import DatabaseError, connection
from django.http import HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods
from drf_spectacular.utils import extend_schema, extend_schema_view, inline_serializer
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from . import services
from .authentication import DEVELOPMENT_COOKIE_NAME
from .exceptions import error_body
from .filters import TaskFilter
from .models import Task
from .pagination import KeysetPagination
from .serializers import TaskSerializer


@extend_schema_view(
    list=extend_schema(summary="List the caller's tasks, newest first"),
    create=extend_schema(summary="Create a task"),
    retrieve=extend_schema(summary="Get a task"),
    update=extend_schema(summary="Replace a task's writable fields (omitted optional ones stay)"),
    partial_update=extend_schema(summary="Change some of a task's writable fields"),
    destroy=extend_schema(summary="Delete a task"),
)
class TaskViewSet(viewsets.ModelViewSet):
    """Tasks of the caller (the token's `sub`); another user's task is a 404, as a missing one."""

    queryset = Task.objects.none()  # for schema introspection only; requests use get_queryset
    serializer_class = TaskSerializer
    pagination_class = KeysetPagination
    filterset_class = TaskFilter

    def get_queryset(self):
        return Task.objects.for_user(self.request.user.id)

    def perform_create(self, serializer):
        serializer.save(user_id=self.request.user.id)

    @extend_schema(
        summary="Flip a task's `completed` atomically", request=None, responses=TaskSerializer
    )
    @action(detail=True, methods=["post"], serializer_class=serializers.Serializer)
    def toggle(self, request, pk=None):
        task = services.task_toggle(tasks=self.get_queryset(), task_id=pk)
        return Response(TaskSerializer(task, context=self.get_serializer_context()).data)


class UnknownAPIPath(APIView):
    """Any path under /v1 that no route serves: a JSON 404, with DEBUG on or off."""

    authentication_classes = []
    permission_classes = []
    schema = None

    def http_method_not_allowed(self, request, *args, **kwargs):
        raise NotFound()

    def initial(self, request, *args, **kwargs):
        raise NotFound()


_status = inline_serializer("Status", {"status": serializers.CharField()})


class Healthz(APIView):
    authentication_classes = []
    permission_classes = []

    @extend_schema(summary="Liveness: the process answers (no database)", responses={200: _status})
    def get(self, request):
        return Response({"status": "ok"})


class Readyz(APIView):
    authentication_classes = []
    permission_classes = []

    @extend_schema(
        summary="Readiness: the database answers", responses={200: _status, 503: _status}
    )
    def get(self, request):
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
        except DatabaseError:
            return Response({"status": "unavailable"}, status=503, headers={"Retry-After": "5"})
        return Response({"status": "ok"})


@require_http_methods(["GET", "POST"])
def development_login(request):
    """DEBUG only: hand the browser a token (as a cookie) for the browsable API."""
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
        return JsonResponse(error_body("required", "Paste a token."), status=422)
    return render(request, "tasks/development_login.html")
