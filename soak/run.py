"""Soak the Tasks API: a mixed multi-user workload against the production server, with a worker
killed mid-run, then an audit of what was stored.

Usage (from the repository root; PostgreSQL only):

    DATABASE_URL=postgres://root@127.0.0.1:5432/test .venv/bin/python soak/run.py \
        [--duration S] [--clients N] [--users U] [--kills K] [--seed SEED]

The service runs the production way (`tasks.tests.live_server.LiveServer`: migrate, then gunicorn
with `gunicorn.conf.py`) on a fresh database, with 3 workers, DEBUG off, a random signing
secret and the per-user rate limit off. N client threads, one new connection per request, work
on the tasks of U users: create, list (following `next`), get, PUT, PATCH, toggle, delete, and
now and then a request on another user's task, which must be a 404. Meanwhile K gunicorn
workers are SIGKILLed, one at a time; the master must replace each.

A connection error or 5xx ending within KILL_WINDOW_S of a kill is counted as in flight on the
killed worker; any other unexpected answer is a real failure. Afterwards every user's tasks are
listed through the API and the `tasks` table is read directly, and the run fails if a write
acknowledged by the service is missing or stale (lost_writes), a task deleted with a 204 is back
(resurrected), or a user ever received another user's task (leaks). The last line is
`soak: requests=… ok=… errors_by_status={…} killed_inflight=… other_failures=… lost_writes=…
resurrected=… leaks=… duration=…s`. The exit status is 1 when other_failures, lost_writes,
resurrected or leaks is non-zero, 2 when DATABASE_URL is not PostgreSQL. The server is stopped
and the database dropped on every exit, Ctrl-C and SIGTERM included.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import secrets
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlencode, urlsplit

import environ
import jwt
import psycopg

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
from tasks.tests.live_server import LiveServer, ServerFailed, fresh_database_url  # noqa: E402

WORKERS = 3
REQUEST_TIMEOUT_S = 10.0
KILL_WINDOW_S = 2.0  # a failure this long after a kill is blamed on the kill
RESPAWN_TIMEOUT_S = 15.0
FOREIGN_PROBE_RATE = 0.05
FOLLOW_NEXT_RATE = 0.5
MAX_LIST_PAGES = 5
OPERATIONS = {
    "create": 30,
    "list": 15,
    "get": 15,
    "put": 10,
    "patch": 10,
    "toggle": 10,
    "delete": 10,
}
STATE_FIELDS = ("title", "details", "completed", "updated_at")
# Requests on another user's task: (method, path suffix, body); each must be a 404.
FOREIGN_PROBES = [
    ("GET", "", None),
    ("PUT", "", {"title": "hijacked"}),
    ("PATCH", "", {"completed": True}),
    ("POST", "/toggle", None),
    ("DELETE", "", None),
]
# Server log lines shown when something failed: errors, kills, 5xx access lines.
LOG_ALERTS = re.compile(r"Traceback|Error|Exception|CRITICAL|SIGKILL|\"status\": ?5\d\d")

State = dict[str, Any]
LEAK = "leak"  # what a check returns for another user's task: counted as a leak, not a failure


@dataclass
class Reply:
    """What one request got: `status` is None when no HTTP answer came (`text` says why)."""

    request_id: str  # sent as X-Request-ID, which the server's access log records
    status: int | None
    data: Any
    text: str
    started: float
    ended: float
    retry_after: str | None = None  # the Retry-After header, if any


@dataclass
class Failure:
    """A request that did not get the answer it should have."""

    request: str
    sent: Any
    expected: int
    reply: Reply
    problem: str | None  # what was wrong with an answer of the expected status

    @property
    def key(self) -> str:
        """Its errors_by_status key: the status, `conn` without one, `bad_body`."""
        if self.reply.status is None:
            return "conn"
        return "bad_body" if self.reply.status == self.expected else str(self.reply.status)


@dataclass
class Kill:
    """One SIGKILLed worker: when (monotonic), which, and its replacement."""

    at: float
    pid: int
    replacement: int | None = None
    respawned_after: float | None = None


@dataclass
class Ledger:
    """Everything the clients observed, shared between their threads (guarded by `lock`)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: Counter[str] = field(default_factory=Counter)  # per operation
    ok: Counter[str] = field(default_factory=Counter)
    failures: list[Failure] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # failures that are not one request's
    owners: dict[str, str] = field(default_factory=dict)  # every id created with a 201 -> user
    created: list[tuple[str, str]] = field(default_factory=list)  # (id, user), for random picks
    states: dict[str, State] = field(default_factory=dict)  # last acknowledged STATE_FIELDS
    deleted: set[str] = field(default_factory=set)  # DELETE answered 204
    maybe_deleted: set[str] = field(default_factory=set)  # DELETE without a clear answer
    uncertain: set[str] = field(default_factory=set)  # a write without a clear answer
    seen: dict[str, set[str]] = field(default_factory=dict)  # user -> ids returned to them
    leaks: dict[tuple[str, str], str] = field(default_factory=dict)  # (user, id) -> what
    foreign_probes: Counter[str] = field(default_factory=Counter)  # status -> count


