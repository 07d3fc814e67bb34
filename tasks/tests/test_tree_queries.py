"""The query budget of lists and subtrees: a list's view and a task read are one query, and
writes on a whole subtree cost the same few statements however big it is (authentication
makes none: the JWT is checked without the database). Writes are counted with conftest's
`assert_statements`, which leaves out transaction control (the SAVEPOINT a test's own
transaction turns each write's transaction into)."""

import pytest

from tasks.tests.test_lists import default_list, get_task, make_list, task_ids

SHAPES = {1: (1,), 30: (3, 3, 2)}  # fan-out per level: 1 subtask; 3 + 9 + 18 = 30 below root


def grow(make_task, root: dict, shape: tuple[int, ...]) -> list[str]:
    """Subtasks below `root`, `shape[k]` under each task of level k + 1; returns their ids."""
    made, frontier = [], [root["id"]]
    for fanout in shape:
        frontier = [
            make_task(title="sub", parent_id=parent)["id"]
            for parent in frontier
            for _ in range(fanout)
        ]
        made += frontier
    return made


@pytest.fixture
def groceries(alice) -> str:
    return make_list(alice)["id"]  # the default list exists from then on


def test_a_lists_view_is_one_query_per_page(
    alice, make_task, groceries, django_assert_max_num_queries
):
    tops = [make_task(title=f"t{n}", list_id=groceries) for n in range(6)]
    for top in tops[:3]:
        grow(make_task, top, (2,))
    make_task(title="elsewhere")
    path = f"/v1/tasks?list={groceries}&parent=none&ordering=position&page_size=4"
    with django_assert_max_num_queries(1):
        first = alice.get(path)
    assert first.status_code == 200, first.content
    with django_assert_max_num_queries(1):
        second = alice.get(first.json()["next"])
    seen = [t["id"] for page in (first, second) for t in page.json()["results"]]
    assert sorted(seen) == sorted(t["id"] for t in tops)


def test_reading_one_task_is_one_query(alice, make_task, django_assert_max_num_queries):
    parent = make_task()
    child = make_task(parent_id=parent["id"])
    with django_assert_max_num_queries(1):
        response = alice.get(f"/v1/tasks/{child['id']}")
    assert response.json()["parent_id"] == parent["id"]


@pytest.mark.parametrize("where", ["default-list", "list_id", "parent_id"])
def test_creating_a_task_is_at_most_two_queries(
    alice, make_task, groceries, assert_statements, where
):
    parent = make_task(list_id=groceries)
    body = {
        "default-list": {},
        "list_id": {"list_id": groceries},
        "parent_id": {"parent_id": parent["id"]},
    }[where]
    with assert_statements(2, at_most=True):
        response = alice.post("/v1/tasks", {"title": "x", **body}, format="json")
    assert response.status_code == 201, response.content
    expected = default_list(alice)["id"] if where == "default-list" else groceries
    assert response.json()["list_id"] == expected


@pytest.mark.parametrize("descendants", sorted(SHAPES))
def test_completing_a_task_with_its_subtree_is_at_most_three_statements(
    alice, make_task, assert_statements, descendants
):
    """The toggle of a task outside any tree (which this one is not), the family's lock, the
    update."""
    root = make_task(title="root")
    below = grow(make_task, root, SHAPES[descendants])
    assert len(below) == descendants
    with assert_statements(3, at_most=True):
        response = alice.post(f"/v1/tasks/{root['id']}/toggle")
    assert response.json()["completed"] is True
    assert all(get_task(alice, pk)["completed"] for pk in below)


@pytest.mark.parametrize("descendants", sorted(SHAPES))
def test_deleting_a_subtree_is_at_most_two_statements(
    alice, make_task, assert_statements, descendants
):
    root = make_task(title="root")
    grow(make_task, root, SHAPES[descendants])
    keep = make_task(title="keep")
    with assert_statements(2, at_most=True):
        assert alice.delete(f"/v1/tasks/{root['id']}").status_code == 204
    assert task_ids(alice) == [keep["id"]]


@pytest.mark.parametrize("descendants", sorted(SHAPES))
@pytest.mark.parametrize("across_lists", [False, True], ids=["same-list", "other-list"])
def test_moving_a_subtree_under_a_parent_is_at_most_three_statements(
    alice, make_task, groceries, assert_statements, descendants, across_lists
):
    root = make_task(title="root")
    below = grow(make_task, root, SHAPES[descendants])
    host = make_task(title="host", **({"list_id": groceries} if across_lists else {}))
    with assert_statements(3, at_most=True):
        response = alice.post(
            f"/v1/tasks/{root['id']}/move", {"after": None, "parent_id": host["id"]}, format="json"
        )
    assert response.status_code == 200, response.content
    assert response.json()["parent_id"] == host["id"]
    assert {get_task(alice, pk)["list_id"] for pk in below} == {host["list_id"]}
