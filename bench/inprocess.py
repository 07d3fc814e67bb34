"""Python time per request, route by route, with no server or network in between.

Calls the WSGI application in this process against a fresh PostgreSQL database (100 tasks), as
gunicorn would, and prints wall and CPU microseconds per request (the fastest of ten batches: on
a shared machine the mean mostly measures the neighbours). Where wrk measures the service, this
measures the code: use it to see what a change to the request path costs.

    .venv/bin/python bench/inprocess.py 2>/dev/null            # every route, 2,000 requests each
    .venv/bin/python bench/inprocess.py get --profile 2>/dev/null   # and cProfile's top functions

(stderr carries the access log, one line per request, as in production.)
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import secrets
import sys
import time
from pathlib import Path

import psycopg

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "routes",
        nargs="*",
        help="401 list next get create put toggle (default: all)",
    )
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--profile", action="store_true", help="cProfile each route afterwards")
    parser.add_argument("--sort", default="cumulative", help="the profile's order (e.g. tottime)")
    parser.add_argument("--callers", metavar="FUNCTION", help="and who calls FUNCTION, how often")
    parser.add_argument("--callees", metavar="FUNCTION", help="and what FUNCTION calls")
    parser.add_argument("--only", default="", help="list only the functions matching this regex")
    parser.add_argument("--pg", default="postgres://root@127.0.0.1:5432", help="server URL")
    args = parser.parse_args()

    database = "bench_inprocess"
    with psycopg.connect(f"{args.pg}/postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {database}")
    os.environ.update(
        DJANGO_SETTINGS_MODULE="todo_project.settings",
        DATABASE_URL=f"{args.pg}/{database}",
        BETTER_AUTH_SECRET=secrets.token_urlsafe(48),
        RATE_LIMIT="1000000000/minute",
        DATABASE_PREPARED_STATEMENTS="true",
    )
    import django

    django.setup()
    from django.core.management import call_command

    from tasks import services
    from tasks.authentication import issue_token
    from tasks.models import Task

    call_command("migrate", verbosity=0)
    for n in range(100):
        services.task_create(user_id="alice", fields={"title": f"task {n}"}, max_tasks=1000)
    task_id = Task.all_objects.for_user("alice").values_list("id", flat=True).first()
    from todo_project.wsgi import application  # what the servers serve

    token = issue_token("alice", ttl_seconds=3600)

    def environ(method: str, path: str, body: bytes = b"", token: str | None = token) -> dict:
        path, _, query = path.partition("?")
        env = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query,
               "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "HTTP_HOST": "127.0.0.1:8000",
               "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
               "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body))}  # fmt: skip
        if body:
            env["CONTENT_TYPE"] = "application/json"
        if token:
            env["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        return env

    one = f"/v1/tasks/{task_id}"
    first_page = b"".join(application(environ("GET", "/v1/tasks"), lambda *args: None))
    next_page = json.loads(first_page)["next"].removeprefix("http://127.0.0.1:8000")
    routes = {
        "401": lambda: environ("GET", "/v1/tasks", token=None),
        "list": lambda: environ("GET", "/v1/tasks"),
        "next": lambda: environ("GET", next_page),
        "get": lambda: environ("GET", one),
        "create": lambda: environ("POST", "/v1/tasks", b'{"title": "created"}'),
        "put": lambda: environ("PUT", one, b'{"title": "x", "details": "y", "completed": false}'),
        "toggle": lambda: environ("POST", f"{one}/toggle"),
    }
    statuses = []

    def serve(envs: list[dict]) -> None:
        for env in envs:
            body = application(env, lambda status, headers, exc_info=None: statuses.append(status))
            b"".join(body)
            getattr(body, "close", lambda: None)()  # optional in WSGI

    for name in args.routes or routes:
        serve([routes[name]() for _ in range(200)])  # warm-up: first compilations, connections
        batch = max(args.requests // 10, 1)
        best_wall = best_cpu = float("inf")
        for _ in range(10):
            envs = [routes[name]() for _ in range(batch)]
            wall, cpu = time.perf_counter(), time.process_time()
            serve(envs)
            best_wall = min(best_wall, time.perf_counter() - wall)
            best_cpu = min(best_cpu, time.process_time() - cpu)
        per = 1e6 / batch
        wall, cpu = best_wall * per, best_cpu * per
        print(f"{name:7} {statuses[-1]:18} wall {wall:6.0f} us   CPU {cpu:6.0f} us")
        if args.profile:
            profile = cProfile.Profile()
            profile.runcall(serve, [routes[name]() for _ in range(args.requests)])
            stats = pstats.Stats(profile).sort_stats(args.sort)
            stats.print_stats(*([args.only] if args.only else []), 30)
            if args.callers:
                stats.print_callers(args.callers)
            if args.callees:
                stats.print_callees(args.callees)
        Task.objects.filter(title="created").delete()


if __name__ == "__main__":
    main()
