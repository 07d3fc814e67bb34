"""The plans of a list's view and of a subtask page (PostgreSQL): each page is one index scan in
the page's order, no sort, reading no more rows than the page (bench/explain.py shows the same
at 100,000 tasks, docs/performance.md). The SQL is the one the API runs, captured."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

pytestmark = [pytest.mark.postgresql, pytest.mark.django_db]

TASKS, LISTS, OTHERS = 5000, 50, ("bob", "carol")
CHAIN_EVERY = 25  # the task at place k of a list, k % CHAIN_EVERY in 1…4, is under the one before
SUBTASKS = 300  # direct subtasks of one task: many pages
PAGE_SIZE = 20
DEEP_PAGE = 10

# One statement each (a server-side binding cursor takes one at a time).
SEED = [
    """
    INSERT INTO task_lists (id, user_id, title, is_default, position, created_at, updated_at,
                            version, change_seq)
    SELECT gen_random_uuid(), u, 'list ' || n, n = 0, 'L' || to_char(n, 'FM000') || 'V', now(),
           now(), 1, 0
    FROM unnest(%(users)s::text[]) AS u, generate_series(0, %(lists)s - 1) AS n
    """,
    # Task g goes into list g % lists, except every tenth: into list 1, the one paged through.
    """
    WITH lists AS (
        SELECT id, user_id, row_number() OVER (PARTITION BY user_id ORDER BY position) - 1 AS n
        FROM task_lists)
    INSERT INTO tasks (id, user_id, title, details, completed, created_at, updated_at, list_id,
                       position)
    SELECT gen_random_uuid(), u, 'task ' || g, '', FALSE, now(), now(), lists.id,
           to_char(g, 'FM000000') || 'V'
    FROM unnest(%(users)s::text[]) AS u, generate_series(1, %(tasks)s) AS g, lists
    WHERE lists.user_id = u AND lists.n = CASE WHEN g %% 10 = 0 THEN 1 ELSE g %% %(lists)s END
    """,
    # Chains of subtasks, 5 levels deep.
    """
    WITH placed AS (
        SELECT id, row_number() OVER w - 1 AS k, lag(id) OVER w AS previous FROM tasks
        WINDOW w AS (PARTITION BY list_id ORDER BY position, id))
    UPDATE tasks SET parent_id = placed.previous
    FROM placed WHERE tasks.id = placed.id AND placed.k %% %(every)s BETWEEN 1 AND 4
    """,
    # One task with SUBTASKS direct subtasks.
    """
    INSERT INTO tasks (id, user_id, title, details, completed, created_at, updated_at, list_id,
                       parent_id, position)
    SELECT gen_random_uuid(), parent.user_id, 'subtask ' || s, '', FALSE, now(), now(),
           parent.list_id, parent.id, to_char(s, 'FM0000') || 'V'
    FROM (SELECT * FROM tasks WHERE user_id = 'alice' AND parent_id IS NULL
          ORDER BY position LIMIT 1) AS parent, generate_series(1, %(subtasks)s) AS s
    """,
    "ANALYZE tasks",
    "ANALYZE task_lists",
]


@pytest.fixture
def seeded(alice) -> dict[str, str]:
    """Alice's (and others') tasks in lists, with subtasks; the ids the pages use."""
    params = {
        "users": ["alice", *OTHERS],
        "lists": LISTS,
        "tasks": TASKS,
        "every": CHAIN_EVERY,
        "subtasks": SUBTASKS,
    }
    with connection.cursor() as cursor:
        for statement in SEED:
            cursor.execute(statement, params if "%(" in statement else None)
        cursor.execute(
            "SELECT id FROM task_lists WHERE user_id = 'alice' ORDER BY position LIMIT 1 OFFSET 1"
        )
        list_id = cursor.fetchone()[0]
        cursor.execute(
            "SELECT parent_id FROM tasks WHERE title = 'subtask 1' AND user_id = 'alice'"
        )
        parent_id = cursor.fetchone()[0]
    return {"list": str(list_id), "parent": str(parent_id)}


def captured_plan(client, path: str) -> dict:
    """The plan (EXPLAIN ANALYZE, JSON) of the one query the API runs for the page at `path`."""
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path)
    assert response.status_code == 200, response.content
    assert len(response.json()["results"]) == PAGE_SIZE
    assert len(queries) == 1, [q["sql"] for q in queries.captured_queries]
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + queries[0]["sql"])
        (document,) = cursor.fetchone()
    return document[0]["Plan"]


def nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def outline(plan: dict) -> str:
    """The plan's nodes, one a line: type, index, rows read (for a failure's message)."""
    return "\n".join(
        f"{n['Node Type']} {n.get('Index Name', '')} rows={n['Actual Rows']}"
        f" removed={n.get('Rows Removed by Filter', 0)}"
        for n in nodes(plan)
    )


def assert_bounded_index_scan(plan: dict, index_prefix: str) -> None:
    """One index scan in the page's order, no sort, no more rows read than the page (plus the
    row at the cursor, which the cursor's condition filters out)."""
    everything, shown = list(nodes(plan)), outline(plan)
    assert not [n for n in everything if "Sort" in n["Node Type"]], shown
    scans = [n for n in everything if "Scan" in n["Node Type"]]
    assert len(scans) == 1, shown
    (scan,) = scans
    assert scan["Node Type"] in ("Index Scan", "Index Only Scan"), shown
    assert scan["Index Name"].startswith(index_prefix), shown
    read = scan["Actual Rows"] + scan.get("Rows Removed by Filter", 0)
    assert read <= PAGE_SIZE + 2, shown


