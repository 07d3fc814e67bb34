"""Idempotent creates with `Idempotency-Key` (as Stripe and Todoist accept it)."""

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone

from tasks.models import IdempotencyKey, Task
from tasks.tests.conftest import client_for


def create(client, body: dict, key: str):
    return client.post("/v1/tasks", body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_a_retry_with_the_same_key_replays_the_first_201_and_creates_nothing(alice):
    first = create(alice, {"title": "Pay rent"}, "key-1")
    retry = create(alice, {"title": "Pay rent"}, "key-1")
    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    assert retry["ETag"] == first["ETag"]
    assert retry["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert Task.all_objects.count() == 1


def test_the_replay_is_the_original_response_even_after_the_task_changed(alice):
    first = create(alice, {"title": "Pay rent"}, "key-1").json()
    alice.patch(f"/v1/tasks/{first['id']}", {"title": "changed"}, format="json")
    assert create(alice, {"title": "Pay rent"}, "key-1").json() == first


def test_the_same_key_with_a_different_body_is_409_and_creates_nothing(alice):
    create(alice, {"title": "Pay rent"}, "key-1")
    response = create(alice, {"title": "Something else"}, "key-1")
    assert response.status_code == 409
    assert response.json()["errors"] == [
        {
            "code": "idempotency_key_reused",
            "detail": "This Idempotency-Key was already used with a different request body.",
            "attr": None,
        }
    ]
    assert Task.all_objects.count() == 1


def test_keys_are_per_user(alice, bob):
    create(alice, {"title": "x"}, "shared-key")
    response = create(bob, {"title": "x"}, "shared-key")
    assert response.status_code == 201
    assert "Idempotent-Replayed" not in response
    assert Task.all_objects.for_user("bob").count() == 1


def test_keys_expire_after_24_hours(alice):
    first = create(alice, {"title": "x"}, "old-key").json()
    IdempotencyKey.objects.update(created_at=timezone.now() - timedelta(hours=24, seconds=1))
    again = create(alice, {"title": "x"}, "old-key")
    assert again.status_code == 201
    assert again.json()["id"] != first["id"]
    assert Task.all_objects.count() == 2


def test_a_failed_create_does_not_burn_the_key(alice):
    assert create(alice, {"title": ""}, "key-1").status_code == 422
    assert create(alice, {"title": "fixed"}, "key-1").status_code == 201
    assert IdempotencyKey.objects.count() == 1


@pytest.mark.parametrize("key", ["", "k" * 256])
def test_an_empty_or_overlong_key_is_422(alice, key):
    assert create(alice, {"title": "x"}, key).status_code == 422
    assert Task.all_objects.count() == 0


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicates_with_one_key_create_exactly_one_task():
    def attempt(_):
        try:
            return create(client_for("alice"), {"title": "once"}, "race-key")
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(attempt, range(16)))
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    assert sum("Idempotent-Replayed" not in r for r in responses) == 1
    assert Task.all_objects.count() == 1
