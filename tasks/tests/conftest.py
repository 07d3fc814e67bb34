from contextlib import contextmanager

import pytest
from django.core.cache import cache
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from tasks.authentication import issue_token


def pytest_collection_modifyitems(config, items):
    """PostgreSQL-only tests are skipped on SQLite, and only there."""
    if connection.vendor == "postgresql":
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL (set DATABASE_URL=postgres://…)")
    for item in items:
        if "postgresql" in item.keywords:
            item.add_marker(skip)


TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE SAVEPOINT")


@pytest.fixture
def assert_statements(db):
    """`with assert_statements(n):` the block runs exactly `n` SQL statements (at most `n`
    with `at_most=True`), not counting transaction control: SQLite logs its BEGIN and COMMIT,
    PostgreSQL does not, and a test's own transaction turns a transaction into a savepoint."""

    @contextmanager
    def counting(expected: int, *, at_most: bool = False):
        with CaptureQueriesContext(connection) as context:
            yield context
        statements = [
            query["sql"]
            for query in context.captured_queries
            if not query["sql"].lstrip().upper().startswith(TRANSACTION_CONTROL)
        ]
        ok = len(statements) <= expected if at_most else len(statements) == expected
        assert ok, f"{len(statements)} statements, expected {expected}:\n" + "\n\n".join(statements)

    return counting


@pytest.fixture(autouse=True)
def empty_cache():
    """Each test starts with no cached keys and no rate-limit counts."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


def client_for(user_id: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token(user_id)}")
    return client


def in_thread(call):
    """`call` for a worker thread: the thread's own database connection is closed after it."""

    def run(*args):
        try:
            return call(*args)
        finally:
            connections.close_all()

    return run


@pytest.fixture
def alice(db) -> APIClient:
    """A client signed in as user `alice` with a real HS256 token."""
    return client_for("alice")


@pytest.fixture
def bob(db) -> APIClient:
    """A second user, to prove that users never see each other's tasks."""
    return client_for("bob")


@pytest.fixture
def make_task(alice):
    """Create a task through the API as alice (or the given client) and return its JSON."""

    def make(client: APIClient | None = None, **fields) -> dict:
        response = (client or alice).post(
            "/v1/tasks", {"title": "Buy milk", **fields}, format="json"
        )
        assert response.status_code == 201, response.content
        return response.json()

    return make
