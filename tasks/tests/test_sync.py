"""Incremental sync: tombstones, GET /v1/tasks/changes, and replicas that converge."""

import base64
import io
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection, connections, transaction
from django.utils import timezone

from tasks import services
from tasks.models import Task
from tasks.sync import SYNC_TOKENS, SyncToken
from tasks.tests.conftest import client_for, in_thread
from tasks.tests.test_pagination import walk

MISSING_ID = "00000000-0000-0000-0000-000000000000"

# On PostgreSQL a change is handed out once no older transaction is still open, and a test's
# own wrapping transaction would be one: tests that read changes commit for real there.
reads_changes = pytest.mark.django_db(transaction=connection.vendor == "postgresql")


def settle() -> None:
    """PostgreSQL hands out a change once every older transaction of the whole cluster has
    ended (other sessions' and other databases' included): wait for that, as a polling client
    would, so that a concurrent run elsewhere cannot make these tests flaky."""
    if connection.vendor != "postgresql":
        return
    deadline = time.monotonic() + 30
    with connection.cursor() as cursor:
        while True:
            cursor.execute(
                "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"
                " > COALESCE(MAX(change_seq), 0) FROM tasks"
            )
            if cursor.fetchone()[0]:
                return
            assert time.monotonic() < deadline, "a transaction held the sync horizon for 30 s"
            time.sleep(0.01)


def changes(client, since: str | None = None, *, wait: bool = True, **params) -> dict:
    if wait:
        settle()
    if since is not None:
        params["since"] = since
    response = client.get("/v1/tasks/changes", params)
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"results", "next_since", "has_more"}
    return body


def pull(
    client, replica: dict, since: str | None = None, page_size: int = 3, *, wait: bool = True
) -> str | None:
    """Apply every page of changes to `replica` (id -> task); returns the new token."""
    while True:
        body = changes(client, since, wait=wait, page_size=page_size)
        for change in body["results"]:
            if change["deleted"]:
                replica.pop(change["id"], None)
            else:
                replica[change["id"]] = {k: v for k, v in change.items() if k != "deleted"}
        since = body["next_since"]
        if not body["has_more"]:
            return since


def server_state(client) -> dict:
    pages = walk(client, "/v1/tasks?page_size=200")
    return {task["id"]: task for page in pages for task in page["results"]}


def issued(token: str, *, days_ago: float) -> str:
    """The same position as `token`, as if the server had issued it `days_ago` days ago."""
    position = SyncToken.decode(token)
    return SyncToken(position.change_seq, position.last_id, time.time() - days_ago * 86400).encode()


# --- tombstones -----------------------------------------------------------------------------


def test_a_deleted_task_is_gone_from_every_route_but_kept_as_a_tombstone(alice, make_task):
    task, other = make_task(details="secret", labels=["x"]), make_task()
    assert alice.delete(f"/v1/tasks/{task['id']}").status_code == 204
    path = f"/v1/tasks/{task['id']}"
    assert alice.get(path).status_code == 404
    assert alice.patch(path, {"title": "back"}, format="json").status_code == 404
    assert alice.put(path, {"title": "back"}, format="json").status_code == 404
    assert alice.post(f"{path}/toggle").status_code == 404
    assert alice.post(f"{path}/move", {"after": None}, format="json").status_code == 404
    moved_after = {"after": task["id"]}
    assert (
        alice.post(f"/v1/tasks/{other['id']}/move", moved_after, format="json").status_code == 404
    )
    assert alice.delete(path).status_code == 404
    assert [t["id"] for t in alice.get("/v1/tasks").json()["results"]] == [other["id"]]
    assert alice.get("/v1/tasks?q=secret").json()["results"] == []
    assert alice.get("/v1/tasks?label=x").json()["results"] == []
    tombstone = Task.all_objects.get(pk=task["id"])
    assert tombstone.deleted_at is not None
    assert (tombstone.title, tombstone.details, tombstone.labels) == ("", "", [])


# --- GET /v1/tasks/changes ------------------------------------------------------------------


@reads_changes
def test_without_a_token_changes_lists_everything_oldest_change_first(alice, bob, make_task):
    first, second, third = (make_task(title=n) for n in ("first", "second", "third"))
    make_task(bob, title="bob's")
    alice.patch(f"/v1/tasks/{first['id']}", {"title": "first, edited"}, format="json")
    alice.delete(f"/v1/tasks/{second['id']}")
    body = changes(alice)
    assert body["has_more"] is False
    assert [c["id"] for c in body["results"]] == [third["id"], first["id"], second["id"]]
    live, edited, deleted = body["results"]
    assert live == {**alice.get(f"/v1/tasks/{third['id']}").json(), "deleted": False}
    assert edited["title"] == "first, edited" and edited["deleted"] is False
    assert set(deleted) == {"id", "deleted", "deleted_at"}
    assert deleted["deleted"] is True
    stored = Task.all_objects.get(pk=second["id"]).deleted_at
    assert timezone.datetime.fromisoformat(deleted["deleted_at"].replace("Z", "+00:00")) == stored