def send(port: int, method: str, path: str, token: str, body: Any, request_id: str) -> Reply:
    """One request on a new connection (`Connection: close`); never raises for network errors."""
    headers = {
        "Authorization": f"Bearer {token}",
        "Connection": "close",
        "X-Request-ID": request_id,
    }
    payload = None
    if body is not None:
        payload = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT_S)
    try:
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        raw = response.read()
    except (OSError, http.client.HTTPException) as exc:
        error = f"{type(exc).__name__}: {exc}"
        return Reply(request_id, None, None, error, started, time.monotonic())
    finally:
        connection.close()
    text = raw.decode(errors="replace")
    try:
        data = json.loads(raw) if raw else None
    except ValueError:
        data = None
    return Reply(
        request_id,
        response.status,
        data,
        text,
        started,
        time.monotonic(),
        response.getheader("Retry-After"),
    )


def check_task(data: Any, expected: State) -> str | None:
    """Why `data` is not a task with the `expected` fields, or None."""
    if not isinstance(data, dict) or not isinstance(data.get("id"), str):
        return "the body is not a task"
    differ = {name: data.get(name) for name, value in expected.items() if data.get(name) != value}
    return f"expected {expected}, got {differ}" if differ else None


def parse_time(value: str) -> datetime:
    """An RFC 3339 timestamp from the API."""
    return datetime.fromisoformat(value)


def state_of(task: dict) -> State:
    """The fields a write must leave exactly as acknowledged."""
    return {name: task[name] for name in STATE_FIELDS}


