"""The service refuses to start without a way to check tokens (DEBUG off), in one line."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(settings.BASE_DIR)
BIN = Path(sys.executable).parent
STRIPPED = ("BETTER_AUTH_SECRET", "BETTER_AUTH_URL", "BETTER_AUTH_JWKS_URL", "DEBUG",
            "DJANGO_SETTINGS_MODULE", "JWT_ALGORITHMS")  # fmt: skip


def run(command: list[str], timeout: float = 60, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in STRIPPED}
    # An empty value, not an absent one: a developer's .env must not fill the gap.
    clean.update({"BETTER_AUTH_SECRET": "", "BETTER_AUTH_URL": "", "DEBUG": "false", **env})
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
        {"BETTER_AUTH_URL": "https://auth.example.com"},
        {"BETTER_AUTH_JWKS_URL": "https://auth.example.com/api/auth/jwks"},
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
    result = run(
        [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "todo_project.wsgi:application"],
        timeout=30,
        PORT="0",
    )
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
            [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "todo_project.wsgi:application"],
            timeout=30,
            PORT=str(taken.getsockname()[1]),
            BETTER_AUTH_SECRET="x" * 40,
        )
    assert result.returncode != 0
    assert "cannot listen on 127.0.0.1" in result.stderr
    assert "Booting worker" not in result.stderr
