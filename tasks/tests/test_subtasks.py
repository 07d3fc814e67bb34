"""Tasks in lists, and subtasks (CONTRACT-lists.md): list_id and parent_id, the tree rules
(one list per tree, no cycles, 5 levels, no recurrence in a tree), completion down and up,
deleting and moving subtrees, POST /move with parent_id and list_id, and the filters."""

import random
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import pytest

from tasks.tests.conftest import client_for, in_thread
from tasks.tests.test_bulk_and_stats import bulk
from tasks.tests.test_lists import (
    all_lists,
    all_tasks,
    assert_error,
    default_list,
    get_task,
    make_list,
    state,
    task_ids,
)
from tasks.tests.test_sync import changes as task_changes
from tasks.tests.test_sync import reads_changes

DUE = "2026-03-01T09:00:00Z"
RECURRING = {"due_at": DUE, "recurrence": "FREQ=DAILY"}
REPARENT = ["patch", "put", "move", "bulk"]
COMPLETE = ["toggle", "put", "patch", "bulk-toggle", "bulk-update"]


def chain(make_task, levels: int, **top_fields) -> list[dict]:
    """`levels` tasks, each a subtask of the one before (the first is top level)."""
    tasks = [make_task(title="level 1", **top_fields)]
    for level in range(2, levels + 1):
        tasks.append(make_task(title=f"level {level}", parent_id=tasks[-1]["id"]))
    return tasks


def reparent(client, how: str, task_id: str, parent_id: str | None, **extra):
    """Change a task's parent (and whatever `extra` says) by PATCH, PUT, POST move or bulk."""
    body = {"parent_id": parent_id, **extra}
    path = f"/v1/tasks/{task_id}"
    if how == "patch":
        return client.patch(path, body, format="json")
    if how == "put":
        return client.put(path, {"title": "reparented", **body}, format="json")
    if how == "move":
        return client.post(f"{path}/move", {"after": None, **body}, format="json")
    return bulk(client, {"op": "update", "id": task_id, "data": body})


def attr(how: str, field: str) -> str:
    """Where a write names a bad field: bulk prefixes the operation's place in the batch."""
    return f"operations.0.data.{field}" if how.startswith("bulk") else field


def written(response, how: str) -> dict:
    """The task a successful write answered with."""
    assert response.status_code == 200, response.content
    if how.startswith("bulk"):
        return response.json()["results"][0]["task"]
    return response.json()


def set_completed(client, how: str, task_id: str, completed: bool):
    path = f"/v1/tasks/{task_id}"
    if how == "toggle":
        return client.post(f"{path}/toggle")
    if how == "put":
        return client.put(path, {"title": "x", "completed": completed}, format="json")
    if how == "patch":
        return client.patch(path, {"completed": completed}, format="json")
    if how == "bulk-toggle":
        return bulk(client, {"op": "toggle", "id": task_id})
    return bulk(client, {"op": "update", "id": task_id, "data": {"completed": completed}})


def move(client, task_id: str, **body):
    return client.post(f"/v1/tasks/{task_id}/move", body, format="json")


def children(client, parent_id: str) -> list[str]:
    return task_ids(client, f"parent={parent_id}&ordering=position")


def top_level(client, list_id: str) -> list[str]:
    return task_ids(client, f"list={list_id}&parent=none&ordering=position")


def assert_trees_hold(client) -> None:
    """Every rule of the trees, checked on what the client can read: each parent is live, in the
    same list; no cycle; at most 5 levels; a completed task has no open subtask."""
    tasks = {task["id"]: task for task in all_tasks(client)}
    lists = {item["id"] for item in all_lists(client)}
    for task in tasks.values():
        assert task["list_id"] in lists, task
        level, current = 1, task
        while current["parent_id"] is not None:
            parent = tasks.get(current["parent_id"])
            assert parent is not None, f"{current['id']} has a missing parent"
            assert parent["list_id"] == current["list_id"], (parent, current)
            assert not (parent["completed"] and not current["completed"]), (parent, current)
            assert parent["recurrence"] in (None, ""), parent
            level, current = level + 1, parent
            assert level <= 5, f"{task['id']} is deeper than 5 levels (or in a cycle)"


def completion(client, *tasks: dict) -> list[tuple]:
    return [
        (get_task(client, t["id"])["completed"], get_task(client, t["id"])["completed_at"])
        for t in tasks
    ]


# --- list_id and parent_id ------------------------------------------------------------------


def test_every_task_representation_has_list_id_and_parent_id(alice, make_task):
    default = default_list(alice)["id"]
    parent = make_task(title="parent")
    child = make_task(title="child", parent_id=parent["id"])
    path = f"/v1/tasks/{child['id']}"
    answers = [
        child,
        get_task(alice, child["id"]),
        alice.patch(path, {"title": "p"}, format="json").json(),
        alice.put(path, {"title": "q"}, format="json").json(),
        alice.post(f"{path}/toggle").json(),
        move(alice, child["id"], after=None).json(),
        *[t for t in alice.get("/v1/tasks").json()["results"] if t["id"] == child["id"]],
    ]
    assert len(answers) == 7
    for answer in answers:
        assert (answer["list_id"], answer["parent_id"]) == (default, parent["id"]), answer
    assert (parent["list_id"], parent["parent_id"]) == (default, None)


