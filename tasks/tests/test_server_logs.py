"""What gunicorn writes: one JSON object per line, its own messages included, from the start line
to the shutdown, whatever the clients send."""

import json
import socket
import time

import pytest
from django.conf import settings

from tasks.tests.live_server import LiveServer

pytestmark = [pytest.mark.live, pytest.mark.database_independent]

BAD_REQUESTS = [
    b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",
    b"GARBAGE\r\n\r\n",
    b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: localhost\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nBad Header: x\r\n\r\n",
    b"POST /v1/tasks HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"POST /v1/tasks HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1, 2\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n",  # then the client goes away
    b"POST /v1/tasks HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n{",
    b"",  # connects and closes
]


def send_raw(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        try:
            return sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            return b""


def logged_lines(server: LiveServer) -> list[dict]:
    lines = server.output().splitlines()
    assert lines
    parsed = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            pytest.fail(f"not a JSON line: {line[:300]!r}")
        assert isinstance(entry, dict), line
        assert {"time", "level", "logger", "message"} <= entry.keys(), line
        parsed.append(entry)
    return parsed


@pytest.fixture
def server(tmp_path):
    live = LiveServer(
        {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
            "DEBUG": "false",
            "BETTER_AUTH_SECRET": settings.BETTER_AUTH_SECRET,
            "GUNICORN_LOG_LEVEL": "debug",  # every message gunicorn has
            "LOG_LEVEL": "DEBUG",
        },
        migrate=False,  # migrate's own output is not the service's
    )
    with live:
        yield live


def test_gunicorns_rejections_are_json_lines(server):
    answers = [send_raw(server.port, request) for request in BAD_REQUESTS]
    assert answers[0].startswith(b"HTTP/1.1 431 ")
    assert answers[1].startswith(b"HTTP/1.1 400 ")
    time.sleep(1)  # the last lines of the workers
    assert server.stop() == 0
    entries = logged_lines(server)
    rejections = [e for e in entries if e["message"].startswith("Invalid request from ip=")]
    assert len(rejections) >= 5
    assert all(e["logger"] == "gunicorn.error" for e in rejections)
    assert any(e["message"] == "Shutting down: Master" for e in entries)


def test_the_master_logs_one_start_line(server, tmp_path):
    server.stop()
    starts = [e for e in logged_lines(server) if e["logger"] == "tasks.server"]
    assert len(starts) == 1
    start = starts[0]
    assert start["message"] == "serving"
    assert start["address"] == f"127.0.0.1:{server.port}"
    assert start["debug"] is False
    assert start["database"] == "sqlite"
    assert start["auth"] == "shared secret"


def test_a_debug_server_starts_when_allowed_and_says_so(tmp_path):
    live = LiveServer(
        {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
            "DEBUG": "true",
            "GUNICORN_ALLOW_DEBUG": "true",
            "BETTER_AUTH_SECRET": "",  # not from a .env either
        },
        migrate=False,
    )
    with live:
        live.stop()
        (start,) = [e for e in logged_lines(live) if e["logger"] == "tasks.server"]
    assert (start["debug"], start["auth"]) == (True, "none")
