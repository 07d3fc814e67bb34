"""Benchmark the Tasks API against its peers with wrk.

Usage (from any directory; relative target paths are resolved against the repository root):

    .venv/bin/pip install -r bench/requirements.txt
    .venv/bin/python bench/run.py                        # our service, fastapi_ref, raw_wsgi
    .venv/bin/python bench/run.py --targets ../shared/peers/fastapi_ref ../shared/peers/raw_wsgi \
        --duration 3 --rounds 2 --two-instances

A target is a directory whose `start.sh PORT` serves the API on 127.0.0.1:PORT in the foreground,
reading DATABASE_URL and BETTER_AUTH_SECRET. Each target gets a fresh database `bench_<name>`,
seeded by SQL, then wrk runs every scenario against every target in turn, round after round.
Results go to stdout (markdown), bench/results/<UTC timestamp>.json and a chart (--chart). Every
server started here is stopped on exit, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import string
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import psycopg
from psycopg import sql

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
DEFAULT_TARGETS = [".", "../shared/peers/fastapi_ref", "../shared/peers/raw_wsgi"]
REFERENCES = ("fastapi_ref", "raw_wsgi")  # ratio columns: req/s against the target with this name

WRK_THREADS = 2
WRK_CONNECTIONS = 16
# PostgreSQL 15 backends flush their statistics at most once a second while busy and the remainder
# only after 10 s idle: a counter read sooner after a load misses up to a second of transactions.
STATS_SETTLE_S = 11.0
# Longer than any request takes (p99 well under 0.1 s in every run so far).
IN_FLIGHT_SETTLE_S = 1.0

SMALL, BIG, WRITER, DELETER = "bench-small", "bench-big", "bench-writer", "bench-delete"
# A service with task lists (a `list_id` column) gets this many lists per user; every task goes
# into one of them in turn, and BIG also gets subtasks (seed_lists).
LISTS_PER_USER = 50
# BIG's tasks in each list, by their place k in it: k % CHAIN_EVERY == 0 heads a chain of
# subtasks k+1 … k+4, each under the one before (5 levels in all).
CHAIN_EVERY = 25
# The tree of toggle_parent: 5 subtasks, each with 9 of its own (50 descendants, 3 levels).
TOGGLE_TREE_FANOUT = (5, 9)


@dataclass(frozen=True)
class Scenario:
    """One wrk load: a request (path placeholders are filled per target) and its expected status."""

    name: str
    method: str
    path: str
    user: str | None  # whose token goes in the Authorization header; None sends none
    expected: int
    body: dict[str, Any] | None = None


SCENARIOS = [
    Scenario("list_small", "GET", "/v1/tasks", SMALL, 200),
    Scenario("list_big", "GET", "/v1/tasks", BIG, 200),
    Scenario("list_deep", "GET", "{deep_page}", BIG, 200),
    Scenario("get", "GET", "/v1/tasks/{get_task}", SMALL, 200),
    Scenario("create", "POST", "/v1/tasks", WRITER, 201, {"title": "bench create"}),
    Scenario(
        "put",
        "PUT",
        "/v1/tasks/{put_task}",
        SMALL,
        200,
        {"title": "bench put", "details": "replaced by the benchmark", "completed": False},
    ),
    Scenario("toggle", "POST", "/v1/tasks/{toggle_task}/toggle", SMALL, 200),
    Scenario("delete", "DELETE", "/v1/tasks/%s", DELETER, 204),  # %s: the next id of the ids file
    Scenario("unauthorized", "GET", "/v1/tasks", None, 401),
    # Task lists and subtasks. A target without lists serves its plain list of the same user
    # in list_in_list's place (the reference point); the other two are not applicable to it.
    Scenario("list_in_list", "GET", "{list_page}", BIG, 200),
    Scenario(
        "create_in_list",
        "POST",
        "/v1/tasks",
        WRITER,
        201,
        {"title": "bench create in a list", "list_id": "{writer_list}"},
    ),
    Scenario("toggle_parent", "POST", "/v1/tasks/{toggle_parent}/toggle", BIG, 200),
]
SCENARIO_NAMES = [s.name for s in SCENARIOS]


@dataclass
class Server:
    """A `start.sh PORT` process, started in its own process group."""

    label: str
    directory: Path
    port: int
    database_url: str
    log_path: Path
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """Base URL of the server."""
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Target:
    """A benchmarked service: its server, database and per-run state."""

    name: str
    server: Server
    db: str
    refs: dict[str, str] = field(default_factory=dict)  # path placeholders: task ids, deep page
    notes: dict[str, str] = field(default_factory=dict)  # scenario -> what was measured instead
    not_implemented: dict[str, str] = field(default_factory=dict)  # scenario -> reason
    xact_mark: int = 0  # transaction counter at the start of the open window
    last_load: float = 0.0  # time.monotonic() when this target last served requests
    window: dict[str, Any] | None = None  # the result entry whose transactions are being counted


class Progress:
    """Prints one line per step, prefixed with the elapsed time."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    def __call__(self, message: str) -> None:
        print(f"[{time.monotonic() - self.start:6.1f}s] {message}", file=sys.stderr, flush=True)


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--targets",
        nargs="+",
        default=DEFAULT_TARGETS,
        metavar="DIR",
        help="directories with a start.sh, relative to the repository root "
        f"(default: {' '.join(DEFAULT_TARGETS)})",
    )
    parser.add_argument(
        "--scenarios",
        nargs="+",
        default=SCENARIO_NAMES,
        choices=SCENARIO_NAMES,
        metavar="NAME",
        help=f"subset of: {' '.join(SCENARIO_NAMES)}",
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=int, default=6, help="seconds per wrk run (default 6)")
    parser.add_argument(
        "--warmup",
        type=int,
        default=2,
        help="seconds of warm-up per target and scenario, before the first round",
    )
    parser.add_argument("--big", type=int, default=100_000, help=f"tasks of {BIG} (default 100000)")
    parser.add_argument("--small", type=int, default=50, help=f"tasks of {SMALL} (default 50)")
    parser.add_argument(
        "--delete-pool",
        type=int,
        default=200_000,
        help=f"tasks seeded for {DELETER}, one per DELETE request (default 200000)",
    )
    parser.add_argument(
        "--deep-pages",
        type=int,
        default=100,
        help="`next` links followed at page_size=200 to reach list_deep's page",
    )
    parser.add_argument(
        "--chart",
        default="docs/bench.png",
        help="PNG path, relative to the repository root; '' for none",
    )
    parser.add_argument(
        "--two-instances",
        action="store_true",
        help="also run the first target twice on one database (scale-out check)",
    )
    parser.add_argument("--port-base", type=int, default=18100)
    parser.add_argument(
        "--pg",
        default="postgresql://root@127.0.0.1:5432",
        help="PostgreSQL server URL without a database name",
    )
    parser.add_argument(
        "--ready-timeout",
        type=float,
        default=180.0,
        help="seconds to wait for each server's /healthz",
    )
    return parser.parse_args()


