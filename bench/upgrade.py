"""Time migration 0007 (task lists) on a large `tasks` table while the previous release writes.

Usage (from any directory):

    .venv/bin/python bench/upgrade.py [--tasks 1000000] [--users 10000] [--database upgrade_bench]

Steps: (re)create the database, `manage.py migrate tasks 0006_task_counts`, fill `tasks` by SQL
(generate_series), VACUUM ANALYZE, copy what must not change (ids, versions, positions, times,
change_seq, titles) into a table of its own, then run `manage.py migrate tasks` to the latest
while writer threads do what the previous release does (insert a task without a list, update one
by id, read a page of one user's tasks, read one task), each operation timed. A monitor polls
pg_stat_activity to time each statement of the migration and to name whatever a writer waits
behind. Afterwards: every task is top-level in its owner's one default list, the rows are
unchanged but for the writers' own updates, and the rows the writers inserted before the
migration's final sweep are in their owner's default list too.

Exit status 1 if a check fails or any operation took longer than --max-latency (1.0 s).
The database is left in place for inspection (drop it with `dropdb`).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

REPO_ROOT = Path(__file__).resolve().parent.parent
SECRET = "upgrade-bench-only-0123456789abcdef0123456789"
MIGRATE_APP = "bench-upgrade-migrate"
WRITER_APP = "bench-upgrade-writer"
PROTECTED = {"test", "root", "postgres", "template0", "template1"}
OPERATIONS = ("insert", "update", "list", "get")
# What the previous release (migration 0006) writes: every column it knows, no list_id/parent_id.
OLD_COLUMNS = (
    "id, user_id, title, details, completed, created_at, updated_at, version, change_seq,"
    " completed_at, deleted_at, due_at, labels, position, priority, recurrence, next_occurrence_id"
)
# The previous release's statements (tasks/statements.py before 0007), on PostgreSQL.
INSERT = f"""
    INSERT INTO tasks ({OLD_COLUMNS})
    SELECT %s, %s, %s, '', FALSE, now(), now(), 1, pg_current_xact_id()::text::bigint,
           NULL, NULL, NULL, '[]'::jsonb, %s, 0, '', NULL
    WHERE COALESCE((SELECT SUM(live) FROM task_counts WHERE user_id = %s), 0) < 100000
"""  # noqa: S608
UPDATE = """
    UPDATE tasks SET title = %s, version = version + 1, updated_at = now(),
        change_seq = pg_current_xact_id()::text::bigint
    WHERE id = %s AND user_id = %s AND deleted_at IS NULL
"""
LIST_PAGE = f"""
    SELECT {OLD_COLUMNS} FROM tasks WHERE user_id = %s AND deleted_at IS NULL
    ORDER BY created_at DESC, id DESC LIMIT 50
"""  # noqa: S608
GET = f"SELECT {OLD_COLUMNS} FROM tasks WHERE id = %s AND user_id = %s AND deleted_at IS NULL"  # noqa: S608
# Every task: user g % users, one second apart, a distinct position; every 3rd completed, every
# 20th a tombstone (title and details erased, as a delete does), some with a due date and label.
FILL = f"""
    INSERT INTO tasks ({OLD_COLUMNS})
    SELECT gen_random_uuid(), 'bench-user-' || lpad((g %% %(users)s)::text, 6, '0'),
           CASE WHEN g %% 20 = 0 THEN '' ELSE 'task ' || g END,
           CASE WHEN g %% 20 <> 0 AND g %% 4 = 0 THEN 'details of task ' || g ELSE '' END,
           g %% 3 = 0, ts, ts + interval '1 hour', 1 + g %% 4, g,
           CASE WHEN g %% 3 = 0 THEN ts + interval '2 hours' END,
           CASE WHEN g %% 20 = 0 THEN ts + interval '3 hours' END,
           CASE WHEN g %% 5 = 0 THEN ts + interval '7 days' END,
           CASE WHEN g %% 7 = 0 THEN '["work"]'::jsonb ELSE '[]'::jsonb END,
           lpad(to_hex(g), 8, '0') || 'V', g %% 4, '', NULL
    FROM generate_series(1, %(tasks)s) AS g,
         LATERAL (SELECT timestamptz '2025-01-01 00:00:00+00' + g * interval '1 second') AS t(ts)
