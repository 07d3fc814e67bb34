"""Per-user rate limits: 429 with Retry-After and the JSON error shape, IETF RateLimit fields,
and a limit that holds across gunicorn workers under concurrent requests."""

import os
import re
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from tasks.authentication import issue_token
from tasks.tests.conftest import client_for
from tasks.tests.live_server import LiveServer, fresh_database_url

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def test_over_the_limit_is_429_with_retry_after_and_the_error_shape(db, settings):
    settings.RATE_LIMIT = "3/hour"
    client = client_for("alice")
    statuses = [client.get("/v1/tasks").status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    response = client.get("/v1/tasks")
    assert 0 < int(response["Retry-After"]) <= 3600
    assert response.json()["errors"][0]["code"] == "throttled"


def test_responses_carry_the_ietf_ratelimit_fields(db, settings):
    settings.RATE_LIMIT = "10/minute"
    client = client_for("alice")
    first, second = client.get("/v1/tasks"), client.post("/v1/tasks", {"title": "x"}, format="json")
    assert first["RateLimit-Policy"] == '"user";q=10;w=60'
    assert re.fullmatch(r'"user";r=9;t=\d+', first["RateLimit"])
    assert re.fullmatch(r'"user";r=8;t=\d+', second["RateLimit"])


def test_each_user_has_their_own_allowance(db, settings):
    settings.RATE_LIMIT = "2/hour"
    alice, bob = client_for("alice"), client_for("bob")
    assert [alice.get("/v1/tasks").status_code for _ in range(3)] == [200, 200, 429]
    assert bob.get("/v1/tasks").status_code == 200


def test_rate_limit_off_disables_it(db, settings):
    settings.RATE_LIMIT = "off"
    client = client_for("alice")
    assert all(client.get("/v1/tasks").status_code == 200 for _ in range(20))
    assert "RateLimit" not in client.get("/v1/tasks")


def test_unauthenticated_requests_are_401_not_counted(api_client, db, settings):
    settings.RATE_LIMIT = "1/hour"
    assert all(api_client.get("/v1/tasks").status_code == 401 for _ in range(3))


def bulk_create(client, count: int):
    operations = [{"op": "create", "data": {"title": f"t{n}"}} for n in range(count)]
    return client.post("/v1/tasks/bulk", {"operations": operations}, format="json")


def test_a_bulk_costs_one_unit_per_operation(db, settings):
    settings.RATE_LIMIT = "10/hour"
    client = client_for("alice")
    response = bulk_create(client, 4)
    assert response.status_code == 200
    assert re.fullmatch(r'"user";r=6;t=\d+', response["RateLimit"])
    assert bulk_create(client, 6).status_code == 200
    assert client.get("/v1/tasks").status_code == 429


def test_a_bulk_over_the_remaining_allowance_is_429_and_changes_nothing(db, settings):
    settings.RATE_LIMIT = "10/hour"
    client = client_for("alice")
    assert bulk_create(client, 5).status_code == 200
    response = bulk_create(client, 6)
    assert response.status_code == 429
    assert response.json()["errors"][0]["code"] == "throttled"
    assert 0 < int(response["Retry-After"]) <= 3600
    # The refused bulk cost one unit, as any refused request does: four remain.
    assert re.fullmatch(r'"user";r=4;t=\d+', response["RateLimit"])
    listed = client.get("/v1/tasks")
    assert sorted(task["title"] for task in listed.json()["results"]) == [f"t{n}" for n in range(5)]
    assert bulk_create(client, 3).status_code == 200
    assert client.get("/v1/tasks").status_code == 429


def test_an_invalid_bulk_costs_one_unit(db, settings):
    settings.RATE_LIMIT = "10/hour"
    client = client_for("alice")
    operations = [{"op": "create", "data": {"title": "x"}}] * 5 + [{"op": "nope"}]
    response = client.post("/v1/tasks/bulk", {"operations": operations}, format="json")
    assert response.status_code == 422
    assert re.fullmatch(r'"user";r=9;t=\d+', response["RateLimit"])


@pytest.fixture
def redis_available():
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"Redis is required in CI: {exc}")
        pytest.skip(f"Redis is not reachable at {REDIS_URL}: {exc}")


@pytest.mark.live
def test_the_limit_holds_across_workers_under_concurrent_requests(
    tmp_path, settings, redis_available
):
    database_url, drop = fresh_database_url(tmp_path)
    env = {
        "DATABASE_URL": database_url,
        "DEBUG": "false",
        "BETTER_AUTH_SECRET": settings.BETTER_AUTH_SECRET,
        "REDIS_URL": REDIS_URL,
        "RATE_LIMIT": "25/hour",
        "WEB_CONCURRENCY": "3",
    }
    token = issue_token(f"throttle-{uuid.uuid4().hex}")

    def get(_):
        request = urllib.request.Request(
            f"{server.url}/v1/tasks", headers={"Authorization": f"Bearer {token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=20) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    try:
        with LiveServer(env) as server, ThreadPoolExecutor(max_workers=24) as pool:
            statuses = list(pool.map(get, range(80)))
    finally:
        drop()
    assert statuses.count(200) == 25
    assert statuses.count(429) == 55
