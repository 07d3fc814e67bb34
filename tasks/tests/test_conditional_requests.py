"""ETags and preconditions (RFC 9110 §13): lost-update protection as Google Tasks has it."""

import pytest

from tasks.models import Task

WRITES = [
    ("put", "/v1/tasks/{id}", {"title": "late writer"}),
    ("patch", "/v1/tasks/{id}", {"completed": True}),
    ("post", "/v1/tasks/{id}/toggle", None),
    ("delete", "/v1/tasks/{id}", None),
]


def snapshot(task_id: str) -> dict:
    return Task.all_objects.filter(pk=task_id).values().get()


def test_every_single_task_response_carries_an_etag(alice):
    created = alice.post("/v1/tasks", {"title": "x"}, format="json")
    etag = created["ETag"]
    assert etag == '"1"'
    task_id = created.json()["id"]
    assert alice.get(f"/v1/tasks/{task_id}")["ETag"] == etag
    patched = alice.patch(f"/v1/tasks/{task_id}", {"title": "y"}, format="json")["ETag"]
    toggled = alice.post(f"/v1/tasks/{task_id}/toggle")["ETag"]
    put = alice.put(f"/v1/tasks/{task_id}", {"title": "z"}, format="json")["ETag"]
    assert len({etag, patched, toggled, put}) == 4


def test_get_with_a_matching_if_none_match_is_304_without_a_body(alice, make_task):
    task = make_task()
    etag = alice.get(f"/v1/tasks/{task['id']}")["ETag"]
    response = alice.get(f"/v1/tasks/{task['id']}", HTTP_IF_NONE_MATCH=etag)
    assert response.status_code == 304
    assert response.content == b""
    assert response["ETag"] == etag
    assert (
        alice.get(f"/v1/tasks/{task['id']}", HTTP_IF_NONE_MATCH=f'"x", {etag}').status_code == 304
    )
    assert alice.get(f"/v1/tasks/{task['id']}", HTTP_IF_NONE_MATCH="*").status_code == 304


def test_get_with_a_stale_if_none_match_returns_the_task(alice, make_task):
    task = make_task()
    stale = alice.get(f"/v1/tasks/{task['id']}")["ETag"]
    alice.patch(f"/v1/tasks/{task['id']}", {"title": "new"}, format="json")
    response = alice.get(f"/v1/tasks/{task['id']}", HTTP_IF_NONE_MATCH=stale)
    assert response.status_code == 200
    assert response.json()["title"] == "new"


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
def test_a_write_with_a_stale_if_match_is_412_and_changes_nothing(
    alice, make_task, method, path, body
):
    task = make_task()
    stale = alice.get(f"/v1/tasks/{task['id']}")["ETag"]
    alice.patch(f"/v1/tasks/{task['id']}", {"details": "someone else's edit"}, format="json")
    before = snapshot(task["id"])
    response = getattr(alice, method)(
        path.format(id=task["id"]), body, format="json", HTTP_IF_MATCH=stale
    )
    assert response.status_code == 412
    assert response.json()["errors"][0]["code"] == "precondition_failed"
    assert snapshot(task["id"]) == before


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
def test_a_write_with_the_current_etag_applies(alice, make_task, method, path, body):
    task = make_task()
    current = alice.get(f"/v1/tasks/{task['id']}")["ETag"]
    response = getattr(alice, method)(
        path.format(id=task["id"]), body, format="json", HTTP_IF_MATCH=f'"999", {current}'
    )
    assert response.status_code in (200, 204)


@pytest.mark.parametrize("if_match", ['W/"1"', "1", "garbage", '""'])
def test_weak_or_malformed_etags_never_match(alice, make_task, if_match):
    task = make_task()
    response = alice.patch(
        f"/v1/tasks/{task['id']}", {"title": "x"}, format="json", HTTP_IF_MATCH=if_match
    )
    assert response.status_code == 412


def test_if_match_star_needs_only_an_existing_task(alice, make_task):
    task = make_task()
    assert alice.post(f"/v1/tasks/{task['id']}/toggle", HTTP_IF_MATCH="*").status_code == 200
    missing = "00000000-0000-0000-0000-000000000000"
    assert alice.post(f"/v1/tasks/{missing}/toggle", HTTP_IF_MATCH="*").status_code == 404


def test_another_users_task_is_404_not_412(alice, bob, make_task):
    task = make_task()
    response = bob.patch(f"/v1/tasks/{task['id']}", {"title": "x"}, format="json",
                         HTTP_IF_MATCH='"1"')  # fmt: skip
    assert response.status_code == 404


def test_two_writers_with_the_same_etag_only_one_wins(alice, make_task):
    task = make_task()
    etag = alice.get(f"/v1/tasks/{task['id']}")["ETag"]
    first = alice.patch(f"/v1/tasks/{task['id']}", {"title": "first"}, format="json",
                        HTTP_IF_MATCH=etag)  # fmt: skip
    second = alice.patch(f"/v1/tasks/{task['id']}", {"title": "second"}, format="json",
                         HTTP_IF_MATCH=etag)  # fmt: skip
    assert (first.status_code, second.status_code) == (200, 412)
    assert Task.all_objects.get(pk=task["id"]).title == "first"


def test_writes_without_if_match_behave_as_before(alice, make_task):
    task = make_task()
    alice.patch(f"/v1/tasks/{task['id']}", {"title": "a"}, format="json")
    assert alice.patch(f"/v1/tasks/{task['id']}", {"title": "b"}, format="json").status_code == 200
