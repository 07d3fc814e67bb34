"""The database is the only state: a task survives a full restart of the service."""

import json
import urllib.request

import pytest

from tasks.authentication import issue_token
from tasks.tests.live_server import LiveServer, fresh_database_url

pytestmark = pytest.mark.live


def request(url: str, token: str, method: str = "GET", body: dict | None = None) -> dict:
    req = urllib.request.Request(url, method=method, headers={"Authorization": f"Bearer {token}"})
    if body is not None:
        req.data = json.dumps(body).encode()
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as response:
        return json.loads(response.read())


def test_tasks_survive_a_restart_of_the_service(tmp_path, settings):
    database_url, drop = fresh_database_url(tmp_path)
    env = {
        "DATABASE_URL": database_url,
        "DEBUG": "false",
        "BETTER_AUTH_SECRET": settings.BETTER_AUTH_SECRET,
    }
    token = issue_token("alice")
    try:
        with LiveServer(env) as server:
            created = request(f"{server.url}/v1/tasks", token, "POST", {"title": "Persist me"})
            toggled = request(f"{server.url}/v1/tasks/{created['id']}/toggle", token, "POST")
        with LiveServer(env, port=server.port) as restarted:
            assert request(f"{restarted.url}/v1/tasks/{created['id']}", token) == toggled
            assert request(f"{restarted.url}/v1/tasks", token)["results"] == [toggled]
    finally:
        drop()