"""  # noqa: S608
FINGERPRINT_COLUMNS = (
    "id, user_id, version, position, created_at, updated_at, change_seq, completed, title,"
    " deleted_at"
)


def log(start: float, message: str) -> None:
    """A progress line on stderr, prefixed with the elapsed time."""
    print(f"[{time.monotonic() - start:7.1f}s] {message}", file=sys.stderr, flush=True)


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=1_000_000, help="tasks to fill (1000000)")
    parser.add_argument("--users", type=int, default=10_000, help="users they belong to (10000)")
    parser.add_argument("--database", default="upgrade_bench", help="database to (re)create")
    parser.add_argument("--server", default="postgres://root@127.0.0.1:5432", help="PostgreSQL")
    parser.add_argument("--writers", type=int, default=3, help="writer connections (3)")
    parser.add_argument(
        "--pause", type=float, default=0.002, help="seconds each writer sleeps between operations"
    )
    parser.add_argument(
        "--baseline", type=float, default=5.0, help="seconds of writes timed before migrating"
    )
    parser.add_argument("--max-latency", type=float, default=1.0, help="fail above this (s)")
    args = parser.parse_args()
    if args.database in PROTECTED:
        parser.error(f"refusing to recreate database {args.database!r}")
    return args


def recreate_database(server: str, db: str) -> None:
    """Drop and create an empty database."""
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))


def manage_env(url: str, app_name: str) -> dict[str, str]:
    """The environment `manage.py` runs with: this database, production settings."""
    return {
        **os.environ,
        "DATABASE_URL": url,
        "DEBUG": "false",
        "BETTER_AUTH_SECRET": SECRET,
        "PGAPPNAME": app_name,  # libpq: names the migration's backend in pg_stat_activity
    }


def migrate(url: str, *target: str) -> subprocess.Popen[str]:
    """Start `manage.py migrate tasks [target]`."""
    return subprocess.Popen(
        [sys.executable, "manage.py", "migrate", "tasks", *target, "--noinput"],
        cwd=REPO_ROOT,
        env=manage_env(url, MIGRATE_APP),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def fill(conn: psycopg.Connection, tasks: int, users: int) -> None:
    """Fill `tasks` in one statement, its secondary indexes dropped and then rebuilt (faster
    than maintaining twelve of them row by row); the insert trigger fills task_counts."""
    conn.execute("SET maintenance_work_mem = '512MB'")
    indexes = conn.execute(
        "SELECT indexname, indexdef FROM pg_indexes"
        " WHERE tablename = 'tasks' AND indexname <> 'tasks_pkey'"
    ).fetchall()
    for name, _ in indexes:
        conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
    conn.execute(FILL, {"tasks": tasks, "users": users})
    for _, definition in indexes:
        conn.execute(definition)
    # VACUUM as well as ANALYZE: the visibility map set and hint bits written now, not during
    # the migration; then a checkpoint, so that the fill's WAL is not flushed during it.
    conn.execute("VACUUM (ANALYZE) tasks")
    conn.execute("VACUUM (ANALYZE) task_counts")
    conn.execute("CHECKPOINT")


@dataclass
class Shared:
    """What the writer threads share with the main thread."""

    users: list[str]
    existing: list[tuple[str, str]]  # (id, user_id) of pre-existing tasks to update
    stop: threading.Event = field(default_factory=threading.Event)
    migrating_since: float | None = None  # time.time() when the migration started
    lock: threading.Lock = field(default_factory=threading.Lock)
    latencies: dict[str, dict[str, list[float]]] = field(
        default_factory=lambda: {
            phase: {op: [] for op in OPERATIONS} for phase in ("baseline", "migration")
        }
    )
    slowest: list[tuple[float, float, str]] = field(default_factory=list)  # (seconds, at, op)
    touched: set[str] = field(default_factory=set)  # ids the writers updated (or tried to)
    inserted: list[tuple[str, str, float]] = field(default_factory=list)  # (id, user, acked at)
    errors: list[str] = field(default_factory=list)


def writer(shared: Shared, url: str, seed: int, pause: float) -> None:
    """The previous release's traffic, one operation of each kind in turn, until stopped."""
    rng = random.Random(seed)
    own: list[tuple[str, str]] = []
    local = {phase: {op: [] for op in OPERATIONS} for phase in ("baseline", "migration")}
    slowest: list[tuple[float, float, str]] = []
    touched: set[str] = set()
    inserted: list[tuple[str, str, float]] = []
    n = 0
    try:
        with psycopg.connect(url, autocommit=True, application_name=WRITER_APP) as conn:
            while not shared.stop.is_set():
                n += 1
                user = rng.choice(shared.users)
                if rng.random() < 0.01:  # a user new since the fill: no default list yet
                    user = f"bench-new-{seed}-{n}"
                for op in OPERATIONS:
                    if op == "insert":
                        task_id = str(uuid.uuid4())
                        params = (task_id, user, f"written during upgrade {n}", "0V", user)
                        statement = INSERT
                    elif op == "update":
                        # One in five of its own recent inserts: rows the final sweep locks.
                        if own and rng.random() < 0.2:
                            task_id, owner = rng.choice(own[-200:])
                        else:
                            task_id, owner = rng.choice(shared.existing)
                        touched.add(task_id)
                        params = (f"updated during upgrade {n}", task_id, owner)
                        statement = UPDATE
                    elif op == "list":
                        params, statement = (user,), LIST_PAGE
                    else:
                        task_id, owner = rng.choice(shared.existing)
                        params, statement = (task_id, owner), GET
                    since = shared.migrating_since
                    began = time.perf_counter()
                    cursor = conn.execute(statement, params)
                    if cursor.description is not None:
                        cursor.fetchall()
                    took = time.perf_counter() - began
                    now = time.time()
                    if op == "insert" and cursor.rowcount == 1:
                        own.append((task_id, user))
                        inserted.append((task_id, user, now))
                    phase = "baseline" if since is None else "migration"
                    local[phase][op].append(took)
                    if phase == "migration":
                        slowest.append((took, now - took, op))
                        if len(slowest) > 200:
                            slowest.sort(reverse=True)
                            del slowest[20:]
                    if pause:
                        time.sleep(pause)
    except Exception as exc:  # reported by the main thread, which fails the run
        shared.errors.append(f"writer {seed}: {exc!r}")
    with shared.lock:
        for phase, ops in local.items():
            for op, values in ops.items():
                shared.latencies[phase][op].extend(values)
        shared.slowest.extend(slowest)
        shared.touched |= touched
        shared.inserted.extend(inserted)