@reads_changes
def test_a_token_gives_only_what_changed_after_it(alice, make_task):
    kept, edited, removed = make_task(title="kept"), make_task(title="e"), make_task(title="r")
    token = changes(alice)["next_since"]
    assert changes(alice, token)["results"] == []
    alice.patch(f"/v1/tasks/{edited['id']}", {"priority": "high"}, format="json")
    alice.delete(f"/v1/tasks/{removed['id']}")
    created = make_task(title="new")
    alice.post(f"/v1/tasks/{edited['id']}/toggle")  # a second change: reported once, latest
    body = changes(alice, token)
    assert [c["id"] for c in body["results"]] == [removed["id"], created["id"], edited["id"]]
    assert body["results"][2]["completed"] is True
    assert body["results"][2]["priority"] == "high"
    assert kept["id"] not in {c["id"] for c in body["results"]}
    again = changes(alice, body["next_since"])
    assert again["results"] == [] and again["has_more"] is False


@reads_changes
def test_changes_are_paginated_with_next_since_and_has_more(alice, make_task):
    made = [make_task(title=f"t{n}")["id"] for n in range(7)]
    seen, since, pages = [], None, []
    while True:
        body = changes(alice, since, page_size=3)
        pages.append((len(body["results"]), body["has_more"]))
        seen += [c["id"] for c in body["results"]]
        since = body["next_since"]
        if not body["has_more"]:
            break
    assert pages == [(3, True), (3, True), (1, False)]
    assert seen == made


@reads_changes
def test_changes_are_only_the_callers(alice, bob, make_task):
    make_task(title="alice's")
    theirs = make_task(bob, title="bob's")
    bob.delete(f"/v1/tasks/{theirs['id']}")
    assert [c["title"] for c in changes(alice)["results"]] == ["alice's"]
    assert [c["id"] for c in changes(bob)["results"]] == [theirs["id"]]
    assert changes(client_for("carol"))["results"] == []


@reads_changes
def test_clear_completed_is_reported_as_deletions(alice, make_task):
    done, open_ = make_task(completed=True), make_task()
    token = changes(alice)["next_since"]
    alice.post("/v1/tasks/clear-completed")
    assert [(c["id"], c["deleted"]) for c in changes(alice, token)["results"]] == [
        (done["id"], True)
    ]
    assert open_["id"] in server_state(alice)


def scripted_session(client, replica: dict, rng: random.Random, steps: int) -> str | None:
    since = None
    for step in range(steps):
        live = list(server_state(client))
        action = rng.choice(["create", "create", "patch", "toggle", "delete", "move", "sync"])
        if action == "create" or not live:
            client.post("/v1/tasks", {"title": f"t{step}", "labels": [f"l{step % 3}"]},
                        format="json")  # fmt: skip
        elif action == "patch":
            client.patch(f"/v1/tasks/{rng.choice(live)}", {"details": f"d{step}"}, format="json")
        elif action == "toggle":
            client.post(f"/v1/tasks/{rng.choice(live)}/toggle")
        elif action == "delete":
            client.delete(f"/v1/tasks/{rng.choice(live)}")
        elif action == "move":
            task, after = rng.choice(live), rng.choice([None, *live])
            if task != after:
                client.post(f"/v1/tasks/{task}/move", {"after": after}, format="json")
        else:
            since = pull(client, replica, since, page_size=rng.choice([1, 2, 5]))
            assert replica == server_state(client), step
    return pull(client, replica, since)


@reads_changes
def test_a_replica_that_applies_the_changes_converges_to_the_server(alice, bob, make_task):
    replica: dict = {}
    scripted_session(alice, replica, random.Random(3), 60)
    assert replica == server_state(alice)
    assert replica and all(t["user_id"] == "alice" for t in replica.values())


@reads_changes
def test_a_fresh_replica_from_scratch_equals_the_server(alice, make_task):
    for n in range(5):
        task = make_task(title=f"t{n}", labels=["x"])
        if n % 2:
            alice.delete(f"/v1/tasks/{task['id']}")
    replica: dict = {}
    pull(alice, replica, page_size=2)
    assert replica == server_state(alice)


