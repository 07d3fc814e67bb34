"""Malformed and oversized requests, sent raw to a running server; prints the first line of
each answer (or that there was none). How docs/performance.md compares gunicorn and granian on
what tasks/tests/test_server_logs.py holds gunicorn to.

    .venv/bin/python bench/raw_requests.py PORT
"""

from __future__ import annotations

import contextlib
import socket
import sys

WAIT_SECONDS = 5
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n"
CREATE = b"POST /v1/tasks HTTP/1.1\r\nHost: localhost\r\n"
REQUESTS = [
    ("a 9 KB header", HEALTHZ + b"X-Big: " + b"a" * 9000 + b"\r\n\r\n"),
    ("a 70 KB header", HEALTHZ + b"X-Big: " + b"a" * 70000 + b"\r\n\r\n"),
    ("a 5 KB URL", b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: localhost\r\n\r\n"),
    ("a 2 MB body", CREATE + b"Content-Length: 2000000\r\n\r\n" + b"a" * 2_000_000),
    ("garbage", b"GARBAGE\r\n\r\n"),
    ("a bad header name", HEALTHZ + b"Bad Header: x\r\n\r\n"),
    ("two lengths", CREATE + b"Content-Length: 1, 2\r\n\r\n"),
    ("a bad chunk size", CREATE + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n"),
]


def first_line(port: int, request: bytes) -> str:
    """The answer's status line. The client does not half-close (granian's HTTP/1 drops a
    connection whose client did, before answering); it reads until the server closes, or for
    WAIT_SECONDS."""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT_SECONDS) as sock:
        # If the server closed first, what it answered, if anything, is still readable.
        with contextlib.suppress(OSError):
            sock.sendall(request)
        answer = b""
        try:
            while b"\r\n" not in answer and (chunk := sock.recv(65536)):
                answer += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    return answer.split(b"\r\n", 1)[0].decode() or "(no answer)"


def main() -> None:
    port = int(sys.argv[1])
    for name, request in REQUESTS:
        print(f"{name:20} {first_line(port, request)}")


if __name__ == "__main__":
    main()