class Client:
    """One client thread's workload: its user's tasks, and now and then another user's."""

    def __init__(
        self, name: str, user: str, token: str, port: int, ledger: Ledger, seed: int
    ) -> None:
        self.name = name
        self.user = user
        self.token = token
        self.port = port
        self.ledger = ledger
        self.rng = random.Random(seed)  # noqa: S311 -- a workload mix, not a secret
        self.live: list[str] = []  # tasks this client created and may still change
        self.count = 0  # tasks created
        self.sent = 0  # requests sent

    def run(self, deadline: float, stop: threading.Event) -> None:
        """Run random operations until `deadline` (monotonic) or `stop`."""
        try:
            while not stop.is_set() and time.monotonic() < deadline:
                if self.rng.random() < FOREIGN_PROBE_RATE:
                    self.probe_foreign()
                    continue
                operation = self.rng.choices(list(OPERATIONS), list(OPERATIONS.values()))[0]
                if operation not in ("create", "list") and not self.live:
                    operation = "create"
                getattr(self, f"do_{operation}")()
        except Exception:
            with self.ledger.lock:
                self.ledger.problems.append(f"{self.name} crashed:\n{traceback.format_exc()}")

    def request(
        self,
        operation: str,
        method: str,
        path: str,
        body: Any = None,
        expected: int = 200,
        check: Callable[[Reply], str | None] | None = None,
    ) -> Reply | None:
        """Send, check and record one request; the reply if it was as expected, else None.

        `check(reply)` names what is wrong with an answer of the expected status (or LEAK).
        """
        reply = self.send(method, path, body)
        problem = check(reply) if check and reply.status == expected else None
        ok = reply.status == expected and problem is None
        with self.ledger.lock:
            self.ledger.requests[operation] += 1
            if ok:
                self.ledger.ok[operation] += 1
            elif problem != LEAK:
                failure = Failure(f"{method} {path}", body, expected, reply, problem)
                self.ledger.failures.append(failure)
        return reply if ok else None

    def send(self, method: str, path: str, body: Any) -> Reply:
        """Send one request as this client, with a request id of its own."""
        self.sent += 1
        return send(self.port, method, path, self.token, body, f"soak.{self.name}.{self.sent}")

    def receive(self, task: Any) -> str | None:
        """Note a task returned to this user: LEAK if it is not theirs, else None."""
        if not isinstance(task, dict):
            return None
        task_id = str(task.get("id"))
        with self.ledger.lock:
            self.ledger.seen.setdefault(self.user, set()).add(task_id)
            owner = self.ledger.owners.get(task_id, self.user)
            if task.get("user_id") == self.user and owner == self.user:
                return None
            self.ledger.leaks[(self.user, task_id)] = (
                f"{self.user} received task {task_id} with user_id={task.get('user_id')!r}, "
                f"created by {owner!r}"
            )
        return LEAK

    def do_create(self) -> None:
        """POST a task (sometimes with details and `completed`): 201 with exactly that."""
        self.count += 1
        sent: State = {"title": f"{self.name} task {self.count}"}
        if self.rng.random() < 0.5:
            sent["details"] = "details " * self.rng.randint(1, 40)
        if self.rng.random() < 0.3:
            sent["completed"] = self.rng.random() < 0.5
        expected = {"user_id": self.user, "details": "", "completed": False, **sent}

        def check(reply: Reply) -> str | None:
            return self.receive(reply.data) or check_task(reply.data, expected)

        reply = self.request("create", "POST", "/v1/tasks", sent, 201, check)
        if reply is not None:
            task_id = reply.data["id"]
            with self.ledger.lock:
                self.ledger.owners[task_id] = self.user
                self.ledger.created.append((task_id, self.user))
                self.ledger.states[task_id] = state_of(reply.data)
            self.live.append(task_id)

    def do_list(self) -> None:
        """GET a page (random size, sometimes filtered), sometimes following `next`."""
        query: dict[str, str] = {}
        if self.rng.random() < 0.7:
            query["page_size"] = str(self.rng.choice([5, 20, 50, 200]))
        if self.rng.random() < 0.2:
            query["completed"] = self.rng.choice(["true", "false"])
        path = "/v1/tasks" + (f"?{urlencode(query)}" if query else "")
        visited: set[str] = set()

        def check(reply: Reply) -> str | None:
            page = reply.data
            if not isinstance(page, dict) or not isinstance(page.get("results"), list):
                return "the body is not a page"
            for task in page["results"]:
                if self.receive(task):
                    return LEAK
                if task["id"] in visited:
                    return f"task {task['id']} on two pages of one traversal"
                visited.add(task["id"])
                if "completed" in query and task["completed"] != (query["completed"] == "true"):
                    return f"task {task['id']} does not match completed={query['completed']}"
            return None

        for _ in range(MAX_LIST_PAGES):
            reply = self.request("list", "GET", path, check=check)
            if reply is None or not reply.data["next"] or self.rng.random() > FOLLOW_NEXT_RATE:
                return
            next_url = urlsplit(reply.data["next"])
            path = f"{next_url.path}?{next_url.query}"

    def do_get(self) -> None:
        """GET one of this client's tasks: exactly as last acknowledged."""
        task_id = self.rng.choice(self.live)
        with self.ledger.lock:
            expected = dict(self.ledger.states[task_id])

        def check(reply: Reply) -> str | None:
            return self.receive(reply.data) or check_task(reply.data, expected)

        self.request("get", "GET", f"/v1/tasks/{task_id}", check=check)

    def do_put(self) -> None:
        """PUT a new title, sometimes details and `completed` (omitted ones must stay)."""
        sent: State = {"title": f"{self.name} put {self.rng.randint(0, 10**6)}"}
        if self.rng.random() < 0.5:
            sent["details"] = self.rng.choice(["", "replaced details"])
        if self.rng.random() < 0.5:
            sent["completed"] = self.rng.random() < 0.5
        self.write("put", "PUT", "", sent, sent)

    def do_patch(self) -> None:
        """PATCH a random non-empty subset of the writable fields."""
        choices: State = {
            "title": f"{self.name} patch {self.rng.randint(0, 10**6)}",
            "details": self.rng.choice(["", "patched details"]),
            "completed": self.rng.random() < 0.5,
        }
        names = self.rng.sample(list(choices), self.rng.randint(1, len(choices)))
        sent = {name: choices[name] for name in names}
        self.write("patch", "PATCH", "", sent, sent)

    def do_toggle(self) -> None:
        """Flip `completed`."""
        self.write("toggle", "POST", "/toggle", None, None)

    def write(
        self, operation: str, method: str, suffix: str, sent: State | None, changes: State | None
    ) -> None:
        """Change one of this client's tasks; `changes` None means flip `completed`."""
        task_id = self.rng.choice(self.live)
        with self.ledger.lock:
            before = self.ledger.states[task_id]
        changes = changes if changes is not None else {"completed": not before["completed"]}
        expected = {name: before[name] for name in STATE_FIELDS[:3]} | changes

        def check(reply: Reply) -> str | None:
            problem = self.receive(reply.data) or check_task(reply.data, expected)
            if problem is None and not parse_time(reply.data["updated_at"]) > parse_time(
                before["updated_at"]
            ):
                problem = f"updated_at did not advance past {before['updated_at']}"
            return problem

        reply = self.request(operation, method, f"/v1/tasks/{task_id}{suffix}", sent, 200, check)
        with self.ledger.lock:
            if reply is not None:
                self.ledger.states[task_id] = state_of(reply.data)
            else:
                self.write_failed(task_id)

    def write_failed(self, task_id: str) -> None:
        """A write got no acceptable answer: its task's state is no longer certain, and this
        client leaves it alone (called with the ledger's lock held)."""
        self.ledger.uncertain.add(task_id)
        self.live.remove(task_id)

    def do_delete(self) -> None:
        """DELETE one of this client's tasks: 204, empty body."""
        task_id = self.rng.choice(self.live)
        self.live.remove(task_id)
        reply = self.request(
            "delete",
            "DELETE",
            f"/v1/tasks/{task_id}",
            expected=204,
            check=lambda reply: f"a 204 with a body: {reply.text[:80]!r}" if reply.text else None,
        )
        with self.ledger.lock:
            (self.ledger.deleted if reply else self.ledger.maybe_deleted).add(task_id)

    def probe_foreign(self) -> None:
        """A request on another user's task: must be a 404, whatever the method."""
        with self.ledger.lock:
            if not self.ledger.created:
                return
            candidates = [self.rng.choice(self.ledger.created) for _ in range(5)]
        foreign = [task_id for task_id, user in candidates if user != self.user]
        if not foreign:
            return
        method, suffix, body = self.rng.choice(FOREIGN_PROBES)
        path = f"/v1/tasks/{foreign[0]}{suffix}"
        reply = self.send(method, path, body)
        with self.ledger.lock:
            self.ledger.requests["foreign"] += 1
            self.ledger.foreign_probes[str(reply.status or "conn")] += 1
            if reply.status == 404:
                self.ledger.ok["foreign"] += 1
            elif reply.status is not None and reply.status < 300:
                self.ledger.leaks[(self.user, foreign[0])] = (
                    f"{method} {path} by {self.user} got {reply.status}: {reply.text[:200]}"
                )
            else:
                self.ledger.failures.append(Failure(f"{method} {path}", body, 404, reply, None))

    def final_listing(self) -> set[str]:
        """Every task the API lists for this user now (all pages), as failures/leaks are noted."""
        listed: set[str] = set()

        def check(reply: Reply) -> str | None:
            if not isinstance(reply.data, dict) or not isinstance(reply.data.get("results"), list):
                return "the body is not a page"
            for task in reply.data["results"]:
                listed.add(str(task.get("id")))
                if self.receive(task):
                    return LEAK
            return None

        path: str | None = "/v1/tasks?page_size=200"
        while path:
            reply = self.request("verify", "GET", path, check=check)
            next_url = urlsplit(reply.data["next"]) if reply and reply.data["next"] else None
            path = f"{next_url.path}?{next_url.query}" if next_url else None
        return listed


