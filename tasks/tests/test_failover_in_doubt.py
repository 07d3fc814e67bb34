"""A commit in doubt: the connection to PostgreSQL dies after a write was sent and before its
answer came. The answer must be the truth: 2xx with what is stored if the write was applied, 503
`database_unavailable` (not applied: retry) if it was not, 503 `write_outcome_unknown` when it
cannot be told. The proxy between the service and PostgreSQL cuts the connection at the write's
statement (or COMMIT), delivered or not, and lets the service reconnect shortly after."""

import threading
import time
from datetime import timedelta

import psycopg
import pytest
from django.db import connection

from tasks import in_doubt
from tasks.models import Task
from tasks.tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.postgresql

BACK_AFTER_SECONDS = 0.3  # the "failover": how long the database stays unreachable
UPDATE = b'UPDATE "tasks"'
INSERT = b'INSERT INTO "tasks"'
COMMIT = b"COMMIT"


@pytest.fixture
def proxy(transactional_db):
    """The suite's database behind a TcpProxy (writes must really commit: no test transaction)."""
    settings = connection.settings_dict
    target = (settings["HOST"] or "127.0.0.1", settings["PORT"] or "5432")
    proxy = TcpProxy((target[0], int(target[1])))
    connection.close()
    settings["HOST"], settings["PORT"] = "127.0.0.1", str(proxy.port)
    yield proxy
    # Put back before the test database is flushed.
    connection.close()
    settings["HOST"], settings["PORT"] = target
    proxy.close()


def cut_at(
    proxy: TcpProxy, marker: bytes, *, deliver: bool, back: bool = True, skip: int = 0
) -> threading.Thread:
    """Cut the connection at the next statement containing `marker` (after `skip` of them);
    with `back`, the database is reachable again BACK_AFTER_SECONDS later, when the returned
    thread ends."""
    sprung = proxy.cut_at(marker, deliver=deliver, skip=skip)

    def come_back() -> None:
        if sprung.wait(10) and back:
            time.sleep(BACK_AFTER_SECONDS)
            proxy.restore()

    comes_back = threading.Thread(target=come_back, daemon=True)
    comes_back.start()
    return comes_back


def settle() -> None:
    """Drop a connection the cut broke, as Django does at the end of each request (the test
    client leaves connections open between requests)."""
    connection.close_if_unusable_or_obsolete()


def assert_not_applied(response) -> None:
    assert response.status_code == 503, response.content
    assert response.json()["errors"][0]["code"] == "database_unavailable"
    assert int(response["Retry-After"]) > 0


def stored(alice, task_id: str):
    settle()
    response = alice.get(f"/v1/tasks/{task_id}")
    return response.json() if response.status_code == 200 else response.status_code


# Writes of one autocommitted statement: (request, the statement that is cut).
def patch(alice, task):
    return alice.patch(f"/v1/tasks/{task['id']}", {"title": "changed"}, format="json")


def put(alice, task):
    return alice.put(
        f"/v1/tasks/{task['id']}", {"title": "replaced", "details": "d"}, format="json"
    )


def toggle(alice, task):
    return alice.post(f"/v1/tasks/{task['id']}/toggle")


# A toggle locks the task's family first (it may complete subtasks): a transaction, whose
# COMMIT is what can be in doubt.
@pytest.mark.parametrize(
    ("write", "marker"),
    [(patch, UPDATE), (put, UPDATE), (toggle, COMMIT)],
    ids=["patch", "put", "toggle"],
)
def test_an_update_whose_commit_landed_is_answered_with_the_stored_task(
    proxy, alice, make_task, write, marker
):
    task = make_task()
    back = cut_at(proxy, marker, deliver=True)
    response = write(alice, task)
    back.join()
    assert response.status_code == 200, response.content
    assert response.json() == stored(alice, task["id"])
    assert response["ETag"] == '"2"'


@pytest.mark.parametrize("write", [patch, put, toggle])
def test_an_update_that_never_arrived_is_503_and_not_applied(proxy, alice, make_task, write):
    task = make_task()
    back = cut_at(proxy, UPDATE, deliver=False)
    assert_not_applied(write(alice, task))
    back.join()
    assert stored(alice, task["id"]) == task


def test_a_delete_whose_commit_landed_is_204(proxy, alice, make_task):
    task = make_task()
    back = cut_at(proxy, COMMIT, deliver=True)  # a delete is a transaction (its subtree too)
    response = alice.delete(f"/v1/tasks/{task['id']}")
    back.join()
    assert response.status_code == 204
    assert stored(alice, task["id"]) == 404


def test_a_delete_that_never_arrived_is_503_and_the_task_stays(proxy, alice, make_task):
    task = make_task()
    back = cut_at(proxy, UPDATE, deliver=False)
    assert_not_applied(alice.delete(f"/v1/tasks/{task['id']}"))
    back.join()
    assert stored(alice, task["id"]) == task


def test_a_create_whose_commit_landed_is_201_with_the_stored_task(proxy, alice):
    alice.get("/v1/lists")  # the default list, which the first create would otherwise make
    back = cut_at(proxy, INSERT, deliver=True)
    response = alice.post("/v1/tasks", {"title": "in doubt"}, format="json")
    back.join()
    assert response.status_code == 201, response.content
    assert response.json() == stored(alice, response.json()["id"])
    assert Task.all_objects.count() == 1


