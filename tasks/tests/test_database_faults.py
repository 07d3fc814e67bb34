"""An unreachable database: every route answers 503 JSON with Retry-After within seconds, no
worker crashes, and the service recovers by itself when the database is back."""

import json
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import pytest

from tasks.authentication import issue_token
from tasks.tests.live_server import LiveServer, fresh_database_url
from tasks.tests.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.postgresql, pytest.mark.live]

ANSWER_WITHIN_SECONDS = 10


def call(url: str, method: str = "GET", body: dict | None = None, token: str | None = None):
    request = urllib.request.Request(url, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if body is not None:
        request.data = json.dumps(body).encode()
        request.add_header("Content-Type", "application/json")
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, headers, raw = response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        status, headers, raw = error.code, error.headers, error.read()
    return status, headers, (json.loads(raw) if raw else None), time.monotonic() - started


def worker_pids(server: LiveServer, expected: int = 2) -> set[int]:
    """The gunicorn master's workers, once all `expected` have started (the server answers as
    soon as the first one has)."""
    children = f"/proc/{server.process.pid}/task/{server.process.pid}/children"
    deadline = time.monotonic() + 10
    while True:
        with open(children) as file:
            pids = {int(pid) for pid in file.read().split()}
        if len(pids) >= expected or time.monotonic() > deadline:
            return pids
        time.sleep(0.05)


@pytest.fixture
def proxied_server(tmp_path, settings):
    database_url, drop = fresh_database_url(tmp_path)
    parts = urlsplit(database_url)
    proxy = TcpProxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    proxied = parts._replace(netloc=f"{parts.username or 'root'}@127.0.0.1:{proxy.port}").geturl()
    env = {
        "DATABASE_URL": proxied,
        "DEBUG": "false",
        "BETTER_AUTH_SECRET": settings.BETTER_AUTH_SECRET,
        "WEB_CONCURRENCY": "2",
        "DATABASE_CONNECT_TIMEOUT": "3",
    }
    server = LiveServer(env).start()
    yield server, proxy
    server.stop()
    proxy.close()
    drop()


def test_an_outage_is_503_on_every_route_and_the_service_recovers(proxied_server):
    server, proxy = proxied_server
    token = issue_token("alice")
    base = f"{server.url}/v1/tasks"
    status, _, before, _ = call(base, "POST", {"title": "acknowledged before"}, token)
    assert status == 201
    workers = worker_pids(server)

    proxy.cut()
    routes = [
        ("GET", base, None),
        ("POST", base, {"title": "during the outage"}),
        ("GET", f"{base}/{before['id']}", None),
        ("PUT", f"{base}/{before['id']}", {"title": "x"}),
        ("PATCH", f"{base}/{before['id']}", {"title": "x"}),
        ("DELETE", f"{base}/{before['id']}", None),
        ("POST", f"{base}/{before['id']}/toggle", None),
    ]
    for method, url, body in routes * 2:  # every worker sees the outage
        status, headers, error, elapsed = call(url, method, body, token)
        assert status == 503, (method, url, status, error)
        assert int(headers["Retry-After"]) > 0
        assert error["errors"][0]["code"] == "database_unavailable"
        assert elapsed < ANSWER_WITHIN_SECONDS
    status, _, ready, elapsed = call(f"{server.url}/readyz")
    assert (status, ready["status"]) == (503, "unavailable")
    assert elapsed < ANSWER_WITHIN_SECONDS
    assert call(f"{server.url}/healthz")[0] == 200
    assert worker_pids(server) == workers, "a worker crashed"

    proxy.restore()
    deadline = time.monotonic() + 15
    while call(f"{server.url}/readyz")[0] != 200:
        assert time.monotonic() < deadline, "did not recover"
        time.sleep(0.2)
    for _ in range(4):  # each worker reconnects on its own
        status, _, page, _ = call(base, token=token)
        assert status == 200
        assert [task["id"] for task in page["results"]] == [before["id"]]
    assert call(f"{base}/{before['id']}", token=token)[2] == before
    assert worker_pids(server) == workers


def test_a_database_that_stops_answering_is_503_within_the_timeouts(proxied_server):
    server, proxy = proxied_server
    token = issue_token("alice")
    assert call(f"{server.url}/v1/tasks", token=token)[0] == 200
    proxy.blackhole()
    try:
        status, headers, _, elapsed = call(f"{server.url}/v1/tasks", token=token)
        assert status == 503
        assert elapsed < ANSWER_WITHIN_SECONDS
        assert int(headers["Retry-After"]) > 0
    finally:
        proxy.restore()