def worker_pids(master: int) -> set[int]:
    """The pids of the gunicorn master's children, from /proc."""
    pids = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            after_name = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # exited while we looked
        if int(after_name[1]) == master:
            pids.add(int(stat.parent.name))
    return pids


def kill_worker(master: int, rng: random.Random) -> Kill:
    """SIGKILL one worker and wait until the master has WORKERS workers again."""
    before = worker_pids(master)
    victim = rng.choice(sorted(before))
    kill = Kill(at=time.monotonic(), pid=victim)
    os.kill(victim, signal.SIGKILL)
    while time.monotonic() < kill.at + RESPAWN_TIMEOUT_S:
        now = worker_pids(master)
        new = now - before
        if victim not in now and len(now) == WORKERS and new:
            kill.replacement = new.pop()
            kill.respawned_after = time.monotonic() - kill.at
            break
        time.sleep(0.02)
    return kill


def audit(
    ledger: Ledger, clients: dict[str, Client], database_url: str
) -> dict[str, dict[str, str]]:
    """Compare what the service acknowledged with the API's listings and the `tasks` table.

    Returns the tasks that are `missing` (created with a 201, never deleted, not stored or not
    listed), `stale` (last acknowledged state differs from the row), `resurrected` (deleted with
    a 204, stored or listed) and `orphans` (stored, but no 201 announced them: creates whose
    answer was lost in a kill), each task id with what is stored for it.
    """
    listed = {user: client.final_listing() for user, client in clients.items()}
    with psycopg.connect(database_url) as connection:
        rows = connection.execute(
            # Deleted tasks stay as tombstones (for incremental sync): they are not stored tasks.
            "SELECT id::text, user_id, title, details, completed, updated_at FROM tasks"
            " WHERE deleted_at IS NULL"
        ).fetchall()
    stored = {row[0]: row[1:] for row in rows}

    def row(task_id: str) -> str:
        if task_id not in stored:
            return "no row"
        user, title, details, completed, updated_at = stored[task_id]
        listed_for = [name for name, ids in listed.items() if task_id in ids]
        return (
            f"row user_id={user} title={title!r} details={details[:30]!r} "
            f"completed={completed} updated_at={updated_at.isoformat()}, listed for {listed_for}"
        )

    with ledger.lock:
        for task_id, (user, *_) in stored.items():
            owner = ledger.owners.get(task_id)
            if owner is not None and owner != user:
                ledger.leaks[(owner, task_id)] = f"task {task_id} of {owner} is stored for {user}"
        for user, ids in ledger.seen.items():
            for task_id in ids:
                owner = ledger.owners.get(task_id) or stored.get(task_id, (user,))[0]
                if owner != user:
                    ledger.leaks.setdefault(
                        (user, task_id), f"{user} received task {task_id} of {owner}"
                    )
        unknown = ledger.deleted | ledger.maybe_deleted
        missing = {
            task_id: row(task_id)
            for task_id, owner in ledger.owners.items()
            if task_id not in unknown and (task_id not in stored or task_id not in listed[owner])
        }
        stale = {}
        for task_id, state in ledger.states.items():
            if task_id in stored and task_id not in unknown | ledger.uncertain:
                acknowledged = (
                    *(state[name] for name in STATE_FIELDS[:3]),
                    parse_time(state["updated_at"]),
                )
                if stored[task_id][1:] != acknowledged:
                    stale[task_id] = row(task_id)
        everywhere = set(stored).union(*listed.values())
        resurrected = {task_id: row(task_id) for task_id in ledger.deleted & everywhere}
        orphans = {task_id: row(task_id) for task_id in set(stored) - set(ledger.owners)}
    return {"missing": missing, "stale": stale, "resurrected": resurrected, "orphans": orphans}


