"""Keyset pagination: every task exactly once, stable under inserts, strict parameters."""

from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import pytest
from django.utils import timezone

from tasks.models import Task
from tasks.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE


def seed(user_id: str, count: int, *, same_time: bool = False) -> list[Task]:
    """Tasks with distinct (or, with same_time, identical) creation times, in bulk."""
    now = timezone.now()
    tasks = [
        Task(
            user_id=user_id,
            title=f"task {n}",
            created_at=now if same_time else now - timedelta(seconds=n),
        )
        for n in range(count)
    ]
    return Task.all_objects.bulk_create(tasks)


def walk(client, url: str) -> list[dict]:
    pages = []
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.content
        pages.append(response.json())
        url = response.json()["next"]
    return pages


def expected_order(user_id: str) -> list[str]:
    return [str(pk) for pk in Task.all_objects.for_user(user_id).order_by("-created_at", "-id")
            .values_list("id", flat=True)]  # fmt: skip


@pytest.mark.parametrize("same_time", [False, True], ids=["distinct-times", "identical-times"])
def test_following_next_visits_every_task_exactly_once_in_order(alice, same_time):
    seed("alice", 23, same_time=same_time)
    pages = walk(alice, "/v1/tasks?page_size=5")
    assert [len(p["results"]) for p in pages] == [5, 5, 5, 5, 3]
    ids = [t["id"] for p in pages for t in p["results"]]
    assert ids == expected_order("alice")


def test_the_default_page_size_is_50_and_the_cap_is_200(alice):
    seed("alice", MAX_PAGE_SIZE + 10)
    assert len(alice.get("/v1/tasks").json()["results"]) == DEFAULT_PAGE_SIZE
    assert len(alice.get("/v1/tasks?page_size=1000").json()["results"]) == MAX_PAGE_SIZE
    for huge in ("9" * 10, "1" + "0" * 5000, "000201"):  # however many digits
        assert len(alice.get(f"/v1/tasks?page_size={huge}").json()["results"]) == MAX_PAGE_SIZE
    assert len(alice.get("/v1/tasks?page_size=007").json()["results"]) == 7
    assert len(alice.get(f"/v1/tasks?page_size={MAX_PAGE_SIZE}").json()["results"]) == (
        MAX_PAGE_SIZE
    )


def test_next_links_keep_the_page_size_and_filters(alice):
    for n, task in enumerate(seed("alice", 12)):
        if n % 2:
            Task.all_objects.filter(pk=task.pk).update(completed=True)
    pages = walk(alice, "/v1/tasks?page_size=2&completed=true")
    assert all(t["completed"] for p in pages for t in p["results"])
    assert sum(len(p["results"]) for p in pages) == 6
    query = parse_qs(urlparse(pages[0]["next"]).query)
    assert query["page_size"] == ["2"] and query["completed"] == ["true"]


def test_tasks_added_during_a_traversal_do_not_disturb_it(alice, make_task):
    seed("alice", 10)
    before = expected_order("alice")
    first = alice.get("/v1/tasks?page_size=3").json()
    seen = [t["id"] for t in first["results"]]
    make_task(title="added mid-way")
    for page in walk(alice, first["next"]):
        seen += [t["id"] for t in page["results"]]
    assert seen == before


def test_previous_links_walk_back_to_the_first_page(alice):
    seed("alice", 10)
    pages = walk(alice, "/v1/tasks?page_size=4")
    assert pages[0]["previous"] is None
    back = alice.get(pages[-1]["previous"]).json()
    assert back["results"] == pages[-2]["results"]
    first_again = alice.get(back["previous"]).json()
    assert first_again["results"] == pages[0]["results"]
    assert first_again["previous"] is None
    assert first_again["next"] is not None


def test_an_empty_list_has_no_links(alice):
    assert alice.get("/v1/tasks").json() == {"results": [], "next": None, "previous": None}


@pytest.mark.parametrize("value", ["0", "-1", "abc", "1.5", "", " 5"])
def test_a_bad_page_size_is_422(alice, value):
    response = alice.get("/v1/tasks", {"page_size": value})
    assert response.status_code == 422
    assert response.json()["errors"][0]["attr"] == "page_size"


@pytest.mark.parametrize(
    "cursor",
    ["junk", "!!!", "e30", "eyJwIjpbXSwiciI6ZmFsc2V9", "eyJwIjpbIngiLCJ5Il0sInIiOmZhbHNlfQ", ""],
    ids=["junk", "not-base64", "empty-object", "no-values", "bad-values", "empty"],
)
def test_a_cursor_the_server_did_not_issue_is_422(alice, cursor):
    seed("alice", 3)
    response = alice.get("/v1/tasks", {"cursor": cursor})
    assert response.status_code == 422
    assert response.json()["errors"][0]["attr"] == "cursor"