def make_targets(dirs: list[str], port_base: int, pg: str, work: Path) -> list[Target]:
    """Resolve target directories and give each a unique name, port and database."""
    targets: list[Target] = []
    for index, raw in enumerate(dirs):
        directory = (REPO_ROOT / raw).resolve()
        if not os.access(directory / "start.sh", os.X_OK):
            raise SystemExit(f"{directory} has no executable start.sh")
        name = "django" if directory == REPO_ROOT else directory.name
        if any(t.name == name for t in targets):
            name = f"{name}_{index}"
        db = "bench_" + "".join(c if c.isalnum() else "_" for c in name.lower())
        server = Server(name, directory, port_base + index, f"{pg}/{db}", work / f"{name}.log")
        targets.append(Target(name, server, db))
    return targets


def ensure_wrk(log: Progress) -> str:
    """Install wrk from Debian's packages when it is missing; return its version line."""
    if shutil.which("wrk") is None:
        log("wrk missing: apt-get update && apt-get install -y wrk")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "wrk"]):
            subprocess.run(command, check=True, env=env, stdout=sys.stderr)  # keep stdout clean
    out = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    return (out.stdout + out.stderr).splitlines()[0]


def mint_token(user: str, secret: str) -> str:
    """An HS256 bearer token for `user`, valid for an hour."""
    now = int(time.time())
    return jwt.encode({"sub": user, "iat": now, "exp": now + 3600}, secret, algorithm="HS256")