def soak(server: LiveServer, database_url: str, args: argparse.Namespace) -> int:
    """Run the workload and the kills, audit, print the figures; the exit status."""
    secret = server.env["BETTER_AUTH_SECRET"]
    rng = random.Random(args.seed)  # noqa: S311 -- a workload mix, not a secret
    now = int(time.time())
    users = [f"soak-user-{n}" for n in range(args.users)]
    tokens = {
        user: jwt.encode(
            {"sub": user, "iat": now, "exp": now + int(args.duration) + 3600}, secret, "HS256"
        )
        for user in users
    }
    ledger = Ledger()
    owners = [users[n % len(users)] for n in range(args.clients)]
    clients = [
        Client(f"c{n}", user, tokens[user], server.port, ledger, rng.getrandbits(32))
        for n, user in enumerate(owners)
    ]
    master = server.process.pid
    stop = threading.Event()
    started = time.monotonic()
    deadline = started + args.duration
    threads = [
        threading.Thread(target=client.run, args=(deadline, stop), daemon=True)
        for client in clients
    ]
    kills: list[Kill] = []
    try:
        for thread in threads:
            thread.start()
        for n in range(args.kills):
            time.sleep(
                max(0.0, started + args.duration * (n + 1) / (args.kills + 1) - time.monotonic())
            )
            kills.append(kill_worker(master, rng))
        for thread in threads:
            thread.join()
    finally:
        stop.set()
    duration = time.monotonic() - started
    auditors = {
        user: Client(f"audit-{user}", user, tokens[user], server.port, ledger, 0) for user in users
    }
    found = audit(ledger, auditors, database_url)
    database = urlsplit(database_url).path.lstrip("/")
    return report(ledger, kills, found, duration, started, server.output(), database, args)


