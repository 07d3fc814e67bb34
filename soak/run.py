"""Soak the Tasks API: a mixed multi-user workload against the production server, with a worker
killed mid-run, then an audit of what was stored.

Usage (from the repository root; PostgreSQL only):

    DATABASE_URL=postgres://root@127.0.0.1:5432/test .venv/bin/python soak/run.py \
        [--duration S] [--clients N] [--users U] [--kills K] [--seed SEED]

The service runs the production way (`tasks.tests.live_server.LiveServer`: migrate, then gunicorn
with `gunicorn.conf.py`) on a fresh database, with 3 workers, DEBUG off, a random signing
secret and the per-user rate limit off. N client threads, one new connection per request, work
on the tasks of U users (several clients share a user, so their trees and lists meet): create
(sometimes in one of the user's lists), create a subtask under any task of the user, list
(following `next`), get, PUT, PATCH, toggle, delete a top-level task (its subtree goes with it),
delete a subtask, move a task under another task of the user or to another list or to the top
level (`POST /v1/tasks/{id}/move`), create, list and delete lists, and now and then a request
naming another user's task or list (in the path or the body), which must be a 404. Meanwhile K
gunicorn workers are SIGKILLed, one at a time; the master must replace each.

A connection error or 5xx ending within KILL_WINDOW_S of a kill is counted as in flight on the
killed worker. Some refusals are what concurrency explains, and are counted as `refused`, not
failures: a 422 `too_deep` (a subtask, a move), `cycle` or `not_a_sibling` (a move: another client
moved the parent or the sibling meanwhile), and a 404 naming a task or list of the user's that
another client may have deleted (directly, with its ancestor, or with its list); each such 404
is checked at the end: one of the ids it could be about must indeed be gone, else it is a
failure. Any other unexpected answer is a real failure.

Bookkeeping under cascades. Completing a task completes its open descendants, reopening (or
putting an open task under a completed one) reopens completed ancestors, and deleting a task or
a list deletes its subtree or its tasks, so a request may change tasks other than the one it
names, including other clients' tasks. The rule that keeps the per-task checks exact:
- A task that was ever on either end of a parent link (created as a subtask, moved under a task,
  or the parent named by either; marked before the request is sent) is *tangled*: its
  `completed` and `updated_at` are no longer checked against the last acknowledged state (a
  cascade may change them), only `title` and `details`, which no cascade changes. An untangled
  task is checked on every field, as before.
- A client's tasks that were never given a parent or a list other than the default one can only
  disappear by its own DELETE; the others may go with an ancestor or a list that another client
  deletes. At the end such a task may be missing only if a task that was ever (possibly) its
  ancestor, itself, or a list it or one of those ancestors was ever (possibly) put in was
  deleted (answered 204, or a DELETE without a clear answer); otherwise it is a lost write.

Afterwards every user's tasks are listed through the API and the `tasks` and `task_lists`
tables are read directly, and the run fails if a write acknowledged by the service is missing
or stale (lost_writes), a task or list deleted with a 204 is back (resurrected), a user ever
received another user's task (leaks), or a stored tree is inconsistent (inconsistent_trees: a
live task whose parent is not live, is another user's or is in another list; a live task in a
deleted, missing or foreign list; deeper than 5 levels or in a cycle; an open task under a
completed one); a user without exactly one default list is an other failure. The last line is
`soak: requests=… ok=… refused=… errors_by_status={…} killed_inflight=… other_failures=…
lost_writes=… resurrected=… leaks=… inconsistent_trees=… duration=…s`. The exit status is 1 when
other_failures, lost_writes, resurrected, leaks or inconsistent_trees is non-zero, 2 when
DATABASE_URL is not PostgreSQL. The server is stopped and the database dropped on every exit,
Ctrl-C and SIGTERM included.
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
MAX_LEVELS = 5  # a top-level task is level 1 (tasks.models.MAX_LEVELS)
FOREIGN_PROBE_RATE = 0.05
FOLLOW_NEXT_RATE = 0.5
MAX_LIST_PAGES = 5
OPERATIONS = {
    "create": 20,
    "subtask": 12,
    "list": 10,
    "get": 12,
    "put": 7,
    "patch": 8,
    "toggle": 10,
    "delete": 6,
    "prune": 3,
    "move": 8,
    "new_list": 2,
    "lists": 1,
    "drop_list": 1,
}
MAX_OPEN_LISTS = 500  # per user; more, and a new list is a deleted one instead
IN_LIST_RATE = 0.25  # creates that name one of the user's lists (when the user has one)
COMPLETED_SUBTASK_RATE = 0.3  # subtasks created completed (the others reopen their ancestors)
STATE_FIELDS = ("title", "details", "completed", "updated_at")
CASCADE_PROOF = ("title", "details")  # what no cascade changes: all that is checked when tangled
# The 422 codes concurrency explains, per operation (another client moved or deleted something).
REFUSALS = {
    "subtask": {"too_deep"},
    "move": {"too_deep", "cycle", "not_a_sibling"},
}
# Requests on another user's task: (method, path suffix, body); each must be a 404.
# Requests naming another user's task ({task}) or list ({list}), in the path or the body (with
# one of the client's own tasks, {own}): (method, path, body); each must be a 404.
FOREIGN_PROBES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/v1/tasks/{task}", None),
    ("PUT", "/v1/tasks/{task}", {"title": "hijacked"}),
    ("PATCH", "/v1/tasks/{task}", {"completed": True}),
    ("POST", "/v1/tasks/{task}/toggle", None),
    ("DELETE", "/v1/tasks/{task}", None),
    ("POST", "/v1/tasks/{task}/move", {"after": None, "parent_id": None}),
    ("POST", "/v1/tasks", {"title": "hijacked", "parent_id": "{task}"}),
    ("POST", "/v1/tasks/{own}/move", {"after": None, "parent_id": "{task}"}),
    ("POST", "/v1/tasks", {"title": "hijacked", "list_id": "{list}"}),
    ("DELETE", "/v1/lists/{list}", None),
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
    # Trees and lists (see the module's docstring for how they are used).
    tangled: set[str] = field(default_factory=set)  # ever on either end of a parent link
    parents: dict[str, set[str]] = field(default_factory=dict)  # task -> every parent tried
    in_lists: dict[str, set[str]] = field(default_factory=dict)  # task -> non-default lists tried
    user_tasks: dict[str, list[str]] = field(default_factory=dict)  # user -> ids (201), to pick
    places: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # task -> (list, parent)
    default_lists: dict[str, str] = field(default_factory=dict)  # user -> default list id
    lists: dict[str, str] = field(default_factory=dict)  # every list created with a 201 -> user
    user_lists: dict[str, list[str]] = field(default_factory=dict)  # user -> lists not deleted
    vanished: set[str] = field(default_factory=set)  # a 404 named only this task: not picked
    deleted_lists: set[str] = field(default_factory=set)  # DELETE answered 204
    maybe_deleted_lists: set[str] = field(default_factory=set)  # DELETE without a clear answer
    # 404s taken as "deleted meanwhile": (the failure, task ids, list ids it may be about)
    not_found: list[tuple[Failure, tuple[str, ...], tuple[str, ...]]] = field(default_factory=list)
    refused: Counter[str] = field(default_factory=Counter)  # per operation
    refusals: Counter[str] = field(default_factory=Counter)  # "operation status code" -> count
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


def error_code(reply: Reply) -> str | None:
    """The first error's `code` in an error body, if there is one."""
    errors = reply.data.get("errors") if isinstance(reply.data, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return errors[0].get("code")
    return None


class Client:
    """One client thread's workload: its user's tasks and lists, and now and then another
    user's task."""

    def __init__(
        self, name: str, user: str, token: str, port: int, ledger: Ledger, seed: int
    ) -> None:
        self.name = name
        self.user = user
        self.token = token
        self.port = port
        self.ledger = ledger
        self.rng = random.Random(seed)  # noqa: S311 -- a workload mix, not a secret
        # This client's tasks that it may still change: `live` ones only its own DELETE can
        # remove (top level, default list, never moved); `nested` ones may go with an ancestor
        # or a list another client deletes.
        self.live: list[str] = []
        self.nested: list[str] = []
        self.count = 0  # tasks created
        self.lists_made = 0  # lists created
        self.sent = 0  # requests sent
        self.last_reply: Reply | None = None
        self.subtask_next = False  # do_create's next task is a subtask (see do_subtask)

    def run(self, deadline: float, stop: threading.Event) -> None:
        """Run random operations until `deadline` (monotonic) or `stop`."""
        try:
            while not stop.is_set() and time.monotonic() < deadline:
                if self.rng.random() < FOREIGN_PROBE_RATE:
                    self.probe_foreign()
                    continue
                operation = self.rng.choices(list(OPERATIONS), list(OPERATIONS.values()))[0]
                getattr(self, f"do_{self.feasible(operation)}")()
        except Exception:
            with self.ledger.lock:
                self.ledger.problems.append(f"{self.name} crashed:\n{traceback.format_exc()}")

    def feasible(self, operation: str) -> str:
        """`operation`, or one that makes what it needs when this client has nothing for it."""
        if operation in ("get", "put", "patch", "toggle", "move") and not (
            self.live or self.nested
        ):
            return "create"
        if operation == "delete" and not self.live:
            return "create"
        if operation == "prune" and not self.nested:
            return "subtask"
        if operation == "drop_list" and self.user_list() is None:
            return "new_list"
        if operation == "new_list":
            with self.ledger.lock:  # stay well below the per-user limit of 1,000
                if len(self.ledger.user_lists.get(self.user, ())) >= MAX_OPEN_LISTS:
                    return "drop_list"
        return operation

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
        reply = send(self.port, method, path, self.token, body, f"soak.{self.name}.{self.sent}")
        self.last_reply = reply
        return reply

    def excused(
        self, operation: str, tasks: tuple[str, ...] = (), lists: tuple[str, ...] = ()
    ) -> bool:
        """Whether the last request's unexpected answer (`request` returned None) is a refusal
        that concurrency explains: a 422 with one of REFUSALS[operation]'s codes, or a 404 when
        the request named `tasks` or `lists` (of this user) that may have been deleted
        meanwhile; the audit checks that one of those is indeed gone. If so, the failure
        `request` recorded is withdrawn and the answer counted as refused."""
        reply = self.last_reply
        if reply is None:
            return False
        code = error_code(reply)
        if not (
            (reply.status == 404 and (tasks or lists))
            or (reply.status == 422 and code in REFUSALS.get(operation, ()))
        ):
            return False
        with self.ledger.lock:
            failure = next((f for f in self.ledger.failures if f.reply is reply), None)
            if failure is None:  # a leak, noted as such
                return False
            self.ledger.failures.remove(failure)
            self.ledger.refused[operation] += 1
            self.ledger.refusals[f"{operation} {reply.status} {code}"] += 1
            if reply.status == 404:
                self.ledger.not_found.append((failure, tasks, lists))
                if len(tasks) == 1 and not lists:
                    self.ledger.vanished.add(tasks[0])
        return True

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

    def own_task(self) -> str:
        """One of the tasks this client may still change."""
        return self.rng.choice(self.live + self.nested)

    def forget(self, task_id: str) -> None:
        """Stop working on task `task_id` (only this client's thread touches these lists)."""
        for tasks in (self.live, self.nested):
            if task_id in tasks:
                tasks.remove(task_id)

    def user_task(self, exclude: str | None = None) -> str | None:
        """A task of this user (any client's) not known to be deleted, or None."""
        with self.ledger.lock:
            ids = self.ledger.user_tasks.get(self.user, [])
            for _ in range(5 if ids else 0):
                task_id = self.rng.choice(ids)
                if task_id != exclude and not (
                    task_id in self.ledger.deleted
                    or task_id in self.ledger.maybe_deleted
                    or task_id in self.ledger.vanished
                ):
                    return task_id
        return None

    def user_list(self) -> str | None:
        """One of this user's lists (not the default one) not known to be deleted, or None."""
        with self.ledger.lock:
            lists = self.ledger.user_lists.get(self.user)
            return self.rng.choice(lists) if lists else None

    def expected_state(self, task_id: str) -> State:
        """What a read of task `task_id` must show of its last acknowledged state: all of it,
        or only what no cascade changes once the task is tangled (call with the lock held)."""
        state = self.ledger.states[task_id]
        if task_id in self.ledger.tangled:
            return {name: state[name] for name in CASCADE_PROOF}
        return dict(state)

    def acknowledged(self, task: dict[str, Any]) -> None:
        """Record a task as a write's answer showed it (call with the lock held)."""
        self.ledger.states[task["id"]] = state_of(task)
        self.ledger.places[task["id"]] = (task.get("list_id"), task.get("parent_id"))

    def do_create(self) -> None:
        """POST a task (sometimes with details and `completed`): 201 with exactly that. Under
        one of the user's tasks when do_subtask asks; else sometimes in one of the user's
        lists. A 404 (the parent or list was deleted meanwhile) or a 422 too_deep (a subtask)
        is refused, not failed."""
        parent = self.user_task() if self.subtask_next else None
        list_id = self.user_list() if not parent and self.rng.random() < IN_LIST_RATE else None
        operation = "subtask" if parent else "create"
        self.count += 1
        sent: State = {"title": f"{self.name} task {self.count}"}
        if self.rng.random() < 0.5:
            sent["details"] = "details " * self.rng.randint(1, 40)
        if parent:
            sent["parent_id"] = parent
            if self.rng.random() < COMPLETED_SUBTASK_RATE:
                sent["completed"] = True
        elif self.rng.random() < 0.3:
            sent["completed"] = self.rng.random() < 0.5
        if list_id:
            sent["list_id"] = list_id
        expected = {
            "user_id": self.user,
            "details": "",
            "completed": False,
            "parent_id": None,
            **sent,
        }
        with self.ledger.lock:
            if parent:
                self.ledger.tangled.add(parent)  # an open subtask reopens it
            elif not list_id and self.user in self.ledger.default_lists:
                expected["list_id"] = self.ledger.default_lists[self.user]

        def check(reply: Reply) -> str | None:
            return self.receive(reply.data) or check_task(reply.data, expected)

        reply = self.request(operation, "POST", "/v1/tasks", sent, 201, check)
        if reply is None:
            self.excused(operation, (parent,) if parent else (), (list_id,) if list_id else ())
            return
        task_id = reply.data["id"]
        with self.ledger.lock:
            self.ledger.owners[task_id] = self.user
            self.ledger.created.append((task_id, self.user))
            self.ledger.user_tasks.setdefault(self.user, []).append(task_id)
            self.acknowledged(reply.data)
            if parent:
                self.ledger.tangled.add(task_id)
                self.ledger.parents[task_id] = {parent}
            elif list_id:
                self.ledger.in_lists[task_id] = {list_id}
            else:
                self.ledger.default_lists.setdefault(self.user, reply.data["list_id"])
        (self.nested if parent or list_id else self.live).append(task_id)

    def do_subtask(self) -> None:
        """Create a subtask under one of the user's tasks (any client's, so trees are shared):
        do_create's work, through do_create, so that what wraps do_create wraps this too."""
        self.subtask_next = True
        try:
            self.do_create()
        finally:
            self.subtask_next = False

    def do_list(self) -> None:
        """GET a page (random size, sometimes filtered), sometimes following `next`."""
        query: dict[str, str] = {}
        if self.rng.random() < 0.7:
            query["page_size"] = str(self.rng.choice([5, 20, 50, 200]))
        if self.rng.random() < 0.2:
            query["completed"] = self.rng.choice(["true", "false"])
        if self.rng.random() < 0.1:
            query["parent"] = "none"
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
                if "parent" in query and task.get("parent_id") is not None:
                    return f"task {task['id']} has a parent_id, listed with parent=none"
            return None

        for _ in range(MAX_LIST_PAGES):
            reply = self.request("list", "GET", path, check=check)
            if reply is None or not reply.data["next"] or self.rng.random() > FOLLOW_NEXT_RATE:
                return
            next_url = urlsplit(reply.data["next"])
            path = f"{next_url.path}?{next_url.query}"

    def do_get(self) -> None:
        """GET one of this client's tasks: as last acknowledged (what a cascade cannot change,
        for a tangled task); a 404 only if it may have gone with an ancestor or its list."""
        task_id = self.own_task()

        def check(reply: Reply) -> str | None:
            with self.ledger.lock:
                expected = self.expected_state(task_id)
            return self.receive(reply.data) or check_task(reply.data, expected)

        reply = self.request("get", "GET", f"/v1/tasks/{task_id}", check=check)
        if reply is None and self.excused("get", (task_id,)):
            self.forget(task_id)

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
        """Change one of this client's tasks; `changes` None means flip `completed`. The answer
        must show the changes and the rest as last acknowledged (for a tangled task: the
        changes sent, and the title and details), with a later `updated_at`."""
        task_id = self.own_task()
        with self.ledger.lock:
            before = self.ledger.states[task_id]
        changes = changes if changes is not None else {"completed": not before["completed"]}
        expected = {name: before[name] for name in STATE_FIELDS[:3]} | changes

        def check(reply: Reply) -> str | None:
            with self.ledger.lock:
                tangled = task_id in self.ledger.tangled
            wanted = {
                name: value
                for name, value in expected.items()
                if not tangled or name in CASCADE_PROOF or name in (sent or {})
            }
            problem = self.receive(reply.data) or check_task(reply.data, wanted)
            if problem is None and not parse_time(reply.data["updated_at"]) > parse_time(
                before["updated_at"]
            ):
                problem = f"updated_at did not advance past {before['updated_at']}"
            return problem

        reply = self.request(operation, method, f"/v1/tasks/{task_id}{suffix}", sent, 200, check)
        if reply is None and self.excused(operation, (task_id,)):
            self.forget(task_id)
            return
        with self.ledger.lock:
            if reply is not None:
                self.acknowledged(reply.data)
            else:
                self.write_failed(task_id)

    def write_failed(self, task_id: str) -> None:
        """A write got no acceptable answer: its task's state is no longer certain, and this
        client leaves it alone (called with the ledger's lock held)."""
        self.ledger.uncertain.add(task_id)
        self.forget(task_id)

    def do_delete(self) -> None:
        """DELETE one of this client's top-level tasks: 204, empty body (its subtree, other
        clients' subtasks included, goes with it)."""
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

    def do_prune(self) -> None:
        """DELETE one of this client's tasks that has had a parent or a list: 204, or a 404 if
        it went with an ancestor or its list meanwhile."""
        task_id = self.rng.choice(self.nested)
        self.nested.remove(task_id)
        reply = self.request(
            "prune",
            "DELETE",
            f"/v1/tasks/{task_id}",
            expected=204,
            check=lambda reply: f"a 204 with a body: {reply.text[:80]!r}" if reply.text else None,
        )
        if reply is None and self.excused("prune", (task_id,)):
            return
        with self.ledger.lock:
            (self.ledger.deleted if reply else self.ledger.maybe_deleted).add(task_id)

    def do_move(self) -> None:
        """POST move one of this client's tasks: under another task of the user (first, or now
        and then after a task last seen under it), to the top level of another list (sometimes
        the default one), or to the top level of its own. A 404 (a task or list named was
        deleted meanwhile) or a 422 cycle, too_deep or not_a_sibling (another client moved
        something meanwhile) is refused, not failed."""
        task_id = self.own_task()
        body: dict[str, Any] = {"after": None}
        roll = self.rng.random()
        parent = self.user_task(exclude=task_id) if roll < 0.6 else None
        with self.ledger.lock:
            default = self.ledger.default_lists.get(self.user)
        list_id = None
        if parent is None and roll < 0.85:
            list_id = (self.user_list() if self.rng.random() < 0.8 else None) or default
        if parent:
            body["parent_id"] = parent
        elif list_id:  # the top level there (a list_id alone keeps the parent in its own list)
            body["list_id"], body["parent_id"] = list_id, None
        else:
            body["parent_id"] = None
        other_list = list_id if list_id and list_id != default else None
        with self.ledger.lock:
            expected = {
                name: value
                for name, value in self.expected_state(task_id).items()
                if name != "updated_at"  # a move is a write of the task
            }
            if parent:
                self.ledger.tangled.update((task_id, parent))
                self.ledger.parents.setdefault(task_id, set()).add(parent)
                if self.rng.random() < 0.3:
                    siblings = [
                        sibling
                        for sibling, (_, above) in self.ledger.places.items()
                        if above == parent and sibling != task_id
                    ]
                    body["after"] = self.rng.choice(siblings) if siblings else None
                expected.pop("completed", None)
            if other_list:
                self.ledger.in_lists.setdefault(task_id, set()).add(other_list)
        if (parent or other_list) and task_id in self.live:
            self.live.remove(task_id)
            self.nested.append(task_id)
        expected["parent_id"] = parent
        if list_id:
            expected["list_id"] = list_id

        def check(reply: Reply) -> str | None:
            return self.receive(reply.data) or check_task(reply.data, expected)

        reply = self.request("move", "POST", f"/v1/tasks/{task_id}/move", body, 200, check)
        named = tuple(name for name in (task_id, parent, body["after"]) if name)
        if reply is None and self.excused("move", named, (other_list,) if other_list else ()):
            return
        with self.ledger.lock:
            if reply is not None:
                self.acknowledged(reply.data)
            else:
                self.write_failed(task_id)

    def do_new_list(self) -> None:
        """POST a list: 201, not the default one, with that title."""
        self.lists_made += 1
        title = f"{self.name} list {self.lists_made}"

        def check(reply: Reply) -> str | None:
            data = reply.data
            if not isinstance(data, dict) or not isinstance(data.get("id"), str):
                return "the body is not a list"
            if data.get("title") != title or data.get("is_default") is not False:
                return f"expected title {title!r}, not default; got {data}"
            return None

        reply = self.request("new_list", "POST", "/v1/lists", {"title": title}, 201, check)
        if reply is not None:
            with self.ledger.lock:
                self.ledger.lists[reply.data["id"]] = self.user
                self.ledger.user_lists.setdefault(self.user, []).append(reply.data["id"])

    def do_lists(self) -> None:
        """GET the user's lists: only theirs, one default at most (the one their tasks go to)."""

        def check(reply: Reply) -> str | None:
            page = reply.data
            if not isinstance(page, dict) or not isinstance(page.get("results"), list):
                return "the body is not a page"
            with self.ledger.lock:
                default = self.ledger.default_lists.get(self.user)
                for found in page["results"]:
                    owner = self.ledger.lists.get(str(found.get("id")), self.user)
                    if owner != self.user:
                        self.ledger.leaks[(self.user, str(found.get("id")))] = (
                            f"{self.user} received list {found.get('id')} of {owner}"
                        )
                        return LEAK
            defaults = [found["id"] for found in page["results"] if found.get("is_default")]
            if len(defaults) > 1 or (defaults and default and defaults != [default]):
                return f"default lists {defaults}, tasks go to {default}"
            return None

        self.request("lists", "GET", "/v1/lists?page_size=200", check=check)

    def do_drop_list(self) -> None:
        """DELETE one of the user's lists (any client's): 204, with every task in it; or a 404
        if another client deleted it meanwhile."""
        list_id = self.user_list()
        if list_id is None:
            return
        with self.ledger.lock:
            lists = self.ledger.user_lists[self.user]
            if list_id in lists:
                lists.remove(list_id)
        reply = self.request(
            "drop_list",
            "DELETE",
            f"/v1/lists/{list_id}",
            expected=204,
            check=lambda reply: f"a 204 with a body: {reply.text[:80]!r}" if reply.text else None,
        )
        if reply is None and self.excused("drop_list", (), (list_id,)):
            return
        with self.ledger.lock:
            (self.ledger.deleted_lists if reply else self.ledger.maybe_deleted_lists).add(list_id)

    def probe_foreign(self) -> None:
        """A request naming another user's task or list: must be a 404, whatever the method."""
        with self.ledger.lock:
            if not self.ledger.created:
                return
            candidates = [self.rng.choice(self.ledger.created) for _ in range(5)]
            lists = list(self.ledger.lists.items())
            list_candidates = [self.rng.choice(lists) for _ in range(5)] if lists else []
        ids = {
            "{task}": next((task for task, user in candidates if user != self.user), None),
            "{list}": next((lst for lst, user in list_candidates if user != self.user), None),
            "{own}": self.own_task() if self.live or self.nested else None,
        }
        method, path, body = self.rng.choice(FOREIGN_PROBES)
        named = [name for name in ids if name in path or name in json.dumps(body)]
        if any(ids[name] is None for name in named):
            return
        for name in named:
            path = path.replace(name, str(ids[name]))
        if body is not None:
            body = {
                key: ids[value] if isinstance(value, str) and value in ids else value
                for key, value in body.items()
            }
        foreign = str(ids["{task}"] if "{task}" in named else ids["{list}"])
        reply = self.send(method, path, body)
        with self.ledger.lock:
            self.ledger.requests["foreign"] += 1
            self.ledger.foreign_probes[str(reply.status or "conn")] += 1
            if reply.status == 404:
                self.ledger.ok["foreign"] += 1
            elif reply.status is not None and reply.status < 300:
                self.ledger.leaks[(self.user, foreign)] = (
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


def may_be_gone(ledger: Ledger) -> Callable[[str], bool]:
    """Whether a task may be deleted without a lost write: it, a task that was ever (possibly)
    its ancestor, or a list one of them was ever (possibly) put in, was deleted with a 204 or by
    a DELETE without a clear answer (call with the lock held, after the run)."""
    deleted = ledger.deleted | ledger.maybe_deleted
    deleted_lists = ledger.deleted_lists | ledger.maybe_deleted_lists
    memo: dict[str, bool] = {}

    def gone(task_id: str) -> bool:
        if task_id not in memo:
            seen, todo = {task_id}, [task_id]
            while todo:
                node = todo.pop()
                if node in deleted or not ledger.in_lists.get(node, set()).isdisjoint(
                    deleted_lists
                ):
                    break
                for parent in ledger.parents.get(node, ()):
                    if parent not in seen:
                        seen.add(parent)
                        todo.append(parent)
            else:
                memo[task_id] = False
                return False
            memo[task_id] = True
        return memo[task_id]

    return gone


def tree_problems(
    rows: list[tuple[str, str, str | None, str | None, bool]],
    lists: dict[str, tuple[str, bool, bool]],
) -> dict[str, str]:
    """What is wrong with each live task's place (`rows`: id, user, parent, list, completed of
    every live task; `lists`: id -> user, is_default, deleted of every list row): a parent that
    is not live, another user's or in another list; a list deleted, missing or another user's;
    a level over MAX_LEVELS or a cycle; an open task with a completed ancestor."""
    live = {task_id: (user, parent, list_id, done) for task_id, user, parent, list_id, done in rows}
    problems = {}
    for task_id, (user, parent, list_id, completed) in live.items():
        found = []
        if list_id is None:
            found.append("no list")
        elif list_id not in lists:
            found.append(f"its list {list_id} does not exist")
        elif lists[list_id][2] or lists[list_id][0] != user:
            found.append(f"its list {list_id} is deleted or of {lists[list_id][0]}")
        if parent is not None:
            if parent not in live:
                found.append(f"its parent {parent} is not live")
            elif live[parent][0] != user or live[parent][2] != list_id:
                found.append(
                    f"its parent {parent} is of {live[parent][0]} in list {live[parent][2]}"
                )
        level, node, seen, completed_above = 1, task_id, {task_id}, None
        while (above := live[node][1]) is not None and above in live:
            if above in seen:
                found.append(f"in a cycle through {above}")
                break
            seen.add(above)
            level, node = level + 1, above
            if live[above][3] and completed_above is None:
                completed_above = above
        if level > MAX_LEVELS:
            found.append(f"at level {level}")
        if not completed and completed_above is not None:
            found.append(f"open, under completed {completed_above}")
        if found:
            problems[task_id] = f"user {user}, parent {parent}, list {list_id}: " + "; ".join(found)
    return problems


def audit(
    ledger: Ledger, clients: dict[str, Client], database_url: str
) -> dict[str, dict[str, str]]:
    """Compare what the service acknowledged with the API's listings and the `tasks` and
    `task_lists` tables.

    Returns the tasks that are `missing` (created with a 201, not stored or not listed, and
    not possibly deleted: may_be_gone), `stale` (last acknowledged state, or for a tangled task
    its title and details, differs from the row), `resurrected` (deleted with a 204, stored or
    listed; lists too), `orphans` (stored, but no 201 announced them: creates whose answer was
    lost in a kill) and `inconsistent` (tree_problems), each id with what is stored for it.
    A 404 taken as "deleted meanwhile" whose ids are all still there becomes a failure, and a
    user without exactly one default list a problem.
    """
    listed = {user: client.final_listing() for user, client in clients.items()}
    with psycopg.connect(database_url) as connection:
        rows = connection.execute(
            # Deleted tasks stay as tombstones (for incremental sync): they are not stored tasks.
            "SELECT id::text, user_id, title, details, completed, updated_at FROM tasks"
            " WHERE deleted_at IS NULL"
        ).fetchall()
        places = connection.execute(
            "SELECT id::text, user_id, parent_id::text, list_id::text, completed FROM tasks"
            " WHERE deleted_at IS NULL"
        ).fetchall()
        list_rows = connection.execute(
            "SELECT id::text, user_id, is_default, deleted_at IS NOT NULL FROM task_lists"
        ).fetchall()
    stored = {row[0]: row[1:] for row in rows}
    lists = {list_id: (user, default, deleted) for list_id, user, default, deleted in list_rows}
    live_lists = {list_id for list_id, (_, _, deleted) in lists.items() if not deleted}

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
        gone = may_be_gone(ledger)
        missing = {
            task_id: row(task_id)
            for task_id, owner in ledger.owners.items()
            if not gone(task_id) and (task_id not in stored or task_id not in listed[owner])
        }
        unknown = ledger.deleted | ledger.maybe_deleted | ledger.uncertain
        stale = {}
        for task_id, state in ledger.states.items():
            if task_id in stored and task_id not in unknown:
                acknowledged = (
                    *(state[name] for name in STATE_FIELDS[:3]),
                    parse_time(state["updated_at"]),
                )
                compared = len(CASCADE_PROOF) if task_id in ledger.tangled else len(acknowledged)
                if stored[task_id][1 : 1 + compared] != acknowledged[:compared]:
                    stale[task_id] = row(task_id)
        everywhere = set(stored).union(*listed.values())
        resurrected = {task_id: row(task_id) for task_id in ledger.deleted & everywhere}
        resurrected |= {
            list_id: f"list {list_id} is live" for list_id in ledger.deleted_lists & live_lists
        }
        orphans = {task_id: row(task_id) for task_id in set(stored) - set(ledger.owners)}
        for failure, task_ids, list_ids in ledger.not_found:
            if all(task_id in stored for task_id in task_ids) and all(
                list_id in live_lists for list_id in list_ids
            ):
                ledger.failures.append(
                    Failure(
                        failure.request,
                        failure.sent,
                        failure.expected,
                        failure.reply,
                        f"a 404, yet tasks {list(task_ids)} and lists {list(list_ids)} are all"
                        f" live: {failure.reply.text[:200]}",
                    )
                )
        for user in clients:
            defaults = [
                list_id
                for list_id, (owner, default, deleted) in lists.items()
                if owner == user and default and not deleted
            ]
            if len(defaults) != 1:
                ledger.problems.append(f"{user} has {len(defaults)} default lists: {defaults}")
    inconsistent = tree_problems(places, lists)
    return {
        "missing": missing,
        "stale": stale,
        "resurrected": resurrected,
        "orphans": orphans,
        "inconsistent": inconsistent,
    }


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
    inconsistent = found["inconsistent"]

    print(
        f"soak: {args.clients} clients, {args.users} users, {WORKERS} workers, seed {args.seed}, "
        f"database {database}"
    )
    print(f"{'operation':<10} {'requests':>9} {'ok':>9} {'refused':>9}")
    for operation in [*OPERATIONS, "foreign", "verify"]:
        print(
            f"{operation:<10} {ledger.requests[operation]:>9} {ledger.ok[operation]:>9} "
            f"{ledger.refused[operation]:>9}"
        )
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
        f"orphans {len(found['orphans'])} (creates committed but unanswered); "
        f"tangled {len(ledger.tangled)}"
    )
    print(
        f"lists      created {len(ledger.lists)}, deleted {len(ledger.deleted_lists)}, "
        f"unknown outcome {len(ledger.maybe_deleted_lists)}"
    )
    print(f"refused    {dict(sorted(ledger.refusals.items()))}")
    print(
        f"audit      missing {len(found['missing'])}, stale {len(found['stale'])}, "
        f"resurrected {len(found['resurrected'])}, leaks {len(ledger.leaks)}, "
        f"inconsistent trees {len(inconsistent)}"
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
    for task_id, problem in list(inconsistent.items())[:10]:
        print(f"INCONSISTENT {task_id}: {problem}")
        for line in [line for line in log if task_id in line][-5:]:
            print(f"  server: {line}")
    if real or lost or found["resurrected"] or ledger.leaks or inconsistent:
        alerts = [line for line in log if LOG_ALERTS.search(line)]
        print("--- server log: errors, kills and 5xx ---", *alerts[-20:], sep="\n")
    print(
        f"soak: requests={requests} ok={ok} refused={sum(ledger.refused.values())} "
        f"errors_by_status={json.dumps(errors, separators=(',', ':'))} "
        f"killed_inflight={len(in_flight)} other_failures={other_failures} lost_writes={lost} "
        f"resurrected={len(found['resurrected'])} leaks={len(ledger.leaks)} "
        f"inconsistent_trees={len(inconsistent)} duration={duration:.1f}s"
    )
    failed = other_failures or lost or found["resurrected"] or ledger.leaks or inconsistent
    return 1 if failed else 0


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