def http(
    method: str, url: str, token: str | None = None, body: dict[str, Any] | None = None
) -> tuple[int, Any]:
    """One request without proxies; returns the status and the decoded JSON body (or None)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=30) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, None


def recreate_database(admin: psycopg.Connection, db: str) -> None:
    """Drop and create an empty database."""
    admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))
    admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))


def start_server(server: Server, secret: str) -> None:
    """Run `start.sh PORT` in a new process group, output to the server's log file."""
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", server.port)) == 0:
            raise SystemExit(f"port {server.port} is already in use (choose another --port-base)")
    env = {
        **os.environ,
        "DATABASE_URL": server.database_url,
        "BETTER_AUTH_SECRET": secret,
        "DEBUG": "false",
        # The throttle runs on every request, with a limit no benchmark reaches (peers ignore
        # it). REDIS_URL passes through from the environment: unset by default, as in a
        # single-host deployment (per-worker counters); set it to measure the shared counters.
        "RATE_LIMIT": "1000000000/minute",
        # A direct connection, as in a deployment without a pooler: statements are prepared
        # (docs/neon-and-poolers.md). The peers prepare theirs too (asyncpg, psycopg).
        "DATABASE_PREPARED_STATEMENTS": "true",
    }
    with open(server.log_path, "ab") as log_file:
        server.proc = subprocess.Popen(
            [str(server.directory / "start.sh"), str(server.port)],
            cwd=server.directory,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_ready(servers: list[Server], timeout: float, log: Progress) -> None:
    """Poll each server's /healthz until it answers 200; fail when one exits or times out."""
    pending = list(servers)
    deadline = time.monotonic() + timeout
    while pending:
        for server in list(pending):
            if server.proc is not None and server.proc.poll() is not None:
                tail = server.log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{server.label} exited with {server.proc.returncode}:\n{tail}")
            try:
                ready = http("GET", server.url + "/healthz")[0] == 200
            except OSError:
                ready = False
            if ready:
                log(f"{server.label} ready on :{server.port}")
                pending.remove(server)
        if pending and time.monotonic() > deadline:
            raise RuntimeError(f"not ready after {timeout:.0f} s: {[s.label for s in pending]}")
        time.sleep(0.25)


def stop_server(server: Server) -> None:
    """Stop a server's process group: SIGTERM, then SIGKILL after 10 s."""
    proc = server.proc
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def seed(target: Target, args: argparse.Namespace) -> None:
    """Insert every seeded task in one statement, VACUUM ANALYZE, and record the task ids used."""
    users = [(SMALL, args.small), (BIG, args.big), (DELETER, args.delete_pool)]
    with psycopg.connect(target.server.database_url, autocommit=True) as conn:
        lists = has_column(conn, "list_id")
        if lists:
            insert_lists(conn)
        # created_at: one millisecond apart within a user, so that every value is distinct.
        conn.execute(
            """
            INSERT INTO tasks (id, user_id, title, details, completed, created_at, updated_at)
            SELECT gen_random_uuid(), u.user_id, 'seeded task ' || g, '', g %% 3 = 0, ts, ts
            FROM unnest(%s::text[], %s::int[]) AS u(user_id, n),
                 generate_series(1, u.n) AS g,
                 LATERAL (SELECT now() - interval '1 day' + g * interval '1 millisecond') AS t(ts)
            """,
            ([u for u, _ in users], [n for _, n in users]),
        )
        if lists:
            seed_lists(conn, target)
        else:
            target.refs["list_page"] = "/v1/tasks?page_size=50"
            target.notes["list_in_list"] = "plain list: no task lists"
            for name in ("create_in_list", "toggle_parent"):
                target.not_implemented[name] = "no task lists"
        # VACUUM as well as ANALYZE: it sets the visibility map and keeps autovacuum's insert
        # threshold from starting a vacuum of the fresh rows in the middle of a run.
        conn.execute("VACUUM (ANALYZE) tasks")
        ids = conn.execute(
            "SELECT id::text FROM tasks WHERE user_id = %s ORDER BY created_at LIMIT 3", (SMALL,)
        ).fetchall()
    target.refs.update(get_task=ids[0][0], put_task=ids[1][0], toggle_task=ids[2][0])


def has_column(conn: psycopg.Connection, column: str) -> bool:
    """Whether the target's tasks table has `column` (the peers' schemas differ from ours)."""
    return (
        conn.execute(
            "SELECT 1 FROM information_schema.columns WHERE table_name = 'tasks'"
            " AND column_name = %s",
            (column,),
        ).fetchone()
        is not None
    )


def insert_lists(conn: psycopg.Connection) -> None:
    """Every user's LISTS_PER_USER lists, the first the default. Before the tasks: a task
    inserted without a list goes into its owner's default list (migration 0007's trigger),
    which would otherwise make one of its own."""
    conn.execute(
        """
        INSERT INTO task_lists (id, user_id, title, is_default, position, created_at,
                                updated_at, version, change_seq)
        SELECT gen_random_uuid(), u, CASE WHEN n = 0 THEN 'Tasks' ELSE 'list ' || n END,
               n = 0, 'L' || to_char(n, 'FM000') || 'V', now(), now(), 1, 0
        FROM unnest(%s::text[]) AS u, generate_series(0, %s - 1) AS n
        """,
        ([SMALL, BIG, WRITER, DELETER], LISTS_PER_USER),
    )


def seed_lists(conn: psycopg.Connection, target: Target) -> None:
    """Put every user's seeded tasks into their lists (insert_lists) in turn, in created order;
    make chains of subtasks 5 levels deep among BIG's tasks, and a tree of 50 descendants
    (toggle_parent) in BIG's second list."""
    # List n of a user (in their order) holds their tasks number n, n + LISTS_PER_USER, …
    # (oldest first), in that order.
    conn.execute(
        """
        UPDATE tasks SET list_id = lists.id, position = to_char(numbered.g, 'FM000000000') || 'V'
        FROM (SELECT id, user_id, row_number() OVER (PARTITION BY user_id ORDER BY created_at, id)
              AS g FROM tasks) AS numbered
        JOIN (SELECT id, user_id, row_number() OVER (PARTITION BY user_id ORDER BY position) - 1
              AS n FROM task_lists) AS lists
          ON lists.user_id = numbered.user_id AND lists.n = numbered.g %% %s
        WHERE tasks.id = numbered.id
        """,
        (LISTS_PER_USER,),
    )
    # Chains: the task at place k of its list (k % CHAIN_EVERY in 1…4) under the one before it.
    # The chains are open, so that no completed task has an open subtask.
    conn.execute(
        """
        WITH placed AS (
            SELECT id, row_number() OVER w - 1 AS k, lag(id) OVER w AS previous
            FROM tasks WHERE user_id = %s
            WINDOW w AS (PARTITION BY list_id ORDER BY position, id))
        UPDATE tasks SET completed = FALSE,
                         parent_id = CASE WHEN placed.k %% %s = 0 THEN NULL ELSE previous END
        FROM placed WHERE tasks.id = placed.id AND placed.k %% %s < 5
        """,
        (BIG, CHAIN_EVERY, CHAIN_EVERY),
    )
    second_list = (
        "SELECT id::text FROM task_lists WHERE user_id = %s ORDER BY position LIMIT 1 OFFSET 1"
    )
    big_list = conn.execute(second_list, (BIG,)).fetchone()[0]
    writer_list = conn.execute(second_list, (WRITER,)).fetchone()[0]
    root = str(uuid.uuid4())
    rows, level = [(root, None, "0V")], [root]
    for fanout in TOGGLE_TREE_FANOUT:
        below = [
            (str(uuid.uuid4()), parent, f"{i + 1}V") for parent in level for i in range(fanout)
        ]
        rows += below
        level = [child for child, _, _ in below]
    with conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO tasks (id, user_id, title, details, completed, created_at, updated_at,"
            " list_id, parent_id, position)"
            " VALUES (%s, %s, 'toggle tree', '', FALSE, now(), now(), %s, %s, %s)",
            [(task, BIG, big_list, parent, position) for task, parent, position in rows],
        )
    conn.execute("ANALYZE task_lists")
    target.refs.update(
        list_page=f"/v1/tasks?list={big_list}&parent=none&ordering=position&page_size=50",
        writer_list=writer_list,
        toggle_parent=root,
    )


def write_delete_ids(target: Target, path: Path) -> list[str]:
    """Write the ids of the tasks still left to delete, one per line, and return them."""
    with psycopg.connect(target.server.database_url, autocommit=True) as conn:
        # A service that keeps tombstones (ours, for incremental sync) has deleted_at.
        tombstones = conn.execute(
            "SELECT 1 FROM information_schema.columns"
            " WHERE table_name = 'tasks' AND column_name = 'deleted_at'"
        ).fetchone()
        live = " AND deleted_at IS NULL" if tombstones else ""
        ids = [
            row[0]
            for row in conn.execute(
                f"SELECT id::text FROM tasks WHERE user_id = %s{live}",  # noqa: S608
                (DELETER,),
            )
        ]
    path.write_text("".join(i + "\n" for i in ids))
    return ids


def find_deep_page(target: Target, token: str, pages: int) -> None:
    """Follow `next` from the first page at page_size=200 and keep the last link reached.

    The page is then requested at the default page size (page_size is dropped from the link) so
    that list_deep compares with list_big. A server that answers a cursor with the same page again
    does not implement cursors: list_deep is then not applicable.
    """
    base = target.server.url
    status, page = http("GET", base + "/v1/tasks?page_size=200", token)
    if status in (404, 405):
        target.not_implemented["list_deep"] = f"{status} on the first page"
        return
    link = None
    for _ in range(pages):
        if status != 200 or not page.get("next") or not page["results"]:
            break
        parts = urllib.parse.urlsplit(page["next"])
        query = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query) if k != "page_size"]
        link = parts.path + "?" + urllib.parse.urlencode(query)
        first_id = page["results"][0]["id"]
        status, page = http("GET", f"{base}{parts.path}?{parts.query}", token)
        if status == 200 and page["results"] and page["results"][0]["id"] == first_id:
            target.not_implemented["list_deep"] = "cursor ignored (`next` repeats the page)"
            return
    if status != 200 or link is None:
        target.not_implemented["list_deep"] = f"no usable `next` link (last status {status})"
        return
    target.refs["deep_page"] = link