def test_a_task_is_created_in_the_default_list_unless_list_id_says_otherwise(alice, make_task):
    groceries = make_list(alice)
    assert make_task()["list_id"] == default_list(alice)["id"]
    placed = make_task(list_id=groceries["id"])
    assert (placed["list_id"], placed["parent_id"]) == (groceries["id"], None)
    assert get_task(alice, placed["id"])["list_id"] == groceries["id"]


def test_a_subtask_is_created_in_its_parents_list(alice, make_task):
    groceries = make_list(alice)
    parent = make_task(list_id=groceries["id"])
    child = make_task(parent_id=parent["id"])
    assert (child["list_id"], child["parent_id"]) == (groceries["id"], parent["id"])
    same = make_task(parent_id=parent["id"], list_id=groceries["id"])
    assert same["list_id"] == groceries["id"]
    assert sorted(task_ids(alice, f"parent={parent['id']}")) == sorted([child["id"], same["id"]])


def test_a_subtask_with_another_list_id_than_its_parents_is_422_and_stores_nothing(
    alice, make_task
):
    groceries = make_list(alice)
    parent = make_task(list_id=groceries["id"])
    before = state(alice)
    response = alice.post(
        "/v1/tasks",
        {"title": "x", "parent_id": parent["id"], "list_id": default_list(alice)["id"]},
        format="json",
    )
    assert_error(response, 422, code="parent_in_other_list", attr="list_id")
    assert state(alice) == before


# --- no cycles ------------------------------------------------------------------------------


@pytest.mark.parametrize("how", REPARENT)
@pytest.mark.parametrize("target", [0, 1, 2], ids=["itself", "its-child", "its-grandchild"])
def test_a_task_cannot_become_a_subtask_of_itself_or_its_subtasks(alice, make_task, how, target):
    tasks = chain(make_task, 3)
    before = state(alice)
    response = reparent(alice, how, tasks[0]["id"], tasks[target]["id"])
    assert_error(response, 422, code="cycle", attr=attr(how, "parent_id"))
    assert state(alice) == before


def test_a_subtask_cannot_become_a_subtask_of_its_own_descendant(alice, make_task):
    tasks = chain(make_task, 4)
    before = state(alice)
    response = alice.patch(
        f"/v1/tasks/{tasks[1]['id']}", {"parent_id": tasks[3]["id"]}, format="json"
    )
    assert_error(response, 422, code="cycle", attr="parent_id")
    assert state(alice) == before


# --- at most 5 levels -----------------------------------------------------------------------


def test_five_levels_are_allowed_and_a_sixth_is_422_too_deep(alice, make_task):
    tasks = chain(make_task, 5)
    assert [t["parent_id"] for t in tasks[1:]] == [t["id"] for t in tasks[:-1]]
    before = state(alice)
    response = alice.post(
        "/v1/tasks", {"title": "level 6", "parent_id": tasks[-1]["id"]}, format="json"
    )
    assert_error(response, 422, code="too_deep", attr="parent_id")
    assert state(alice) == before


@pytest.mark.parametrize("how", REPARENT)
def test_moving_a_subtree_counts_its_own_depth(alice, make_task, how):
    levels = chain(make_task, 4)
    subtree = chain(make_task, 2)  # a task with one subtask
    before = state(alice)
    response = reparent(alice, how, subtree[0]["id"], levels[3]["id"])  # would reach level 6
    assert_error(response, 422, code="too_deep", attr=attr(how, "parent_id"))
    assert state(alice) == before
    moved = written(reparent(alice, how, subtree[0]["id"], levels[2]["id"]), how)  # levels 4, 5
    assert moved["parent_id"] == levels[2]["id"]
    assert get_task(alice, subtree[1]["id"])["parent_id"] == subtree[0]["id"]


@pytest.mark.parametrize("how", REPARENT)
def test_a_deep_subtree_moved_one_level_down_is_too_deep(alice, make_task, how):
    levels = chain(make_task, 5)
    other = chain(make_task, 2)
    assert written(reparent(alice, how, levels[1]["id"], other[0]["id"]), how)  # still 5 levels
    before = state(alice)
    response = reparent(alice, how, levels[1]["id"], other[1]["id"])
    assert_error(response, 422, code="too_deep", attr=attr(how, "parent_id"))
    assert state(alice) == before


# --- recurrence stays out of trees ----------------------------------------------------------


def test_a_recurring_task_cannot_get_subtasks(alice, make_task):
    recurring = make_task(**RECURRING)
    before = state(alice)
    response = alice.post("/v1/tasks", {"title": "x", "parent_id": recurring["id"]}, format="json")
    assert_error(response, 422, code="recurring_task_in_tree", attr="parent_id")
    assert state(alice) == before
    plain = make_task(title="plain")
    before = state(alice)
    response = alice.patch(
        f"/v1/tasks/{plain['id']}", {"parent_id": recurring["id"]}, format="json"
    )
    assert_error(response, 422, code="recurring_task_in_tree", attr="parent_id")
    assert state(alice) == before


