"""Request ids, the Host check, and structured access logs: one JSON line per request; and the
401 answered before DRF to a request without a valid token, and replayed before Django to the
next request of the same shape."""

import logging
import os
import re
import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from functools import cache
from typing import Any, NamedTuple
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from django.conf import settings
from django.core.handlers.wsgi import get_path_info, get_script_name
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, get_resolver
from rest_framework.exceptions import APIException, NotAuthenticated
from rest_framework.permissions import IsAuthenticated
from rest_framework.settings import api_settings

from .authentication import BearerTokenAuthentication
from .exceptions import TaskAPIExceptionHandler
from .renderers import ORJSONRenderer

access_log = logging.getLogger("tasks.access")

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_META = "HTTP_X_REQUEST_ID"  # read from META: request.headers copies every header
# Taken from the client only when it is a plausible id: never a way to inject into logs.
VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class RequestLogMiddleware:
    """Gives each request an id (the client's `X-Request-ID` or a new one), echoes it in the
    response and logs method, path (without query string), status, user id and latency."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        # Validates Host against ALLOWED_HOSTS (DisallowedHost: a JSON 400) before anything
        # builds a link from it.
        request.get_host()
        request_id = _request_id(request.META)
        request.request_id = request_id  # type: ignore[attr-defined]  # for the views and logs
        response = self.get_response(request)
        response[REQUEST_ID_HEADER] = request_id
        user = getattr(request, "user", None)
        _log(request_id, request.method, request.path, response.status_code, user, started)
        return response


def _request_id(meta: Mapping[str, Any]) -> str:
    given = meta.get(REQUEST_ID_META, "")
    return given if VALID_REQUEST_ID.fullmatch(given) else os.urandom(16).hex()


def _log(
    request_id: str, method: str | None, path: str, status: int, user: Any, started: float
) -> None:
    if access_log.isEnabledFor(logging.INFO):
        fields = {
            "request_id": request_id,
            "method": method,
            "path": path,
            "status": status,
            "user_id": getattr(user, "id", None),
            "duration_ms": round((time.perf_counter() - started) * 1000, 2),
        }
        access_log.info("request", extra={"fields": fields})


class BearerTokenGate:
    """A request for an API view that needs a token, without a valid one, is answered 401 here,
    before DRF builds its request around it: the verifier is the same
    (authentication.BearerTokenAuthentication, the one place that decides), and so are the
    answer's body and headers (the same exception handler; test_auth_fast_path compares them).
    A flood of bad tokens is what an attacker sends: it costs this much, not a DRF request each
    (docs/performance.md). A request with a valid token goes on to the view, whose own
    authentication finds the token already verified (the backend remembers it)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view_func: Any, view_args: Any, view_kwargs: Any
    ) -> HttpResponse | None:
        allowed = _token_view_methods(view_func)
        if allowed is None or settings.DEBUG:
            # DEBUG: the browsable API's cookie and HTML pages; DRF decides and renders.
            return None
        failure = _refusal(request)
        if failure is None:
            return None
        context: dict[str, Any] = {"request": request, "view": None, "args": (), "kwargs": {}}
        answer = TaskAPIExceptionHandler(failure, context).run()  # type: ignore[arg-type]
        if answer is None:  # it answers every APIException
            raise failure
        response = HttpResponse(
            ORJSONRenderer().render(answer.data),
            status=answer.status_code,
            content_type="application/json",
        )
        for header, value in answer.items():
            if header.lower() != "content-type":  # the unrendered Response's default
                response[header] = value
        response["Allow"] = allowed
        return response


def _refusal(request: Any) -> APIException | None:
    """Why the request's bearer token is refused (None: it is accepted), with its challenge
    (`auth_header`), as the view's authentication would say: the same verifier."""
    authentication = BearerTokenAuthentication()
    try:
        if authentication.authenticate(request) is not None:
            return None
        failure: APIException = NotAuthenticated()
    except APIException as exc:
        failure = exc
    failure.auth_header = authentication.authenticate_header(request)  # type: ignore[attr-defined]
    return failure