@reads_changes
def test_sync_reports_the_next_occurrence_of_a_recurring_task(alice, make_task):
    task = make_task(due_at="2026-01-10T09:00:00Z", recurrence="FREQ=DAILY")
    replica: dict = {}
    since = pull(alice, replica)
    done = alice.post(f"/v1/tasks/{task['id']}/toggle").json()
    pull(alice, replica, since)
    assert done["next_occurrence_id"] in replica
    assert replica == server_state(alice)


@reads_changes
def test_sync_reports_the_positions_a_rebalance_rewrote(alice):
    """Tasks from before positions existed share the key "": the first move spreads them out."""
    Task.all_objects.bulk_create(Task(user_id="alice", title=f"t{n}") for n in range(4))
    replica: dict = {}
    since = pull(alice, replica)
    first, second = sorted(replica)[:2]
    response = alice.post(f"/v1/tasks/{first}/move", {"after": second}, format="json")
    assert response.status_code == 200
    pull(alice, replica, since)
    assert replica == server_state(alice)


# --- tokens ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    [
        "junk", "!!!", "", "e30", "bnVsbA",  # "{}", "null"
        base64.urlsafe_b64encode(b'{"s": "x", "i": "", "t": 0}').decode(),
        base64.urlsafe_b64encode(b'{"s": 1, "i": "not-a-uuid", "t": 1e12}').decode(),
        base64.urlsafe_b64encode(b'{"s": 1, "i": ""}').decode(),
        base64.urlsafe_b64encode(b'[1, 2, 3]').decode(),
        base64.urlsafe_b64encode(b'{"s": 0, "i": "", "t": 9e9}').decode().rstrip("="),
        "{signed}x", "x{signed}",
    ],
    ids=["junk", "not-base64", "empty", "empty-object", "null", "bad-seq", "bad-id",
         "no-time", "a-list", "unsigned", "tampered-end", "tampered-start"],
)  # fmt: skip
def test_a_malformed_sync_token_is_422(alice, token):
    token = token.replace("{signed}", SyncToken(0, "", time.time()).encode())
    response = alice.get("/v1/tasks/changes", {"since": token})
    assert response.status_code == 422, response.content
    assert response.json()["errors"][0]["attr"] == "since"


@pytest.mark.parametrize("value", ["0", "-1", "x", "1.5", "", "00"])
def test_a_bad_changes_page_size_is_422(alice, value):
    response = alice.get("/v1/tasks/changes", {"page_size": value})
    assert response.status_code == 422
    assert response.json()["errors"][0]["attr"] == "page_size"


@reads_changes
def test_a_token_older_than_the_tombstone_retention_is_410(alice, make_task, settings):
    make_task()
    token = changes(alice)["next_since"]
    assert alice.get("/v1/tasks/changes", {"since": issued(token, days_ago=29)}).status_code == 200
    response = alice.get("/v1/tasks/changes", {"since": issued(token, days_ago=31)})
    assert response.status_code == 410
    assert response.json()["errors"][0]["code"] == "sync_token_expired"
    settings.TOMBSTONE_RETENTION_DAYS = 1
    assert alice.get("/v1/tasks/changes", {"since": issued(token, days_ago=2)}).status_code == 410
    assert alice.get("/v1/tasks/changes", {"since": token}).status_code == 200
    settings.TOMBSTONE_RETENTION_DAYS = 0
    time.sleep(0.01)
    assert alice.get("/v1/tasks/changes", {"since": token}).status_code == 410
    # Without a token there is nothing to expire: a full resync.
    assert alice.get("/v1/tasks/changes").status_code == 200


@reads_changes  # on PostgreSQL each request its own transaction: change_seq orders the rows
def test_purge_tombstones_removes_only_tombstones_older_than_the_retention(
    alice, bob, make_task, settings
):
    old, recent, live = make_task(), make_task(), make_task()
    bobs_old = make_task(bob)
    for task, client in ((old, alice), (recent, alice), (bobs_old, bob)):
        client.delete(f"/v1/tasks/{task['id']}")
    # Each user's newest row is never purged (see the next test): make it a live task.
    alice.patch(f"/v1/tasks/{live['id']}", {"title": "newest"}, format="json")
    bobs_live = make_task(bob)
    Task.all_objects.filter(pk__in=[old["id"], bobs_old["id"]]).update(
        deleted_at=timezone.now() - timedelta(days=31)
    )
    Task.all_objects.filter(pk=recent["id"]).update(deleted_at=timezone.now() - timedelta(days=29))
    call_command("purge_tombstones", stdout=io.StringIO())
    remaining = {str(pk) for pk in Task.all_objects.values_list("id", flat=True)}
    assert remaining == {recent["id"], live["id"], bobs_live["id"]}
    settings.TOMBSTONE_RETENTION_DAYS = 7
    call_command("purge_tombstones", stdout=io.StringIO())
    remaining = {str(pk) for pk in Task.all_objects.values_list("id", flat=True)}
    assert remaining == {live["id"], bobs_live["id"]}