@pytest.mark.parametrize("how", REPARENT)
def test_a_recurring_task_cannot_get_a_parent(alice, make_task, how):
    parent = make_task(title="parent")
    recurring = make_task(**RECURRING)
    before = state(alice)
    response = reparent(alice, how, recurring["id"], parent["id"])
    assert_error(response, 422, code="recurring_task_in_tree", attr=attr(how, "parent_id"))
    assert state(alice) == before


def test_a_new_recurring_subtask_is_422(alice, make_task):
    parent = make_task()
    before = state(alice)
    response = alice.post(
        "/v1/tasks", {"title": "x", "parent_id": parent["id"], **RECURRING}, format="json"
    )
    body = assert_error(response, 422, code="recurring_task_in_tree")
    assert body["errors"][0]["attr"] in ("parent_id", "recurrence")
    assert state(alice) == before


@pytest.mark.parametrize("how", ["patch", "put", "bulk"])
@pytest.mark.parametrize("role", ["subtask", "parent"])
def test_a_task_in_a_tree_cannot_get_a_recurrence(alice, make_task, how, role):
    parent = make_task(title="parent", due_at=DUE)
    child = make_task(title="child", parent_id=parent["id"], due_at=DUE)
    target = child if role == "subtask" else parent
    before = state(alice)
    data = {"title": "x", **RECURRING}
    if how == "bulk":
        response = bulk(alice, {"op": "update", "id": target["id"], "data": data})
    else:
        response = getattr(alice, how)(f"/v1/tasks/{target['id']}", data, format="json")
    assert_error(response, 422, code="recurring_task_in_tree", attr=attr(how, "recurrence"))
    assert state(alice) == before


def test_a_recurring_top_level_task_can_change_lists(alice, make_task):
    recurring = make_task(**RECURRING)
    groceries = make_list(alice)
    response = alice.patch(
        f"/v1/tasks/{recurring['id']}", {"list_id": groceries["id"]}, format="json"
    )
    assert response.status_code == 200, response.content
    assert (response.json()["list_id"], response.json()["recurrence"]) == (
        groceries["id"], "FREQ=DAILY"
    )  # fmt: skip


# --- completion: down and up ----------------------------------------------------------------


@pytest.fixture
def tree(make_task):
    """root ─┬─ a ─┬─ a1
    │     └─ a2 (completed)
    └─ b"""
    root = make_task(title="root")
    a = make_task(title="a", parent_id=root["id"])
    return {
        "root": root,
        "a": a,
        "a1": make_task(title="a1", parent_id=a["id"]),
        "a2": make_task(title="a2", parent_id=a["id"], completed=True),
        "b": make_task(title="b", parent_id=root["id"]),
        "unrelated": make_task(title="unrelated"),
    }


@pytest.fixture
def done_tree(make_task):
    """The same shape, every task completed (each created completed)."""
    root = make_task(title="root", completed=True)
    a = make_task(title="a", parent_id=root["id"], completed=True)
    return {
        "root": root,
        "a": a,
        "a1": make_task(title="a1", parent_id=a["id"], completed=True),
        "a2": make_task(title="a2", parent_id=a["id"], completed=True),
        "b": make_task(title="b", parent_id=root["id"], completed=True),
        "unrelated": make_task(title="unrelated", completed=True),
    }


@pytest.mark.parametrize("how", COMPLETE)
def test_completing_a_task_completes_its_open_descendants(alice, tree, how):
    a2_before = get_task(alice, tree["a2"]["id"])
    done = written(set_completed(alice, how, tree["root"]["id"], True), how)
    assert done["completed"] is True and done["completed_at"] is not None
    for name in ("a", "a1", "b"):
        task = get_task(alice, tree[name]["id"])
        assert task["completed"] is True, name
        assert task["completed_at"] is not None, name
    assert get_task(alice, tree["a2"]["id"])["completed_at"] == a2_before["completed_at"]
    assert get_task(alice, tree["unrelated"]["id"]) == tree["unrelated"]


@pytest.mark.parametrize("how", COMPLETE)
def test_completing_a_subtask_completes_only_its_own_subtree(alice, tree, how):
    written(set_completed(alice, how, tree["a"]["id"], True), how)
    assert get_task(alice, tree["a1"]["id"])["completed"] is True
    assert [get_task(alice, tree[n]["id"])["completed"] for n in ("root", "b")] == [False, False]


@pytest.mark.parametrize("how", COMPLETE)
def test_reopening_a_task_reopens_its_completed_ancestors_only(alice, done_tree, how):
    kept = completion(alice, done_tree["a2"], done_tree["b"], done_tree["unrelated"])
    reopened = written(set_completed(alice, how, done_tree["a1"]["id"], False), how)
    assert (reopened["completed"], reopened["completed_at"]) == (False, None)
    assert completion(alice, done_tree["a"], done_tree["root"]) == [(False, None)] * 2
    assert completion(alice, done_tree["a2"], done_tree["b"], done_tree["unrelated"]) == kept


