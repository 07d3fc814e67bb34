"""Bulk with list_id, parent_id and temp ids; GET /v1/changes, one feed for lists and tasks; and
ownership of every id a request can carry (CONTRACT-lists.md)."""

import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection, connections, transaction

from tasks import list_services, selectors
from tasks.tests.conftest import client_for, in_thread
from tasks.tests.test_bulk_and_stats import bulk
from tasks.tests.test_lists import (
    MISSING_ID,
    NOT_FOUND,
    all_lists,
    all_tasks,
    assert_error,
    default_list,
    get_list,
    get_task,
    make_list,
    state,
    task_ids,
)
from tasks.tests.test_sync import reads_changes

# --- bulk with list_id, parent_id and temp ids ----------------------------------------------


def create(title: str, temp_id: str | None = None, **data) -> dict:
    operation = {"op": "create", "data": {"title": title, **data}}
    if temp_id is not None:
        operation["temp_id"] = temp_id
    return operation


def test_bulk_creates_a_tree_with_temp_ids_and_maps_them(alice):
    groceries = make_list(alice)
    response = bulk(
        alice,
        create("parent", "tmp-parent", list_id=groceries["id"]),
        create("child", "tmp-child", parent_id="tmp-parent"),
        create("grandchild", parent_id="tmp-child"),
        {"op": "update", "id": "tmp-child", "data": {"details": "edited"}},
        create("plain"),
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"results", "temp_id_mapping"}
    results = body["results"]
    assert [r["status"] for r in results] == [201, 201, 201, 200, 201]
    parent, child, grandchild = (r["task"] for r in results[:3])
    assert body["temp_id_mapping"] == {"tmp-parent": parent["id"], "tmp-child": child["id"]}
    assert (parent["list_id"], parent["parent_id"]) == (groceries["id"], None)
    assert (child["list_id"], child["parent_id"]) == (groceries["id"], parent["id"])
    assert grandchild["parent_id"] == child["id"]
    assert results[3]["task"]["id"] == child["id"]
    assert get_task(alice, child["id"])["details"] == "edited"
    assert results[4]["task"]["list_id"] == default_list(alice)["id"]


def test_temp_ids_work_in_toggle_and_delete_too(alice):
    response = bulk(
        alice,
        create("parent", "p"),
        create("child", "c", parent_id="p"),
        {"op": "toggle", "id": "p"},
        create("doomed", "d"),
        {"op": "delete", "id": "d"},
    )
    assert response.status_code == 200, response.content
    mapping = response.json()["temp_id_mapping"]
    assert set(mapping) == {"p", "c", "d"}
    assert get_task(alice, mapping["c"])["completed"] is True  # completed with its parent
    assert alice.get(f"/v1/tasks/{mapping['d']}").status_code == 404
    assert sorted(task_ids(alice)) == sorted([mapping["p"], mapping["c"]])


def test_the_temp_id_mapping_is_empty_without_temp_ids(alice, make_task):
    task = make_task()
    response = bulk(alice, create("x"), {"op": "toggle", "id": task["id"]})
    assert response.status_code == 200, response.content
    assert response.json()["temp_id_mapping"] == {}


def test_a_temp_id_may_be_any_string_of_1_to_64_characters_that_is_not_a_uuid(alice):
    names = ["a", "x" * 64, "tmp 1/ü", "123"]
    response = bulk(alice, *(create(f"t{n}", name) for n, name in enumerate(names)))
    assert response.status_code == 200, response.content
    assert set(response.json()["temp_id_mapping"]) == set(names)


def test_bulk_update_with_list_id_and_parent_id_moves_subtrees(alice, make_task):
    groceries = make_list(alice)
    parent = make_task(title="parent")
    child = make_task(title="child", parent_id=parent["id"])
    host = make_task(title="host")
    response = bulk(
        alice,
        {"op": "update", "id": parent["id"], "data": {"list_id": groceries["id"]}},
        {"op": "update", "id": host["id"], "data": {"parent_id": parent["id"]}},
    )
    assert response.status_code == 200, response.content
    assert get_task(alice, child["id"])["list_id"] == groceries["id"]
    moved = get_task(alice, host["id"])
    assert (moved["list_id"], moved["parent_id"]) == (groceries["id"], parent["id"])


