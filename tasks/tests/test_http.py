"""What a browser and an operator see: CORS, security headers, request ids, logs without secrets,
and tokens accepted only from the Authorization header."""

import json
import logging

import pytest

from tasks.authentication import DEVELOPMENT_COOKIE_NAME, issue_token

FRONTEND = "https://app.example.com"


@pytest.fixture
def cors(settings):
    settings.CORS_ALLOWED_ORIGINS = [FRONTEND]


def test_a_preflight_without_authorization_succeeds_for_an_allowed_origin(api_client, db, cors):
    response = api_client.options(
        "/v1/tasks",
        HTTP_ORIGIN=FRONTEND,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, content-type, idempotency-key",
    )
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == FRONTEND
    allowed = response["Access-Control-Allow-Headers"].lower()
    assert {"authorization", "content-type", "idempotency-key", "if-match"} <= set(
        allowed.replace(" ", "").split(",")
    )


def test_actual_responses_carry_cors_headers_for_an_allowed_origin(alice, cors):
    response = alice.get("/v1/tasks", HTTP_ORIGIN=FRONTEND)
    assert response["Access-Control-Allow-Origin"] == FRONTEND
    assert "etag" in response["Access-Control-Expose-Headers"].lower()


def test_other_origins_get_no_cors_headers(api_client, alice, cors):
    response = alice.get("/v1/tasks", HTTP_ORIGIN="https://evil.example.com")
    assert "Access-Control-Allow-Origin" not in response
    preflight = api_client.options(
        "/v1/tasks",
        HTTP_ORIGIN="https://evil.example.com",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET",
    )
    assert "Access-Control-Allow-Origin" not in preflight


@pytest.mark.parametrize("path", ["/v1/tasks", "/healthz", "/v1/nope", "/v1/docs"])
def test_security_headers_are_on_every_response(alice, path):
    response = alice.get(path)
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"


def test_hsts_is_sent_when_configured(alice, settings):
    settings.SECURE_HSTS_SECONDS = 31536000
    response = alice.get("/v1/tasks", secure=True)
    assert response["Strict-Transport-Security"].startswith("max-age=31536000")


def test_a_request_id_is_generated_and_echoed(alice):
    first, second = alice.get("/v1/tasks"), alice.get("/v1/tasks")
    assert len(first["X-Request-ID"]) == 32
    assert first["X-Request-ID"] != second["X-Request-ID"]


def test_a_clients_request_id_is_kept_when_well_formed(alice):
    assert alice.get("/v1/tasks", HTTP_X_REQUEST_ID="abc-123")["X-Request-ID"] == "abc-123"
    injected = alice.get("/v1/tasks", HTTP_X_REQUEST_ID='x"\n{"evil": 1}')["X-Request-ID"]
    assert injected != 'x"\n{"evil": 1}'


def access_lines(caplog) -> list[dict]:
    formatter = logging.getLogger().handlers[0].formatter
    return [json.loads(formatter.format(r)) for r in caplog.records if r.name == "tasks.access"]


def test_each_request_is_one_json_access_log_line(alice, make_task, caplog):
    caplog.set_level(logging.INFO, logger="tasks.access")
    task = make_task()
    alice.get(f"/v1/tasks/{task['id']}?cursor=secret-ish", HTTP_X_REQUEST_ID="req-1")
    line = access_lines(caplog)[-1]
    assert line["request_id"] == "req-1"
    assert (line["method"], line["status"], line["user_id"]) == ("GET", 200, "alice")
    assert line["path"] == f"/v1/tasks/{task['id']}"
    assert isinstance(line["duration_ms"], float)


def test_no_token_or_authorization_header_reaches_any_log_or_error_body(api_client, db, caplog):
    caplog.set_level(logging.DEBUG)
    token = issue_token("alice")
    bad = token[:-4] + "AAAA"
    bodies = []
    for header in (f"Bearer {token}", f"Bearer {bad}", f"Basic {token}", "Bearer a.b.c"):
        api_client.credentials(HTTP_AUTHORIZATION=header)
        bodies.append(api_client.get("/v1/tasks").content.decode())
        bodies.append(api_client.post("/v1/tasks", "{bad", content_type="application/json")
                      .content.decode())  # fmt: skip
    formatter = logging.getLogger().handlers[0].formatter
    logged = "\n".join(formatter.format(record) for record in caplog.records)
    assert logged
    for secret in (token, bad, token.split(".")[2], "Authorization", "Bearer ey"):
        assert secret not in logged
        assert all(secret not in body for body in bodies)


def test_tokens_in_query_strings_are_not_accepted(api_client, db):
    token = issue_token("alice")
    for parameter in ("access_token", "token", "jwt"):
        assert api_client.get(f"/v1/tasks?{parameter}={token}").status_code == 401


def test_tokens_in_cookies_are_not_accepted_with_debug_off(api_client, db):
    api_client.cookies[DEVELOPMENT_COOKIE_NAME] = issue_token("alice")
    api_client.cookies["token"] = issue_token("alice")
    assert api_client.get("/v1/tasks").status_code == 401
