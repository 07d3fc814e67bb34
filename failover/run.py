"""Fail the database over under load: the soak's mixed multi-user workload against gunicorn
connected to a primary and its synchronous standby; mid-run the primary's postmaster is
SIGKILLed and the standby promoted, while the load goes on. Then the audit.

Usage (from the repository root, as root, on a machine with Debian's PostgreSQL; see
docs/failover.md):

    .venv/bin/python failover/run.py [--duration S] [--kill-at S] [--promote-after S]
        [--clients N] [--users U] [--seed SEED] [--keep-clusters]

`failover/cluster.sh up` makes the two clusters (ports 5433 and 5434; the cluster on 5432 is not
touched), the service runs the production way (tasks.tests.live_server) with DATABASE_URL the
libpq multi-host URL `…@127.0.0.1:5433,127.0.0.1:5434/tasks?target_session_attrs=read-write`,
and the clients of soak/run.py work as in the soak. At --kill-at seconds the primary's postmaster
is SIGKILLed; --promote-after seconds later the standby is promoted (pg_promote). The service is
neither restarted nor reconfigured.

It fails (exit status 1) when:
- an answer is wrong: a 500, any other unexpected status or body, or a 503 without Retry-After;
  or a failure (503 or no answer) outside the switch (before the kill, or more than
  BACK_WITHIN_S after the promotion);
- a write acknowledged with a 2xx is missing or stale on the new primary (lost);
- a write answered 503 `database_unavailable` ("not applied: retry") is there (resurrected);
  a task deleted with a 204 is back (resurrected);
- a user received another user's task (leaks);
- the service is not back to 2xx within BACK_WITHIN_S of the promotion.
A 503 `write_outcome_unknown` is allowed (it says that nobody can tell) and counted as unknown.

The last line: `failover: requests=… ok=… not_applied=… unknown=… no_answer=… wrong_answers=…
lost=… resurrected=… leaks=… gap=…s back_after_promotion=…s in_doubt_applied=…
in_doubt_not_applied=…`; `gap` is the longest time around the switch in which no request was
answered 2xx (the last 2xx before the failures to the first after them), `back_after_promotion`
the time from the promotion to the first 2xx. The clusters are removed on every exit (unless
--keep-clusters), Ctrl-C and SIGTERM included.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import jwt
import psycopg

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
import soak.run  # noqa: E402
from soak.run import (  # noqa: E402
    LEAK,
    OPERATIONS,
    Client,
    Failure,
    Ledger,
    Reply,
    audit,
    interrupted,
)
from tasks.tests.live_server import LiveServer, ServerFailed  # noqa: E402

CLUSTER = REPO_ROOT / "failover" / "cluster.sh"
WORKERS = 3
BACK_WITHIN_S = 10.0  # the service answers 2xx again this soon after the promotion
NOT_APPLIED = "database_unavailable"
UNKNOWN = "write_outcome_unknown"


@dataclass
class Switch:
    """What the clients saw around the failover (guarded by the ledger's lock)."""

    killed_at: float | None = None
    promoted_at: float | None = None
    answers: list[tuple[float, float, str]] = field(default_factory=list)  # started, ended, kind
    kinds: Counter[str] = field(default_factory=Counter)
    wrong: list[Failure] = field(default_factory=list)  # answers that are never acceptable
    refused_titles: set[str] = field(default_factory=set)  # creates answered "not applied"
    unknown_titles: set[str] = field(default_factory=set)  # creates without a clear answer
    refused_writes: set[str] = field(default_factory=set)  # tasks with a write "not applied"


def kind_of(reply: Reply, expected: int, problem: str | None) -> str:
    """`ok`, `not_applied` or `unknown` (a 503 with Retry-After saying so), `no_answer`, or
    `wrong` (never acceptable)."""
    if reply.status == expected and problem is None:
        return "ok"
    if reply.status is None:
        return "no_answer"
    if reply.status == 503 and reply.retry_after and isinstance(reply.data, dict):
        code = (reply.data.get("errors") or [{}])[0].get("code")
        if code == NOT_APPLIED:
            return "not_applied"
        if code == UNKNOWN:
            return "unknown"
    return "wrong"


class FailoverClient(Client):
    """The soak's client, where an answer may be the failover's: a write answered "not applied"
    leaves its task as it was (and the audit checks that it did); a 503 "unknown" or no answer
    makes the task uncertain, as a failure does in the soak."""

    def __init__(self, *args, switch: Switch, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.switch = switch
        self.last_kind = "ok"

    def excused(
        self, operation: str, tasks: tuple[str, ...] = (), lists: tuple[str, ...] = ()
    ) -> bool:
        """As the soak's; the answer is then `refused`, not `wrong`."""
        if not super().excused(operation, tasks, lists):
            return False
        reply = self.last_reply
        with self.ledger.lock:
            for index, (started, ended, kind) in enumerate(self.switch.answers):
                if started == reply.started and kind == "wrong":
                    self.switch.answers[index] = (started, ended, "refused")
                    self.switch.kinds["wrong"] -= 1
                    self.switch.kinds["refused"] += 1
                    break
        return True

    def request(
        self,
        operation: str,
        method: str,
        path: str,
        body: Any = None,
        expected: int = 200,
        check: Callable[[Reply], str | None] | None = None,
    ) -> Reply | None:
        reply = self.send(method, path, body)
        problem = check(reply) if check and reply.status == expected else None
        kind = "ok" if problem == LEAK else kind_of(reply, expected, problem)
        self.last_kind = kind
        with self.ledger.lock:
            self.ledger.requests[operation] += 1
            self.switch.answers.append((reply.started, reply.ended, kind))
            self.switch.kinds[kind] += 1
            if kind == "ok" and problem is None:
                self.ledger.ok[operation] += 1
            elif problem != LEAK:
                self.ledger.failures.append(
                    Failure(f"{method} {path}", body, expected, reply, problem)
                )
        return reply if kind == "ok" and problem is None else None

    def do_create(self) -> None:
        created = len(self.live)
        super().do_create()
        if len(self.live) == created:  # no 201: which title must not (or may) be stored
            title = f"{self.name} task {self.count}"
            refused = self.last_kind == "not_applied"
            with self.ledger.lock:
                (self.switch.refused_titles if refused else self.switch.unknown_titles).add(title)

    def write_failed(self, task_id: str) -> None:
        """As the soak's, but a write "not applied" keeps its task certain and live."""
        if self.last_kind == "not_applied":
            self.switch.refused_writes.add(task_id)
        else:
            super().write_failed(task_id)

    def do_delete(self) -> None:
        """As the soak's, but a delete "not applied" leaves its task live (and checked so)."""
        task_id = self.rng.choice(self.live)
        reply = self.request(
            "delete",
            "DELETE",
            f"/v1/tasks/{task_id}",
            expected=204,
            check=lambda reply: f"a 204 with a body: {reply.text[:80]!r}" if reply.text else None,
        )
        with self.ledger.lock:
            if reply is None and self.last_kind == "not_applied":
                self.switch.refused_writes.add(task_id)
                return
            (self.ledger.deleted if reply else self.ledger.maybe_deleted).add(task_id)
        self.live.remove(task_id)


def cluster(command: str) -> str:
    """Run `failover/cluster.sh command`; its output."""
    done = subprocess.run(  # noqa: S603 -- our own script, fixed arguments
        [str(CLUSTER), command], capture_output=True, text=True, check=False, timeout=120
    )
    if done.returncode != 0:
        raise RuntimeError(f"cluster.sh {command} failed:\n{done.stdout}{done.stderr}")
    return done.stdout.strip()


def failover(server: LiveServer, database_url: str, args: argparse.Namespace) -> int:
    """Run the load, fail the database over mid-run, audit; print the figures; exit status."""
    secret = server.env["BETTER_AUTH_SECRET"]
    rng = random.Random(args.seed)  # noqa: S311 -- a workload mix, not a secret
    now = int(time.time())
    users = [f"failover-user-{n}" for n in range(args.users)]
    tokens = {
        user: jwt.encode({"sub": user, "iat": now, "exp": now + 3600}, secret, "HS256")
        for user in users
    }
    ledger, switch = Ledger(), Switch()

    def client(name: str, user: str, seed: int) -> FailoverClient:
        return FailoverClient(name, user, tokens[user], server.port, ledger, seed, switch=switch)

    clients = [
        client(f"c{n}", users[n % len(users)], rng.getrandbits(32)) for n in range(args.clients)
    ]
    stop = threading.Event()
    started = time.monotonic()
    threads = [
        threading.Thread(target=c.run, args=(started + args.duration, stop), daemon=True)
        for c in clients
    ]
    try:
        for thread in threads:
            thread.start()
        time.sleep(max(0.0, started + args.kill_at - time.monotonic()))
        switch.killed_at = time.monotonic()
        print(cluster("kill-primary"), f"at +{switch.killed_at - started:.2f} s", flush=True)
        time.sleep(args.promote_after)
        print(cluster("promote"), flush=True)
        switch.promoted_at = time.monotonic()
        for thread in threads:
            thread.join()
    finally:
        stop.set()
    duration = time.monotonic() - started
    auditors = {user: client(f"audit-{user}", user, 0) for user in users}
    found = audit(ledger, auditors, database_url)
    with psycopg.connect(database_url) as connection:
        titles = dict(
            connection.execute(
                "SELECT id::text, title FROM tasks WHERE id::text = ANY(%s)",
                [list(found["orphans"])],
            ).fetchall()
        )
    return report(ledger, switch, found, titles, server.output(), started, duration, args)


def report(
    ledger: Ledger,
    switch: Switch,
    found: dict[str, dict[str, str]],
    titles: dict[str, str],
    server_log: str,
    started: float,
    duration: float,
    args: argparse.Namespace,
) -> int:
    """Print what happened and what is wrong; the exit status."""
    killed, promoted = switch.killed_at, switch.promoted_at
    window_end = promoted + BACK_WITHIN_S
    answered_ok = sorted(ended for _, ended, kind in switch.answers if kind == "ok")
    # The gap: the longest time around the switch in which no request was answered 2xx (from
    # the last 2xx before the first failure to the first 2xx after it, when the switch is one
    # outage).
    around = [ended for ended in answered_ok if killed - 1 <= ended <= window_end]
    gap, gap_from = max(((b - a, a) for a, b in pairwise(around)), default=(0.0, killed))
    back_after = min((ended for ended in answered_ok if ended >= promoted), default=None)
    back_after = back_after - promoted if back_after is not None else float("inf")
    last_failure = max(
        (ended for _, ended, kind in switch.answers if kind not in ("ok", "refused")),
        default=promoted,
    )
    wrong = [
        failure
        for failure in ledger.failures
        if kind_of(failure.reply, failure.expected, failure.problem) == "wrong"
        or not killed <= failure.reply.ended <= window_end
    ]
    changed = set(found["missing"]) | set(found["stale"])
    resurrected = (
        set(found["resurrected"])
        | (changed & switch.refused_writes)
        | {task_id for task_id, title in titles.items() if title in switch.refused_titles}
    )
    lost = changed - switch.refused_writes
    unexplained = {
        task_id
        for task_id, title in titles.items()
        if title not in switch.refused_titles | switch.unknown_titles
    }
    in_doubt = Counter(
        outcome
        for outcome in ("resolved: applied", "resolved: not applied", "still unreachable")
        for line in server_log.splitlines()
        if f"Commit in doubt {outcome}" in line or f"Commit in doubt, database {outcome}" in line
    )

    print(
        f"failover: {args.clients} clients, {args.users} users, {WORKERS} workers, "
        f"seed {args.seed}, {duration:.1f} s"
    )
    print(f"{'operation':<10} {'requests':>9} {'ok':>9}")
    for operation in [*OPERATIONS, "foreign", "verify"]:
        print(f"{operation:<10} {ledger.requests[operation]:>9} {ledger.ok[operation]:>9}")
    print(
        f"switch     primary SIGKILLed at +{killed - started:.2f} s, standby promoted at "
        f"+{promoted - started:.2f} s"
    )
    print(
        f"gap        no 2xx answered from +{gap_from - started:.2f} s to "
        f"+{gap_from + gap - started:.2f} s: {gap:.2f} s; first 2xx {back_after:.2f} s after "
        f"the promotion, last failure {last_failure - promoted:+.2f} s from it"
    )
    print(f"answers    {dict(switch.kinds)}")
    print(
        f"in doubt   applied {in_doubt['resolved: applied']}, not applied "
        f"{in_doubt['resolved: not applied']}, unknown (unreachable) "
        f"{in_doubt['still unreachable']}"
    )
    print(
        f"tasks      created {len(ledger.owners)}, deleted {len(ledger.deleted)}, "
        f"writes not applied {len(switch.refused_writes)}, creates not applied "
        f"{len(switch.refused_titles)}, uncertain {len(ledger.uncertain | ledger.maybe_deleted)}"
        f", orphans {len(titles)} (creates without an answer: {len(switch.unknown_titles)})"
    )
    log = server_log.splitlines()
    for failure in wrong[:10]:
        reply = failure.reply
        print(
            f"WRONG +{reply.started - started:.2f}..{reply.ended - started:.2f} s "
            f"{failure.request} sent={json.dumps(failure.sent)} expected {failure.expected} got "
            f"{reply.status or 'no answer'} (Retry-After {reply.retry_after}): "
            f"{failure.problem or reply.text[:300]}"
        )
        for line in log:
            if f'"{reply.request_id}"' in line:
                print(f"  server: {line}")
    for name, ids in (("LOST", lost), ("RESURRECTED", resurrected), ("ORPHAN", unexplained)):
        for task_id in sorted(ids)[:10]:
            stored = {**found["missing"], **found["stale"], **found["resurrected"]}.get(task_id)
            print(f"{name} {task_id}: acknowledged {ledger.states.get(task_id)}; {stored}")
    for leak in list(ledger.leaks.values())[:10]:
        print(f"LEAK {leak}")
    slow = back_after > BACK_WITHIN_S
    if slow:
        print(f"FAILURE: not back to 2xx within {BACK_WITHIN_S:.0f} s of the promotion")
    inconsistent = found["inconsistent"]
    for task_id, problem in list(inconsistent.items())[:10]:
        print(f"INCONSISTENT TREE {task_id}: {problem}")
    bad = (
        wrong
        or lost
        or resurrected
        or unexplained
        or inconsistent
        or ledger.leaks
        or ledger.problems
        or slow
    )
    for problem in ledger.problems:
        print(f"FAILURE {problem}")
    print(
        f"failover: requests={sum(ledger.requests.values())} ok={sum(ledger.ok.values())} "
        f"not_applied={switch.kinds['not_applied']} unknown={switch.kinds['unknown']} "
        f"no_answer={switch.kinds['no_answer']} wrong_answers={len(wrong)} lost={len(lost)} "
        f"resurrected={len(resurrected)} leaks={len(ledger.leaks)} "
        f"inconsistent_trees={len(inconsistent)} gap={gap:.2f}s "
        f"back_after_promotion={back_after:.2f}s "
        f"in_doubt_applied={in_doubt['resolved: applied']} "
        f"in_doubt_not_applied={in_doubt['resolved: not applied']}"
    )
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    """Make the clusters, start the service on them, fail over under load; the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=40.0, help="seconds of load")
    parser.add_argument("--kill-at", type=float, default=None, help="default: duration / 3")
    parser.add_argument("--promote-after", type=float, default=0.0, help="seconds after kill")
    parser.add_argument("--clients", type=int, default=12, help="concurrent client threads")
    parser.add_argument("--users", type=int, default=6, help="distinct users (token subjects)")
    parser.add_argument("--seed", type=int, default=secrets.randbits(32), help="workload seed")
    parser.add_argument("--keep-clusters", action="store_true", help="do not remove them")
    args = parser.parse_args(argv)
    if args.kill_at is None:
        args.kill_at = args.duration / 3
    if os.geteuid() != 0:
        print("failover: run as root (Debian's pg_createcluster and pg_ctlcluster need it)")
        return 2
    # An in-doubt write may wait for the promotion before it is answered.
    soak.run.REQUEST_TIMEOUT_S = 30.0
    signal.signal(signal.SIGTERM, interrupted)
    server = None
    try:
        print(cluster("up"), flush=True)
        database_url = cluster("url")
        server = LiveServer(
            {
                "DATABASE_URL": database_url,
                "DEBUG": "false",
                "BETTER_AUTH_SECRET": secrets.token_urlsafe(48),
                "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
                "WEB_CONCURRENCY": str(WORKERS),
                "GUNICORN_LOG_LEVEL": "info",
                "RATE_LIMIT": "off",  # about durability, not the per-user rate limit
            }
        )
        server.start()
        print(f"failover: service on {server.url}, DATABASE_URL={database_url}", flush=True)
        return failover(server, database_url, args)
    except (ServerFailed, RuntimeError) as exc:
        print(f"failover: {exc}")
        return 1
    except KeyboardInterrupt:
        print("failover: interrupted; stopping the server and removing the clusters")
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if server is not None:
            server.stop()
        if not args.keep_clusters:
            cluster("down")


if __name__ == "__main__":
    sys.exit(main())
