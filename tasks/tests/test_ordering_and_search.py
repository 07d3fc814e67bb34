"""The user's own order (`position`, POST /move), every `ordering=` paginated, and `q=` search."""

import random
import re
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
from django.db import connection
from django.db.models import Q
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tasks import positions
from tasks.models import Task
from tasks.tests.test_pagination import walk

MISSING_ID = "00000000-0000-0000-0000-000000000000"


def ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [task["id"] for task in response.json()["results"]]


def stored_order(user_id: str) -> list[str]:
    rows = (
        Task.all_objects.for_user(user_id).order_by("position", "id").values_list("id", flat=True)
    )
    return [str(pk) for pk in rows]


def api_order(client) -> list[str]:
    return [t["id"] for page in walk(client, "/v1/tasks?ordering=position&page_size=200")
            for t in page["results"]]  # fmt: skip


def snapshot(user_id: str | None = None) -> dict[str, tuple]:
    rows = Task.all_objects.all() if user_id is None else Task.all_objects.filter(user_id=user_id)
    fields = Task._meta.concrete_fields
    return {str(row.pk): tuple(getattr(row, f.attname) for f in fields) for row in rows}


def ordered_tasks(user_id: str, count: int) -> list[Task]:
    """`count` tasks in bulk, in that position order, with distinct keys (as moves leave)."""
    keys = positions.spread(count)
    now = timezone.now()
    return Task.all_objects.bulk_create(
        Task(user_id=user_id, title=f"t{n}", position=key, created_at=now - timedelta(seconds=n))
        for n, key in enumerate(keys)
    )


def move(client, task_id, after):
    return client.post(f"/v1/tasks/{task_id}/move", {"after": after}, format="json")


# --- move -----------------------------------------------------------------------------------


def test_new_tasks_come_first_in_the_position_order(alice, make_task):
    made = [make_task(title=f"t{n}")["id"] for n in range(4)]
    assert api_order(alice) == list(reversed(made))


def test_move_puts_a_task_right_after_another_or_first(alice, make_task):
    a, b, c, d = (make_task(title=name)["id"] for name in "abcd")
    assert api_order(alice) == [d, c, b, a]

    response = move(alice, a, d)
    assert response.status_code == 200, response.content
    assert response.json()["id"] == a
    assert response.json()["position"] == Task.all_objects.get(pk=a).position
    assert api_order(alice) == stored_order("alice") == [d, a, c, b]

    assert move(alice, b, None).status_code == 200
    assert api_order(alice) == [b, d, a, c]
    assert move(alice, b, c).status_code == 200  # to the end
    assert api_order(alice) == [d, a, c, b]
    newest = make_task(title="e")["id"]
    assert api_order(alice) == [newest, d, a, c, b]
    assert move(alice, newest, b).status_code == 200
    assert move(alice, d, None).status_code == 200
    assert api_order(alice) == [d, a, c, b, newest]


def test_a_move_rewrites_only_the_moved_task(alice, make_task):
    a, b, c, _ = (make_task(title=name)["id"] for name in "abcd")
    before = snapshot()
    response = move(alice, a, c)
    assert response.status_code == 200
    after = snapshot()
    assert {pk for pk in before if before[pk] != after[pk]} == {a}
    assert response.json()["updated_at"] > alice.get(f"/v1/tasks/{b}").json()["updated_at"]


@pytest.mark.parametrize("after_index", [None, 1], ids=["first", "after-another"])
def test_a_move_costs_the_same_few_queries_however_many_tasks(
    alice, django_assert_num_queries, after_index
):
    few = ordered_tasks("alice", 4)
    with CaptureQueriesContext(connection) as queries:
        after = None if after_index is None else str(few[after_index].pk)
        assert move(alice, few[3].pk, after).status_code == 200
    cost = len(queries)
    assert cost <= 6, [q["sql"] for q in queries]

    many = ordered_tasks("alice", 400)
    with django_assert_num_queries(cost):
        after = None if after_index is None else str(many[200].pk)
        assert move(alice, many[350].pk, after).status_code == 200
    expected = [str(t.pk) for t in many if t is not many[350]]
    expected.insert(0 if after_index is None else 201, str(many[350].pk))
    order = stored_order("alice")
    assert [pk for pk in order if pk in set(expected)] == expected