class _Environ(NamedTuple):
    """What the verifier reads of a request, before Django made one: its headers."""

    META: WSGIEnvironment


class _Answer(NamedTuple):
    status: str
    headers: list[tuple[str, str]]
    body: bytes


class RejectionReplay:
    """WSGI, in front of Django. A request that BearerTokenGate would refuse, of a shape it has
    refused before, gets the same answer again (status, headers, body; its own request id and
    access-log line) without Django's request cycle, which is most of what a 401 costs
    (docs/performance.md): a flood of bad tokens is what an attacker sends.

    Nothing here builds an answer or decides: the first request of each shape goes through
    Django, and its answer is kept only if it is a 401. A shape is everything Django's answer to
    a refused token depends on: the view, the verifier's failure and challenge, the host and the
    scheme. Requests that middleware treats otherwise go through Django every time: CORS
    (`Origin`), preflights, HEAD, DEBUG. At most MAX_SHAPES are kept (their keys hold client
    input); beyond them, Django answers."""

    MAX_SHAPES = 256
    METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})

    def __init__(self, application: WSGIApplication) -> None:
        self.application = application
        self.answers: dict[Hashable, _Answer] = {}

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        shape = self._shape(environ)
        if shape is None:
            return self.application(environ, start_response)
        answer = self.answers.get(shape)
        if answer is None:
            return self._answered_by_django(shape, environ, start_response)
        request_id = _request_id(environ)
        start_response(answer.status, [*answer.headers, (REQUEST_ID_HEADER, request_id)])
        path_info = get_path_info(environ)
        path = f"{get_script_name(environ).rstrip('/')}/{path_info.replace('/', '', 1)}"
        _log(request_id, environ["REQUEST_METHOD"], path, 401, None, started)
        return [answer.body]

    def _shape(self, environ: WSGIEnvironment) -> Hashable | None:
        if (
            settings.DEBUG
            or environ["REQUEST_METHOD"] not in self.METHODS
            or "HTTP_ORIGIN" in environ
        ):
            return None
        # The verifier first: an accepted token costs nothing more (its outcome is kept for the
        # view's authentication), only a refused one costs the URL's resolution.
        failure = _refusal(_Environ(environ))
        if failure is None:
            return None
        try:
            view = get_resolver().resolve(get_path_info(environ)).func
        except Resolver404:
            return None
        if _token_view_methods(view) is None:
            return None
        proxy_header: Any = settings.SECURE_PROXY_SSL_HEADER  # None unless set
        return (
            view,
            type(failure),
            repr(failure.detail),
            failure.auth_header,  # type: ignore[attr-defined]
            *(environ.get(name) for name in ("HTTP_HOST", "SERVER_NAME", "SERVER_PORT")),
            environ["wsgi.url_scheme"],
            environ.get(proxy_header[0]) if proxy_header else None,
        )

    def _answered_by_django(
        self, shape: Hashable, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        started: list[Any] = []

        def recorded(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            started[:] = [status, headers]
            return start_response(status, headers, exc_info)

        response = self.application(environ, recorded)
        try:
            body = b"".join(response)
        finally:
            getattr(response, "close", lambda: None)()
        status, headers = started
        if status.startswith("401 ") and len(self.answers) < self.MAX_SHAPES:
            kept = [(name, value) for name, value in headers if name != REQUEST_ID_HEADER]
            self.answers[shape] = _Answer(status, kept, body)
        return [body]


@cache
def _token_view_methods(view_func: Any) -> str | None:
    """For a DRF view that requires a bearer token, its `Allow` header (as DRF writes it);
    None for any other view."""
    view = getattr(view_func, "cls", None)
    if view is None or view.authentication_classes != api_settings.DEFAULT_AUTHENTICATION_CLASSES:
        return None
    if IsAuthenticated not in view.permission_classes:
        return None
    actions = getattr(view_func, "actions", None)  # a viewset's: method -> action
    if actions is not None:
        methods = {*actions, "options"}
    else:
        methods = {m for m in view.http_method_names if hasattr(view, m)}
    methods |= {"head"} if "get" in methods else set()
    return ", ".join(m.upper() for m in view.http_method_names if m in methods)