@reads_changes
def test_a_change_after_a_purge_is_not_hidden_behind_a_purged_tombstone(alice, make_task):
    gone = make_task()
    alice.delete(f"/v1/tasks/{gone['id']}")
    last = "ffffffff-ffff-4fff-bfff-ffffffffffff"  # the newest change sorts last among its ties
    Task.all_objects.filter(pk=gone["id"]).update(id=last)
    replica: dict = {}
    since = pull(alice, replica)
    assert changes(alice, since)["results"] == []
    Task.all_objects.filter(pk=last).update(deleted_at=timezone.now() - timedelta(days=31))
    call_command("purge_tombstones", stdout=io.StringIO())
    created = make_task(title="after the purge")
    pull(alice, replica, since)
    assert created["id"] in replica


# --- PostgreSQL: writers racing a syncing reader --------------------------------------------


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_a_change_that_commits_late_is_not_skipped(make_task):
    early, later = make_task(title="early"), None
    replica: dict = {}
    since = pull(client_for("alice"), replica)
    written, release = threading.Event(), threading.Event()

    def slow_writer():
        try:
            with transaction.atomic():
                services.task_update(
                    user_id="alice",
                    task_id=early["id"],
                    changes={"title": "committed late"},
                    versions=None,
                )
                written.set()
                release.wait(10)
        finally:
            connections.close_all()

    thread = threading.Thread(target=slow_writer)
    thread.start()
    try:
        assert written.wait(10)
        later = make_task(title="later, committed first")  # a newer transaction id
        since = pull(client_for("alice"), replica, since, wait=False)
        assert replica[early["id"]]["title"] == "early"
    finally:
        release.set()
        thread.join()
    pull(client_for("alice"), replica, since)
    assert replica[early["id"]]["title"] == "committed late"
    assert later["id"] in replica
    assert replica == server_state(client_for("alice"))


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_a_replica_converges_while_other_connections_write():
    done = threading.Event()

    @in_thread
    def writer(n):
        client, rng = client_for("alice"), random.Random(n)
        mine = []
        for step in range(12):
            if not mine or rng.random() < 0.5:
                created = client.post("/v1/tasks", {"title": f"w{n}-{step}"}, format="json")
                mine.append(created.json()["id"])
            elif rng.random() < 0.5:
                client.patch(f"/v1/tasks/{rng.choice(mine)}", {"details": str(step)}, format="json")
            else:
                client.delete(f"/v1/tasks/{mine.pop(rng.randrange(len(mine)))}")

    @in_thread
    def reader():
        client, replica, since, rounds = client_for("alice"), {}, None, 0
        while not done.is_set() or rounds == 0:
            since = pull(client, replica, since, page_size=4, wait=False)
            rounds += 1
        return client, replica, since, rounds

    with ThreadPoolExecutor(max_workers=5) as pool:
        syncing = pool.submit(reader)
        list(pool.map(writer, range(4)))
        done.set()
        client, replica, since, rounds = syncing.result()
    pull(client, replica, since)
    connections.close_all()
    assert rounds > 1
    assert replica == server_state(client_for("alice"))
    assert len(replica) == Task.all_objects.for_user("alice").count() > 0


@reads_changes
def test_a_token_from_the_middle_of_a_feed_keeps_the_time_the_feed_began(
    alice, make_task, settings
):
    def issued_at(token: str) -> float:
        return SYNC_TOKENS.decode(token)["t"]

    for n in range(6):
        make_task(title=f"t{n}")
    first = changes(alice, page_size=2)
    assert first["has_more"]
    time.sleep(1.1)
    second = changes(alice, first["next_since"], page_size=2)
    assert issued_at(second["next_since"]) == issued_at(first["next_since"])
    rest = changes(alice, second["next_since"], page_size=10)
    assert not rest["has_more"]
    assert issued_at(rest["next_since"]) > issued_at(first["next_since"])
    assert SyncToken.decode(rest["next_since"]).issued_at == issued_at(rest["next_since"])
