"""Start the Tasks API for the fuzzer: a fresh PostgreSQL database, migrate, gunicorn.

Run with the service's own interpreter (`.venv/bin/python fuzz/launch.py STATE_DIR`). It writes
`STATE_DIR/server.env` (URL, tokens) and `STATE_DIR/auth.json` (a Web Fuzzing Commons auth document
with two users, for schemathesis' `object_level_authorization` check), then serves until it gets
SIGTERM/SIGINT or its parent exits, and stops gunicorn and drops the database on the way out.
Exit 2 when DATABASE_URL is not PostgreSQL (the fuzz run is the production configuration).
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import signal
import sys
import threading
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

TOKEN_TTL_SECONDS = 24 * 3600  # longer than any fuzz run
FUZZ_USER = "fuzz-user-a"
OTHER_USER = "fuzz-user-b"


def main() -> int:
    state_dir = Path(sys.argv[1]).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    import environ

    database_url = os.environ.get("DATABASE_URL", "")
    try:
        engine = environ.Env.db_url_config(database_url)["ENGINE"] if database_url else ""
    except Exception:  # any unparsable URL is "not PostgreSQL"
        engine = ""
    if engine != "django.db.backends.postgresql":
        print(
            "fuzz: DATABASE_URL must name a PostgreSQL database (postgres://user@host:port/db); "
            f"got {database_url or 'nothing'}",
            file=sys.stderr,
        )
        return 2

    # The production configuration, with a throwaway secret. The settings module reads these
    # (real environment variables win over a developer's .env).
    secret = secrets.token_urlsafe(48)
    server_env = {
        "DEBUG": "false",
        "BETTER_AUTH_SECRET": secret,
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
        "BETTER_AUTH_URL": None,
        "BETTER_AUTH_JWKS_URL": None,
        "JWT_ISSUER": None,
        "JWT_AUDIENCE": None,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        # The rate limiter (when there is one) must not answer 429 to the fuzzer.
        "RATE_LIMIT": "1000000/s",
        "RATE_LIMIT_ENABLED": "false",
        "GUNICORN_LOG_LEVEL": "warning",
        "WEB_CONCURRENCY": os.environ.get("WEB_CONCURRENCY", "2"),
        "GUNICORN_THREADS": os.environ.get("GUNICORN_THREADS", "4"),
    }
    for name, value in server_env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    os.environ["DJANGO_SETTINGS_MODULE"] = "todo_project.settings"

    import django

    django.setup()

    from tasks.authentication import issue_token
    from tasks.tests.live_server import LiveServer, fresh_database_url

    url, drop = fresh_database_url(state_dir)
    server = LiveServer({**server_env, "DATABASE_URL": url}, startup_timeout=60)
    parent = os.getppid()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        server.start()
        token_a = issue_token(FUZZ_USER, ttl_seconds=TOKEN_TTL_SECONDS)
        token_b = issue_token(OTHER_USER, ttl_seconds=TOKEN_TTL_SECONDS)
        auth = {
            "schemaVersion": "0.2.0",
            "auth": [
                {
                    "name": name,
                    "fixedHeaders": [{"name": "Authorization", "value": f"Bearer {token}"}],
                }
                for name, token in ((FUZZ_USER, token_a), (OTHER_USER, token_b))
            ],
        }
        (state_dir / "auth.json").write_text(json.dumps(auth, indent=2))
        values = {
            "FUZZ_URL": server.url,
            "FUZZ_DATABASE_URL": url,
            "FUZZ_TOKEN": token_a,
            "FUZZ_OTHER_TOKEN": token_b,
            "FUZZ_USER": FUZZ_USER,
            "FUZZ_OTHER_USER": OTHER_USER,
        }
        ready = state_dir / "server.env"
        tmp = ready.with_suffix(".tmp")
        tmp.write_text("".join(f"{k}={shlex.quote(v)}\n" for k, v in values.items()))
        tmp.rename(ready)  # run.sh waits for this file: it appears complete or not at all
        print(f"fuzz: serving {server.url} (database {url.rsplit('/', 1)[-1]})", flush=True)

        # Serve until told to stop, or until the parent (run.sh) goes away.
        while not stop.wait(0.5):
            if os.getppid() != parent:
                break
            if server.process.poll() is not None:
                print("fuzz: gunicorn exited unexpectedly", file=sys.stderr)
                break
        return 0
    finally:
        server.stop()
        log = server.output()
        (state_dir / "server.log").write_text(log)
        drop()


if __name__ == "__main__":
    sys.exit(main())