def list_page(ids: dict[str, str]) -> str:
    return f"/v1/tasks?list={ids['list']}&parent=none&ordering=position&page_size={PAGE_SIZE}"


# A list's top-level tasks: an index leading with list_id (tasks_list_…), whose order is the
# page's once list_id is fixed and only top-level tasks are in it.
LIST_INDEX = "tasks_list_"


def test_the_first_page_of_a_list_in_position_order_is_an_index_scan(alice, seeded):
    assert_bounded_index_scan(captured_plan(alice, list_page(seeded)), LIST_INDEX)


def test_a_deep_page_of_a_list_is_an_index_scan_from_the_cursor(alice, seeded):
    page = alice.get(list_page(seeded)).json()
    for _ in range(DEEP_PAGE - 2):
        page = alice.get(page["next"]).json()
    assert_bounded_index_scan(captured_plan(alice, page["next"]), LIST_INDEX)


def test_the_subtask_page_of_a_task_is_an_index_scan(alice, seeded):
    path = f"/v1/tasks?parent={seeded['parent']}&ordering=position&page_size={PAGE_SIZE}"
    assert_bounded_index_scan(captured_plan(alice, path), "tasks_parent_position_id")


@pytest.mark.parametrize("route", ["toggle", "move"])
def test_the_writes_of_a_tree_never_scan_the_table(alice, seeded, route):
    """Their statements find the family through the primary key and the parent index: a plan
    that scans `tasks` costs in proportion to everyone's tasks (an `IN (…) OR IN (…)` did)."""
    task = seeded["parent"]
    with CaptureQueriesContext(connection) as queries:
        if route == "toggle":
            response = alice.post(f"/v1/tasks/{task}/toggle")
        else:
            response = alice.post(f"/v1/tasks/{task}/move", {"after": None}, format="json")
    assert response.status_code == 200, response.content
    statements = [q["sql"] for q in queries.captured_queries if "tasks" in q["sql"]]
    assert statements
    with connection.cursor() as cursor:
        for sql in statements:
            cursor.execute("EXPLAIN (FORMAT JSON) " + sql)
            (document,) = cursor.fetchone()
            plan = document[0]["Plan"]
            scans = [n for n in nodes(plan) if n["Node Type"] == "Seq Scan"]
            assert not scans, f"{sql}\n{outline_estimated(plan)}"


def outline_estimated(plan: dict) -> str:
    return "\n".join(f"{n['Node Type']} {n.get('Index Name', '')}" for n in nodes(plan))