@dataclass
class Monitor:
    """Polls pg_stat_activity: each statement the migration runs (with its start and the last
    time it was seen running) and the longest lock wait of a writer, with what it waited for."""

    url: str
    stop: threading.Event = field(default_factory=threading.Event)
    steps: dict[tuple[float, str], float] = field(default_factory=dict)  # (start, query) -> last
    waits: dict[str, tuple[float, str]] = field(default_factory=dict)  # blocker -> (s, waiter)
    error: str | None = None

    def run(self) -> None:
        """Poll every 10 ms until stopped."""
        try:
            with psycopg.connect(self.url, autocommit=True) as conn:
                while not self.stop.is_set():
                    rows = conn.execute(
                        "SELECT pid, application_name, state, wait_event_type,"
                        " extract(epoch FROM query_start)::float8,"
                        " extract(epoch FROM clock_timestamp())::float8,"
                        " left(regexp_replace(query, '\\s+', ' ', 'g'), 400),"
                        " pg_blocking_pids(pid)"
                        " FROM pg_stat_activity WHERE datname = current_database()"
                        " AND pid <> pg_backend_pid()"
                    ).fetchall()
                    by_pid = {row[0]: row for row in rows}
                    for _pid, app, state, wait, start, now, query, blockers in rows:
                        if app == MIGRATE_APP and state == "active" and start is not None:
                            self.steps[(start, query)] = now
                        if app == WRITER_APP and wait == "Lock" and start is not None:
                            for blocker in blockers:
                                other = by_pid.get(blocker)
                                name = (
                                    f"{other[1] or 'other'}: {step_name(other[6])}"
                                    if other
                                    else str(blocker)
                                )
                                key = f"{name} <- {step_name(query.strip())[:25]}"
                                if now - start > self.waits.get(key, (0.0, ""))[0]:
                                    self.waits[key] = (now - start, query)
                    time.sleep(0.01)
        except Exception as exc:
            self.error = repr(exc)

    def timeline(self) -> list[tuple[float, float, str]]:
        """(start, last seen, query) of each migration statement, in order."""
        return sorted((start, last, query) for (start, query), last in self.steps.items())