UPPER = "B" * 8 + "-0000-4000-8000-" + "0" * 12
BAD_TEMP_IDS = [
    ("uuid", str(uuid.uuid4())),
    ("uppercase-uuid", UPPER),
    ("nil-uuid", MISSING_ID),
    ("empty", ""),
    ("65-chars", "x" * 65),
    ("number", 5),
    ("list", ["x"]),
]


@pytest.mark.parametrize("temp_id", [v for _, v in BAD_TEMP_IDS], ids=[n for n, _ in BAD_TEMP_IDS])
def test_a_bad_temp_id_is_422_and_stores_nothing(alice, make_task, temp_id):
    make_task()
    before = state(alice)
    operation = {"op": "create", "temp_id": temp_id, "data": {"title": "x"}}
    response = bulk(alice, create("first", "ok"), operation)
    assert_error(response, 422, attr="operations.1.temp_id")
    assert state(alice) == before


def test_a_duplicate_temp_id_is_422_and_stores_nothing(alice):
    before = state(alice)
    response = bulk(alice, create("a", "same"), create("b", "other"), create("c", "same"))
    assert_error(response, 422, attr="operations.2.temp_id")
    assert state(alice) == before


@pytest.mark.parametrize(
    ("operations", "where"),
    [
        ([{"op": "update", "id": "later", "data": {"title": "x"}}, create("later", "later")],
         "operations.0.id"),
        ([{"op": "toggle", "id": "later"}, create("later", "later")], "operations.0.id"),
        ([{"op": "delete", "id": "later"}, create("later", "later")], "operations.0.id"),
        ([create("child", parent_id="later"), create("later", "later")],
         "operations.0.data.parent_id"),
        ([create("self", "self", parent_id="self")], "operations.0.data.parent_id"),
        ([create("a", "a"), {"op": "update", "id": "nowhere", "data": {"title": "x"}}],
         "operations.1.id"),
        ([create("a", "a"), create("b", parent_id="nowhere")], "operations.1.data.parent_id"),
        ([create("a", "a"), {"op": "update", "id": "a", "data": {"parent_id": "nowhere"}}],
         "operations.1.data.parent_id"),
    ],
    ids=["update-before-create", "toggle-before-create", "delete-before-create",
         "parent-before-create", "own-parent", "undefined-id", "undefined-parent",
         "undefined-parent-in-update"],
)  # fmt: skip
def test_a_temp_id_not_created_earlier_in_the_batch_is_422_and_stores_nothing(
    alice, make_task, operations, where
):
    make_task()
    before = state(alice)
    assert_error(bulk(alice, *operations), 422, attr=where)
    assert state(alice) == before


def test_temp_ids_do_not_outlive_their_batch(alice):
    first = bulk(alice, create("a", "kept-temp"))
    assert first.status_code == 200, first.content
    before = state(alice)
    response = bulk(alice, create("b", parent_id="kept-temp"))
    assert_error(response, 422, attr="operations.0.data.parent_id")
    assert state(alice) == before


@pytest.mark.parametrize(
    ("operations", "code", "where"),
    [
        ([create("p", "p"), create("c", "c", parent_id="p"),
          {"op": "update", "id": "p", "data": {"parent_id": "c"}}],
         "cycle", "operations.2.data.parent_id"),
        ([create("l1", "l1"), *(create(f"l{n}", f"l{n}", parent_id=f"l{n-1}") for n in range(2, 6)),
          create("l6", parent_id="l5")],
         "too_deep", "operations.5.data.parent_id"),
        ([create("r", "r", due_at="2026-03-01", recurrence="FREQ=DAILY"),
          create("c", parent_id="r")],
         "recurring_task_in_tree", "operations.1.data.parent_id"),
        ([create("p", "p"), create("c", parent_id="p", list_id="{groceries}")],
         "parent_in_other_list", "operations.1.data.list_id"),
    ],
    ids=["cycle", "too-deep", "recurring-parent", "parent-in-other-list"],
)  # fmt: skip
def test_a_tree_rule_broken_in_a_batch_is_422_and_stores_nothing(alice, operations, code, where):
    operations = fill(operations, {"groceries": make_list(alice)["id"]})
    before = state(alice)
    assert_error(bulk(alice, *operations), 422, code=code, attr=where)
    assert state(alice) == before


