"""EXPLAIN the task-list reads of lists and subtasks at scale (docs/performance.md).

Usage (from any directory; needs PostgreSQL, takes about a minute):

    .venv/bin/python bench/explain.py [--db explain_bench] [--tasks 100000]

Recreates the database, migrates it, seeds one user with --tasks tasks spread over --lists lists
(about a tenth of them in the list explained; in each list, one task in CHAIN_EVERY heads a chain
of subtasks 5 levels deep, and the last top-level task has SUBTASKS direct subtasks), plus
OTHER_USERS users with OTHER_TASKS tasks each, then ANALYZEs. It then calls the service
in-process (APIClient, a real token), captures the SQL of each page below and prints its
`EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF, SUMMARY OFF)`:

- (a) the first page of one list in the user's order: `?list=<id>&parent=none&ordering=position`;
- (b) a deep page of it: the `next` link followed --deep-page - 1 times;
- (c) the subtask page of a task: `?parent=<id>&ordering=position`.

The database is left in place for further queries; --db names it (never test, root or postgres).
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import psycopg
from psycopg import sql

REPO_ROOT = Path(__file__).resolve().parent.parent
USER = "explain-user"
OTHER_USERS, OTHER_TASKS = 4, 5000
CHAIN_EVERY = 25  # the task at place k of a list, k % CHAIN_EVERY in 1…4, is under the one before
SUBTASKS = 120  # the direct subtasks of the subtask page's task (more than a page)
PAGE_SIZE = 50
RESERVED = {"test", "root", "postgres", "template0", "template1"}

SEED_LISTS = """
    INSERT INTO task_lists (id, user_id, title, is_default, position, created_at, updated_at,
                            version, change_seq)
    SELECT gen_random_uuid(), u, CASE WHEN n = 0 THEN 'Tasks' ELSE 'list ' || n END, n = 0,
           'L' || to_char(n, 'FM000') || 'V', now(), now(), 1, 0
    FROM unnest(%(users)s::text[]) AS u, generate_series(0, %(lists)s - 1) AS n
"""
# Task g of a user goes into their list g % lists (lists in their order), after the ones before;
# except every tenth, which goes into list 1 (the one explained): it holds about a tenth of the
# user's tasks, enough for a page 50 pages in.
SEED_TASKS = """
    WITH lists AS (
        SELECT id, user_id,
               row_number() OVER (PARTITION BY user_id ORDER BY position) - 1 AS n
        FROM task_lists)
    INSERT INTO tasks (id, user_id, title, details, completed, created_at, updated_at, list_id,
                       position)
    SELECT gen_random_uuid(), u.user_id, 'seeded task ' || g, '', g %% 3 = 0, ts, ts, lists.id,
           to_char(g, 'FM000000000') || 'V'
    FROM unnest(%(users)s::text[], %(counts)s::int[]) AS u(user_id, count),
         generate_series(1, u.count) AS g,
         LATERAL (SELECT now() - interval '1 day' + g * interval '1 millisecond') AS t(ts),
         lists
    WHERE lists.user_id = u.user_id
      AND lists.n = CASE WHEN g %% 10 = 0 THEN 1 ELSE g %% %(lists)s END
"""
# Chains 5 levels deep: each of the 4 tasks after a chain's head is under the one before it.
# A chain is open, so that no completed task has an open subtask.
SEED_CHAINS = """
    WITH placed AS (
        SELECT id, row_number() OVER w - 1 AS k, lag(id) OVER w AS previous
        FROM tasks WHERE user_id = %(user)s
        WINDOW w AS (PARTITION BY list_id ORDER BY position, id))
    UPDATE tasks SET completed = FALSE,
                     parent_id = CASE WHEN placed.k %% %(every)s = 0 THEN NULL ELSE previous END
    FROM placed WHERE tasks.id = placed.id AND placed.k %% %(every)s < 5
"""
# SUBTASKS open subtasks under the last top-level task of each list (itself made open).
SEED_SUBTASKS = """
    WITH parents AS (
        UPDATE tasks SET completed = FALSE
        WHERE id IN (SELECT DISTINCT ON (list_id) id FROM tasks
                     WHERE user_id = %(user)s AND parent_id IS NULL
                     ORDER BY list_id, position DESC)
        RETURNING id, list_id)
    INSERT INTO tasks (id, user_id, title, details, completed, created_at, updated_at, list_id,
                       parent_id, position)
    SELECT gen_random_uuid(), %(user)s, 'subtask ' || s, '', FALSE, now(), now(), parents.list_id,
           parents.id, to_char(s, 'FM0000') || 'V'
    FROM parents, generate_series(1, %(subtasks)s) AS s
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pg", default="postgresql://root@127.0.0.1:5432")
    parser.add_argument("--db", default="explain_bench")
    parser.add_argument("--tasks", type=int, default=100_000, help="tasks of the user")
    parser.add_argument("--lists", type=int, default=50, help="lists of each user")
    parser.add_argument(
        "--deep-page", type=int, default=50, help="which page of the list (b) explains"
    )
    args = parser.parse_args()
    if args.db in RESERVED:
        parser.error(f"--db {args.db} is reserved")
    return args


