"""The WSGI entry point freezes what the application loaded, then runs a full garbage
collection every COLLECT_EVERY finished requests, whatever the server (tasks.memory; its effect
on a worker's RSS is measured by `make bench`)."""

import gc
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.signals import request_finished

from tasks import memory

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def collector_set_up():
    """As the WSGI module sets it up; undone after (the suite's own heap is not a worker's:
    collecting it every ten requests would slow the suite)."""
    memory.freeze_then_collect_every_few_requests()
    yield
    request_finished.disconnect(dispatch_uid="tasks.memory")


def test_a_full_collection_follows_every_tenth_request(collector_set_up, alice, monkeypatch):
    """Thirty requests, whichever the counter's start: three collections."""
    collections: list[tuple] = []
    monkeypatch.setattr(gc, "collect", lambda *args: collections.append(args))
    for _ in range(3 * memory.COLLECT_EVERY):
        assert alice.get("/v1/tasks").status_code == 200
    assert collections == [()] * 3


def as_served(code: str) -> str:
    """What `code` prints in a process of its own that imported the WSGI module, as a server
    does (importing it here would set the suite's own collector up)."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "todo_project.settings"}
    done = subprocess.run(
        [sys.executable, "-c", f"import todo_project.wsgi\n{code}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def test_the_wsgi_module_sets_the_collector_up():
    code = """
import gc
from django.core.signals import request_finished
listening = any(key[0] == "tasks.memory" for key, *_ in request_finished.receivers)
print(gc.get_freeze_count() > 10_000, listening)
"""
    assert as_served(code) == "True True"
