"""Redis goes away under a live gunicorn: requests keep being served (never a 500), the limit
falls back to each process's own count, a hung Redis is not waited for on every request, and
shared counting resumes once Redis is back. The test runs its own redis-server on a free port."""

import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import pytest
import redis
from django.conf import settings

from tasks.authentication import issue_token
from tasks.tests.live_server import LiveServer, free_port, fresh_database_url
from tasks.throttling import REDIS_RETRY_SECONDS

pytestmark = [pytest.mark.live, pytest.mark.database_independent]

LIMIT = 5


class RedisServer:
    """A throwaway redis-server on `port`, without persistence."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.client = redis.Redis(port=port, socket_timeout=2)
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        command = f"redis-server --port {self.port} --bind 127.0.0.1 --appendonly no --daemonize no"
        self.process = subprocess.Popen([*command.split(), "--save", ""], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()

    def counter_keys(self) -> dict[bytes, int]:
        return {key: int(self.client.get(key)) for key in self.client.scan_iter("ratelimit:*")}


@pytest.fixture
def redis_server():
    if shutil.which("redis-server") is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is required in CI")
        pytest.skip("redis-server is not installed")
    server = RedisServer(free_port())
    server.start()
    yield server
    server.kill()


@pytest.fixture
def gunicorn(redis_server, tmp_path):
    database_url, drop = fresh_database_url(tmp_path)
    env = {
        "DATABASE_URL": database_url,
        "DEBUG": "false",
        "BETTER_AUTH_SECRET": settings.BETTER_AUTH_SECRET,
        "REDIS_URL": f"redis://127.0.0.1:{redis_server.port}/0",
        "RATE_LIMIT": f"{LIMIT}/hour",
        # One worker: its own count is then the whole per-process limit.
        "WEB_CONCURRENCY": "1",
    }
    try:
        with LiveServer(env) as server:
            yield server
    finally:
        drop()


def statuses(server: LiveServer, user: str, count: int) -> list[tuple[int, dict]]:
    """`count` GET /v1/tasks as `user`: each answer's status and headers."""
    request = urllib.request.Request(
        f"{server.url}/v1/tasks", headers={"Authorization": f"Bearer {issue_token(user)}"}
    )
    answers = []
    for _ in range(count):
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                answers.append((response.status, dict(response.headers)))
        except urllib.error.HTTPError as error:
            answers.append((error.code, dict(error.headers)))
    return answers


def assert_limited(answers: list[tuple[int, dict]]) -> None:
    assert [status for status, _ in answers] == [200] * LIMIT + [429]
    headers = answers[-1][1]
    assert int(headers["Retry-After"]) > 0
    assert headers["RateLimit"].startswith('"user";r=0;')


def test_a_redis_outage_degrades_to_per_process_counting_and_recovers(redis_server, gunicorn):
    def user() -> str:
        return f"outage-{uuid.uuid4().hex}"

    # Redis up: the limit is counted there.
    assert_limited(statuses(gunicorn, user(), LIMIT + 1))
    assert sorted(redis_server.counter_keys().values()) == [LIMIT + 1]

    # Redis hung (it accepts connections, never answers): one request waits for the client's
    # timeout, the next ones skip Redis for the back-off and count in the worker. Waiting for the
    # timeout on each of them would take longer than the back-off.
    redis_server.signal(signal.SIGSTOP)
    started = time.monotonic()
    assert_limited(statuses(gunicorn, user(), LIMIT + 1))
    assert time.monotonic() - started < REDIS_RETRY_SECONDS

    # Redis dead: still served, still limited per process. After the back-off, so that the
    # worker asks Redis again and is refused.
    redis_server.kill()
    time.sleep(REDIS_RETRY_SECONDS)
    assert_limited(statuses(gunicorn, user(), LIMIT + 1))

    # Redis back on the same port, empty: after the back-off, requests count there again.
    redis_server.start()
    deadline = time.monotonic() + 3 * REDIS_RETRY_SECONDS
    probe = user()
    while not redis_server.counter_keys():
        assert time.monotonic() < deadline, "the counters never came back to Redis"
        assert {status for status, _ in statuses(gunicorn, probe, 1)} <= {200, 429}
        time.sleep(0.1)
    before = redis_server.counter_keys()
    assert_limited(statuses(gunicorn, user(), LIMIT + 1))
    after = redis_server.counter_keys()
    assert [after[key] for key in after.keys() - before.keys()] == [LIMIT + 1]