@pytest.mark.parametrize("how", ["create", "bulk-create", *REPARENT])
def test_a_task_toggled_alone_completes_the_subtasks_it_gains_later(alice, make_task, how):
    """Toggled while outside any tree (one UPDATE), then given a subtask however it is given:
    its toggles reach the subtask from then on."""
    parent = make_task(title="parent")
    for _ in range(2):
        alice.post(f"/v1/tasks/{parent['id']}/toggle")
    if how == "create":
        child = make_task(title="child", parent_id=parent["id"])
    elif how == "bulk-create":
        response = bulk(alice, {"op": "create", "data": {"title": "c", "parent_id": parent["id"]}})
        child = response.json()["results"][0]["task"]
    else:
        child = written(reparent(alice, how, make_task(title="child")["id"], parent["id"]), how)
    assert alice.post(f"/v1/tasks/{parent['id']}/toggle").json()["completed"] is True
    assert get_task(alice, child["id"])["completed"] is True
    assert alice.post(f"/v1/tasks/{child['id']}/toggle").json()["completed"] is False
    assert get_task(alice, parent["id"])["completed"] is False  # reopened with it
    assert_trees_hold(alice)


def test_completing_the_last_open_subtask_leaves_the_parent_open(alice, tree):
    for name in ("a1", "b"):
        alice.post(f"/v1/tasks/{tree[name]['id']}/toggle")
    assert completion(alice, tree["a"], tree["root"]) == [(False, None)] * 2


def test_creating_an_open_subtask_under_a_completed_parent_reopens_its_ancestors(
    alice, done_tree, make_task
):
    kept = completion(alice, done_tree["a1"], done_tree["b"])
    make_task(title="new", parent_id=done_tree["a"]["id"])
    assert completion(alice, done_tree["a"], done_tree["root"]) == [(False, None)] * 2
    assert completion(alice, done_tree["a1"], done_tree["b"]) == kept


def test_a_bulk_created_open_subtask_reopens_its_ancestors(alice, done_tree):
    response = bulk(
        alice, {"op": "create", "data": {"title": "n", "parent_id": done_tree["a"]["id"]}}
    )
    assert response.status_code == 200, response.content
    assert completion(alice, done_tree["a"], done_tree["root"]) == [(False, None)] * 2


def test_creating_a_completed_subtask_under_a_completed_parent_changes_nothing(
    alice, done_tree, make_task
):
    before = completion(alice, done_tree["a"], done_tree["root"])
    make_task(title="done too", parent_id=done_tree["a"]["id"], completed=True)
    assert completion(alice, done_tree["a"], done_tree["root"]) == before


@pytest.mark.parametrize("how", REPARENT)
def test_moving_an_open_task_under_a_completed_parent_reopens_its_ancestors(
    alice, done_tree, make_task, how
):
    mover = make_task(title="open")
    kept = completion(alice, done_tree["a1"], done_tree["b"])
    moved = written(reparent(alice, how, mover["id"], done_tree["a"]["id"]), how)
    assert (moved["parent_id"], moved["completed"]) == (done_tree["a"]["id"], False)
    assert completion(alice, done_tree["a"], done_tree["root"]) == [(False, None)] * 2
    assert completion(alice, done_tree["a1"], done_tree["b"]) == kept


@pytest.mark.parametrize("how", REPARENT)
def test_moving_a_completed_task_under_a_completed_parent_changes_no_completion(
    alice, done_tree, make_task, how
):
    mover = make_task(title="done", completed=True)
    before = completion(alice, mover, done_tree["a"], done_tree["root"])
    written(reparent(alice, how, mover["id"], done_tree["a"]["id"]), how)
    assert completion(alice, mover, done_tree["a"], done_tree["root"]) == before


def test_moving_tasks_out_of_a_tree_changes_no_completion(alice, tree):
    alice.post(f"/v1/tasks/{tree['a2']['id']}/toggle")  # reopened: a is all open
    alice.post(f"/v1/tasks/{tree['b']['id']}/toggle")  # completed, under an open root
    before = completion(alice, *tree.values())
    for name in ("a", "b"):
        response = alice.patch(f"/v1/tasks/{tree[name]['id']}", {"parent_id": None}, format="json")
        assert response.status_code == 200, response.content
    assert completion(alice, *tree.values()) == before


def test_deleting_the_open_subtasks_completes_nothing(alice, tree):
    """a keeps only a completed subtask (a2), root only completed ones below: still open."""
    before = completion(alice, tree["root"], tree["a"], tree["a2"])
    for name in ("a1", "b"):
        assert alice.delete(f"/v1/tasks/{tree[name]['id']}").status_code == 204
    assert alice.post("/v1/tasks/clear-completed").json() == {"deleted": 1}  # a2
    assert completion(alice, tree["root"], tree["a"]) == before[:2]


# --- delete ---------------------------------------------------------------------------------


@reads_changes
@pytest.mark.parametrize("how", ["delete", "bulk"])
def test_deleting_a_task_deletes_its_whole_subtree_as_tombstones(alice, tree, how):
    token = task_changes(alice)["next_since"]
    if how == "delete":
        assert alice.delete(f"/v1/tasks/{tree['a']['id']}").status_code == 204
    else:
        assert bulk(alice, {"op": "delete", "id": tree["a"]["id"]}).status_code == 200
    gone = {tree[name]["id"] for name in ("a", "a1", "a2")}
    for task_id in gone:
        assert alice.get(f"/v1/tasks/{task_id}").status_code == 404
    assert sorted(task_ids(alice)) == sorted(tree[n]["id"] for n in ("root", "b", "unrelated"))
    assert children(alice, tree["root"]["id"]) == [tree["b"]["id"]]
    feed = task_changes(alice, token)["results"]
    assert {c["id"] for c in feed} == gone
    assert all(c["deleted"] is True and set(c) == {"id", "deleted", "deleted_at"} for c in feed)


