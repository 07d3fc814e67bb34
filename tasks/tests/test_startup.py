"""The service refuses to start with a setting it cannot trust or read (DEBUG off), in one line
and before any worker starts."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

pytestmark = pytest.mark.database_independent

ROOT = Path(settings.BASE_DIR)
BIN = Path(sys.executable).parent
STRIPPED = ("BETTER_AUTH_SECRET", "BETTER_AUTH_URL", "BETTER_AUTH_JWKS_URL", "DEBUG",
            "DJANGO_SECRET_KEY", "DJANGO_SETTINGS_MODULE", "GUNICORN_ALLOW_DEBUG",
            "JWT_ALGORITHMS")  # fmt: skip
SECRET_KEY = "k" * 40 + "0123456789"  # 50 characters, as Django's deployment check asks
GUNICORN = [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "todo_project.wsgi:application"]


def run(command: list[str], timeout: float = 60, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in STRIPPED}
    # An empty value, not an absent one: a developer's .env must not fill the gap.
    clean.update({"BETTER_AUTH_SECRET": "", "BETTER_AUTH_URL": "", "DJANGO_SECRET_KEY": "",
                  "DEBUG": "false", **env})  # fmt: skip
    return subprocess.run(
        command, cwd=ROOT, env=clean, capture_output=True, text=True, timeout=timeout
    )


def manage_check(**env: str) -> subprocess.CompletedProcess:
    return run([str(BIN / "python"), "manage.py", "check"], **env)


def test_without_secret_or_jwks_the_service_refuses_naming_both_variables():
    result = manage_check()
    assert result.returncode != 0
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1
    assert "BETTER_AUTH_SECRET" in message
    assert "BETTER_AUTH_URL" in message


def test_a_short_secret_is_refused():
    result = manage_check(BETTER_AUTH_SECRET="x" * 31)
    assert result.returncode != 0
    assert "BETTER_AUTH_SECRET" in result.stderr


@pytest.mark.parametrize(
    "env",
    [
        {"BETTER_AUTH_SECRET": "x" * 32},
        {"BETTER_AUTH_URL": "https://auth.example.com", "DJANGO_SECRET_KEY": SECRET_KEY},
        {
            "BETTER_AUTH_JWKS_URL": "https://auth.example.com/api/auth/jwks",
            "DJANGO_SECRET_KEY": SECRET_KEY,
        },
        {"DEBUG": "true"},
    ],
    ids=["secret", "better-auth-url", "jwks-url", "debug"],
)
def test_either_mode_or_debug_is_enough_to_start(env):
    result = manage_check(**env)
    assert result.returncode == 0, result.stderr


def test_an_unknown_algorithm_is_refused():
    result = manage_check(BETTER_AUTH_SECRET="x" * 40, JWT_ALGORITHMS="HS256,none")
    assert result.returncode != 0
    assert "JWT_ALGORITHMS" in result.stderr


@pytest.mark.live
def test_gunicorn_exits_at_once_instead_of_restarting_workers():
    started = time.monotonic()
    result = run(GUNICORN, timeout=30, PORT="0")
    assert result.returncode != 0
    assert time.monotonic() - started < 20
    assert "BETTER_AUTH_SECRET" in result.stderr
    assert "Booting worker" not in result.stderr


@pytest.mark.parametrize("rate", ["600/minute", "5/s", "off", "OFF"])
def test_a_readable_rate_limit_passes_the_checks(rate):
    assert manage_check(BETTER_AUTH_SECRET="x" * 40, RATE_LIMIT=rate).returncode == 0


@pytest.mark.parametrize("rate", ["600", "x/minute", "600/fortnight", ""])
def test_an_unreadable_rate_limit_is_refused_at_start_up(rate):
    result = manage_check(BETTER_AUTH_SECRET="x" * 40, RATE_LIMIT=rate)
    assert result.returncode != 0
    assert "tasks.E001" in result.stderr


@pytest.mark.live
def test_gunicorn_refuses_a_port_another_server_listens_on():
    """Workers listen with SO_REUSEPORT, which would let a second server share a port that one
    already serves (even one that set SO_REUSEPORT too): the master checks first."""
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = run(
            GUNICORN, timeout=30, PORT=str(taken.getsockname()[1]), BETTER_AUTH_SECRET="x" * 40
        )
    assert result.returncode != 0
    assert "cannot listen on 127.0.0.1" in result.stderr
    assert "Booting worker" not in result.stderr


def assert_refused_in_one_line(result: subprocess.CompletedProcess, *names: str) -> None:
    assert result.returncode != 0
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert all(name in message for name in names), message
    assert "Booting worker" not in message


def test_jwks_mode_without_a_django_secret_key_is_refused():
    """The key that signs cursors and sync tokens must not be derivable from public settings
    (the database URL and the JWKS URL)."""
    result = manage_check(BETTER_AUTH_URL="https://auth.example.com")
    assert_refused_in_one_line(result, "DJANGO_SECRET_KEY")


@pytest.mark.parametrize("key", ["too-short", "a" * 60], ids=["short", "one-character"])
def test_a_weak_django_secret_key_is_refused(key):
    result = manage_check(BETTER_AUTH_URL="https://auth.example.com", DJANGO_SECRET_KEY=key)
    assert_refused_in_one_line(result, "DJANGO_SECRET_KEY")


def test_the_key_derived_from_the_shared_secret_passes_the_deployment_checks():
    result = run(
        [str(BIN / "python"), "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        BETTER_AUTH_SECRET="s" * 16 + "0123456789abcdef",
        ALLOWED_HOSTS="api.example.com",
        SECURE_SSL_REDIRECT="true",
        SECURE_HSTS_SECONDS="31536000",
        SECURE_HSTS_INCLUDE_SUBDOMAINS="true",
        SECURE_HSTS_PRELOAD="true",
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("value", ["true", "false", "1", "0", "yes", "no", "on", "off", "TRUE"])
def test_booleans_take_the_usual_spellings(value):
    result = manage_check(BETTER_AUTH_SECRET="x" * 40, DEBUG=value, CONN_HEALTH_CHECKS=value)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "env",
    [
        {"DEBUG": "maybe"},
        {"DEBUG": ""},
        {"SECURE_SSL_REDIRECT": "yes please"},
        {"JWT_LEEWAY_SECONDS": "abc"},
        {"JWKS_CACHE_SECONDS": "10m"},
        {"JWKS_FETCH_TIMEOUT_SECONDS": "3s"},
        {"SECURE_HSTS_SECONDS": "-1"},
        {"MAX_TASKS_PER_USER": "1e5"},
        {"DATABASE_URL": "postgres//root:hunter2@127.0.0.1:5432/tasks"},
        {"DATABASE_URL": "postgres://root:hunter2@127.0.0.1:port/tasks"},
        {"DATABASE_URL": "mysql://root:hunter2@127.0.0.1/tasks"},
        {"LOG_LEVEL": "LOUD"},
        {"BETTER_AUTH_URL": "auth.example.com"},
        {"BETTER_AUTH_JWKS_URL": "https:///api/auth/jwks"},
        {"BETTER_AUTH_JWKS_URL": "ftp://auth.example.com/jwks"},
    ],
    ids=lambda env: "-".join(f"{k}={v}" for k, v in env.items()),
)
def test_an_unreadable_setting_is_refused_naming_it(env):
    result = manage_check(BETTER_AUTH_SECRET="x" * 40, **env)
    (name,) = env
    assert_refused_in_one_line(result, name)
    assert "hunter2" not in result.stderr


@pytest.mark.live
@pytest.mark.parametrize(
    "env",
    [
        {"RATE_LIMIT": "lots"},
        {"DATABASE_URL": "postgres//root@127.0.0.1:5432/tasks"},
        {"DEBUG": "maybe"},
        {"JWT_LEEWAY_SECONDS": "abc"},
        {"JWKS_MISS_REFETCH_SECONDS": "soon"},
        {"GUNICORN_LOG_LEVEL": "loud"},
        {"GUNICORN_THREADS": "0"},
    ],
    ids=lambda env: "-".join(f"{k}={v}" for k, v in env.items()),
)
def test_the_gunicorn_master_refuses_an_unreadable_setting_before_forking(env):
    result = run(GUNICORN, timeout=30, PORT="0", BETTER_AUTH_SECRET="x" * 40, **env)
    (name,) = env
    assert_refused_in_one_line(result, name)


@pytest.mark.live
def test_the_gunicorn_master_refuses_jwks_mode_without_a_django_secret_key():
    result = run(GUNICORN, timeout=30, PORT="0", BETTER_AUTH_URL="https://auth.example.com")
    assert_refused_in_one_line(result, "DJANGO_SECRET_KEY")


@pytest.mark.live
def test_gunicorn_refuses_debug_unless_told_explicitly():
    """A development `.env` (DEBUG=true, from `make run`) must not turn a gunicorn started from
    the same checkout into a debug server."""
    result = run(GUNICORN, timeout=30, PORT="0", BETTER_AUTH_SECRET="x" * 40, DEBUG="true")
    assert_refused_in_one_line(result, "DEBUG", "GUNICORN_ALLOW_DEBUG")