def report(
    ledger: Ledger,
    kills: list[Kill],
    found: dict[str, dict[str, str]],
    duration: float,
    started: float,
    server_log: str,
    database: str,
    args: argparse.Namespace,
) -> int:
    """Print the table, the details of anything wrong, and the summary line; the exit status."""
    in_flight = [
        failure
        for failure in ledger.failures
        if failure.problem is None
        and (failure.reply.status is None or failure.reply.status >= 500)
        and any(kill.at <= failure.reply.ended <= kill.at + KILL_WINDOW_S for kill in kills)
    ]
    real = [failure for failure in ledger.failures if failure not in in_flight]
    problems = list(ledger.problems) + [
        f"worker {kill.pid} killed at +{kill.at - started:.1f} s was not replaced within "
        f"{RESPAWN_TIMEOUT_S:.0f} s"
        for kill in kills
        if kill.replacement is None
    ]
    other_failures = len(real) + len(problems)
    lost = len(found["missing"]) + len(found["stale"])
    requests, ok = sum(ledger.requests.values()), sum(ledger.ok.values())
    errors = dict(sorted(Counter(failure.key for failure in ledger.failures).items()))

    print(
        f"soak: {args.clients} clients, {args.users} users, {WORKERS} workers, seed {args.seed}, "
        f"database {database}"
    )
    print(f"{'operation':<10} {'requests':>9} {'ok':>9}")
    for operation in [*OPERATIONS, "foreign", "verify"]:
        print(f"{operation:<10} {ledger.requests[operation]:>9} {ledger.ok[operation]:>9}")
    for kill in kills:
        replaced = (
            f"replaced by pid {kill.replacement} after {kill.respawned_after:.2f} s"
            if kill.replacement
            else "NOT replaced"
        )
        print(f"kill       +{kill.at - started:.1f} s: worker pid {kill.pid} SIGKILL, {replaced}")
    print(f"foreign    {sum(ledger.foreign_probes.values())} probes: {dict(ledger.foreign_probes)}")
    print(
        f"tasks      created {len(ledger.owners)}, deleted {len(ledger.deleted)}, "
        f"unknown outcome {len(ledger.uncertain | ledger.maybe_deleted)}, "
        f"orphans {len(found['orphans'])} (creates committed but unanswered)"
    )
    print(
        f"audit      missing {len(found['missing'])}, stale {len(found['stale'])}, "
        f"resurrected {len(found['resurrected'])}, leaks {len(ledger.leaks)}"
    )
    log = server_log.splitlines()
    for failure in real[:10]:
        reply = failure.reply
        print(
            f"FAILURE +{reply.started - started:.2f}..{reply.ended - started:.2f} s "
            f"{failure.request} sent={json.dumps(failure.sent)} expected {failure.expected} got "
            f"{reply.status or 'no answer'}: {failure.problem or reply.text[:300]}"
        )
        for line in log:
            if f'"{reply.request_id}"' in line:
                print(f"  server: {line}")
    for problem in problems:
        print(f"FAILURE {problem}")
    for name in ("missing", "stale", "resurrected"):
        for task_id, stored in list(found[name].items())[:10]:
            print(f"{name.upper()} {task_id}: acknowledged {ledger.states.get(task_id)}; {stored}")
            for line in [line for line in log if task_id in line][-5:]:
                print(f"  server: {line}")
    for leak in list(ledger.leaks.values())[:10]:
        print(f"LEAK {leak}")
    if real or lost or found["resurrected"] or ledger.leaks:
        alerts = [line for line in log if LOG_ALERTS.search(line)]
        print("--- server log: errors, kills and 5xx ---", *alerts[-20:], sep="\n")
    print(
        f"soak: requests={requests} ok={ok} "
        f"errors_by_status={json.dumps(errors, separators=(',', ':'))} "
        f"killed_inflight={len(in_flight)} other_failures={other_failures} lost_writes={lost} "
        f"resurrected={len(found['resurrected'])} leaks={len(ledger.leaks)} "
        f"duration={duration:.1f}s"
    )
    return 1 if other_failures or lost or found["resurrected"] or ledger.leaks else 0


