"""Concurrent writers on PostgreSQL, with real transactions on separate connections."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from tasks.models import Task
from tasks.tests.conftest import client_for, in_thread

pytestmark = [pytest.mark.postgresql, pytest.mark.django_db(transaction=True)]


def test_concurrent_toggles_all_apply(make_task):
    task = make_task()
    toggles = 40

    @in_thread
    def toggle(_):
        return client_for("alice").post(f"/v1/tasks/{task['id']}/toggle").status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(toggle, range(toggles)))
    assert statuses == [200] * toggles
    # An even number of flips leaves it as it was; a lost update would leave it flipped.
    assert Task.all_objects.get(pk=task["id"]).completed is False

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(toggle, range(toggles + 1)))
    assert Task.all_objects.get(pk=task["id"]).completed is True


def test_concurrent_creates_by_two_users_never_mix(db):
    @in_thread
    def create(n):
        user = ("alice", "bob")[n % 2]
        response = client_for(user).post("/v1/tasks", {"title": f"{user} {n}"}, format="json")
        return user, response.json()

    with ThreadPoolExecutor(max_workers=8) as pool:
        created = list(pool.map(create, range(40)))
    for user, task in created:
        assert task["user_id"] == user and task["title"].startswith(user)
    assert (
        Task.all_objects.for_user("alice").count() == Task.all_objects.for_user("bob").count() == 20
    )