def test_many_moves_into_the_same_gap_keep_the_intended_order(alice, make_task):
    """Each move halves the gap after the anchor, so keys grow until the user's keys must be
    spread out again (the rebalance); the order must survive it."""
    tasks = [make_task(title=f"t{n}")["id"] for n in range(6)]
    expected = api_order(alice)
    anchor, movers = expected[1], expected[2:5]
    anchor_key = Task.all_objects.get(pk=anchor).position
    longest = 0
    for n in range(300):
        mover = movers[n % 3]
        assert move(alice, mover, anchor).status_code == 200
        expected.remove(mover)
        expected.insert(expected.index(anchor) + 1, mover)
        assert stored_order("alice") == expected, n
        longest = max(longest, len(Task.all_objects.get(pk=mover).position))
    assert api_order(alice) == expected
    assert sorted(expected) == sorted(tasks)
    assert longest <= positions.MAX_KEY_LENGTH
    assert Task.all_objects.get(pk=anchor).position != anchor_key, "the rebalance never ran"
    newest = make_task(title="after the rebalance")["id"]
    assert api_order(alice) == [newest, *expected]


def test_moves_after_a_rebalance_of_tasks_that_share_a_key(alice):
    """Tasks created before positions existed all have the key ""; a move spreads them out."""
    rows = Task.all_objects.bulk_create(Task(user_id="alice", title=f"t{n}") for n in range(5))
    legacy = [str(pk) for pk in sorted(row.pk for row in rows)]
    assert stored_order("alice") == legacy
    assert move(alice, legacy[0], legacy[3]).status_code == 200
    assert api_order(alice) == [legacy[1], legacy[2], legacy[3], legacy[0], legacy[4]]
    assert len({t.position for t in Task.all_objects.all()}) == 5


def test_moving_a_task_after_itself_is_422_and_changes_nothing(alice, make_task):
    a, _ = make_task()["id"], make_task()["id"]
    before = snapshot()
    response = move(alice, a, a)
    assert response.status_code == 422
    assert response.json()["errors"][0]["attr"] == "after"
    assert snapshot() == before


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"after": "not-a-uuid"},
        pytest.param({"after": 5}),
        {"after": ["x"]},
        {"position": 1},
        [],
    ],
    ids=["empty", "not-a-uuid", "number", "list", "other-field", "not-an-object"],
)
def test_a_bad_move_body_is_rejected_and_changes_nothing(alice, make_task, body):
    task, _ = make_task(), make_task()
    before = snapshot()
    response = alice.post(f"/v1/tasks/{task['id']}/move", body, format="json")
    assert response.status_code in (400, 422)
    if body != []:
        assert response.status_code == 422
        assert response.json()["errors"][0]["attr"] in ("after", "non_field_errors")
    assert snapshot() == before


def test_moves_are_scoped_to_the_caller(alice, bob, make_task):
    mine, other_mine = make_task()["id"], make_task()["id"]
    theirs = make_task(bob)["id"]
    gone = make_task()["id"]
    alice.delete(f"/v1/tasks/{gone}")
    before = snapshot()
    cases = [
        (alice, mine, theirs),  # after another user's task
        (alice, mine, MISSING_ID),  # after a task that does not exist
        (alice, mine, gone),  # after a deleted task
        (bob, mine, None),  # another user moving my task first
        (bob, mine, theirs),  # ... or after one of theirs
        (bob, theirs, mine),  # a user's own task after someone else's
        (alice, MISSING_ID, other_mine),
        (alice, gone, None),
    ]
    answers = [move(client, task, after) for client, task, after in cases]
    assert [a.status_code for a in answers] == [404] * len(cases)
    # The same body whichever way the id is not the caller's (no existence leak); the body
    # says which id it is about: the task moved, or `after`.
    after_missing = {answers[i].content for i in (0, 1, 2, 5)}
    task_missing = {answers[i].content for i in (3, 4, 6, 7)}
    assert len(after_missing) == len(task_missing) == 1
    assert [e["attr"] for e in answers[0].json()["errors"]] == ["after"]
    assert [e["attr"] for e in answers[3].json()["errors"]] == [None]
    assert snapshot() == before


