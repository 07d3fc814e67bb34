"""gunicorn settings for production (and the benchmark). Each value can be overridden by env.

The master checks the whole configuration before it binds or forks: the settings, Django's
system checks and this file's own variables. Any error stops it with one line and a non-zero
exit; there is no worker restart loop and no 500 on every route.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from typing import TYPE_CHECKING

import django
from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from todo_project.environment import Env
from todo_project.request_body import must_close

if TYPE_CHECKING:
    from gunicorn.arbiter import Arbiter
    from gunicorn.http.message import Request
    from gunicorn.workers.base import Worker

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "todo_project.settings")
try:
    django.setup()  # loads and validates the settings, configures the JSON logging
    errors = [message for message in checks.run_checks() if message.is_serious()]
    if errors:
        raise ImproperlyConfigured("; ".join(f"{e.msg} ({e.id})" for e in errors))

    env = Env()
    if settings.DEBUG and not env.bool("GUNICORN_ALLOW_DEBUG", default=False):
        # A development `.env` (`make run` writes DEBUG=true) must not turn a production
        # server started from the same checkout into a debug one without a word.
        raise ImproperlyConfigured(
            "DEBUG is on (from the environment or .env): gunicorn serves a development "
            "configuration only with GUNICORN_ALLOW_DEBUG=true."
        )
    bind = env.str("GUNICORN_BIND", default=f"127.0.0.1:{env.int('PORT', default=8000)}")
    # One worker per CPU, two threads each, each worker on its own listening socket
    # (SO_REUSEPORT: the kernel spreads new connections over the workers evenly; on one shared
    # socket whichever worker woke first took the connections). More processes than cores trade
    # the CPU back and forth; docs/performance.md has the measurements behind each choice.
    workers = env.int("WEB_CONCURRENCY", default=len(os.sched_getaffinity(0)), minimum=1)
    worker_class = env.str("GUNICORN_WORKER_CLASS", default="gthread")
    threads = env.int("GUNICORN_THREADS", default=2, minimum=1)
    loglevel = env.str("GUNICORN_LOG_LEVEL", default="warning").upper()
    if loglevel not in settings.LOG_LEVELS:
        raise ImproperlyConfigured(
            f"GUNICORN_LOG_LEVEL: {loglevel!r} is not one of {', '.join(settings.LOG_LEVELS)}."
        )
    # gunicorn believes X-Forwarded-Proto, X-Forwarded-Ssl and X-Forwarded-Protocol (the
    # request came over HTTPS) only from these addresses: by default from nobody (gunicorn's
    # own default trusts 127.0.0.1, so anything on the host could skip the HTTPS redirect).
    # Behind a proxy, TRUST_X_FORWARDED_PROTO=true lets Django read X-Forwarded-Proto instead.
    forwarded_allow_ips = env.str("FORWARDED_ALLOW_IPS", default="")
except ImproperlyConfigured as exc:
    sys.exit(f"gunicorn: configuration error: {exc}")

reuse_port = True
# Load the app in the master: workers share the imported code's memory.
preload_app = True
keepalive = 5
graceful_timeout = 10
timeout = 30
# The service writes its own JSON access log (tasks.middleware).
accesslog = None
# gunicorn 27 puts every master's control socket at ~/.gunicorn/gunicorn.ctl: several instances
# on one host (two ports, tests, the benchmark) would fight over it, and nothing here uses it.
control_socket_disable = True
errorlog = "-"
# gunicorn's own messages (its error log) as the service's JSON lines: its logger hands its
# records to the root logger's JSON handler instead of printing its text format.
logconfig_dict = {
    **settings.LOGGING,
    "loggers": {
        **settings.LOGGING["loggers"],
        "gunicorn.error": {"level": loglevel, "propagate": True},
    },
}
start_log = logging.getLogger("tasks.server")


def on_starting(server: Arbiter) -> None:
    """In the master, before any worker binds: with SO_REUSEPORT a second server started on a
    port that one is already serving would share its connections instead of failing."""
    for address in server.cfg.address:
        if isinstance(address, tuple):  # host and port (not a Unix socket)
            family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
            try:
                socket.create_server(address, family=family).close()
            except OSError as exc:
                sys.exit(f"gunicorn: cannot listen on {address[0]}:{address[1]}: {exc.strerror}")


def when_ready(server: Arbiter) -> None:
    """In the master, after the app is loaded and before any worker is forked."""
    auth = [
        mode
        for mode, configured in (
            ("shared secret", settings.BETTER_AUTH_SECRET),
            ("jwks", settings.BETTER_AUTH_JWKS_URL),
        )
        if configured
    ]
    start_log.info(
        "serving",
        extra={
            "address": ",".join(server.cfg.bind),
            "debug": settings.DEBUG,
            "database": connection.vendor,
            "auth": " and ".join(auth) or "none",
        },
    )


def pre_request(worker: Worker, req: Request) -> None:
    """A body that may be longer than the service reads or discards: the answer says
    `Connection: close`, and gunicorn closes the connection after it (todo_project.request_body).
    """
    if must_close(req.headers):
        req.force_close()
