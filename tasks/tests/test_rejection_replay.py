"""A refused token, replayed before Django (middleware.RejectionReplay): the first request of a
shape is answered by Django (BearerTokenGate), the next ones of that shape get the very same
answer without reaching Django, each with its own request id and access-log line; every other
request goes through Django as before."""

import io
import json
import logging
import re

import pytest
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from rest_framework_simplejwt.authentication import JWTStatelessUserAuthentication

from tasks.authentication import issue_token
from tasks.middleware import RejectionReplay
from tasks.tests.test_memory import as_served

MISSING_ID = "00000000-0000-0000-0000-000000000000"
PATHS = ["/v1/tasks", f"/v1/tasks/{MISSING_ID}", f"/v1/tasks/{MISSING_ID}/toggle", "/v1/lists"]
REFUSED = {
    "none": None,
    "basic": "Basic dXNlcjpwYXNz",
    "garbage": "Bearer not.a.jwt",
    "unsigned": "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.",
}


class Served:
    """The service as todo_project/wsgi.py assembles it, counting what reaches Django."""

    def __init__(self) -> None:
        django = get_wsgi_application()
        self.reached_django = 0

        def counted(environ, start_response):
            self.reached_django += 1
            return django(environ, start_response)

        self.application = RejectionReplay(counted)

    def __call__(self, method: str, path: str, authorization: str | None = None, **headers: str):
        environ = {
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "QUERY_STRING": "",
            "SERVER_NAME": "testserver",
            "SERVER_PORT": "80",
            "HTTP_HOST": "testserver",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(b""),
            "CONTENT_LENGTH": "0",
            **headers,
        }
        if authorization is not None:
            environ["HTTP_AUTHORIZATION"] = authorization
        started = []
        body = b"".join(
            self.application(environ, lambda status, headers, *_: started.append((status, headers)))
        )
        [(status, headers)] = started
        return status, dict(headers), body


@pytest.fixture(autouse=True)
def connections_kept():
    """As Django's test client does: the test's transaction stays on its connection."""
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


@pytest.fixture
def served(db) -> Served:
    return Served()


def without_request_id(answer):
    status, headers, body = answer
    return status, {k: v for k, v in headers.items() if k != "X-Request-ID"}, body


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("authorization", REFUSED.values(), ids=REFUSED.keys())
def test_a_repeated_refusal_is_djangos_answer_without_django(served, path, authorization):
    first = served("GET", path, authorization)
    assert first[0].startswith("401 ") and served.reached_django == 1
    for method in ("GET", "POST", "DELETE"):
        assert without_request_id(served(method, path, authorization)) == without_request_id(first)
    assert served.reached_django == 1


def test_an_expired_token_is_replayed_with_its_own_message(served):
    expired = f"Bearer {issue_token('alice', ttl_seconds=-120)}"
    first, again = served("GET", "/v1/tasks", expired), served("GET", "/v1/tasks", expired)
    assert b"Token is expired" in first[2]
    assert without_request_id(again) == without_request_id(first)
    assert without_request_id(served("GET", "/v1/tasks")) != without_request_id(first)
    assert served.reached_django == 2  # the missing token was a shape of its own


def test_each_replay_has_its_own_request_id_and_log_line(served, caplog):
    with caplog.at_level(logging.INFO, logger="tasks.access"):
        served("GET", "/v1/tasks")
        caplog.clear()  # Django's own line for the first
        given = served("GET", "/v1/tasks", HTTP_X_REQUEST_ID="client-id-1")
        fresh = [served("GET", "/v1/tasks")[1]["X-Request-ID"] for _ in range(2)]
        forged = served("GET", "/v1/tasks", HTTP_X_REQUEST_ID='x"\ninjected')
    assert served.reached_django == 1
    assert given[1]["X-Request-ID"] == "client-id-1"
    assert len(set(fresh)) == 2 and all(len(request_id) == 32 for request_id in fresh)
    assert forged[1]["X-Request-ID"] != 'x"\ninjected'
    lines = [record.fields for record in caplog.records if record.name == "tasks.access"]
    assert [line["request_id"] for line in lines] == [
        "client-id-1",
        *fresh,
        forged[1]["X-Request-ID"],
    ]
    assert {(line["method"], line["path"], line["status"], line["user_id"]) for line in lines} == {
        ("GET", "/v1/tasks", 401, None)
    }


def test_an_accepted_token_reaches_the_view_verified_once(served, monkeypatch):
    verified = []
    authenticate = JWTStatelessUserAuthentication.authenticate
    monkeypatch.setattr(
        JWTStatelessUserAuthentication,
        "authenticate",
        lambda self, request: verified.append(1) or authenticate(self, request),
    )
    token = f"Bearer {issue_token('alice')}"
    status, _, body = served("GET", "/v1/tasks", token)
    assert status.startswith("200 ") and json.loads(body)["results"] == []
    assert verified == [1]


@pytest.mark.parametrize(
    ("method", "path", "headers"),
    [
        ("GET", "/v1/tasks", {"HTTP_ORIGIN": "https://app.example.com"}),  # CORS headers
        ("OPTIONS", "/v1/tasks", {}),
        ("HEAD", "/v1/tasks", {}),
        ("GET", "/healthz", {}),
        ("GET", "/v1/nowhere", {}),
        ("GET", "/v1/tasks", {"HTTP_HOST": "evil.example.com"}),  # 400: not a 401, not kept
    ],
)
def test_other_requests_reach_django_every_time(served, method, path, headers):
    answers = [served(method, path, **headers) for _ in range(2)]
    assert served.reached_django == 2
    assert without_request_id(answers[0]) == without_request_id(answers[1])


def test_in_debug_django_answers_every_time(served, settings):
    settings.DEBUG = True
    served("GET", "/v1/tasks")
    served("GET", "/v1/tasks")
    assert served.reached_django == 2


def test_at_most_max_shapes_are_kept(served, monkeypatch):
    monkeypatch.setattr(RejectionReplay, "MAX_SHAPES", 2)
    for path in PATHS[:3] * 2:
        served("GET", path)
    assert served.reached_django == 4  # the first two paths once, the third every time


def test_the_wsgi_module_serves_through_the_replay():
    code = "print(type(todo_project.wsgi.application.application).__name__)"
    assert as_served(code) == "RejectionReplay"


def test_an_https_redirect_is_not_kept(db, settings):
    settings.SECURE_SSL_REDIRECT = True
    served = Served()  # SecurityMiddleware reads the setting when it is made
    answers = [served("GET", "/v1/tasks") for _ in range(2)]
    assert [status for status, _, _ in answers] == ["301 Moved Permanently"] * 2
    assert served.reached_django == 2
    secure = [served("GET", "/v1/tasks", **{"wsgi.url_scheme": "https"}) for _ in range(2)]
    assert [status for status, _, _ in secure] == ["401 Unauthorized"] * 2
    assert served.reached_django == 3


def test_what_a_shape_leaves_out_cannot_change_the_answer(settings):
    """A shape has the view, not the path, and the Host header, not X-Forwarded-Host: true while
    no redirect exemption matches an API path and forwarded hosts are not read."""
    assert not settings.USE_X_FORWARDED_HOST
    assert not any(re.search(pattern, "v1/") for pattern in settings.SECURE_REDIRECT_EXEMPT)
