"""What each index of `tasks` costs a create: the service's own INSERT, timed on the server
with every index in place and with each one dropped in turn (in a transaction rolled back, so
the database is left as it was).

Usage (a database with the service's schema and some tasks, e.g. bench/run.py's bench_django):

    .venv/bin/python bench/index_costs.py postgres://root@127.0.0.1:5432/bench_django [--inserts N]

Each measurement inserts N tasks for one user through the INSERT … SELECT the service runs
(statements.insert_within_limit's shape: the list read under a key-share lock and the cap), each
followed by a savepoint release, and reports the mean server time per insert (the statement's
duration from the client, on a loopback connection, minus nothing: a relative figure). Runs are
interleaved (all indexes, then each dropped, then all again) so that drift shows.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

import psycopg

INSERT = """
INSERT INTO tasks (id, user_id, title, details, completed, created_at, updated_at, version,
                   due_at, completed_at, priority, labels, position, recurrence, deleted_at,
                   change_seq, next_occurrence_id, list_id, parent_id)
SELECT %s, %s, %s, '', false, now(), now(), 1, NULL, NULL, 0, '[]'::jsonb, %s, '', NULL,
       pg_current_xact_id()::text::bigint, NULL, lists.id, NULL
FROM task_lists AS lists
WHERE lists.user_id = %s AND lists.deleted_at IS NULL AND lists.is_default
  AND COALESCE((SELECT SUM(live) FROM task_counts WHERE user_id = %s), 0) < 100000
FOR KEY SHARE OF lists
"""


def per_insert_ms(conn: psycopg.Connection, user: str, n: int) -> float:
    durations = []
    for i in range(n):
        started = time.perf_counter()
        conn.execute(INSERT, (uuid.uuid4(), user, f"index cost {i}", f"{i:010d}V", user, user))
        durations.append(time.perf_counter() - started)
    return statistics.mean(durations) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("database_url")
    parser.add_argument("--inserts", type=int, default=2000)
    args = parser.parse_args()
    with psycopg.connect(args.database_url) as conn:
        user = conn.execute(
            "SELECT user_id FROM task_lists WHERE is_default ORDER BY user_id LIMIT 1"
        ).fetchone()[0]
        indexes = [
            row[0]
            for row in conn.execute(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'tasks'"
                " AND indexname <> 'tasks_pkey' ORDER BY indexname"
            )
        ]
        conn.rollback()
        results: dict[str, list[float]] = {"(all indexes)": []}
        for _round in range(2):
            for dropped in ["(all indexes)", *indexes]:
                with conn.transaction(force_rollback=True):
                    if dropped != "(all indexes)":
                        conn.execute(f'DROP INDEX "{dropped}"')
                    per_insert_ms(conn, user, args.inserts // 10)  # warm
                    results.setdefault(dropped, []).append(per_insert_ms(conn, user, args.inserts))
        base = statistics.mean(results["(all indexes)"])
        print(f"user {user}, {args.inserts} inserts per measurement, 2 measurements each")
        print("| without | ms per insert | saved |")
        print("|---|---:|---:|")
        for name, values in results.items():
            mean = statistics.mean(values)
            print(f"| {name} | {mean:.3f} | {base - mean:+.3f} |")


if __name__ == "__main__":
    main()