# --- GET /v1/changes ------------------------------------------------------------------------


def settle() -> None:
    """On PostgreSQL a change is handed out once every transaction that began before it has
    ended (anywhere in the cluster): wait for that, as a polling client would."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint")
        (horizon,) = cursor.fetchone()
        deadline = time.monotonic() + 30
        while True:
            cursor.execute(
                "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint >= %s", [horizon]
            )
            if cursor.fetchone()[0]:
                return
            assert time.monotonic() < deadline, "a transaction held the sync horizon for 30 s"
            time.sleep(0.01)


def feed(client, since: str | None = None, *, wait: bool = True, **params) -> dict:
    if wait:
        settle()
    if since is not None:
        params["since"] = since
    response = client.get("/v1/changes", params)
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"lists", "tasks", "next_since", "has_more"}
    assert isinstance(body["next_since"], str) and isinstance(body["has_more"], bool)
    return body


def apply(replica: dict, changes: list[dict]) -> None:
    for change in changes:
        if change["deleted"]:
            replica.pop(change["id"], None)
        else:
            replica[change["id"]] = {k: v for k, v in change.items() if k != "deleted"}


def pull(client, lists: dict, tasks: dict, since=None, page_size: int = 3, *, wait=True) -> str:
    while True:
        body = feed(client, since, wait=wait, page_size=page_size)
        apply(lists, body["lists"])
        apply(tasks, body["tasks"])
        since = body["next_since"]
        if not body["has_more"]:
            return since


def server_state(client) -> tuple[dict, dict]:
    return (
        {item["id"]: item for item in all_lists(client)},
        {task["id"]: task for task in all_tasks(client)},
    )


def ids(changes: list[dict]) -> list[str]:
    return [change["id"] for change in changes]


@reads_changes
def test_without_a_token_the_feed_has_every_list_and_task_oldest_change_first(alice, bob):
    default = default_list(alice)
    renamed, doomed = make_list(alice, "renamed"), make_list(alice, "doomed")
    edited = alice.post("/v1/tasks", {"title": "edited"}, format="json").json()
    kept = alice.post("/v1/tasks", {"title": "kept"}, format="json").json()
    in_doomed = alice.post(
        "/v1/tasks", {"title": "in doomed", "list_id": doomed["id"]}, format="json"
    ).json()
    make_list(bob, "bob's")
    alice.patch(f"/v1/lists/{renamed['id']}", {"title": "renamed!"}, format="json")
    alice.patch(f"/v1/tasks/{edited['id']}", {"title": "edited!"}, format="json")
    assert alice.delete(f"/v1/lists/{doomed['id']}").status_code == 204

    body = feed(alice)
    assert body["has_more"] is False
    assert ids(body["lists"]) == [default["id"], renamed["id"], doomed["id"]]
    assert ids(body["tasks"]) == [kept["id"], edited["id"], in_doomed["id"]]
    live_default, live_renamed, list_tombstone = body["lists"]
    assert live_default == {**get_list(alice, default["id"]), "deleted": False}
    assert live_renamed == {**get_list(alice, renamed["id"]), "deleted": False}
    assert live_renamed["title"] == "renamed!"
    assert body["tasks"][0] == {**get_task(alice, kept["id"]), "deleted": False}
    assert body["tasks"][1]["title"] == "edited!"
    for tombstone in (list_tombstone, body["tasks"][2]):
        assert set(tombstone) == {"id", "deleted", "deleted_at"}
        assert tombstone["deleted"] is True


@reads_changes
def test_a_token_gives_only_lists_and_tasks_changed_after_it(alice, make_task):
    moved, untouched = make_list(alice, "moved"), make_list(alice, "untouched")
    task, gone = make_task(title="task"), make_task(title="gone")
    token = feed(alice)["next_since"]
    assert feed(alice, token)["lists"] == feed(alice, token)["tasks"] == []
    assert (
        alice.post(f"/v1/lists/{moved['id']}/move", {"after": None}, format="json").status_code
        == 200
    )
    alice.post(f"/v1/tasks/{task['id']}/toggle")
    alice.delete(f"/v1/tasks/{gone['id']}")
    created = make_task(title="new", list_id=untouched["id"])  # not a write of the list
    body = feed(alice, token)
    assert ids(body["lists"]) == [moved["id"]]
    assert ids(body["tasks"]) == [task["id"], gone["id"], created["id"]]
    assert body["tasks"][0]["completed"] is True
    again = feed(alice, body["next_since"])
    assert (again["lists"], again["tasks"], again["has_more"]) == ([], [], False)


@reads_changes
def test_page_size_counts_lists_and_tasks_together(alice, make_task):
    made_lists = [default_list(alice)["id"]] + [make_list(alice, f"l{n}")["id"] for n in range(2)]
    made_tasks = [make_task(title=f"t{n}")["id"] for n in range(4)]
    seen_lists, seen_tasks, sizes, since = [], [], [], None
    while True:
        body = feed(alice, since, page_size=3)
        sizes.append((len(body["lists"]) + len(body["tasks"]), body["has_more"]))
        seen_lists += ids(body["lists"])
        seen_tasks += ids(body["tasks"])
        since = body["next_since"]
        if not body["has_more"]:
            break
    assert sizes == [(3, True), (3, True), (1, False)]
    assert (seen_lists, seen_tasks) == (made_lists, made_tasks)


@reads_changes
def test_the_feed_is_only_the_callers(alice, bob, make_task):
    make_list(alice, "alice's")
    make_task(title="alice's")
    theirs = make_task(bob, title="bob's")
    body = feed(bob)
    assert ids(body["tasks"]) == [theirs["id"]]
    assert ids(body["lists"]) == [default_list(bob)["id"]]
    assert all(item["title"] != "alice's" for item in body["lists"])


@reads_changes
def test_the_tasks_feed_keeps_answering_as_before(alice, make_task):
    make_list(alice)
    task = make_task()
    settle()
    response = alice.get("/v1/tasks/changes")
    assert response.status_code == 200, response.content
    assert set(response.json()) == {"results", "next_since", "has_more"}
    assert ids(response.json()["results"]) == [task["id"]]


@pytest.mark.parametrize("token", ["junk", "!!!", "", "e30", "bnVsbA"])
def test_a_sync_token_the_server_did_not_issue_is_422(alice, token):
    assert_error(alice.get("/v1/changes", {"since": token}), 422, attr="since")


@pytest.mark.parametrize("value", ["0", "-1", "x", "1.5", ""])
def test_a_bad_feed_page_size_is_422(alice, value):
    assert_error(alice.get("/v1/changes", {"page_size": value}), 422, attr="page_size")


@reads_changes
def test_a_token_older_than_the_retention_is_410(alice, make_task, settings):
    make_task()
    token = feed(alice)["next_since"]
    settings.TOMBSTONE_RETENTION_DAYS = 0
    time.sleep(0.01)
    assert_error(alice.get("/v1/changes", {"since": token}), 410, code="sync_token_expired")
    assert alice.get("/v1/changes").status_code == 200  # a full resync needs no token


def scripted_session(client, rng: random.Random, steps: int) -> None:
    """Random writes of lists and tasks, with a pull now and then."""
    lists, tasks, since = {}, {}, None
    for step in range(steps):
        list_pool = [item["id"] for item in all_lists(client)]
        task_pool = task_ids(client)
        action = rng.choice(
            [
                "list",
                "rename",
                "move-list",
                "drop-list",
                "task",
                "subtask",
                "edit",
                "toggle",
                "delete",
                "reparent",
                "relist",
                "sync",
            ]
        )
        extra = [item["id"] for item in all_lists(client) if not item["is_default"]]
        if action == "list" or (action in ("drop-list", "rename") and not extra):
            client.post("/v1/lists", {"title": f"l{step}"}, format="json")
        elif action == "rename":
            client.patch(f"/v1/lists/{rng.choice(extra)}", {"title": f"r{step}"}, format="json")
        elif action == "move-list":
            client.post(
                f"/v1/lists/{rng.choice(list_pool)}/move",
                {"after": rng.choice([None, *list_pool])},
                format="json",
            )
        elif action == "drop-list":
            client.delete(f"/v1/lists/{rng.choice(extra)}")
        elif action == "task" or not task_pool:
            client.post(
                "/v1/tasks", {"title": f"t{step}", "list_id": rng.choice(list_pool)}, format="json"
            )
        elif action == "subtask":
            client.post(
                "/v1/tasks",
                {"title": f"s{step}", "parent_id": rng.choice(task_pool)},
                format="json",
            )
        elif action == "edit":
            client.patch(
                f"/v1/tasks/{rng.choice(task_pool)}", {"details": str(step)}, format="json"
            )
        elif action == "toggle":
            client.post(f"/v1/tasks/{rng.choice(task_pool)}/toggle")
        elif action == "delete":
            client.delete(f"/v1/tasks/{rng.choice(task_pool)}")
        elif action == "reparent":
            client.patch(
                f"/v1/tasks/{rng.choice(task_pool)}",
                {"parent_id": rng.choice([None, *task_pool])},
                format="json",
            )
        elif action == "relist":
            client.patch(
                f"/v1/tasks/{rng.choice(task_pool)}",
                {"list_id": rng.choice(list_pool)},
                format="json",
            )
        else:
            since = pull(client, lists, tasks, since, page_size=rng.choice([1, 2, 5]))
            assert (lists, tasks) == server_state(client), step
    pull(client, lists, tasks, since)
    assert (lists, tasks) == server_state(client)
    assert lists and tasks


@reads_changes
def test_a_replica_that_applies_the_feed_converges_to_the_server(alice):
    scripted_session(alice, random.Random(5), 80)


@reads_changes
def test_a_fresh_replica_from_one_pull_equals_the_server(alice, make_task):
    groceries = make_list(alice)
    parent = make_task(list_id=groceries["id"])
    make_task(parent_id=parent["id"], completed=True)
    doomed = make_list(alice, "doomed")
    make_task(list_id=doomed["id"])
    alice.delete(f"/v1/lists/{doomed['id']}")
    lists, tasks = {}, {}
    pull(alice, lists, tasks, page_size=1)
    assert (lists, tasks) == server_state(alice)


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_a_replica_converges_while_other_connections_write_lists_and_tasks():
    done = threading.Event()

    @in_thread
    def writer(n):
        client, rng = client_for("alice"), random.Random(n)
        for step in range(10):
            if rng.random() < 0.3:
                client.post("/v1/lists", {"title": f"w{n}-{step}"}, format="json")
            else:
                lists = [item["id"] for item in all_lists(client)]
                client.post(
                    "/v1/tasks",
                    {"title": f"w{n}-{step}", "list_id": rng.choice(lists)},
                    format="json",
                )

    @in_thread
    def reader():
        client, lists, tasks, since, rounds = client_for("alice"), {}, {}, None, 0
        while not done.is_set() or rounds == 0:
            since = pull(client, lists, tasks, since, page_size=4, wait=False)
            rounds += 1
        return client, lists, tasks, since

    with ThreadPoolExecutor(max_workers=4) as pool:
        syncing = pool.submit(reader)
        list(pool.map(writer, range(3)))
        done.set()
        client, lists, tasks, since = syncing.result()
    pull(client, lists, tasks, since)
    server_lists, server_tasks = server_state(client_for("alice"))
    assert sorted(lists) == sorted(server_lists)
    assert sorted(tasks) == sorted(server_tasks)
    assert (lists, tasks) == (server_lists, server_tasks)
    assert len(tasks) == 30 - sum(1 for item in lists.values() if not item["is_default"])


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_a_list_change_that_commits_while_the_feed_is_read_is_not_skipped(monkeypatch):
    """A list renamed in a transaction that began before a task's but commits after it, right
    while a page of the feed is being read: a later pull must still bring the rename."""
    client = client_for("alice")
    groceries = make_list(client)
    lists, tasks = {}, {}
    since = pull(client, lists, tasks)
    written, release = threading.Event(), threading.Event()

    def slow_rename():
        try:
            with transaction.atomic():
                list_services.list_update(
                    user_id="alice", list_id=groceries["id"], title="renamed late", versions=None
                )
                written.set()
                release.wait(10)
        finally:
            connections.close_all()

    def committing_the_rename_after(read):
        def reading(**kwargs):
            rows = read(**kwargs)
            release.set()
            writer.join()
            return rows

        return reading

    writer = threading.Thread(target=slow_rename)
    writer.start()
    try:
        assert written.wait(10)
        created = client.post("/v1/tasks", {"title": "committed first"}, format="json")
        assert created.status_code == 201, created.content
        for name in ("list_changes", "task_changes"):  # whichever the feed reads first
            monkeypatch.setattr(
                selectors, name, committing_the_rename_after(getattr(selectors, name))
            )
        since = pull(client, lists, tasks, since, wait=False)
    finally:
        release.set()
        writer.join()
    monkeypatch.undo()
    pull(client, lists, tasks, since)
    assert lists[groceries["id"]]["title"] == "renamed late"
    assert (lists, tasks) == server_state(client)


# --- ownership ------------------------------------------------------------------------------


@pytest.fixture
def foreign(alice, make_task):
    """Alice's data, which bob will aim at: a list with a completed tree, and her default list."""
    groceries = make_list(alice, "alice's")
    task = make_task(title="alice's", list_id=groceries["id"], completed=True)
    make_task(title="alice's child", parent_id=task["id"], completed=True)
    return {"list": groceries["id"], "task": task["id"], "default": default_list(alice)["id"]}


