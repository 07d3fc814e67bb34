"""Task lists over HTTP (CONTRACT-lists.md): /v1/lists, the default list, the per-user limit,
delete with its tasks, move, pages, ETags, Idempotency-Key and updated_at.

The helpers here (make_list, all_lists, all_tasks, state, assert_error, …) are shared by
test_subtasks.py, test_lists_sync_bulk.py and test_tree_queries.py."""

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from threading import Barrier

import pytest

from tasks.tests.conftest import client_for, in_thread
from tasks.tests.test_pagination import walk
from tasks.tests.test_sync import changes as task_changes
from tasks.tests.test_sync import reads_changes

MISSING_ID = "00000000-0000-0000-0000-000000000000"
LIST_FIELDS = {"id", "title", "is_default", "position", "created_at", "updated_at"}
NOT_FOUND = {
    "type": "client_error",
    "errors": [{"code": "not_found", "detail": "Not found.", "attr": None}],
}


def moment(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def assert_error(response, status: int, code: str | None = None, attr: str | None = "?") -> dict:
    """The response is `status` and its first error has `code` and `attr` (each when given)."""
    assert response.status_code == status, response.content
    body = response.json()
    first = body["errors"][0]
    if code is not None:
        assert first["code"] == code, body
    if attr != "?":
        assert first["attr"] == attr, body
    return body


def assert_not_found(response) -> None:
    assert response.status_code == 404, response.content
    assert response.json() == NOT_FOUND


def make_list(client, title: str = "Groceries", **fields) -> dict:
    response = client.post("/v1/lists", {"title": title, **fields}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def all_lists(client) -> list[dict]:
    return [item for page in walk(client, "/v1/lists?page_size=200") for item in page["results"]]


def list_ids(client) -> list[str]:
    return [item["id"] for item in all_lists(client)]


def default_list(client) -> dict:
    defaults = [item for item in all_lists(client) if item["is_default"]]
    assert len(defaults) == 1, defaults
    return defaults[0]


def all_tasks(client, query: str = "") -> list[dict]:
    url = f"/v1/tasks?page_size=200&{query}" if query else "/v1/tasks?page_size=200"
    return [task for page in walk(client, url) for task in page["results"]]


def task_ids(client, query: str = "") -> list[str]:
    return [task["id"] for task in all_tasks(client, query)]


def state(*clients) -> list:
    """Everything the clients can see over HTTP: their lists (in order) and their tasks."""
    return [(all_lists(c), sorted(all_tasks(c), key=lambda task: task["id"])) for c in clients]


def get_list(client, list_id: str) -> dict:
    response = client.get(f"/v1/lists/{list_id}")
    assert response.status_code == 200, response.content
    return response.json()


def get_task(client, task_id: str) -> dict:
    response = client.get(f"/v1/tasks/{task_id}")
    assert response.status_code == 200, response.content
    return response.json()


def move_list(client, list_id: str, after: str | None):
    return client.post(f"/v1/lists/{list_id}/move", {"after": after}, format="json")


# --- the list and its fields ----------------------------------------------------------------


def test_a_created_list_has_exactly_the_contract_fields(alice):
    response = alice.post("/v1/lists", {"title": "Groceries"}, format="json")
    assert response.status_code == 201, response.content
    created = response.json()
    assert set(created) == LIST_FIELDS
    assert (created["title"], created["is_default"]) == ("Groceries", False)
    assert isinstance(created["position"], str)
    assert moment(created["created_at"]).tzinfo is not None
    assert response["Location"].endswith(f"/v1/lists/{created['id']}")
    assert response["ETag"]
    assert get_list(alice, created["id"]) == created
    assert created in all_lists(alice)


@pytest.mark.parametrize(
    ("sent", "kept"),
    [("  Groceries \n", "Groceries"), ("x" * 200, "x" * 200), ("Ünïcödé 🛒", "Ünïcödé 🛒"),
     ("a", "a")],
    ids=["trimmed", "200-chars", "unicode", "one-char"],
)  # fmt: skip
def test_a_list_title_is_trimmed_and_up_to_200_characters(alice, sent, kept):
    created = make_list(alice, sent)
    assert created["title"] == kept
    renamed = alice.patch(f"/v1/lists/{created['id']}", {"title": sent}, format="json")
    assert renamed.status_code == 200, renamed.content
    assert renamed.json()["title"] == kept


BAD_TITLES = ["", "   ", "\n\t", "x" * 201, None, 5, ["x"], {"a": 1}, True]


@pytest.mark.parametrize("title", BAD_TITLES, ids=repr)
def test_a_bad_list_title_is_422_and_stores_nothing(alice, title):
    existing = make_list(alice, "Keep")
    before = state(alice)
    assert_error(alice.post("/v1/lists", {"title": title}, format="json"), 422, attr="title")
    for method in ("put", "patch"):
        response = getattr(alice, method)(
            f"/v1/lists/{existing['id']}", {"title": title}, format="json"
        )
        assert_error(response, 422, attr="title")
    assert state(alice) == before


def test_a_list_title_is_required_on_create_and_put(alice):
    existing = make_list(alice)
    before = state(alice)
    assert_error(alice.post("/v1/lists", {}, format="json"), 422, attr="title")
    assert_error(alice.put(f"/v1/lists/{existing['id']}", {}, format="json"), 422, attr="title")
    assert state(alice) == before


def test_put_and_patch_rename_a_list(alice):
    created = make_list(alice, "Old")
    put = alice.put(f"/v1/lists/{created['id']}", {"title": "Put"}, format="json")
    assert put.status_code == 200, put.content
    assert put.json()["title"] == "Put"
    patched = alice.patch(f"/v1/lists/{created['id']}", {"title": "Patched"}, format="json")
    assert patched.status_code == 200, patched.content
    assert get_list(alice, created["id"]) == patched.json()
    assert {k: v for k, v in patched.json().items() if k not in ("title", "updated_at")} == {
        k: v for k, v in created.items() if k not in ("title", "updated_at")
    }


def test_read_only_fields_sent_on_create_are_ignored(alice):
    sent = {
        "id": "5d1c0000-0000-4000-8000-000000000001",
        "is_default": True,
        "position": "not-a-server-key",
        "created_at": "2000-01-01T00:00:00Z",
        "updated_at": "2000-01-01T00:00:00Z",
    }
    created = make_list(alice, "Mine", **sent)
    assert created["id"] != sent["id"]
    assert created["is_default"] is False
    assert created["position"] != sent["position"]
    assert not created["created_at"].startswith("2000")
    assert not created["updated_at"].startswith("2000")
    assert_not_found(alice.get(f"/v1/lists/{sent['id']}"))
    assert default_list(alice)["id"] != created["id"]


@pytest.mark.parametrize("method", ["put", "patch"])
def test_read_only_fields_sent_on_update_are_ignored(alice, method):
    created = make_list(alice, "Mine")
    default = default_list(alice)
    sent = {
        "title": "Renamed",
        "id": MISSING_ID,
        "is_default": True,
        "position": "not-a-server-key",
        "created_at": "2000-01-01T00:00:00Z",
        "updated_at": "2000-01-01T00:00:00Z",
    }
    response = getattr(alice, method)(f"/v1/lists/{created['id']}", sent, format="json")
    assert response.status_code == 200, response.content
    updated = response.json()
    assert (updated["id"], updated["title"], updated["is_default"]) == (
        created["id"], "Renamed", False
    )  # fmt: skip
    assert (updated["position"], updated["created_at"]) == (
        created["position"], created["created_at"]
    )  # fmt: skip
    assert not updated["updated_at"].startswith("2000")
    demoted = getattr(alice, method)(
        f"/v1/lists/{default['id']}", {"title": "Tasks", "is_default": False}, format="json"
    )
    assert demoted.status_code == 200, demoted.content
    assert demoted.json()["is_default"] is True
    assert default_list(alice)["id"] == default["id"]
    assert_not_found(alice.get(f"/v1/lists/{MISSING_ID}"))


def test_users_see_only_their_own_lists(alice, bob):
    mine = make_list(alice, "alice's")
    theirs = make_list(bob, "bob's")
    assert mine["id"] in list_ids(alice) and theirs["id"] not in list_ids(alice)
    assert theirs["id"] in list_ids(bob) and mine["id"] not in list_ids(bob)
    assert default_list(alice)["id"] != default_list(bob)["id"]


# --- the default list -----------------------------------------------------------------------


def test_a_new_users_first_listing_shows_one_default_list_titled_tasks(alice):
    response = alice.get("/v1/lists")
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"results", "next", "previous"}
    [only] = body["results"]
    assert set(only) == LIST_FIELDS
    assert (only["title"], only["is_default"]) == ("Tasks", True)
    assert alice.get("/v1/lists").json()["results"] == [only]  # made once, not per request
    assert get_list(alice, only["id"]) == only


def test_a_new_users_first_task_goes_into_the_default_list(alice, make_task):
    task = make_task()
    [only] = all_lists(alice)
    assert only["is_default"] is True
    assert task["list_id"] == only["id"]
    assert task["parent_id"] is None


def test_creating_a_list_first_also_makes_the_default_list(alice):
    created = make_list(alice, "First")
    lists = all_lists(alice)
    assert len(lists) == 2
    assert {item["id"] for item in lists if not item["is_default"]} == {created["id"]}
    assert default_list(alice)["title"] == "Tasks"


def test_the_default_list_can_be_renamed_and_stays_the_only_default(alice, make_task):
    default = default_list(alice)
    renamed = alice.patch(f"/v1/lists/{default['id']}", {"title": "Inbox"}, format="json")
    assert renamed.status_code == 200, renamed.content
    assert (renamed.json()["title"], renamed.json()["is_default"]) == ("Inbox", True)
    make_list(alice, "Tasks")
    assert make_task()["list_id"] == default["id"]
    assert default_list(alice)["id"] == default["id"]
    assert len(all_lists(alice)) == 2


def test_deleting_the_default_list_is_409_and_changes_nothing(alice, make_task):
    default = default_list(alice)
    make_task(title="in the default list")
    before = state(alice)
    assert_error(alice.delete(f"/v1/lists/{default['id']}"), 409, code="default_list")
    assert state(alice) == before


# --- the per-user limit ---------------------------------------------------------------------


def test_the_list_limit_defaults_to_1000(settings):
    assert settings.MAX_LISTS_PER_USER == 1000


def test_one_list_past_the_limit_is_409_and_stores_nothing(alice, bob, settings):
    settings.MAX_LISTS_PER_USER = 3
    make_list(alice, "one")
    kept = make_list(alice, "two")  # with the default list: three
    before = state(alice)
    assert_error(
        alice.post("/v1/lists", {"title": "four"}, format="json"), 409, code="list_limit_reached"
    )
    assert state(alice) == before
    make_list(bob, "bob's own limit")  # per user
    assert alice.delete(f"/v1/lists/{kept['id']}").status_code == 204
    make_list(alice, "room again")
    assert len(all_lists(alice)) == 3


def test_the_default_list_counts_towards_the_limit(alice, settings):
    settings.MAX_LISTS_PER_USER = 1
    assert_error(
        alice.post("/v1/lists", {"title": "x"}, format="json"), 409, code="list_limit_reached"
    )
    assert [item["is_default"] for item in all_lists(alice)] == [True]


# --- delete ---------------------------------------------------------------------------------


@reads_changes
def test_deleting_a_list_deletes_its_tasks_and_subtasks_and_nothing_else(alice, bob, make_task):
    doomed, kept = make_list(alice, "doomed"), make_list(alice, "kept")
    top = make_task(title="top", list_id=doomed["id"])
    child = make_task(title="child", parent_id=top["id"])
    grandchild = make_task(title="grandchild", parent_id=child["id"], completed=True)
    other = make_task(title="other top", list_id=doomed["id"])
    survivors = [
        make_task(title="kept", list_id=kept["id"])["id"],
        make_task(title="default")["id"],
    ]
    bobs = make_task(bob, title="bob's")
    token = task_changes(alice)["next_since"]

    response = alice.delete(f"/v1/lists/{doomed['id']}")
    assert response.status_code == 204, response.content
    assert_not_found(alice.get(f"/v1/lists/{doomed['id']}"))
    assert_not_found(alice.delete(f"/v1/lists/{doomed['id']}"))
    gone = {top["id"], child["id"], grandchild["id"], other["id"]}
    for task_id in gone:
        assert_not_found(alice.get(f"/v1/tasks/{task_id}"))
    assert sorted(task_ids(alice)) == sorted(survivors)
    assert doomed["id"] not in list_ids(alice)
    assert get_task(bob, bobs["id"]) == bobs
    feed = task_changes(alice, token)["results"]
    assert {c["id"] for c in feed} == gone
    assert all(c["deleted"] is True for c in feed)
    assert_not_found(alice.get("/v1/tasks", {"list": doomed["id"]}))


# --- move -----------------------------------------------------------------------------------


def test_move_puts_a_list_right_after_another_or_first(alice):
    default = default_list(alice)["id"]
    a, b, c = (make_list(alice, name)["id"] for name in "abc")
    assert move_list(alice, default, None).status_code == 200
    for mover, after in ((a, default), (b, a), (c, b)):
        response = move_list(alice, mover, after)
        assert response.status_code == 200, response.content
        assert response.json()["id"] == mover
        assert response.json() == get_list(alice, mover)
    assert list_ids(alice) == [default, a, b, c]
    assert move_list(alice, c, None).status_code == 200
    assert list_ids(alice) == [c, default, a, b]
    assert move_list(alice, c, b).status_code == 200  # to the end
    assert list_ids(alice) == [default, a, b, c]
    assert move_list(alice, default, b).status_code == 200
    assert list_ids(alice) == [a, b, default, c]


def test_a_list_move_rewrites_only_the_moved_list(alice):
    a, b, c = (make_list(alice, name) for name in "abc")
    assert move_list(alice, a["id"], None).status_code == 200
    before = {item["id"]: item for item in all_lists(alice)}
    moved = move_list(alice, c["id"], a["id"]).json()
    after = {item["id"]: item for item in all_lists(alice)}
    assert {pk for pk in before if before[pk] != after[pk]} == {c["id"]}
    assert moment(moved["updated_at"]) > moment(before[c["id"]]["updated_at"])
    assert b["id"] in after


@pytest.mark.parametrize(
    "body", [{}, {"after": "not-a-uuid"}, {"after": 5}, {"after": ["x"]}],
    ids=["empty", "not-a-uuid", "number", "list"],
)  # fmt: skip
def test_a_bad_list_move_body_is_422_and_changes_nothing(alice, body):
    mine = make_list(alice)
    before = state(alice)
    response = alice.post(f"/v1/lists/{mine['id']}/move", body, format="json")
    assert response.status_code == 422, response.content
    assert response.json()["errors"][0]["attr"] in ("after", "non_field_errors")
    assert state(alice) == before


def test_moving_a_list_after_itself_is_422_and_changes_nothing(alice):
    mine = make_list(alice)
    before = state(alice)
    assert_error(move_list(alice, mine["id"], mine["id"]), 422, attr="after")
    assert state(alice) == before


# --- pages ----------------------------------------------------------------------------------


def test_lists_come_in_cursor_pages_each_exactly_once(alice):
    for n in range(6):
        make_list(alice, f"l{n}")
    everything = list_ids(alice)
    assert len(everything) == len(set(everything)) == 7
    pages = walk(alice, "/v1/lists?page_size=3")
    assert [len(page["results"]) for page in pages] == [3, 3, 1]
    assert [item["id"] for page in pages for item in page["results"]] == everything
    assert pages[0]["previous"] is None and pages[1]["previous"] is not None
    back = alice.get(pages[2]["previous"]).json()
    assert back["results"] == pages[1]["results"]


@pytest.mark.parametrize("value", ["0", "-1", "abc", ""])
def test_a_bad_lists_page_size_is_422(alice, value):
    assert_error(alice.get("/v1/lists", {"page_size": value}), 422, attr="page_size")


# --- ETag and preconditions -----------------------------------------------------------------


def test_a_list_carries_an_etag_and_if_none_match_gives_304(alice):
    created = alice.post("/v1/lists", {"title": "x"}, format="json")
    etag = created["ETag"]
    path = f"/v1/lists/{created.json()['id']}"
    assert alice.get(path)["ETag"] == etag
    not_modified = alice.get(path, HTTP_IF_NONE_MATCH=etag)
    assert not_modified.status_code == 304
    assert not_modified.content == b""
    assert not_modified["ETag"] == etag
    renamed = alice.patch(path, {"title": "y"}, format="json")
    assert renamed["ETag"] != etag
    fresh = alice.get(path, HTTP_IF_NONE_MATCH=etag)
    assert fresh.status_code == 200
    assert fresh.json()["title"] == "y"
    assert fresh["ETag"] == renamed["ETag"]


@pytest.mark.parametrize("method", ["put", "patch"])
def test_a_list_write_with_a_stale_if_match_is_412_and_changes_nothing(alice, method):
    created = alice.post("/v1/lists", {"title": "x"}, format="json")
    stale, path = created["ETag"], f"/v1/lists/{created.json()['id']}"
    current = alice.patch(path, {"title": "someone else's"}, format="json")["ETag"]
    before = state(alice)
    response = getattr(alice, method)(path, {"title": "late"}, format="json", HTTP_IF_MATCH=stale)
    assert_error(response, 412, code="precondition_failed")
    assert state(alice) == before
    response = getattr(alice, method)(
        path, {"title": "on time"}, format="json", HTTP_IF_MATCH=current
    )
    assert response.status_code == 200, response.content
    assert response.json()["title"] == "on time"


# --- updated_at -----------------------------------------------------------------------------


@pytest.mark.parametrize("write", ["put", "patch", "move"])
def test_updated_at_advances_on_every_write_of_the_list(alice, write):
    other = make_list(alice, "other")
    created = make_list(alice, "x")
    path = f"/v1/lists/{created['id']}"
    if write == "move":
        response = move_list(alice, created["id"], other["id"])
    else:
        response = getattr(alice, write)(path, {"title": "x"}, format="json")  # same title
    assert response.status_code == 200, response.content
    written = response.json()
    assert moment(written["updated_at"]) > moment(created["updated_at"])
    assert written["created_at"] == created["created_at"]
    assert get_list(alice, created["id"]) == written


def test_writing_tasks_in_a_list_is_not_a_write_of_the_list(alice, make_task):
    target, elsewhere = make_list(alice, "target"), make_list(alice, "elsewhere")
    before = alice.get(f"/v1/lists/{target['id']}")
    moved_in = make_task(title="moved in", list_id=elsewhere["id"])
    task = make_task(title="t", list_id=target["id"])
    child = make_task(title="c", parent_id=task["id"])
    alice.patch(f"/v1/tasks/{task['id']}", {"title": "renamed"}, format="json")
    alice.post(f"/v1/tasks/{task['id']}/toggle")
    alice.post(f"/v1/tasks/{child['id']}/move", {"after": None}, format="json")
    alice.patch(f"/v1/tasks/{moved_in['id']}", {"list_id": target["id"]}, format="json")
    alice.delete(f"/v1/tasks/{task['id']}")
    alice.post(f"/v1/tasks/clear-completed?list={target['id']}")
    after = alice.get(f"/v1/lists/{target['id']}")
    assert after.json() == before.json()
    assert after["ETag"] == before["ETag"]


# --- Idempotency-Key ------------------------------------------------------------------------


def create_list_once(client, body: dict, key: str):
    return client.post("/v1/lists", body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_a_list_create_retried_with_its_key_replays_the_first_201(alice):
    first = create_list_once(alice, {"title": "Groceries"}, "list-key")
    retry = create_list_once(alice, {"title": "Groceries"}, "list-key")
    assert first.status_code == retry.status_code == 201, retry.content
    assert retry.json() == first.json()
    assert retry["ETag"] == first["ETag"]
    assert retry["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert [item["title"] for item in all_lists(alice)].count("Groceries") == 1


def test_a_list_create_retried_with_another_body_is_409_and_stores_nothing(alice):
    create_list_once(alice, {"title": "Groceries"}, "list-key")
    before = state(alice)
    response = create_list_once(alice, {"title": "Something else"}, "list-key")
    assert_error(response, 409, code="idempotency_key_reused", attr=None)
    assert state(alice) == before


# --- PostgreSQL: concurrent first requests --------------------------------------------------


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("first_request", ["list-lists", "create-task", "mixed"])
def test_concurrent_first_requests_of_a_new_user_make_exactly_one_default_list(first_request):
    threads = 8

    for round_ in range(3):
        user = f"newcomer-{first_request}-{round_}"
        start = Barrier(threads)

        @in_thread
        def first(n, user=user, start=start):
            client = client_for(user)
            start.wait(10)
            if first_request == "list-lists" or (first_request == "mixed" and n % 2):
                response = client.get("/v1/lists")
                assert response.status_code == 200, response.content
                return [item["id"] for item in response.json()["results"] if item["is_default"]]
            response = client.post("/v1/tasks", {"title": f"t{n}"}, format="json")
            assert response.status_code == 201, response.content
            return [response.json()["list_id"]]

        with ThreadPoolExecutor(max_workers=threads) as pool:
            seen = list(pool.map(first, range(threads)))
        client = client_for(user)
        default = default_list(client)
        assert len(all_lists(client)) == 1
        assert all(found == [default["id"]] for found in seen), seen
        assert {task["list_id"] for task in all_tasks(client)} <= {default["id"]}


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_concurrent_creates_never_pass_the_list_limit(settings):
    settings.MAX_LISTS_PER_USER = 4
    default_list(client_for("alice"))
    start = Barrier(8)

    @in_thread
    def create(n):
        client = client_for("alice")
        start.wait(10)
        return client.post("/v1/lists", {"title": f"l{n}"}, format="json").status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = sorted(pool.map(create, range(8)))
    assert statuses == [201] * 3 + [409] * 5
    assert len(all_lists(client_for("alice"))) == 4