def step_name(query: str) -> str:
    """A short name for a migration statement (batches grouped)."""
    if "AND id > " in query and "UPDATE tasks SET list_id" in query:
        return "backfill batch UPDATE"
    if query.startswith("SELECT id FROM tasks WHERE id >"):
        return "batch bound SELECT"
    if "UPDATE tasks SET list_id" in query:
        return "final sweep UPDATE"
    if "INSERT INTO task_lists" in query:
        return "default lists INSERT"
    return query[:70]


def summarize_steps(timeline: list[tuple[float, float, str]]) -> list[tuple[str, list[float]]]:
    """Per step name, in order of first appearance: each statement's duration (seconds, from its
    start to the last poll that saw it running: up to 10 ms short)."""
    summary: dict[str, list[float]] = {}
    for start, last, query in timeline:
        summary.setdefault(step_name(query), []).append(last - start)
    return list(summary.items())


def percentile(values: list[float], fraction: float) -> float:
    """The `fraction` quantile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def check(conn: psycopg.Connection, shared: Shared, sweep_at: float | None) -> list[str]:
    """What must hold after the upgrade; the failures, one line each."""
    failures = []

    def scalar(query: str, *params: object) -> int:
        row = conn.execute(query, params).fetchone()
        return 0 if row is None else int(row[0])

    conn.execute("CREATE TEMP TABLE touched (id uuid PRIMARY KEY)")
    with conn.cursor().copy("COPY touched (id) FROM STDIN") as copy:
        for task_id in shared.touched:
            copy.write_row((task_id,))
    conn.execute("CREATE TEMP TABLE written (id uuid PRIMARY KEY, acked float8)")
    with conn.cursor().copy("COPY written (id, acked) FROM STDIN") as copy:
        for task_id, _, acked in shared.inserted:
            copy.write_row((task_id, acked))

    missing = scalar(
        "SELECT count(*) FROM bench_before b"
        " WHERE NOT EXISTS (SELECT FROM tasks t WHERE t.id = b.id)"
    )
    if missing:
        failures.append(f"{missing} pre-existing tasks are gone")
    changed = scalar(
        f"SELECT count(*) FROM bench_before b JOIN tasks t USING (id)"  # noqa: S608
        f" WHERE NOT EXISTS (SELECT FROM touched WHERE touched.id = b.id)"
        f" AND (b.{FINGERPRINT_COLUMNS.replace(', ', ', b.')})"
        f" IS DISTINCT FROM (t.{FINGERPRINT_COLUMNS.replace(', ', ', t.')})"
    )
    if changed:
        failures.append(f"{changed} pre-existing tasks changed (id/version/position/times/title)")
    not_in_default = scalar(
        "SELECT count(*) FROM bench_before b JOIN tasks t USING (id)"
        " LEFT JOIN task_lists l ON l.id = t.list_id"
        " WHERE l.id IS NULL OR l.user_id <> t.user_id OR NOT l.is_default"
    )
    if not_in_default:
        failures.append(f"{not_in_default} pre-existing tasks are not in their default list")
    not_top = scalar("SELECT count(*) FROM tasks WHERE parent_id IS NOT NULL")
    if not_top:
        failures.append(f"{not_top} tasks have a parent")
    wrong_list = scalar(
        "SELECT count(*) FROM tasks t LEFT JOIN task_lists l ON l.id = t.list_id"
        " WHERE t.list_id IS NOT NULL"
        " AND (l.id IS NULL OR l.user_id <> t.user_id OR NOT l.is_default)"
    )
    if wrong_list:
        failures.append(f"{wrong_list} tasks are in a list that is not their owner's default")
    no_default = scalar(
        "SELECT count(*) FROM (SELECT DISTINCT user_id FROM bench_before) u"
        " WHERE (SELECT count(*) FROM task_lists l WHERE l.user_id = u.user_id AND l.is_default)"
        " <> 1"
    )
    if no_default:
        failures.append(f"{no_default} users do not have exactly one default list")
    if sweep_at is None:
        failures.append("the final sweep was not seen running (cannot check the writers' rows)")
    else:
        # Acknowledged before the sweep's statement began: committed before its snapshot.
        early_unlisted = scalar(
            "SELECT count(*) FROM written w JOIN tasks t USING (id)"
            " WHERE w.acked < %s AND t.list_id IS NULL",
            sweep_at,
        )
        if early_unlisted:
            listless = scalar(
                "SELECT count(*) FROM written w JOIN tasks t USING (id)"
                " WHERE w.acked < %s AND t.list_id IS NULL AND NOT EXISTS"
                " (SELECT FROM task_lists l WHERE l.user_id = t.user_id AND l.is_default)",
                sweep_at,
            )
            failures.append(
                f"{early_unlisted} tasks written before the final sweep began have no list_id"
                f" ({listless} of them by users who have no default list)"
            )
    invalid = scalar(
        "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
        " WHERE c.relname IN ('tasks_list_top_position_id', 'tasks_parent_position_id')"
        " AND i.indisvalid"
    )
    if invalid != 2:
        failures.append(f"{2 - invalid} of the two new task indexes missing or invalid")
    counts_off = scalar(
        "SELECT count(*) FROM (SELECT user_id, count(*) AS live FROM tasks"
        " WHERE deleted_at IS NULL GROUP BY user_id) t"
        " FULL JOIN (SELECT user_id, sum(live) AS live FROM task_counts GROUP BY user_id) c"
        " USING (user_id) WHERE COALESCE(t.live, 0) <> COALESCE(c.live, 0)"
    )
    if counts_off:
        failures.append(f"{counts_off} users' task_counts differ from their live tasks")
    return failures


def main() -> int:
    """Fill, migrate under load, check, print the figures."""
    args = parse_args()
    start = time.monotonic()
    url = f"{args.server}/{args.database}"
    recreate_database(args.server, args.database)
    log(start, f"database {args.database} created; migrating to 0006_task_counts")
    proc = migrate(url, "0006_task_counts")
    output, _ = proc.communicate()
    if proc.returncode:
        print(output, file=sys.stderr)
        return 1

    with psycopg.connect(url, autocommit=True) as conn:
        log(start, f"filling {args.tasks} tasks for {args.users} users")
        fill(conn, args.tasks, args.users)
        log(start, "filled; copying the fingerprint columns")
        conn.execute(
            f"CREATE TABLE bench_before AS SELECT {FINGERPRINT_COLUMNS} FROM tasks"  # noqa: S608
        )
        conn.execute("ALTER TABLE bench_before ADD PRIMARY KEY (id)")
        conn.execute("VACUUM (ANALYZE) bench_before")
        users = [row[0] for row in conn.execute("SELECT DISTINCT user_id FROM tasks")]
        existing = conn.execute(
            "SELECT id::text, user_id FROM tasks TABLESAMPLE BERNOULLI (5) REPEATABLE (1)"
            " WHERE deleted_at IS NULL"
        ).fetchall()
        size = conn.execute("SELECT pg_size_pretty(pg_total_relation_size('tasks'))").fetchone()
    log(start, f"tasks: {size[0] if size else '?'} with its indexes")

    shared = Shared(users=users, existing=existing)
    threads = [
        threading.Thread(target=writer, args=(shared, url, seed, args.pause), daemon=True)
        for seed in range(args.writers)
    ]
    for thread in threads:
        thread.start()
    log(start, f"{args.writers} writers running; {args.baseline:.0f} s of baseline")
    time.sleep(args.baseline)

    monitor = Monitor(url)
    monitor_thread = threading.Thread(target=monitor.run, daemon=True)
    monitor_thread.start()
    log(start, "migrating to the latest (0007) while the writers run")
    shared.migrating_since = time.time()
    began = time.monotonic()
    proc = migrate(url)
    output, _ = proc.communicate()
    wall = time.monotonic() - began
    shared.stop.set()
    for thread in threads:
        thread.join()
    monitor.stop.set()
    monitor_thread.join()
    log(start, f"migration exited {proc.returncode} after {wall:.1f} s")
    if proc.returncode:
        print(output, file=sys.stderr)

    timeline = monitor.timeline()
    sweeps = [s for s, _, q in timeline if step_name(q) == "final sweep UPDATE"]
    sweep_at = sweeps[-1] if sweeps else None
    with psycopg.connect(url, autocommit=True) as conn:
        failures = [] if proc.returncode == 0 else [f"migrate exited {proc.returncode}"]
        failures += shared.errors
        if monitor.error:
            failures.append(f"monitor: {monitor.error}")
        failures += check(conn, shared, sweep_at)
        after_sweep = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE NOT EXISTS (SELECT FROM task_lists l"
            " WHERE l.user_id = t.user_id AND l.is_default))"
            " FROM written w JOIN tasks t USING (id) WHERE t.list_id IS NULL AND w.acked >= %s",
            (sweep_at or 0.0,),
        ).fetchone()

    print(
        f"\nMigration 0007 on {args.tasks:,} tasks ({args.users:,} users), {args.writers} writers"
    )
    print(f"migration wall time: {wall:.1f} s\n")
    print("| phase | operation | count | p50 ms | p99 ms | max ms |")
    print("|---|---|---:|---:|---:|---:|")
    worst = 0.0
    for phase, ops in shared.latencies.items():
        for op in OPERATIONS:
            values = ops[op]
            if not values:
                print(f"| {phase} | {op} | 0 | | | |")
                continue
            if phase == "migration":
                worst = max(worst, max(values))
            print(
                f"| {phase} | {op} | {len(values)} | {statistics.median(values) * 1000:.1f}"
                f" | {percentile(values, 0.99) * 1000:.1f} | {max(values) * 1000:.1f} |"
            )
    print("\nmigration statements (seen by polling every 10 ms):")
    print("| step | statements | total s | p50 s | max s |")
    print("|---|---:|---:|---:|---:|")
    for name, durations in summarize_steps(timeline):
        print(
            f"| {name} | {len(durations)} | {sum(durations):.2f}"
            f" | {statistics.median(durations):.2f} | {max(durations):.2f} |"
        )
    if monitor.waits:
        print("\nlongest lock wait of a writer, per blocking statement:")
        for blocker, (seconds, waiter) in sorted(monitor.waits.items(), key=lambda w: -w[1][0]):
            print(f"  {seconds:.3f} s: [{waiter.strip()[:40]}] behind [{blocker[:90]}]")
    print("\nslowest operations during the migration, and what the migration ran as they began:")
    for took, at, op in sorted(shared.slowest, reverse=True)[:5]:
        running = [step_name(q) for s, last, q in timeline if s <= at <= last + 0.01]
        print(f"  {took * 1000:7.1f} ms {op:6} began during: {running[-1] if running else '?'}")
    # Not a failure of the migration: the previous release keeps writing rows without a list
    # until the new one replaces it; the new release (or a later sweep) has to place them.
    if after_sweep:
        print(
            f"\nNOTE: {after_sweep[0]} rows the writers inserted after the final sweep began"
            f" have no list_id ({after_sweep[1]} by users with no default list yet)"
        )
    if worst > args.max_latency:
        failures.append(f"an operation took {worst:.3f} s (limit {args.max_latency} s)")
    for failure in failures:
        print(f"FAIL: {failure}")
    print("OK" if not failures else f"{len(failures)} check(s) failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
