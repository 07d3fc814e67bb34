"""A browser frontend on another origin can read the headers the API's clients rely on
(clients/typescript reads ETag, Location, Retry-After and the rate-limit headers)."""

import pytest

FRONTEND = "https://app.example.com"
EXPOSED = {
    "location",
    "etag",
    "retry-after",
    "ratelimit",
    "ratelimit-policy",
    "idempotent-replayed",
    "x-request-id",
}


@pytest.fixture
def cors(settings):
    settings.CORS_ALLOWED_ORIGINS = [FRONTEND]


def exposed(response) -> set[str]:
    return {h.strip().lower() for h in response["Access-Control-Expose-Headers"].split(",")}


def test_a_create_exposes_location_etag_and_the_rate_limit_headers(alice, cors):
    response = alice.post(
        "/v1/tasks",
        {"title": "Buy milk"},
        format="json",
        HTTP_ORIGIN=FRONTEND,
        HTTP_IDEMPOTENCY_KEY="cors-create-1",
    )
    assert response.status_code == 201
    assert response["Access-Control-Allow-Origin"] == FRONTEND
    assert exposed(response) >= EXPOSED
    # The headers exposed are the ones this answer carries.
    for name in ("Location", "ETag", "X-Request-ID"):
        assert response.has_header(name), name


def test_a_list_create_and_an_error_expose_them_too(alice, cors):
    created = alice.post("/v1/lists", {"title": "Groceries"}, format="json", HTTP_ORIGIN=FRONTEND)
    assert created.status_code == 201
    assert exposed(created) >= EXPOSED
    stale = alice.patch(
        f"/v1/lists/{created.json()['id']}",
        {"title": "Shopping"},
        format="json",
        HTTP_ORIGIN=FRONTEND,
        HTTP_IF_MATCH='"0"',
    )
    assert stale.status_code == 412
    assert exposed(stale) >= EXPOSED


def test_a_throttled_answer_exposes_retry_after(alice, cors, settings):
    settings.RATE_LIMIT = "1/minute"
    alice.get("/v1/tasks", HTTP_ORIGIN=FRONTEND)
    response = alice.get("/v1/tasks", HTTP_ORIGIN=FRONTEND)
    assert response.status_code == 429
    assert response.has_header("Retry-After")
    assert exposed(response) >= EXPOSED


def test_the_preflight_allows_the_headers_the_client_sends(api_client, db, cors):
    response = api_client.options(
        "/v1/tasks/00000000-0000-0000-0000-000000000000",
        HTTP_ORIGIN=FRONTEND,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="PATCH",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, content-type, if-match",
    )
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == FRONTEND
    allowed = {h.strip().lower() for h in response["Access-Control-Allow-Headers"].split(",")}
    sent = {"authorization", "content-type", "if-match", "idempotency-key", "x-request-id"}
    assert allowed >= sent