def test_a_create_that_never_arrived_is_503_and_nothing_is_stored(proxy, alice):
    back = cut_at(proxy, INSERT, deliver=False)
    assert_not_applied(alice.post("/v1/tasks", {"title": "in doubt"}, format="json"))
    back.join()
    settle()
    assert Task.all_objects.count() == 0


def test_clear_completed_whose_commit_landed_counts_what_it_deleted(proxy, alice, make_task):
    done = make_task(completed=True)
    kept = make_task()
    back = cut_at(proxy, UPDATE, deliver=True)
    response = alice.post("/v1/tasks/clear-completed")
    back.join()
    assert (response.status_code, response.json()) == (200, {"deleted": 1})
    assert (stored(alice, done["id"]), stored(alice, kept["id"])) == (404, kept)


# Transaction blocks: the COMMIT is what is cut.
def bulk(alice, task):
    operations = [
        {"op": "update", "id": task["id"], "data": {"title": "bulk"}},
        {"op": "create", "data": {"title": "created in bulk"}},
        {"op": "delete", "id": task["id"]},
    ]
    return alice.post("/v1/tasks/bulk", {"operations": operations}, format="json")


def idempotent_create(alice, task):
    return alice.post(
        "/v1/tasks", {"title": "once"}, format="json", HTTP_IDEMPOTENCY_KEY="in-doubt-key"
    )


def move(alice, task):
    return alice.post(f"/v1/tasks/{task['id']}/move", {"after": None}, format="json")


def complete_recurring(alice, task):
    return alice.patch(f"/v1/tasks/{task['id']}", {"completed": True}, format="json")


BLOCKS = [bulk, idempotent_create, move, complete_recurring]
# The idempotent create first deletes expired keys, in a transaction of its own.
COMMITS_BEFORE = {idempotent_create: 1}
RECURRING = {"due_at": "2030-01-01T09:00:00Z", "recurrence": "FREQ=DAILY"}


def snapshot(alice) -> list[dict]:
    settle()
    return alice.get("/v1/tasks?page_size=200").json()["results"]


@pytest.mark.parametrize("write", BLOCKS)
def test_a_transaction_whose_commit_landed_is_answered_as_committed(proxy, alice, make_task, write):
    make_task(title="other")
    task = make_task(**RECURRING)
    before = snapshot(alice)
    back = cut_at(proxy, COMMIT, deliver=True, skip=COMMITS_BEFORE.get(write, 0))
    response = write(alice, task)
    back.join()
    assert response.status_code in (200, 201), response.content
    assert snapshot(alice) != before
    # The answer is what a retry-free client would have got: compare it with what is stored.
    if write is bulk:
        results = response.json()["results"]
        assert [result["status"] for result in results] == [200, 201, 204]
        assert stored(alice, results[1]["task"]["id"]) == results[1]["task"]
        assert stored(alice, task["id"]) == 404
    else:
        answered, now = response.json(), stored(alice, response.json()["id"])
        # A completion's answer names the next occurrence, which a read may not.
        assert now == {key: value for key, value in answered.items() if key in now}
    if write is idempotent_create:
        replay = idempotent_create(alice, task)
        assert (replay.status_code, replay.json()) == (201, response.json())
        assert replay["Idempotent-Replayed"] == "true"


@pytest.mark.parametrize("write", BLOCKS)
def test_a_transaction_whose_commit_never_arrived_is_503_and_changed_nothing(
    proxy, alice, make_task, write
):
    make_task(title="other")
    task = make_task(**RECURRING)
    before = snapshot(alice)
    back = cut_at(proxy, COMMIT, deliver=False, skip=COMMITS_BEFORE.get(write, 0))
    assert_not_applied(write(alice, task))
    back.join()
    assert snapshot(alice) == before


def test_a_write_is_503_outcome_unknown_when_the_database_stays_away(
    proxy, alice, make_task, monkeypatch
):
    monkeypatch.setattr(in_doubt, "RESOLVE_WITHIN_SECONDS", 0.5)
    task = make_task()
    back = cut_at(proxy, UPDATE, deliver=True, back=False)
    response = patch(alice, task)
    back.join()
    assert response.status_code == 503
    assert response.json()["errors"][0]["code"] == "write_outcome_unknown"
    assert int(response["Retry-After"]) > 0


def test_a_write_is_503_outcome_unknown_when_a_later_write_replaced_it(proxy, alice, make_task):
    task = make_task()
    sprung = proxy.cut_at(UPDATE, deliver=True)

    def later_write_then_back() -> None:
        sprung.wait(10)
        # Another client's write, straight to the database, before the service reconnects.
        settings = connection.settings_dict
        with psycopg.connect(
            host=proxy.target[0],
            port=proxy.target[1],
            dbname=settings["NAME"],
            user=settings["USER"],
        ) as direct:
            direct.execute(
                "UPDATE tasks SET updated_at = updated_at + %s WHERE id = %s",
                [timedelta(seconds=1), task["id"]],
            )
        proxy.restore()

    comes_back = threading.Thread(target=later_write_then_back, daemon=True)
    comes_back.start()
    response = patch(alice, task)
    comes_back.join()
    assert response.status_code == 503
    assert response.json()["errors"][0]["code"] == "write_outcome_unknown"
