from django.conf import settings
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from tasks.list_views import AllChangesView, TaskListViewSet
from tasks.views import (
    Healthz,
    Readyz,
    SchemaView,
    TaskViewSet,
    UnknownAPIPath,
    development_login,
)

router = SimpleRouter(trailing_slash=False)
# Every path answers with and without the trailing slash, with no redirect.
router.trailing_slash = "/?"
router.register("tasks", TaskViewSet, basename="task")
router.register("lists", TaskListViewSet, basename="list")

urlpatterns = [
    re_path(r"^v1/schema/?$", SchemaView.as_view(), name="schema"),
    re_path(r"^v1/docs/?$", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    re_path(r"^v1/changes/?$", AllChangesView.as_view(), name="changes"),
    re_path(r"^v1/", include(router.urls)),
    re_path(r"^v1(?:/.*)?$", UnknownAPIPath.as_view()),
    re_path(r"^healthz/?$", Healthz.as_view(), name="healthz"),
    re_path(r"^readyz/?$", Readyz.as_view(), name="readyz"),
]

if settings.DEBUG:
    urlpatterns.append(path("dev/login", development_login, name="development-login"))

handler400 = "tasks.exceptions.json_bad_request"
handler404 = "tasks.exceptions.json_not_found"
handler500 = "tasks.exceptions.json_server_error"