@pytest.fixture
def own(bob, make_task):
    """Bob's own list and tasks, named in the requests beside alice's ids."""
    mine = make_list(bob, "bob's")
    task = make_task(bob, title="bob's", list_id=mine["id"])
    sibling = make_task(bob, title="bob's sibling", list_id=mine["id"])
    return {"own_list": mine["id"], "own_task": task["id"], "own_sibling": sibling["id"]}


def fill(value, names: dict):
    """`value` with every "{name}" string replaced, however deep."""
    if isinstance(value, str):
        return value.format(**names)
    if isinstance(value, dict):
        return {key: fill(item, names) for key, item in value.items()}
    if isinstance(value, list):
        return [fill(item, names) for item in value]
    return value


def ops(*operations) -> dict:
    return {"operations": list(operations)}


ROUTES = [
    ("get", "/v1/lists/{list}", None),
    ("put", "/v1/lists/{list}", {"title": "hijacked"}),
    ("patch", "/v1/lists/{list}", {"title": "hijacked"}),
    ("delete", "/v1/lists/{list}", None),
    ("post", "/v1/lists/{list}/move", {"after": None}),
    ("post", "/v1/lists/{own_list}/move", {"after": "{list}"}),
    ("get", "/v1/tasks?list={list}", None),
    ("get", "/v1/tasks?list={list}&parent=none&ordering=position", None),
    ("get", "/v1/tasks?parent={task}", None),
    ("get", "/v1/tasks?list={own_list}&parent={task}", None),
    ("get", "/v1/tasks/stats?list={list}", None),
    ("post", "/v1/tasks/clear-completed?list={list}", None),
    ("post", "/v1/tasks", {"title": "x", "list_id": "{list}"}),
    ("post", "/v1/tasks", {"title": "x", "list_id": "{default}"}),
    ("post", "/v1/tasks", {"title": "x", "parent_id": "{task}"}),
    ("patch", "/v1/tasks/{own_task}", {"list_id": "{list}"}),
    ("patch", "/v1/tasks/{own_task}", {"parent_id": "{task}"}),
    ("put", "/v1/tasks/{own_task}", {"title": "x", "list_id": "{list}"}),
    ("put", "/v1/tasks/{own_task}", {"title": "x", "parent_id": "{task}"}),
    ("post", "/v1/tasks/{own_task}/move", {"after": "{task}"}),
    ("post", "/v1/tasks/{own_task}/move", {"after": None, "parent_id": "{task}"}),
    ("post", "/v1/tasks/{own_task}/move", {"after": None, "list_id": "{list}"}),
    ("post", "/v1/tasks/{own_task}/move", {"after": "{own_sibling}", "list_id": "{list}"}),
    ("post", "/v1/tasks/{task}/move", {"after": None, "parent_id": "{own_task}"}),
    ("post", "/v1/tasks/{task}/move", {"after": None, "list_id": "{own_list}"}),
    ("post", "/v1/tasks/bulk", ops({"op": "create", "data": {"title": "x", "list_id": "{list}"}})),
    ("post", "/v1/tasks/bulk", ops({"op": "create", "temp_id": "t",
                                    "data": {"title": "x", "parent_id": "{task}"}})),
    ("post", "/v1/tasks/bulk", ops({"op": "update", "id": "{own_task}",
                                    "data": {"list_id": "{list}"}})),
    ("post", "/v1/tasks/bulk", ops({"op": "create", "temp_id": "t", "data": {"title": "x"}},
                                   {"op": "update", "id": "t", "data": {"parent_id": "{task}"}})),
    ("post", "/v1/tasks/bulk", ops({"op": "update", "id": "{task}",
                                    "data": {"parent_id": "{own_task}"}})),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_another_users_id_anywhere_is_404_like_a_missing_one_and_changes_nothing(
    alice, bob, foreign, own, method, path, body
):
    before = state(alice, bob)
    answers = []
    for names in (foreign, dict.fromkeys(foreign, MISSING_ID)):
        names = {**names, **own}
        answers.append(getattr(bob, method)(fill(path, names), fill(body, names), format="json"))
        assert state(alice, bob) == before
    theirs, missing = answers
    assert theirs.status_code == missing.status_code == 404, theirs.content
    assert theirs.content == missing.content
    [error] = theirs.json()["errors"]
    assert error["code"] == "not_found"


def test_clearing_or_deleting_never_touches_another_users_data(alice, bob, foreign, own):
    before = state(alice)
    assert bob.post(f"/v1/tasks/clear-completed?list={own['own_list']}").status_code == 200
    assert bob.post("/v1/tasks/clear-completed").status_code == 200
    assert bob.delete(f"/v1/lists/{own['own_list']}").status_code == 204
    assert state(alice) == before


DELETED_IDS = [
    ("get", "/v1/lists/{list}", None),
    ("post", "/v1/lists/{own_list}/move", {"after": "{list}"}),
    ("get", "/v1/tasks?list={list}", None),
    ("get", "/v1/tasks?parent={task}", None),
    ("post", "/v1/tasks", {"title": "x", "list_id": "{list}"}),
    ("post", "/v1/tasks", {"title": "x", "parent_id": "{task}"}),
    ("patch", "/v1/tasks/{own_task}", {"parent_id": "{task}"}),
    ("post", "/v1/tasks/{own_task}/move", {"after": "{task}"}),
    ("post", "/v1/tasks/{own_task}/move", {"after": None, "parent_id": "{task}"}),
    ("post", "/v1/tasks/{own_task}/move", {"after": None, "list_id": "{list}"}),
]


@pytest.mark.parametrize(("method", "path", "body"), DELETED_IDS)
def test_a_deleted_list_or_task_is_404_like_a_missing_one(alice, make_task, method, path, body):
    own_list = make_list(alice, "kept")
    own_task = make_task(list_id=own_list["id"])
    gone_list = make_list(alice, "gone")
    gone_task = make_task(title="gone")
    assert alice.delete(f"/v1/lists/{gone_list['id']}").status_code == 204
    assert alice.delete(f"/v1/tasks/{gone_task['id']}").status_code == 204
    own = {"own_list": own_list["id"], "own_task": own_task["id"]}
    before = state(alice)
    answers = []
    for names in ({"list": gone_list["id"], "task": gone_task["id"]},
                  {"list": MISSING_ID, "task": MISSING_ID}):  # fmt: skip
        names = {**names, **own}
        answers.append(getattr(alice, method)(fill(path, names), fill(body, names), format="json"))
    assert [a.status_code for a in answers] == [404, 404], answers[0].content
    assert answers[0].json() == answers[1].json()
    assert [e["code"] for e in answers[0].json()["errors"]] == ["not_found"]
    assert state(alice) == before


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [("get", "/v1/lists/not-a-uuid", None), ("patch", "/v1/lists/not-a-uuid", {"title": "x"}),
     ("delete", "/v1/lists/not-a-uuid", None),
     ("post", "/v1/lists/not-a-uuid/move", {"after": None})],
)  # fmt: skip
def test_a_malformed_list_id_in_the_path_is_404(alice, method, path, body):
    response = getattr(alice, method)(path, body, format="json")
    assert response.status_code == 404, response.content
    assert response.json() == NOT_FOUND