def test_move_with_a_malformed_task_id_is_404(alice):
    assert move(alice, "not-a-uuid", None).status_code == 404


# --- ordering= ------------------------------------------------------------------------------

RANK = {"none": 0, "low": 1, "medium": 2, "high": 3}


def seed_with_ties(user_id: str) -> list[Task]:
    """17 tasks whose every sort column has ties (and due_at nulls)."""
    now = timezone.now()
    dues = [None, now, now, now + timedelta(days=1), None, now - timedelta(days=1)]
    rows = Task.all_objects.bulk_create(
        Task(
            user_id=user_id,
            title=f"t{n}",
            created_at=now - timedelta(seconds=n // 3),
            due_at=dues[n % len(dues)],
            priority=(n * 7) % 4,
            position=f"k{n % 5}",
        )
        for n in range(17)
    )
    for n, row in enumerate(rows):  # updated_at: ties too (bulk_create stamps "now" itself)
        Task.all_objects.filter(pk=row.pk).update(updated_at=now - timedelta(seconds=n % 4))
    return list(Task.all_objects.filter(pk__in=[r.pk for r in rows]))


def expected(rows: list[Task], ordering: str) -> list[str]:
    desc = ordering.startswith("-")
    field = ordering.lstrip("-")
    dated = [r for r in rows if getattr(r, field) is not None]
    undated = [r for r in rows if getattr(r, field) is None]
    key = lambda r: (getattr(r, field), r.pk.int)  # noqa: E731
    ordered = sorted(dated, key=key, reverse=desc)
    ordered += sorted(undated, key=lambda r: r.pk.int, reverse=desc)  # no due_at: last
    return [str(r.pk) for r in ordered]


ORDERINGS = ["-created_at", "created_at", "due_at", "-due_at", "priority", "-priority",
             "position", "-updated_at"]  # fmt: skip


@pytest.mark.parametrize("ordering", ORDERINGS)
@pytest.mark.parametrize("page_size", [1, 5])
def test_every_ordering_pages_through_every_task_exactly_once(alice, bob, ordering, page_size):
    rows = seed_with_ties("alice")
    seed_with_ties("bob")
    pages = walk(alice, f"/v1/tasks?ordering={ordering}&page_size={page_size}")
    seen = [t["id"] for p in pages for t in p["results"]]
    assert seen == expected(rows, ordering)
    assert all(len(p["results"]) == page_size for p in pages[:-1])
    assert parse_qs(urlparse(pages[0]["next"]).query)["ordering"] == [ordering]
    # ... and `previous` walks back over the same pages.
    back, url = [], pages[-1]["previous"]
    while url:
        page = alice.get(url).json()
        back.insert(0, [t["id"] for t in page["results"]])
        url = page["previous"]
    assert back == [[t["id"] for t in p["results"]] for p in pages[:-1]]


def test_the_default_ordering_is_newest_first(alice):
    rows = seed_with_ties("alice")
    assert ids(alice.get("/v1/tasks")) == ids(alice.get("/v1/tasks?ordering=-created_at"))
    assert ids(alice.get("/v1/tasks")) == expected(rows, "-created_at")


@pytest.mark.parametrize(("ordering", "ranks"), [("priority", "nlmh"), ("-priority", "hmln")])
def test_priority_sorts_by_rank_not_by_word(alice, make_task, ordering, ranks):
    for word in ("medium", "high", "none", "low"):
        make_task(title=word, priority=word)
    got = [t["priority"][0] for t in alice.get(f"/v1/tasks?ordering={ordering}").json()["results"]]
    assert "".join(got) == ranks


@pytest.mark.parametrize("ordering", ["due_at", "-due_at"])
def test_tasks_without_a_due_date_come_last_in_both_directions(alice, make_task, ordering):
    make_task(title="undated")
    make_task(title="early", due_at="2026-01-01")
    make_task(title="late", due_at="2027-01-01")
    titles = [t["title"] for t in alice.get(f"/v1/tasks?ordering={ordering}").json()["results"]]
    dated = ["early", "late"] if ordering == "due_at" else ["late", "early"]
    assert titles == [*dated, "undated"]


@pytest.mark.parametrize(
    "ordering", ["title", "id", "due", "-position", "created_at,id", "", "PRIORITY", "?"]
)
def test_an_unknown_ordering_is_422(alice, ordering):
    response = alice.get("/v1/tasks", {"ordering": ordering})
    assert response.status_code == 422
    assert response.json()["errors"][0]["attr"] == "ordering"


@pytest.mark.parametrize(("issued_for", "used_with"), [
    ("due_at", "-due_at"), ("-created_at", "created_at"), ("priority", "position"),
    ("position", None), ("-updated_at", "-created_at"),
])  # fmt: skip
def test_a_cursor_from_one_ordering_is_422_with_another(alice, issued_for, used_with):
    seed_with_ties("alice")
    next_link = alice.get(f"/v1/tasks?ordering={issued_for}&page_size=2").json()["next"]
    query = {k: v[0] for k, v in parse_qs(urlparse(next_link).query).items()}
    if used_with is None:
        del query["ordering"]  # the default, -created_at
    else:
        query["ordering"] = used_with
    response = alice.get(f"/v1/tasks?{urlencode(query)}")
    assert response.status_code == 422
    assert response.json()["errors"][0]["attr"] == "cursor"


# --- q= search ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("milk", {"title", "details", "caps", "both"}),
        ("MiLk", {"title", "details", "caps", "both"}),
        ("  milk  ", {"title", "details", "caps", "both"}),
        ("buy milk", {"title"}),
        ("50%", {"percent"}),
        ("a_b", {"underscore"}),
        ("%", {"percent"}),
        ("_", {"underscore"}),
        ("nothing like it", set()),
    ],
)
def test_q_matches_title_or_details_case_insensitively(alice, bob, make_task, query, expected):
    made = {
        "title": make_task(title="Buy milk"),
        "details": make_task(title="Shopping", details="eggs, MILK, bread"),
        "caps": make_task(title="MILKSHAKE"),
        "both": make_task(title="milk", details="milk"),
        "percent": make_task(title="50% off"),
        "underscore": make_task(title="a_b"),
        "neither": make_task(title="50 off", details="axb"),
    }
    make_task(bob, title="bob's milk")
    gone = make_task(title="deleted milk")
    alice.delete(f"/v1/tasks/{gone['id']}")
    found = set(ids(alice.get("/v1/tasks", {"q": query})))
    assert found == {made[name]["id"] for name in expected}


