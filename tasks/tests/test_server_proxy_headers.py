"""Who may say a request came over HTTPS: nobody unless configured, gunicorn included."""

import http.client

import pytest
from django.conf import settings

from tasks.tests.live_server import LiveServer

pytestmark = [pytest.mark.live, pytest.mark.database_independent]

SPOOFED = [
    {"X-Forwarded-Proto": "https"},
    {"X-Forwarded-Ssl": "on"},
    {"X-Forwarded-Protocol": "ssl"},
]


def serve(tmp_path, **env: str) -> LiveServer:
    return LiveServer(
        {
            # Never opened: these requests do not reach the database.
            "DATABASE_URL": f"sqlite:///{tmp_path / 'unused.sqlite3'}",
            "DEBUG": "false",
            "BETTER_AUTH_SECRET": settings.BETTER_AUTH_SECRET,
            "SECURE_SSL_REDIRECT": "true",
            "TRUST_X_FORWARDED_PROTO": None,
            "FORWARDED_ALLOW_IPS": None,
            **env,
        },
        migrate=False,
    )


def get(server: LiveServer, headers: dict) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("GET", "/v1/tasks", headers=headers)
        response = conn.getresponse()
        response.read()
        return response
    finally:
        conn.close()


def test_a_spoofed_https_header_from_loopback_is_still_redirected(tmp_path):
    with serve(tmp_path) as server:
        for headers in SPOOFED:
            response = get(server, headers)
            assert response.status == 301, headers
            assert response.getheader("Location") == f"https://127.0.0.1:{server.port}/v1/tasks"


def test_behind_a_trusted_proxy_its_https_header_is_believed(tmp_path):
    with serve(tmp_path, TRUST_X_FORWARDED_PROTO="true") as server:
        assert get(server, {"X-Forwarded-Proto": "https"}).status == 401
        assert get(server, {}).status == 301
        # Only the header the setting names: gunicorn believes no other one.
        assert get(server, {"X-Forwarded-Ssl": "on"}).status == 301


def test_forwarded_allow_ips_names_the_proxies_gunicorn_believes(tmp_path):
    with serve(tmp_path, FORWARDED_ALLOW_IPS="127.0.0.1") as server:
        assert get(server, {"X-Forwarded-Ssl": "on"}).status == 401
        assert get(server, {}).status == 301
    with serve(tmp_path, FORWARDED_ALLOW_IPS="192.0.2.1") as server:
        assert get(server, {"X-Forwarded-Ssl": "on"}).status == 301