def test_deleting_a_top_level_task_deletes_every_level(alice, make_task):
    tasks = chain(make_task, 5)
    keep = make_task(title="keep")
    assert alice.delete(f"/v1/tasks/{tasks[0]['id']}").status_code == 204
    assert task_ids(alice) == [keep["id"]]


# --- changing list_id or parent_id ----------------------------------------------------------


@pytest.mark.parametrize("how", ["patch", "put", "bulk"])
def test_changing_list_id_moves_the_subtree_to_the_top_level_of_that_list(alice, tree, how):
    groceries = make_list(alice)
    data = {"title": "a", "list_id": groceries["id"]}
    if how == "bulk":
        response = bulk(alice, {"op": "update", "id": tree["a"]["id"], "data": data})
    else:
        response = getattr(alice, how)(f"/v1/tasks/{tree['a']['id']}", data, format="json")
    moved = written(response, how)
    assert (moved["list_id"], moved["parent_id"]) == (groceries["id"], None)
    for name in ("a1", "a2"):
        task = get_task(alice, tree[name]["id"])
        assert (task["list_id"], task["parent_id"]) == (groceries["id"], tree["a"]["id"])
    assert top_level(alice, groceries["id"]) == [tree["a"]["id"]]
    assert children(alice, tree["root"]["id"]) == [tree["b"]["id"]]
    assert get_task(alice, tree["root"]["id"])["list_id"] == default_list(alice)["id"]


def test_list_id_with_a_parent_in_that_list_moves_the_subtree_under_it(alice, tree, make_task):
    groceries = make_list(alice)
    host = make_task(title="host", list_id=groceries["id"])
    response = alice.patch(
        f"/v1/tasks/{tree['a']['id']}",
        {"list_id": groceries["id"], "parent_id": host["id"]},
        format="json",
    )
    moved = written(response, "patch")
    assert (moved["list_id"], moved["parent_id"]) == (groceries["id"], host["id"])
    assert get_task(alice, tree["a1"]["id"])["list_id"] == groceries["id"]
    assert top_level(alice, groceries["id"]) == [host["id"]]


def test_list_id_with_a_parent_in_another_list_is_422_and_changes_nothing(alice, tree):
    groceries = make_list(alice)
    before = state(alice)
    response = alice.patch(
        f"/v1/tasks/{tree['a']['id']}",
        {"list_id": groceries["id"], "parent_id": tree["b"]["id"]},
        format="json",
    )
    assert_error(response, 422, code="parent_in_other_list", attr="list_id")
    assert state(alice) == before


@pytest.mark.parametrize("how", REPARENT)
def test_changing_parent_id_moves_the_subtree_into_the_parents_list(alice, tree, make_task, how):
    groceries = make_list(alice)
    host = make_task(title="host", list_id=groceries["id"])
    moved = written(reparent(alice, how, tree["a"]["id"], host["id"]), how)
    assert (moved["list_id"], moved["parent_id"]) == (groceries["id"], host["id"])
    for name in ("a1", "a2"):
        task = get_task(alice, tree[name]["id"])
        assert (task["list_id"], task["parent_id"]) == (groceries["id"], tree["a"]["id"])
    assert children(alice, host["id"]) == [tree["a"]["id"]]
    assert top_level(alice, groceries["id"]) == [host["id"]]


@pytest.mark.parametrize("how", REPARENT)
def test_a_null_parent_id_makes_a_subtask_top_level_in_its_list(alice, make_task, how):
    groceries = make_list(alice)
    parent = make_task(list_id=groceries["id"])
    child = make_task(parent_id=parent["id"])
    grandchild = make_task(parent_id=child["id"])
    moved = written(reparent(alice, how, child["id"], None), how)
    assert (moved["list_id"], moved["parent_id"]) == (groceries["id"], None)
    assert get_task(alice, grandchild["id"])["parent_id"] == child["id"]
    assert sorted(top_level(alice, groceries["id"])) == sorted([parent["id"], child["id"]])


# --- POST /v1/tasks/{id}/move ---------------------------------------------------------------


@pytest.fixture
def siblings(make_task):
    """A parent with three subtasks, put in the order c1, c2, c3 by moves."""
    parent = make_task(title="parent")
    made = [make_task(title=f"c{n}", parent_id=parent["id"])["id"] for n in (1, 2, 3)]
    return parent["id"], made


@pytest.fixture
def ordered(alice, siblings):
    parent, (c1, c2, c3) = siblings
    for mover, after in ((c1, None), (c2, c1), (c3, c2)):
        response = move(alice, mover, after=after)
        assert response.status_code == 200, response.content
        assert response.json()["parent_id"] == parent
    assert children(alice, parent) == [c1, c2, c3]
    return parent, [c1, c2, c3]


def test_move_without_parent_id_or_list_id_orders_siblings_in_place(alice, ordered):
    parent, (c1, c2, c3) = ordered
    assert move(alice, c3, after=None).json()["parent_id"] == parent
    assert children(alice, parent) == [c3, c1, c2]
    assert move(alice, c3, after=c2).status_code == 200
    assert children(alice, parent) == [c1, c2, c3]
    assert move(alice, c1, after=c2).status_code == 200
    assert children(alice, parent) == [c2, c1, c3]


