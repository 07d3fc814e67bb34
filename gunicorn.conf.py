"""gunicorn settings for production (and the benchmark). Each value can be overridden by env."""

import gc
import os
import socket
import sys

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "todo_project.settings")
try:
    settings.INSTALLED_APPS  # noqa: B018 -- loads and validates the settings
except ImproperlyConfigured as exc:
    # One line and a non-zero exit from the master, before any worker starts.
    sys.exit(f"gunicorn: configuration error: {exc}")

bind = os.environ.get("GUNICORN_BIND", f"127.0.0.1:{os.environ.get('PORT', '8000')}")
# One worker per CPU, two threads each, each worker on its own listening socket (SO_REUSEPORT:
# the kernel spreads new connections over the workers evenly). Measured on 2 vCPUs with wrk's 16
# keep-alive connections, CPU per request of the workers and req/s, rounds interleaved: on one
# shared socket, whichever worker woke first took the connections (runs where two of four
# workers served nothing, or one of two served most); four workers (2 per CPU) spent 1.2-1.6x
# the CPU per request of two (more processes than cores trade the CPU back and forth), and two
# workers with their own sockets served GET 1,420-1,690 req/s, p99 19-24 ms, against 1,050-1,350
# req/s, p99 29-50 ms, for four on one socket; three threads a worker did not pay.
workers = int(os.environ.get("WEB_CONCURRENCY", len(os.sched_getaffinity(0))))
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gthread")
threads = int(os.environ.get("GUNICORN_THREADS", "2"))
reuse_port = True
# Load the app in the master: a bad configuration stops the master at once (no worker restart
# loop), and workers share the imported code's memory.
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
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "warning")


def on_starting(server):
    """In the master, before any worker binds: with SO_REUSEPORT a second server started on a
    port that one is already serving would share its connections instead of failing."""
    for address in server.cfg.address:
        if isinstance(address, tuple):  # host and port (not a Unix socket)
            family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
            try:
                socket.create_server(address, family=family).close()
            except OSError as exc:
                sys.exit(f"gunicorn: cannot listen on {address[0]}:{address[1]}: {exc.strerror}")


def when_ready(server):
    """In the master, after the app is loaded and before any worker is forked."""
    # Move everything loaded so far out of the garbage collector's reach: workers inherit it
    # as a permanent generation, so their full collections scan only what requests create
    # (and do not touch, hence copy, the shared pages).
    gc.collect()
    gc.freeze()
