"""The 401 answered before DRF (middleware.BearerTokenGate): the same answer, status, body and
headers, as DRF's authentication gives, on every route that needs a token; and no DRF request
is built for it."""

import pytest
from rest_framework.test import APIClient
from rest_framework.views import APIView

from tasks.authentication import issue_token

GATE = "tasks.middleware.BearerTokenGate"
MISSING_ID = "00000000-0000-0000-0000-000000000000"
ROUTES = [
    ("get", "/v1/tasks"),
    ("post", "/v1/tasks"),
    ("get", f"/v1/tasks/{MISSING_ID}"),
    ("delete", f"/v1/tasks/{MISSING_ID}"),
    ("post", f"/v1/tasks/{MISSING_ID}/toggle"),
    ("get", "/v1/tasks/stats"),
    ("post", "/v1/tasks/bulk"),
    ("get", "/v1/lists"),
    ("patch", f"/v1/lists/{MISSING_ID}"),
    ("get", "/v1/changes"),
    ("options", "/v1/tasks"),
]
CREDENTIALS = [
    None,
    "Bearer",
    "Basic dXNlcjpwYXNz",
    "Bearer not.a.jwt",
    "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.",
]


def answer(method, path, authorization, **headers):
    client = APIClient()
    if authorization is not None:
        headers["HTTP_AUTHORIZATION"] = authorization
    response = getattr(client, method)(path, **headers)
    kept = {k: v for k, v in response.items() if k != "X-Request-ID"}
    return response.status_code, response.content, kept


@pytest.mark.parametrize("authorization", CREDENTIALS)
@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_the_gates_401_is_drfs_401(db, settings, monkeypatch, method, path, authorization):
    dispatched = []
    dispatch = APIView.dispatch
    monkeypatch.setattr(
        APIView, "dispatch", lambda self, *a, **k: dispatched.append(1) or dispatch(self, *a, **k)
    )
    fast = answer(method, path, authorization, HTTP_ORIGIN="https://app.example.com")
    assert fast[0] == 401 and not dispatched, "answered by the gate, before DRF"
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if m != GATE]
    assert answer(method, path, authorization, HTTP_ORIGIN="https://app.example.com") == fast
    assert dispatched


def test_an_expired_token_is_refused_by_the_gate_with_drfs_message(db, settings):
    expired = issue_token("alice", ttl_seconds=-120)
    fast = answer("get", "/v1/tasks", f"Bearer {expired}")
    assert fast[0] == 401 and b"Token is expired" in fast[1]
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if m != GATE]
    assert answer("get", "/v1/tasks", f"Bearer {expired}") == fast


def test_a_valid_token_goes_through(db):
    status, _, _ = answer("get", "/v1/tasks", f"Bearer {issue_token('alice')}")
    assert status == 200


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/v1/schema", "/v1/nowhere"])
def test_routes_without_a_token_are_not_gated(db, path):
    assert answer("get", path, None)[0] in (200, 404)
    assert answer("get", "/v1/nowhere", None)[0] == 404