def test_move_with_parent_id_puts_the_task_under_it_first_or_after_a_sibling(
    alice, ordered, make_task
):
    parent, (c1, c2, c3) = ordered
    x, y = make_task(title="x")["id"], make_task(title="y")["id"]
    child_of_x = make_task(title="x's", parent_id=x)["id"]
    moved = move(alice, x, after=None, parent_id=parent)
    assert moved.status_code == 200, moved.content
    assert moved.json()["parent_id"] == parent
    assert children(alice, parent) == [x, c1, c2, c3]
    assert move(alice, y, after=c2, parent_id=parent).status_code == 200
    assert children(alice, parent) == [x, c1, c2, y, c3]
    assert children(alice, x) == [child_of_x]


def test_move_with_list_id_makes_the_task_top_level_in_that_list(alice, ordered, make_task):
    parent, (c1, c2, c3) = ordered
    groceries = make_list(alice)
    first, second = (make_task(title=t, list_id=groceries["id"])["id"] for t in ("f", "s"))
    assert move(alice, first, after=None).status_code == 200
    assert move(alice, second, after=first).status_code == 200
    grandchild = make_task(title="c2's", parent_id=c2)["id"]
    moved = move(alice, c2, after=first, list_id=groceries["id"])
    assert moved.status_code == 200, moved.content
    assert (moved.json()["list_id"], moved.json()["parent_id"]) == (groceries["id"], None)
    assert top_level(alice, groceries["id"]) == [first, c2, second]
    assert children(alice, parent) == [c1, c3]
    assert get_task(alice, grandchild)["list_id"] == groceries["id"]
    assert move(alice, c3, after=None, list_id=groceries["id"]).status_code == 200
    assert top_level(alice, groceries["id"]) == [c3, first, c2, second]


def test_move_with_a_null_parent_id_makes_the_task_top_level_in_its_list(alice, ordered):
    parent, (c1, _, _) = ordered
    moved = move(alice, c1, after=parent, parent_id=None)
    assert moved.status_code == 200, moved.content
    assert moved.json()["parent_id"] is None
    assert top_level(alice, default_list(alice)["id"]) == [parent, c1]


@pytest.mark.parametrize(
    "case",
    ["the-target-parent", "a-child-of-another-parent", "top-level-when-moving-under-a-parent",
     "a-subtask-when-moving-to-top-level", "in-another-list", "own-subtask"],
)  # fmt: skip
def test_move_after_a_task_that_is_not_a_sibling_is_422(alice, ordered, make_task, case):
    parent, (c1, c2, _) = ordered
    other_parent = make_task(title="other parent")["id"]
    cousin = make_task(title="cousin", parent_id=other_parent)["id"]
    groceries = make_list(alice)
    elsewhere = make_task(title="elsewhere", list_id=groceries["id"])["id"]
    own_child = make_task(title="c1's", parent_id=c1)["id"]
    body = {
        "the-target-parent": {"after": parent},
        "a-child-of-another-parent": {"after": cousin},
        "top-level-when-moving-under-a-parent": {"after": other_parent, "parent_id": parent},
        "a-subtask-when-moving-to-top-level": {"after": c2, "parent_id": None},
        "in-another-list": {"after": elsewhere},
        "own-subtask": {"after": own_child},
    }[case]
    before = state(alice)
    assert_error(move(alice, c1, **body), 422, code="not_a_sibling", attr="after")
    assert state(alice) == before


@pytest.mark.parametrize("how", ["move-list-id", "move-parent-id"])
def test_move_after_a_task_of_the_old_list_is_422(alice, ordered, make_task, how):
    parent, (c1, _, _) = ordered
    groceries = make_list(alice)
    host = make_task(title="host", list_id=groceries["id"])["id"]
    body = {"list_id": groceries["id"]} if how == "move-list-id" else {"parent_id": host}
    before = state(alice)
    assert_error(move(alice, c1, after=parent, **body), 422, code="not_a_sibling", attr="after")
    assert state(alice) == before


# --- filters --------------------------------------------------------------------------------


def test_list_and_parent_filters(alice, tree, make_task):
    groceries = make_list(alice)
    milk = make_task(title="milk", list_id=groceries["id"])
    oat = make_task(title="oat", parent_id=milk["id"])
    default = default_list(alice)["id"]
    everything = {t["id"] for t in (*tree.values(), milk, oat)}
    assert set(task_ids(alice)) == everything
    assert set(task_ids(alice, f"list={groceries['id']}")) == {milk["id"], oat["id"]}
    assert set(task_ids(alice, f"list={default}")) == {t["id"] for t in tree.values()}
    assert set(task_ids(alice, "parent=none")) == {
        tree["root"]["id"],
        tree["unrelated"]["id"],
        milk["id"],
    }
    assert set(task_ids(alice, f"parent={tree['a']['id']}")) == {tree["a1"]["id"], tree["a2"]["id"]}
    assert set(task_ids(alice, f"parent={tree['root']['id']}")) == {
        tree["a"]["id"],
        tree["b"]["id"],
    }
    assert task_ids(alice, f"parent={tree['b']['id']}") == []
    assert task_ids(alice, f"list={groceries['id']}&parent=none") == [milk["id"]]
    assert task_ids(alice, f"list={default}&parent={milk['id']}") == []


