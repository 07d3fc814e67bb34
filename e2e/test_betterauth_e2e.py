"""End to end with the real thing: a Better Auth server (better-auth + its jwt plugin, on Node)
issues the tokens, and the Tasks API (gunicorn, PostgreSQL, JWKS mode) is called with them.

Needs `npm ci` in e2e/betterauth and DATABASE_URL pointing at PostgreSQL (`.ci/run` does both).
"""

import base64
import json
import os
import secrets
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import jwt
import pytest

sys.path.insert(0, str(Path(__file__).parent / "betterauth"))
import client as betterauth

from tasks.tests.live_server import LiveServer, fresh_database_url

pytestmark = pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")),
    reason="the end-to-end run is on PostgreSQL (DATABASE_URL=postgres://…)",
)

PASSWORD = "correct horse battery staple"


def call(base: str, method: str, path: str, token: str | None, body: dict | None = None):
    """(status, JSON body or None) of one request to the Tasks API."""
    request = urllib.request.Request(base + path, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if body is not None:
        request.data = json.dumps(body).encode()
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    return status, (json.loads(raw) if raw else None)


def tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "somebody-else"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"{header}.{forged}.{signature}"


@pytest.fixture
def database_url(tmp_path):
    url, drop = fresh_database_url(tmp_path)
    yield url
    drop()


def start_stack(tmp_path, database_url, alg: str, auth_env: dict | None = None):
    port = betterauth.free_port()
    auth = betterauth.start_auth_server(port, tmp_path / "auth.db", alg=alg, env=auth_env)
    base_url = betterauth.auth_base_url(port)
    api = LiveServer(
        {
            "DATABASE_URL": database_url,
            "DEBUG": "false",
            "BETTER_AUTH_URL": base_url,
            "BETTER_AUTH_SECRET": "",  # JWKS mode alone, as with a stock Better Auth setup
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),  # required in JWKS mode alone
            "JWT_LEEWAY_SECONDS": "0",
            # Several workers share the keys they fetch, as the README asks for JWKS mode.
            "REDIS_URL": os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
        }
    ).start()
    return port, auth, base_url, api


def test_better_auth_tokens_work_end_to_end_through_rotation_and_outage(tmp_path, database_url):
    port, auth, auth_url, api = start_stack(tmp_path, database_url, "EdDSA")
    try:
        alice = betterauth.sign_up(auth_url, "alice@example.com", PASSWORD, "Alice")
        bob = betterauth.sign_up(auth_url, "bob@example.com", PASSWORD, "Bob")
        alice_token = betterauth.fetch_jwt(auth_url, alice)
        bob_token = betterauth.fetch_jwt(auth_url, bob)
        assert jwt.get_unverified_header(alice_token)["alg"] == "EdDSA"
        alice_id = jwt.decode(alice_token, options={"verify_signature": False})["sub"]

        # CRUD as alice.
        status, task = call(api.url, "POST", "/v1/tasks", alice_token, {"title": "Buy milk"})
        assert status == 201
        assert task["user_id"] == alice_id
        status, page = call(api.url, "GET", "/v1/tasks", alice_token)
        assert (status, [t["id"] for t in page["results"]]) == (200, [task["id"]])
        assert call(api.url, "GET", f"/v1/tasks/{task['id']}", alice_token) == (200, task)
        status, toggled = call(api.url, "POST", f"/v1/tasks/{task['id']}/toggle", alice_token)
        assert (status, toggled["completed"]) == (200, True)

        # Bob cannot see or touch it, and it is unchanged.
        for method, path in [("GET", ""), ("PATCH", ""), ("DELETE", ""), ("POST", "/toggle")]:
            body = {"title": "mine now"} if method == "PATCH" else None
            status, _ = call(api.url, method, f"/v1/tasks/{task['id']}{path}", bob_token, body)
            assert status == 404
        assert call(api.url, "GET", "/v1/tasks", bob_token)[1]["results"] == []
        assert call(api.url, "GET", f"/v1/tasks/{task['id']}", alice_token) == (200, toggled)

        # Tampered tokens are refused.
        assert call(api.url, "GET", "/v1/tasks", tampered(alice_token))[0] == 401

        # Key rotation: new tokens carry a new kid and work; old tokens still verify.
        rotation = betterauth.rotate_signing_key(auth_url)
        new_token = betterauth.fetch_jwt(auth_url, alice)
        assert jwt.get_unverified_header(new_token)["kid"] == rotation["new_kid"]
        assert rotation["new_kid"] != jwt.get_unverified_header(alice_token)["kid"]
        assert call(api.url, "GET", "/v1/tasks", new_token)[0] == 200
        assert call(api.url, "GET", "/v1/tasks", alice_token)[0] == 200

        # An expired token: restart the auth server (same database, same keys) with 1 s tokens.
        betterauth.stop_auth_server(auth)
        auth = betterauth.start_auth_server(
            port, tmp_path / "auth.db", alg="EdDSA", env={"JWT_EXPIRATION_TIME": "1s"}
        )
        short_lived = betterauth.fetch_jwt(
            auth_url, betterauth.sign_in(auth_url, "alice@example.com", PASSWORD)
        )
        time.sleep(2.1)
        status, body = call(api.url, "GET", "/v1/tasks", short_lived)
        assert status == 401
        assert "expired" in body["errors"][0]["detail"]

        # The auth server goes away: cached keys keep verifying, nobody is logged out.
        betterauth.stop_auth_server(auth)
        assert call(api.url, "GET", "/v1/tasks", new_token)[0] == 200
        assert call(api.url, "GET", "/v1/tasks", alice_token)[0] == 200
        status, _ = call(api.url, "DELETE", f"/v1/tasks/{task['id']}", new_token)
        assert status == 204
        assert call(api.url, "GET", "/v1/tasks", new_token)[1]["results"] == []
    finally:
        betterauth.stop_auth_server(auth)
        api.stop()


@pytest.mark.parametrize("alg", ["ES256", "ES512", "PS256", "RS256"])
def test_every_algorithm_better_auth_can_sign_with_is_accepted(tmp_path, database_url, alg):
    _, auth, auth_url, api = start_stack(tmp_path, database_url, alg)
    try:
        token = betterauth.fetch_jwt(
            auth_url, betterauth.sign_up(auth_url, "c@example.com", PASSWORD, "C")
        )
        assert jwt.get_unverified_header(token)["alg"] == alg
        status, task = call(api.url, "POST", "/v1/tasks", token, {"title": alg})
        assert status == 201
        assert call(api.url, "GET", f"/v1/tasks/{task['id']}", token) == (200, task)
        assert call(api.url, "GET", "/v1/tasks", tampered(token))[0] == 401
    finally:
        betterauth.stop_auth_server(auth)
        api.stop()
