"""Run the service as a real, separate process, the production way, for live tests.

`LiveServer` runs `manage.py migrate --noinput`, then `gunicorn -c gunicorn.conf.py
todo_project.wsgi:application` from the project root, on a free loopback port, and waits for
`/healthz`. `fresh_database_url` gives it a database of its own: a new PostgreSQL database when the
suite itself runs on PostgreSQL, a SQLite file otherwise.

    url, drop = fresh_database_url(tmp_path)
    try:
        env = {"DATABASE_URL": url, "DEBUG": "false", "BETTER_AUTH_SECRET": secret}
        with LiveServer(env) as server:
            urllib.request.urlopen(f"{server.url}/healthz")
    finally:
        drop()
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit, urlunsplit

import environ

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN_DIR = Path(sys.executable).parent


class ServerFailed(RuntimeError):
    """The service did not start: `returncode` (None if it hung) and its captured `output`."""

    def __init__(self, message: str, returncode: int | None, output: str) -> None:
        super().__init__(f"{message}\n--- output ---\n{output}")
        self.returncode = returncode
        self.output = output


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """The service under gunicorn in its own process group, at `url` (`http://127.0.0.1:PORT`).

    `env` is added to `os.environ` for the child (a value of None removes the variable).
    `DJANGO_SETTINGS_MODULE` is the production one unless given (pytest-django sets the test one
    in this process). What the environment leaves unset falls back to the project's `.env`, if
    there is one, as in production: pass `DEBUG` explicitly (with DEBUG on, gunicorn starts only
    with `GUNICORN_ALLOW_DEBUG=true`).
    """

    def __init__(
        self,
        env: Mapping[str, str | None] | None = None,
        *,
        port: int | None = None,
        migrate: bool = True,
        startup_timeout: float = 30.0,
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.migrate = migrate
        self.startup_timeout = startup_timeout
        self.env = {**os.environ, "DJANGO_SETTINGS_MODULE": "todo_project.settings"}
        for name, value in {**(env or {}), "PORT": str(self.port)}.items():
            if value is None:
                self.env.pop(name, None)
            else:
                self.env[name] = value
        self.process: subprocess.Popen | None = None
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 -- closed in stop()

    def output(self) -> str:
        """Everything migrate and gunicorn have written so far (stdout and stderr)."""
        # pread: gunicorn is still appending to the file, so never move the shared offset.
        descriptor = self._log.fileno()
        return os.pread(descriptor, os.fstat(descriptor).st_size, 0).decode(errors="replace")

    def start(self) -> LiveServer:
        """Migrate, start gunicorn and wait until `/healthz` answers 200.

        Raises `ServerFailed` if migrate fails, gunicorn exits, or nothing answers in time.
        """
        if self.migrate:
            migrate = subprocess.run(
                [str(BIN_DIR / "python"), "manage.py", "migrate", "--noinput"],
                cwd=REPO_ROOT,
                env=self.env,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                timeout=120,
                check=False,
            )
            if migrate.returncode != 0:
                raise ServerFailed("migrate failed", migrate.returncode, self.output())
        self.process = subprocess.Popen(
            [str(BIN_DIR / "gunicorn"), "-c", "gunicorn.conf.py", "todo_project.wsgi:application"],
            cwd=REPO_ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() signals master and workers
        )
        try:
            self._wait_until_healthy()
        except BaseException:  # also Ctrl-C: never leave a gunicorn behind
            self.stop()
            raise
        return self

    def _wait_until_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            returncode = self.process.poll()
            if returncode is not None:
                raise ServerFailed("gunicorn exited", returncode, self.output())
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        raise ServerFailed(
            f"/healthz did not answer within {self.startup_timeout:.0f} s", None, self.output()
        )

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM the process group, wait up to `timeout` s, then SIGKILL it. The exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.process.wait()
        return self.process.returncode

    def _signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
        self._log.close()


def fresh_database_url(directory: Path) -> tuple[str, Callable[[], None]]:
    """A new, empty database for a live server, and the function that removes it.

    When this process's `DATABASE_URL` names PostgreSQL, a database `tasks_live_<hex>` is created
    on that server (and dropped, with FORCE, by the cleanup); otherwise a SQLite file in
    `directory` (which the cleanup leaves to pytest's tmp_path).
    """
    suite_url = os.environ.get("DATABASE_URL", "")
    if not suite_url or environ.Env.db_url_config(suite_url)["ENGINE"] != (
        "django.db.backends.postgresql"
    ):
        return f"sqlite:///{directory / 'live.sqlite3'}", lambda: None

    import psycopg  # only needed (and only installed for sure) on the PostgreSQL run

    name = f"tasks_live_{uuid.uuid4().hex[:12]}"
    parts = urlsplit(suite_url)
    config = environ.Env.db_url_config(suite_url)
    conninfo = {
        "host": config["HOST"] or None,
        "port": config["PORT"] or None,
        "user": config["USER"] or None,
        "password": config["PASSWORD"] or None,
        "dbname": "postgres",
        **config.get("OPTIONS", {}),
    }

    def execute(sql: str) -> None:
        with psycopg.connect(autocommit=True, **conninfo) as connection:
            connection.execute(sql)

    execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(parts._replace(path=f"/{name}")), lambda: execute(
        f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
    )