def test_q_is_case_insensitive_beyond_ascii(alice, make_task):
    task = make_task(title="ÉCOLE Straße")
    assert ids(alice.get("/v1/tasks", {"q": "école"})) == [task["id"]]


@pytest.mark.parametrize(
    "params",
    [{"q": "x" * 201}, {"q": " " * 200 + "x"}, {"q": "a\x00b"}, {"label": "a\x00b"},
     {"label": "x" * 51}, {"label": "x" * 50 + " "}, {"priority": ["low", "high", "low"]}],
    ids=["long", "long-as-sent", "nul", "nul-label", "long-label", "long-label-as-sent",
         "repeated-priority"],
)  # fmt: skip
def test_an_over_long_q_or_label_a_nul_or_a_repeat_is_422(alice, params):
    assert alice.get("/v1/tasks", {"q": "x" * 200}).status_code == 200
    response = alice.get("/v1/tasks", params)
    assert response.status_code == 422
    assert response.json()["errors"][0]["attr"] == next(iter(params))


FILTERS = [
    {"completed": "false"}, {"completed": "true"}, {"priority": "high"},
    {"priority": ["high", "low"]}, {"label": "home"}, {"due_after": "2026-01-05"},
    {"due_before": "2026-01-05"}, {"overdue": "true"}, {"overdue": "false"},
    {"ordering": "due_at"}, {"ordering": "-priority", "page_size": "200"},
]  # fmt: skip