def test_a_lists_view_in_the_users_order(alice, make_task):
    groceries = make_list(alice)
    a, b, c = (make_task(title=t, list_id=groceries["id"])["id"] for t in "abc")
    make_task(title="sub", parent_id=a)
    make_task(title="other list")
    for mover, after in ((b, None), (c, b), (a, c)):
        assert move(alice, mover, after=after).status_code == 200
    assert top_level(alice, groceries["id"]) == [b, c, a]
    pages = alice.get(
        f"/v1/tasks?list={groceries['id']}&parent=none&ordering=position&page_size=2"
    ).json()
    assert [t["id"] for t in pages["results"]] == [b, c]
    assert [t["id"] for t in alice.get(pages["next"]).json()["results"]] == [a]


# --- stats and clear-completed per list -----------------------------------------------------


def test_stats_of_one_list_count_only_its_tasks(alice, make_task):
    groceries = make_list(alice)
    parent = make_task(title="p", list_id=groceries["id"])
    make_task(title="c", parent_id=parent["id"], completed=True)
    make_task(title="overdue", list_id=groceries["id"], due_at="2000-01-01T00:00:00Z")
    make_task(title="elsewhere", completed=True)
    response = alice.get(f"/v1/tasks/stats?list={groceries['id']}")
    assert response.status_code == 200, response.content
    assert response.json() == {"total": 3, "open": 2, "completed": 1, "overdue": 1, "due_today": 0}
    assert alice.get("/v1/tasks/stats").json()["total"] == 4
    default = default_list(alice)["id"]
    assert alice.get(f"/v1/tasks/stats?list={default}").json() == {
        "total": 1,
        "open": 0,
        "completed": 1,
        "overdue": 0,
        "due_today": 0,
    }


def test_clear_completed_of_one_list_clears_that_list_with_subtrees(alice, make_task):
    groceries = make_list(alice)
    done = make_task(title="done", list_id=groceries["id"], completed=True)
    done_child = make_task(title="done child", parent_id=done["id"], completed=True)
    done_grandchild = make_task(title="done grandchild", parent_id=done_child["id"], completed=True)
    open_parent = make_task(title="open", list_id=groceries["id"])
    done_under_open = make_task(
        title="done under open", parent_id=open_parent["id"], completed=True
    )
    elsewhere = make_task(title="elsewhere", completed=True)
    response = alice.post(f"/v1/tasks/clear-completed?list={groceries['id']}")
    assert response.status_code == 200, response.content
    assert response.json() == {"deleted": 4}
    for task in (done, done_child, done_grandchild, done_under_open):
        assert alice.get(f"/v1/tasks/{task['id']}").status_code == 404
    assert sorted(task_ids(alice)) == sorted([open_parent["id"], elsewhere["id"]])
    assert alice.post(f"/v1/tasks/clear-completed?list={groceries['id']}").json() == {"deleted": 0}
    assert alice.post("/v1/tasks/clear-completed").json() == {"deleted": 1}


# --- the rules hold whatever the writes ----------------------------------------------------


def random_tree_writes(client, rng: random.Random, steps: int) -> None:
    """Random tree writes of one user; whatever each answers, the rules must hold after it."""
    lists = [default_list(client)["id"]]
    for step in range(steps):
        pool = task_ids(client)
        action = rng.choice(["task", "subtask", "toggle", "reparent", "relist", "move", "delete",
                             "clear", "list"]) if pool else "task"  # fmt: skip
        task = rng.choice(pool) if pool else None
        other = rng.choice(pool) if pool else None
        open_or_done = {"completed": rng.random() < 0.3}
        if action == "list":
            created = client.post("/v1/lists", {"title": f"l{step}"}, format="json")
            lists.append(created.json()["id"])
        elif action == "task":
            client.post("/v1/tasks", {"title": f"t{step}", "list_id": rng.choice(lists),
                                      **open_or_done}, format="json")  # fmt: skip
        elif action == "subtask":
            client.post("/v1/tasks", {"title": f"s{step}", "parent_id": task, **open_or_done},
                        format="json")  # fmt: skip
        elif action == "toggle":
            client.post(f"/v1/tasks/{task}/toggle")
        elif action == "reparent":
            reparent(client, rng.choice(REPARENT), task, rng.choice([None, other]))
        elif action == "relist":
            client.patch(f"/v1/tasks/{task}", {"list_id": rng.choice(lists)}, format="json")
        elif action == "move":
            move(client, task, after=rng.choice([None, other]), parent_id=other)
        elif action == "delete":
            client.delete(f"/v1/tasks/{task}")
        else:
            client.post(f"/v1/tasks/clear-completed?list={rng.choice(lists)}")
        assert_trees_hold(client)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_tree_rules_hold_after_any_sequence_of_writes(alice, seed):
    random_tree_writes(alice, random.Random(seed), 60)
    tasks = all_tasks(alice)
    assert any(task["parent_id"] for task in tasks), "the writes never built a tree"
    assert len({task["list_id"] for task in tasks}) > 1


