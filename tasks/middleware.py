"""Request ids, the Host check, and structured access logs: one JSON line per request."""

import logging
import os
import re
import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

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