@pytest.mark.parametrize("params", FILTERS, ids=lambda p: urlencode(p, doseq=True))
def test_q_combines_with_every_other_filter(alice, params):
    rng = random.Random(7)
    Task.all_objects.bulk_create(
        Task(
            user_id="alice",
            title=rng.choice(["milk", "bread", "Milk run", "eggs"]),
            details=rng.choice(["", "buy MILK", "other"]),
            completed=rng.random() < 0.4,
            priority=rng.randrange(4),
            labels=rng.choice([[], ["home"], ["work", "home"], ["work"]]),
            due_at=rng.choice([None, datetime(2026, 1, 1 + rng.randrange(10),
                                                       tzinfo=UTC)]),
            position=positions.for_new_task() + str(n),
            created_at=timezone.now() - timedelta(seconds=n),
        )
        for n in range(60)
    )  # fmt: skip
    alone = ids(alice.get("/v1/tasks", {**params, "page_size": "200"}))
    searched = set(ids(alice.get("/v1/tasks", {"q": "milk", "page_size": "200"})))
    combined = ids(alice.get("/v1/tasks", {**params, "q": "milk", "page_size": "200"}))
    assert combined == [pk for pk in alone if pk in searched]
    assert 0 < len(combined) < len(alone)


def test_a_searched_page_is_one_query(alice, django_assert_num_queries):
    Task.all_objects.bulk_create(Task(user_id="alice", title=f"milk {n}") for n in range(30))
    with django_assert_num_queries(1):
        first = alice.get("/v1/tasks?q=milk&page_size=10&ordering=priority")
    with django_assert_num_queries(1):
        assert len(ids(alice.get(first.json()["next"]))) == 10


SEARCH_SEED = """
INSERT INTO tasks (id, user_id, title, details, completed, created_at, updated_at)
SELECT gen_random_uuid(), CASE WHEN i % 3 = 0 THEN 'alice' ELSE 'user' || (i % 40) END,
       md5(i::text) || CASE WHEN i % 1500 = 0 THEN ' zebra' ELSE '' END,
       md5((i * 7)::text) || ' ' || md5((i * 13)::text)
           || CASE WHEN i % 1499 = 0 THEN ' Zebrafish' ELSE '' END,
       i % 4 = 0, now() - i * interval '1 second', now()
FROM generate_series(1, 6000) AS i
"""


def analyzed(seed_sql: str, *indexes: str) -> None:
    """Rows in bulk, then the statistics (and GIN pending lists flushed, as autovacuum would)."""
    with connection.cursor() as cursor:
        cursor.execute(seed_sql)
        for index in indexes:
            cursor.execute("SELECT gin_clean_pending_list(%s::regclass)", [index])
        cursor.execute("ANALYZE tasks")


@pytest.mark.postgresql
def test_a_search_of_three_or_more_characters_uses_the_trigram_indexes(alice):
    analyzed(SEARCH_SEED, "tasks_title_trgm", "tasks_details_trgm")
    for query, indexes in [("zeb", "title details"), ("ZEBRA", "title details"),
                           ("ebrAf", "details")]:  # fmt: skip
        with CaptureQueriesContext(connection) as queries:
            response = alice.get("/v1/tasks", {"q": query})
        assert len(queries) == 1
        found = set(Task.all_objects.filter(pk__in=ids(response)))
        expected = Task.all_objects.for_user("alice").filter(
            Q(title__icontains=query) | Q(details__icontains=query)
        )
        assert found and found == set(expected)
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN " + queries[0]["sql"])
            plan = "\n".join(row[0] for row in cursor.fetchall())
        assert "Seq Scan" not in plan, plan
        for column in indexes.split():
            assert re.search(rf"Bitmap Index Scan on tasks_{column}_trgm", plan), (query, plan)


def test_search_and_ids_do_not_leak_across_users(alice, bob, make_task):
    make_task(title="secret milk", details="secret")
    assert ids(bob.get("/v1/tasks?q=secret")) == []
    assert ids(bob.get(f"/v1/tasks?q={uuid.uuid4()}")) == []
