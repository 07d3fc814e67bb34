"""Request bodies as gunicorn hands them over: chunked bodies are read (or refused with 413 past
the limit), and a body the service does not read never breaks a keep-alive connection."""

import http.client
import json

import pytest
from django.conf import settings

from tasks.authentication import issue_token
from tasks.tests.live_server import LiveServer, fresh_database_url

pytestmark = pytest.mark.live

LIMIT = settings.MAX_REQUEST_BODY_BYTES


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    database_url, drop = fresh_database_url(tmp_path_factory.mktemp("bodies"))
    env = {
        "DATABASE_URL": database_url,
        "DEBUG": "false",
        "BETTER_AUTH_SECRET": settings.BETTER_AUTH_SECRET,
        "RATE_LIMIT": "off",
    }
    try:
        with LiveServer(env) as live:
            yield live
    finally:
        drop()


@pytest.fixture
def connection(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    yield conn
    conn.close()


def headers(user_id: str = "alice", **extra: str) -> dict:
    return {
        "Authorization": f"Bearer {issue_token(user_id)}",
        "Content-Type": "application/json",
        **extra,
    }


def call(conn, method: str, path: str, body=None, *, chunked: bool = False, **extra: str):
    """One request on `conn`: `body` (a dict, or raw bytes) sent chunked when asked."""
    data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
    if chunked:
        # An iterable body: http.client frames it with Transfer-Encoding: chunked.
        pieces = [data[i : i + 1000] for i in range(0, len(data), 1000)]
        conn.request(method, path, body=iter(pieces), headers=headers(**extra),
                     encode_chunked=True)  # fmt: skip
    else:
        conn.request(method, path, body=data, headers=headers(**extra))
    response = conn.getresponse()
    raw = response.read()
    return response, (json.loads(raw) if raw else None)


def create(conn, title: str = "Buy milk") -> dict:
    response, task = call(conn, "POST", "/v1/tasks", {"title": title})
    assert response.status == 201, task
    return task


def test_a_chunked_create_stores_the_body(connection):
    response, task = call(connection, "POST", "/v1/tasks", {"title": "Chunked"}, chunked=True)
    assert response.status == 201, task
    assert task["title"] == "Chunked"
    assert call(connection, "GET", f"/v1/tasks/{task['id']}")[1]["title"] == "Chunked"


def test_a_chunked_patch_changes_the_task(connection):
    task = create(connection)
    path = f"/v1/tasks/{task['id']}"
    response, patched = call(connection, "PATCH", path, {"title": "Patched"}, chunked=True)
    assert (response.status, patched["title"]) == (200, "Patched")
    assert call(connection, "GET", path)[1]["title"] == "Patched"


def test_a_chunked_put_replaces_the_task(connection):
    task = create(connection)
    path = f"/v1/tasks/{task['id']}"
    body = {"title": "Replaced", "priority": "high"}
    response, replaced = call(connection, "PUT", path, body, chunked=True)
    assert response.status == 200, replaced
    assert (replaced["title"], replaced["priority"]) == ("Replaced", "high")
    assert call(connection, "GET", path)[1] == replaced


def test_a_chunked_bulk_applies_its_operations(connection):
    task = create(connection)
    body = {
        "operations": [
            {"op": "create", "data": {"title": "From bulk"}},
            {"op": "toggle", "id": task["id"]},
        ]
    }
    response, result = call(connection, "POST", "/v1/tasks/bulk", body, chunked=True)
    assert response.status == 200, result
    created = result["results"][0]["task"]
    assert call(connection, "GET", f"/v1/tasks/{created['id']}")[1]["title"] == "From bulk"
    assert call(connection, "GET", f"/v1/tasks/{task['id']}")[1]["completed"] is True


def test_a_chunked_body_over_the_limit_is_413_and_changes_nothing(connection):
    task = create(connection)
    path = f"/v1/tasks/{task['id']}"
    body = json.dumps({"title": "x", "details": "d" * LIMIT}).encode()
    response, error = call(connection, "PATCH", path, body, chunked=True)
    assert response.status == 413, error
    assert error["errors"][0]["code"] == "request_too_large"
    assert call(connection, "GET", path)[1] == task


@pytest.mark.parametrize(
    ("method", "size", "chunked", "token_ok", "status"),
    [
        ("POST", LIMIT + 1, False, True, 413),
        ("POST", 2 * LIMIT, False, True, 413),
        ("POST", 2 * LIMIT, True, True, 413),
        # Bodies within the limit that the service answers without reading.
        ("POST", LIMIT // 2, False, False, 401),
        ("POST", LIMIT // 2, True, False, 401),
        ("DELETE", LIMIT // 2, False, True, 404),
    ],
    ids=["just-over", "twice", "twice-chunked", "401", "401-chunked", "404"],
)
def test_the_next_request_on_the_connection_is_served(
    server, method, size, chunked, token_ok, status
):
    """Either the body is read to its end and the connection kept, or the answer says
    `Connection: close`; never a keep-alive answer on a connection that is then dropped."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        body = b'{"title": "' + b"x" * (size - 13) + b'"}'
        extra = {} if token_ok else {"Authorization": "Bearer not-a-token"}
        path = (
            "/v1/tasks/00000000-0000-0000-0000-000000000000" if method == "DELETE" else "/v1/tasks"
        )
        first, _ = call(conn, method, path, body, chunked=chunked, **extra)
        assert first.status == status
        # http.client reconnects after an answer that said close, and fails ("Remote end closed
        # connection without response") if one that said keep-alive was followed by a close.
        second, page = call(conn, "GET", "/v1/tasks")
        assert second.status == 200, page
    finally:
        conn.close()