def probe(target: Target, scenario: Scenario, tokens: dict[str | None, str], work: Path) -> None:
    """Send the scenario's request once; 404 or 405 marks it not implemented by the target."""
    path = scenario.path.format(**target.refs)
    if scenario.name == "delete":
        path = path % write_delete_ids(target, work / f"{target.name}-delete-ids.txt")[0]
    status, _ = http(
        scenario.method, target.server.url + path, tokens.get(scenario.user), body(scenario, target)
    )
    if status in (404, 405) and scenario.expected not in (404, 405):
        target.not_implemented[scenario.name] = f"{status} on probe"
    elif status != scenario.expected:
        print(
            f"warning: {target.name} {scenario.name} probe answered {status}, "
            f"expected {scenario.expected}; running it anyway",
            file=sys.stderr,
        )


def body(scenario: Scenario, target: Target) -> dict[str, Any] | None:
    """The scenario's request body, its string values' placeholders filled as in paths."""
    if scenario.body is None:
        return None
    return {
        k: v.format(**target.refs) if isinstance(v, str) else v for k, v in scenario.body.items()
    }


def lua(value: Any) -> str:
    """A Lua literal for None, int, an ASCII string or a dict of those."""
    if value is None:
        return "nil"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        assert value.isascii(), value  # JSON's \\uXXXX escapes are not valid Lua
        return json.dumps(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"[{lua(k)}] = {lua(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


def write_script(
    path: Path,
    scenario: Scenario,
    target: Target,
    token: str | None,
    ids_file: Path | None,
    threads: int,
) -> Path:
    """Fill bench/scenario.lua for one target and scenario."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = None
    if scenario.body is not None:
        data = json.dumps(body(scenario, target))
        headers["Content-Type"] = "application/json"
    template = string.Template((BENCH_DIR / "scenario.lua").read_text())
    path.write_text(
        template.substitute(
            expected=lua(scenario.expected),
            path=lua(scenario.path.format(**target.refs)),
            ids_file=lua(str(ids_file) if ids_file else None),
            nthreads=lua(threads),
            method=lua(scenario.method),
            body=lua(data),
            headers=lua(headers),
        )
    )
    return path


def run_wrk(
    jobs: list[tuple[Path, str]],
    seconds: int,
    threads: int = WRK_THREADS,
    connections: int = WRK_CONNECTIONS,
) -> list[dict[str, Any]]:
    """Run one wrk per (script, url) job at the same time; return each one's parsed result."""
    procs = [
        subprocess.Popen(
            [
                "wrk",
                f"-t{threads}",
                f"-c{connections}",
                "--latency",
                f"-d{seconds}s",
                "-s",
                str(script),
                url,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for script, url in jobs
    ]
    results = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=seconds + 60)
            line = next((x for x in out.splitlines() if x.startswith("BENCH_RESULT ")), None)
            if line is None:
                raise RuntimeError(f"wrk printed no result:\n{out}\n{err}")
            raw = json.loads(line.removeprefix("BENCH_RESULT "))
            socket_errors = sum(raw["socket_errors"].values())
            results.append(
                {
                    "requests": raw["requests"],
                    "rps": raw["requests"] / (raw["duration_us"] / 1e6),
                    "p50_ms": raw["p50_us"] / 1000,
                    "p99_ms": raw["p99_us"] / 1000,
                    "errors": raw["unexpected"] + socket_errors,
                    "unexpected_statuses": raw["unexpected"],
                    "socket_errors": raw["socket_errors"],
                    "statuses": raw["statuses"],
                }
            )
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return results


def count_xacts(admin: psycopg.Connection, target: Target) -> int:
    """xact_commit + xact_rollback of the target's database, read once its stats have settled."""
    delay = target.last_load + STATS_SETTLE_S - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    admin.execute("SELECT pg_stat_clear_snapshot()")
    row = admin.execute(
        "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s", (target.db,)
    ).fetchone()
    return int(row[0])


def close_window(admin: psycopg.Connection, target: Target) -> None:
    """Credit the transactions since the last mark to the open result entry; set a new mark.

    Only one measurement runs against a target between two marks, and the other targets' runs
    in between usually give its stats the time to settle, so this rarely waits.
    """
    mark = count_xacts(admin, target)
    if target.window is not None:
        target.window["xacts"] += mark - target.xact_mark
    target.xact_mark = mark
    target.window = None


def run_rounds(
    args: argparse.Namespace,
    targets: list[Target],
    scenarios: list[Scenario],
    tokens: dict[str | None, str],
    admin: psycopg.Connection,
    work: Path,
    log: Progress,
) -> dict[str, dict[str, dict[str, Any]]]:
    """For each round, each scenario, each target in turn: (warm up,) run wrk and record it."""
    results: dict[str, dict[str, dict[str, Any]]] = {s.name: {} for s in scenarios}
    for scenario in scenarios:
        for target in targets:
            reason = target.not_implemented.get(scenario.name)
            results[scenario.name][target.name] = (
                {"status": "n/a", "reason": reason}
                if reason
                else {
                    "status": "ok",
                    "note": target.notes.get(scenario.name),
                    "rounds": [],
                    "warmup": None,
                    "xacts": 0,
                    "xact_requests": 0,
                }
            )
    for round_no in range(1, args.rounds + 1):
        for scenario in scenarios:
            for target in targets:
                entry = results[scenario.name][target.name]
                if entry["status"] != "ok":
                    continue
                close_window(admin, target)
                target.window = entry
                ids_file = (
                    work / f"{target.name}-delete-ids.txt" if scenario.name == "delete" else None
                )
                script = write_script(
                    work / f"{target.name}-{scenario.name}.lua",
                    scenario,
                    target,
                    tokens.get(scenario.user),
                    ids_file,
                    WRK_THREADS,
                )
                jobs = [(script, target.server.url)]
                if round_no == 1 and args.warmup > 0:
                    if ids_file:
                        write_delete_ids(target, ids_file)  # one query: +1 transaction, negligible
                    entry["warmup"] = run_wrk(jobs, args.warmup)[0]
                    entry["xact_requests"] += entry["warmup"]["requests"]
                    if entry["warmup"]["errors"]:
                        log(
                            f"warning: warm-up of {scenario.name} on {target.name}: "
                            f"{entry['warmup']['errors']} errors"
                        )
                if ids_file:
                    # wrk stops with requests still in flight; the server finishes them. Listing
                    # the ids left before they land would hand out ids about to be deleted (404).
                    time.sleep(IN_FLIGHT_SETTLE_S)
                    left = write_delete_ids(target, ids_file)
                    if len(left) < 5000 * args.duration:
                        log(f"warning: {target.name}: few tasks left to delete (--delete-pool)")
                run = run_wrk(jobs, args.duration)[0]
                target.last_load = time.monotonic()
                entry["rounds"].append(run)
                entry["xact_requests"] += run["requests"]
                log(
                    f"round {round_no}/{args.rounds} {scenario.name:<12} {target.name:<12} "
                    f"{run['rps']:8.0f} req/s  p50 {run['p50_ms']:6.2f} ms  "
                    f"p99 {run['p99_ms']:7.2f} ms  errors {run['errors']}"
                )
    for target in targets:
        close_window(admin, target)
    return results


def summarize(results: dict[str, dict[str, dict[str, Any]]]) -> None:
    """Add medians, xacts/req and the reference ratios to every measured entry."""
    for per_target in results.values():
        for entry in per_target.values():
            if entry["status"] != "ok":
                continue
            rounds = entry["rounds"]
            entry["rps_median"] = statistics.median(r["rps"] for r in rounds)
            entry["p50_ms"] = statistics.median(r["p50_ms"] for r in rounds)
            entry["p99_ms"] = statistics.median(r["p99_ms"] for r in rounds)
            entry["errors"] = sum(r["errors"] for r in rounds)
            entry["xacts_per_request"] = (
                entry["xacts"] / entry["xact_requests"] if entry["xact_requests"] else None
            )
        for ref in REFERENCES:
            base = per_target.get(ref, {}).get("rps_median")
            for entry in per_target.values():
                if entry["status"] == "ok":
                    entry[f"vs_{ref}"] = entry["rps_median"] / base if base else None


def gunicorn_workers(server: Server) -> dict[int, float]:
    """RSS in MiB of each worker (child) of the gunicorn master that start.sh exec'd."""

    def children(pid: int) -> list[int]:
        """Processes whose parent is `pid`."""
        found = []
        for status in Path("/proc").glob("[0-9]*/status"):
            try:
                fields = dict(
                    line.split(":\t", 1)
                    for line in status.read_text().splitlines()
                    if ":\t" in line
                )
            except OSError:
                continue
            if int(fields.get("PPid", "0").strip()) == pid:
                found.append(int(status.parent.name))
        return found

    def rss_mib(pid: int) -> float:
        """VmRSS of `pid` in MiB."""
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    assert server.proc is not None
    master, queue = None, [server.proc.pid]  # start.sh should have exec'd gunicorn; else search
    while queue and master is None:
        pid = queue.pop(0)
        if b"gunicorn" in Path(f"/proc/{pid}/cmdline").read_bytes():
            master = pid
        queue.extend(children(pid))
    return {pid: rss_mib(pid) for pid in children(master)} if master else {}


def check_two_instances(
    target: Target,
    second_port: int,
    secret: str,
    tokens: dict[str | None, str],
    args: argparse.Namespace,
    servers: list[Server],
    work: Path,
    log: Progress,
) -> dict[str, Any]:
    """Start a second instance of `target` on its database; load both; check read-your-writes."""
    second = Server(
        f"{target.name}#2",
        target.server.directory,
        second_port,
        target.server.database_url,
        work / f"{target.name}-2.log",
    )
    servers.append(second)
    start_server(second, secret)
    wait_ready([second], args.ready_timeout, log)
    urls = [target.server.url, second.url]
    load: dict[str, Any] = {}
    for scenario in (s for s in SCENARIOS if s.name in ("get", "create", "toggle")):
        if scenario.name in target.not_implemented:
            continue
        script = write_script(
            work / f"scale-{scenario.name}.lua",
            scenario,
            target,
            tokens.get(scenario.user),
            None,
            1,
        )
        runs = run_wrk(
            [(script, url) for url in urls],
            args.duration,
            threads=1,
            connections=WRK_CONNECTIONS // 2,
        )
        load[scenario.name] = runs
        log(
            f"two instances {scenario.name:<7} "
            + "  ".join(
                f":{s.port} {r['rps']:.0f} req/s, {r['errors']} errors"
                for s, r in zip((target.server, second), runs, strict=True)
            )
        )

    token, steps = tokens[WRITER], []
    status, created = http("POST", urls[0] + "/v1/tasks", token, {"title": "scale-out check"})
    steps.append(f"POST :{target.server.port}/v1/tasks -> {status}")
    ok = status == 201
    if ok:
        path = f"/v1/tasks/{created['id']}"
        status, seen = http("GET", urls[1] + path, token)
        steps.append(f"GET :{second.port}{path} -> {status}")
        ok = status == 200 and seen["title"] == "scale-out check"
        status, _ = http("POST", urls[1] + path + "/toggle", token)
        steps.append(f"POST :{second.port}{path}/toggle -> {status}")
        status, seen = http("GET", urls[0] + path, token)
        steps.append(
            f"GET :{target.server.port}{path} -> {status}, completed={seen.get('completed')}"
        )
        ok = ok and status == 200 and seen["completed"] is True
    errors = sum(r["errors"] for runs in load.values() for r in runs)
    log(
        f"two instances: {errors} errors under load; cross-instance read "
        f"{'passed' if ok else 'FAILED'}"
    )
    return {
        "target": target.name,
        "ports": [target.server.port, second.port],
        "load": load,
        "errors": errors,
        "consistency_ok": ok,
        "consistency_steps": steps,
    }


def markdown(
    meta: dict[str, Any],
    results: dict[str, dict[str, dict[str, Any]]],
    rss: dict[str, dict[int, float]],
    scale: dict[str, Any] | None,
) -> str:
    """The report printed to stdout."""
    lines = [
        f"## Tasks API benchmark, {meta['started_at']}",
        "",
        f"`wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} --latency -d{meta['duration']}s`, "
        f"rounds: {meta['rounds']}, interleaved; {meta['warmup']} s warm-up per target and "
        f"scenario; {meta['big']:,} tasks for the big user; {meta['cpus']} CPUs shared by wrk, "
        f"the servers and PostgreSQL; load average {meta['loadavg_before']} before, "
        f"{meta['loadavg_after']} after.",
        "req/s: median of the rounds (each round listed); p50/p99: medians of the rounds' wrk "
        "percentiles; errors: unexpected statuses + socket errors over all rounds; xacts/req: "
        "PostgreSQL transactions (xact_commit + xact_rollback of the target's database) per "
        "request, warm-up included; vs: ratio of median req/s.",
        "",
        "| scenario | target | req/s | per round | p50 ms | p99 ms | errors | xacts/req | "
        + " | ".join(f"vs {r}" for r in REFERENCES)
        + " |",
        "|---|---|---:|---|---:|---:|---:|---:|" + "---:|" * len(REFERENCES),
    ]
    for scenario, per_target in results.items():
        for name, e in per_target.items():
            if e["status"] != "ok":
                lines.append(
                    f"| {scenario} | {name} | n/a | {e['reason']} |  |  |  |  |"
                    + "  |" * len(REFERENCES)
                )
                continue
            ratios = " | ".join(
                f"{e[f'vs_{r}']:.2f}x" if e.get(f"vs_{r}") else "—" for r in REFERENCES
            )
            xacts = f"{e['xacts_per_request']:.2f}" if e["xacts_per_request"] is not None else "—"
            label = f"{name} ({e['note']})" if e.get("note") else name
            lines.append(
                f"| {scenario} | {label} | {e['rps_median']:.0f} | "
                f"{', '.join(format(r['rps'], '.0f') for r in e['rounds'])} | {e['p50_ms']:.2f} | "
                f"{e['p99_ms']:.2f} | {e['errors']} | {xacts} | {ratios} |"
            )
    lines += ["", "| target | gunicorn workers: RSS after the run (MiB) |", "|---|---|"]
    lines += [
        f"| {name} | {', '.join(f'{v:.1f}' for v in workers.values()) or 'not found'} |"
        for name, workers in rss.items()
    ]
    if scale:
        lines += [
            "",
            f"### Scale-out: {scale['target']} twice on one database "
            f"(ports {scale['ports'][0]} and {scale['ports'][1]})",
            "",
            "| scenario | instance 1 req/s | instance 2 req/s | total req/s | errors |",
            "|---|---:|---:|---:|---:|",
        ]
        for scenario, (one, two) in scale["load"].items():
            lines.append(
                f"| {scenario} | {one['rps']:.0f} | {two['rps']:.0f} | "
                f"{one['rps'] + two['rps']:.0f} | {one['errors'] + two['errors']} |"
            )
        lines += [
            "",
            f"Created through instance 1, read at once through instance 2: "
            f"**{'pass' if scale['consistency_ok'] else 'FAIL'}** "
            f"({'; '.join(scale['consistency_steps'])})",
        ]
    return "\n".join(lines)


def draw_chart(
    path: Path, meta: dict[str, Any], results: dict[str, dict[str, dict[str, Any]]]
) -> None:
    """Two panels, grouped bars per scenario and target: median req/s and p99 latency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = list(results)
    names = list(next(iter(results.values())))
    width = 0.8 / len(names)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(13, 9), sharex=True)
    for i, name in enumerate(names):
        xs = [j + (i - (len(names) - 1) / 2) * width for j in range(len(scenarios))]
        for axis, key, fmt in ((top, "rps_median", "{:.0f}"), (bottom, "p99_ms", "{:.1f}")):
            values = [results[s][name].get(key, 0) for s in scenarios]
            bars = axis.bar(xs, values, width, label=name)
            labels = [
                fmt.format(v) if results[s][name]["status"] == "ok" else "n/a"
                for s, v in zip(scenarios, values, strict=True)
            ]
            axis.bar_label(bars, labels, rotation=90, padding=2, fontsize=7)
    top.set_ylabel("requests per second (median)")
    top.set_title(
        f"Tasks API benchmark {meta['started_at']}: wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS}, "
        f"{meta['duration']} s x {meta['rounds']} rounds, {meta['cpus']} CPUs shared "
        "by client, servers and PostgreSQL",
        fontsize=10,
    )
    top.legend()
    top.margins(y=0.2)
    bottom.set_yscale("log")
    bottom.set_ylabel("p99 latency, ms (log scale)")
    bottom.margins(y=0.3)
    bottom.set_xticks(range(len(scenarios)), scenarios)
    for axis in (top, bottom):
        axis.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    """Start the targets, seed them, run the rounds, report, and stop everything."""
    args = parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    log = Progress()
    started = datetime.now(UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    work = BENCH_DIR / "results" / stamp  # scripts, id lists and server logs of this run
    targets = make_targets(args.targets, args.port_base, args.pg, work)
    chart = (REPO_ROOT / args.chart) if args.chart else None
    if chart:
        import matplotlib  # noqa: F401  (fail now rather than after the run)
    wrk_version = ensure_wrk(log)
    work.mkdir(parents=True)
    scenarios = [s for s in SCENARIOS if s.name in args.scenarios]
    secret = secrets.token_urlsafe(32)
    tokens: dict[str | None, str] = {
        u: mint_token(u, secret) for u in (SMALL, BIG, WRITER, DELETER)
    }
    meta: dict[str, Any] = {
        "started_at": started.strftime("%Y-%m-%d %H:%M UTC"),
        "duration": args.duration,
        "rounds": args.rounds,
        "warmup": args.warmup,
        "big": args.big,
        "small": args.small,
        "cpus": os.cpu_count(),
        "loadavg_before": round(os.getloadavg()[0], 2),
        "wrk": wrk_version,
        "python": platform.python_version(),
        "command": sys.argv,
        "targets": {
            t.name: {"dir": str(t.server.directory), "port": t.server.port, "db": t.db}
            for t in targets
        },
    }
    servers = [t.server for t in targets]
    scale = None
    try:
        with psycopg.connect(f"{args.pg}/postgres", autocommit=True) as admin:
            meta["postgres"] = admin.execute("SHOW server_version").fetchone()[0]
            for target in targets:
                recreate_database(admin, target.db)
                start_server(target.server, secret)
                log(
                    f"started {target.name} ({target.server.directory}) on :{target.server.port}, "
                    f"database {target.db}"
                )
            wait_ready(servers, args.ready_timeout, log)
            for target in targets:
                seed(target, args)
                log(f"seeded {target.name}: {args.small} + {args.big} + {args.delete_pool} tasks")
                if "list_deep" in args.scenarios:
                    find_deep_page(target, tokens[BIG], args.deep_pages)
                for scenario in scenarios:
                    if scenario.name not in target.not_implemented:
                        probe(target, scenario, tokens, work)
                target.last_load = time.monotonic()
                skipped = ", ".join(f"{k} ({v})" for k, v in target.not_implemented.items())
                log(f"probed {target.name}: not implemented: {skipped or 'none'}")
            # Write the seeded pages out now: otherwise the checkpoint that the seeding's WAL
            # triggers lands in the middle of some target's round (one create round at half speed).
            admin.execute("CHECKPOINT")
            results = run_rounds(args, targets, scenarios, tokens, admin, work, log)
        rss = {t.name: gunicorn_workers(t.server) for t in targets}
        if args.two_instances:
            scale = check_two_instances(
                targets[0], args.port_base + len(targets), secret, tokens, args, servers, work, log
            )
    finally:
        for server in servers:
            stop_server(server)
        log("servers stopped")
    summarize(results)
    meta["loadavg_after"] = round(os.getloadavg()[0], 2)
    meta["runtime_s"] = round(time.monotonic() - log.start, 1)
    print(markdown(meta, results, rss, scale))
    out = BENCH_DIR / "results" / f"{stamp}.json"
    out.write_text(
        json.dumps(
            {"meta": meta, "results": results, "worker_rss_mib": rss, "two_instances": scale},
            indent=2,
        )
        + "\n"
    )
    log(f"wrote {out.relative_to(REPO_ROOT)}")
    if chart:
        draw_chart(chart, meta, results)
        log(f"wrote {chart}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # the servers are already stopped by main()'s finally
        sys.exit(130)
