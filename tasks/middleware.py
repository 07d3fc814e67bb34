"""Request ids, the Host check, and structured access logs: one JSON line per request; and the
401 answered before DRF to a request without a valid token."""

import logging
import os
import re
import time
from collections.abc import Callable
from functools import cache
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
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
        given = request.META.get(REQUEST_ID_META, "")
        request_id = given if VALID_REQUEST_ID.fullmatch(given) else os.urandom(16).hex()
        request.request_id = request_id  # type: ignore[attr-defined]  # for the views and logs
        response = self.get_response(request)
        response[REQUEST_ID_HEADER] = request_id
        if access_log.isEnabledFor(logging.INFO):
            user = getattr(request, "user", None)
            fields = {
                "request_id": request_id,
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "user_id": getattr(user, "id", None),
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
            }
            access_log.info("request", extra={"fields": fields})
        return response


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
        authentication = BearerTokenAuthentication()
        try:
            if authentication.authenticate(request) is not None:  # type: ignore[arg-type]
                return None
            failure: APIException = NotAuthenticated()
        except APIException as exc:
            failure = exc
        failure.auth_header = authentication.authenticate_header(request)  # type: ignore[attr-defined, arg-type]
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