def prepare(args: argparse.Namespace, environment: dict[str, str]) -> None:
    """Recreate and migrate the database, seed it, ANALYZE."""
    with psycopg.connect(f"{args.pg}/postgres", autocommit=True) as admin:
        name = sql.Identifier(args.db)
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(name))
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--verbosity", "0"],
        cwd=REPO_ROOT,
        env=environment,
        check=True,
    )
    users = [USER] + [f"explain-other-{n}" for n in range(1, OTHER_USERS + 1)]
    # The subtask pages' subtasks are part of the user's --tasks.
    counts = [args.tasks - SUBTASKS * args.lists] + [OTHER_TASKS] * OTHER_USERS
    with psycopg.connect(environment["DATABASE_URL"], autocommit=True) as conn:
        conn.execute(SEED_LISTS, {"users": users, "lists": args.lists})
        conn.execute(SEED_TASKS, {"users": users, "counts": counts, "lists": args.lists})
        conn.execute(SEED_CHAINS, {"user": USER, "every": CHAIN_EVERY})
        conn.execute(SEED_SUBTASKS, {"user": USER, "subtasks": SUBTASKS})
        conn.execute("VACUUM (ANALYZE) tasks")
        conn.execute("VACUUM (ANALYZE) task_lists")
        depth = conn.execute(
            """WITH RECURSIVE down(id, level) AS (
                   SELECT id, 1 FROM tasks WHERE user_id = %s AND parent_id IS NULL
                   UNION ALL SELECT t.id, level + 1 FROM tasks t JOIN down ON t.parent_id = down.id)
               SELECT max(level), count(*) FILTER (WHERE level > 1) FROM down""",
            (USER,),
        ).fetchone()
    print(
        f"seeded {args.db}: {USER} has {args.tasks:,} tasks in "
        f"{args.lists} lists, {depth[1]:,} of them subtasks, {depth[0]} levels deep; "
        f"{OTHER_USERS} other users with {OTHER_TASKS:,} tasks each"
    )


def explain_pages(args: argparse.Namespace) -> None:
    """Call the service in-process for each page and EXPLAIN the SQL it ran."""
    import django

    django.setup()
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from rest_framework.test import APIClient

    from tasks.authentication import issue_token
    from tasks.models import Task, TaskList

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token(USER)}")
    one_list = TaskList.objects.filter(user_id=USER).order_by("position")[1]
    subtask = Task.objects.filter(user_id=USER, list_id=one_list.pk, title__startswith="subtask ")
    parent_id = subtask.values_list("parent_id", flat=True).first()
    list_page = f"/v1/tasks?list={one_list.pk}&parent=none&ordering=position&page_size={PAGE_SIZE}"
    deep = client.get(list_page).json()
    for _ in range(args.deep_page - 2):
        deep = client.get(deep["next"]).json()
    pages = [
        ("(a) the first page of one list, in position order", list_page),
        (f"(b) page {args.deep_page} of that list (a cursor page)", deep["next"]),
        (
            "(c) the subtask page of a task",
            f"/v1/tasks?parent={parent_id}&ordering=position&page_size={PAGE_SIZE}",
        ),
    ]
    for title, path in pages:
        with CaptureQueriesContext(connection) as queries:
            response = client.get(path)
        assert response.status_code == 200, response.content
        reads = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT")]
        assert len(reads) == 1, reads
        with connection.cursor() as cursor:
            cursor.execute(
                "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF, SUMMARY OFF) " + reads[0]
            )
            plan = "\n".join(row[0] for row in cursor.fetchall())
        shown = path.removeprefix("http://testserver")
        shown = re.sub(r"cursor=[^&]+", "cursor=…", shown)
        print(f"\n### {title}\n\nGET {shown} ({len(response.json()['results'])} tasks)\n")
        print(f"{reads[0]}\n\n{plan}")


def main() -> None:
    args = parse_args()
    environment = {
        **os.environ,
        "DATABASE_URL": f"{args.pg}/{args.db}",
        "DEBUG": "false",
        "BETTER_AUTH_SECRET": os.environ.get("BETTER_AUTH_SECRET") or secrets.token_urlsafe(32),
        "ALLOWED_HOSTS": "testserver",  # APIClient's host
        "DJANGO_SETTINGS_MODULE": "todo_project.settings",
        "ACCESS_LOG_LEVEL": "WARNING",  # no log line per request
    }
    prepare(args, environment)
    os.environ.update(environment)
    sys.path.insert(0, str(REPO_ROOT))
    explain_pages(args)


if __name__ == "__main__":
    main()
