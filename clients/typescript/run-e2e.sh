#!/usr/bin/env bash
# The client's tests against the real thing: a Better Auth server (e2e/betterauth/server.mjs, its
# jwt plugin, EdDSA) and the API under gunicorn in JWKS mode (BETTER_AUTH_URL set, no shared
# secret, DEBUG off) on a fresh database, then `npm test` here with TASKS_API_URL and
# BETTER_AUTH_URL pointing at them. Both servers are stopped and the database dropped afterwards.
#
# Needs: `npm ci` here and in e2e/betterauth, the project's .venv, and DATABASE_URL naming a
# PostgreSQL server (a database `tasks_live_<hex>` is created on it); without DATABASE_URL the
# API runs on a temporary SQLite file.
#
#   DATABASE_URL=postgres://root@127.0.0.1:5432/test ./run-e2e.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
python="${PYTHON:-$root/.venv/bin/python}"
cd "$root"
exec "$python" - "$here" <<'PY'
import os
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

here = Path(sys.argv[1])
root = here.parents[1]
sys.path[:0] = [str(root), str(root / "e2e" / "betterauth")]

import client as betterauth  # e2e/betterauth/client.py
from tasks.tests.live_server import LiveServer, ServerFailed, fresh_database_url

with tempfile.TemporaryDirectory(prefix="tasks-client-e2e-") as tmp:
    database_url, drop = fresh_database_url(Path(tmp))
    auth = api = None
    try:
        port = betterauth.free_port()
        auth = betterauth.start_auth_server(port, Path(tmp) / "auth.db", alg="EdDSA")
        auth_url = betterauth.auth_base_url(port)
        env = {
            "DATABASE_URL": database_url,
            "DEBUG": "false",
            "BETTER_AUTH_URL": auth_url,
            "BETTER_AUTH_SECRET": "",  # JWKS mode alone, as with a stock Better Auth set-up
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
            "REDIS_URL": os.environ.get("TEST_REDIS_URL"),  # unset: each worker keeps its own keys
        }
        try:
            api = LiveServer(env).start()
        except ServerFailed as error:
            sys.exit(f"run-e2e: the API did not start: {error}")
        print(f"run-e2e: Better Auth at {auth_url}, the API at {api.url}", flush=True)
        test = subprocess.run(
            ["npm", "test", "--silent"],
            cwd=here,
            env={**os.environ, "TASKS_API_URL": api.url, "BETTER_AUTH_URL": auth_url, "REQUIRE_E2E": "1"},
            check=False,
        )
        sys.exit(test.returncode)
    finally:
        if api is not None:
            api.stop()
        if auth is not None:
            betterauth.stop_auth_server(auth)
        drop()
PY
