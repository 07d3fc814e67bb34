"""gunicorn settings for production (and the benchmark). Each value can be overridden by env."""

import gc
import os
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
# Two workers per CPU, two threads each. Measured on 2 vCPUs (wrk, 16 keep-alive connections):
# with only two workers one of them can end up holding most connections and its GIL caps the
# whole service (GET 821-2046 req/s from run to run); four workers hold steady (1849-2065).
workers = int(os.environ.get("WEB_CONCURRENCY", 2 * len(os.sched_getaffinity(0))))
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gthread")
threads = int(os.environ.get("GUNICORN_THREADS", "2"))
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


def when_ready(server):
    """In the master, after the app is loaded and before any worker is forked."""
    # Move everything loaded so far out of the garbage collector's reach: workers inherit it
    # as a permanent generation, so their full collections scan only what requests create
    # (and do not touch, hence copy, the shared pages).
    gc.collect()
    gc.freeze()