def interrupted(signum: int, frame: object) -> NoReturn:
    """SIGTERM as Ctrl-C: unwind, so that the server is stopped and the database dropped."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, start the service on a fresh database, soak it; the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--clients", type=int, default=12, help="concurrent client threads")
    parser.add_argument("--users", type=int, default=6, help="distinct users (token subjects)")
    parser.add_argument("--kills", type=int, default=1, help="workers to SIGKILL mid-run")
    parser.add_argument("--seed", type=int, default=secrets.randbits(32), help="workload seed")
    args = parser.parse_args(argv)
    database_url = os.environ.get("DATABASE_URL", "")
    if not database_url or environ.Env.db_url_config(database_url)["ENGINE"] != (
        "django.db.backends.postgresql"
    ):
        print("soak: DATABASE_URL must be a postgres://… URL (the soak needs PostgreSQL)")
        return 2
    signal.signal(signal.SIGTERM, interrupted)
    with tempfile.TemporaryDirectory() as directory:
        url, drop = fresh_database_url(Path(directory))
        env = {
            "DATABASE_URL": url,
            "DEBUG": "false",
            "BETTER_AUTH_SECRET": secrets.token_urlsafe(48),
            "WEB_CONCURRENCY": str(WORKERS),
            "GUNICORN_LOG_LEVEL": "info",
            "RATE_LIMIT": "off",  # the soak is about durability, not the per-user rate limit
        }
        server = LiveServer(env)
        try:
            server.start()
            return soak(server, url, args)
        except ServerFailed as exc:
            print(f"soak: the service did not start: {exc}")
            return 1
        except KeyboardInterrupt:
            print("soak: interrupted; stopping the server and dropping the database")
            return 130
        finally:
            # A second Ctrl-C (or a signal to the whole process group) must not cut this short.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            server.stop()
            drop()


if __name__ == "__main__":
    sys.exit(main())