# --- PostgreSQL: concurrent writes of one tree ----------------------------------------------


def race(*requests: tuple[str, str, dict | None]) -> list:
    """Send the requests (method, path, body) at once, each on its own connection."""
    start = Barrier(len(requests))

    @in_thread
    def send(request):
        method, path, body = request
        client = client_for("alice")
        start.wait(10)
        return getattr(client, method)(path, body, format="json")

    with ThreadPoolExecutor(max_workers=len(requests)) as pool:
        return list(pool.map(send, requests))


def create_chain(client, levels: int) -> list[str]:
    ids = [client.post("/v1/tasks", {"title": "level 1"}, format="json").json()["id"]]
    for level in range(2, levels + 1):
        body = {"title": f"level {level}", "parent_id": ids[-1]}
        ids.append(client.post("/v1/tasks", body, format="json").json()["id"])
    return ids


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("how", ["patch", "move"])
def test_concurrent_moves_that_would_make_a_cycle_never_both_succeed(how):
    client = client_for("alice")
    for _ in range(10):
        a, b = create_chain(client, 1)[0], create_chain(client, 1)[0]
        body = {"after": None} if how == "move" else {}
        path = "/v1/tasks/{}/move" if how == "move" else "/v1/tasks/{}"
        method = "post" if how == "move" else "patch"
        answers = race(
            (method, path.format(a), {**body, "parent_id": b}),
            (method, path.format(b), {**body, "parent_id": a}),
        )
        statuses = [r.status_code for r in answers]
        assert statuses.count(200) <= 1, statuses
        assert set(statuses) <= {200, 409, 422}, [r.content for r in answers]
        parents = [get_task(client, task)["parent_id"] for task in (a, b)]
        assert None in parents, parents  # no cycle: one of them is still top level
        assert_trees_hold(client)


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_moves_never_make_a_tree_deeper_than_five_levels():
    client = client_for("alice")
    for _ in range(5):
        first, second = create_chain(client, 3), create_chain(client, 3)
        # Either move alone makes 5 levels; both together would make more (or a cycle).
        answers = race(
            ("patch", f"/v1/tasks/{second[0]}", {"parent_id": first[1]}),
            ("patch", f"/v1/tasks/{first[0]}", {"parent_id": second[1]}),
        )
        statuses = [a.status_code for a in answers]
        assert statuses.count(200) <= 1 and set(statuses) <= {200, 409, 422}, statuses
        assert_trees_hold(client)


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_a_subtask_created_while_its_parent_is_deleted_is_never_left_orphaned():
    client = client_for("alice")
    for _ in range(10):
        [parent] = create_chain(client, 1)
        deleted, created = race(
            ("delete", f"/v1/tasks/{parent}", None),
            ("post", "/v1/tasks", {"title": "child", "parent_id": parent}),
        )
        assert deleted.status_code == 204, deleted.content
        assert created.status_code in (201, 404), created.content
        if created.status_code == 201:
            assert client.get(f"/v1/tasks/{created.json()['id']}").status_code == 404
        assert_trees_hold(client)


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("completing", ["patch", "toggle"])
@pytest.mark.parametrize("adding", ["create", "move"])
def test_completing_a_parent_while_an_open_subtask_is_added_leaves_no_open_subtask_under_it(
    completing, adding
):
    """The toggle of a task outside any tree is one UPDATE conditioned on the task never having
    had a subtask: it must not miss the one added while it waits for the parent's lock."""
    client = client_for("alice")
    for _ in range(10):
        [parent], [other] = create_chain(client, 1), create_chain(client, 1)
        answers = race(
            {
                "patch": ("patch", f"/v1/tasks/{parent}", {"completed": True}),
                "toggle": ("post", f"/v1/tasks/{parent}/toggle", None),
            }[completing],
            {
                "create": ("post", "/v1/tasks", {"title": "open", "parent_id": parent}),
                "move": ("patch", f"/v1/tasks/{other}", {"parent_id": parent}),
            }[adding],
        )
        assert [a.status_code for a in answers] == [200, 200 if adding == "move" else 201], [
            a.content for a in answers
        ]
        assert_trees_hold(client)


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("write", ["create", "patch-list-id", "move-list-id", "subtask"])
def test_no_task_lands_in_a_list_while_it_is_deleted(write):
    client = client_for("alice")
    for _ in range(8):
        doomed = make_list(client, "doomed")["id"]
        [task] = create_chain(client, 1)
        [inside] = [
            client.post("/v1/tasks", {"title": "in", "list_id": doomed}, format="json").json()["id"]
        ]
        request = {
            "create": ("post", "/v1/tasks", {"title": "new", "list_id": doomed}),
            "patch-list-id": ("patch", f"/v1/tasks/{task}", {"list_id": doomed}),
            "move-list-id": ("post", f"/v1/tasks/{task}/move", {"after": None, "list_id": doomed}),
            "subtask": ("post", "/v1/tasks", {"title": "new", "parent_id": inside}),
        }[write]
        deleted, written_ = race(("delete", f"/v1/lists/{doomed}", None), request)
        assert deleted.status_code == 204, deleted.content
        assert written_.status_code in (200, 201, 404), written_.content
        assert_trees_hold(client)
