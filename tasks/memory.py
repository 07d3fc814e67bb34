"""The garbage collector, as the WSGI entry point sets it up for every server (gunicorn,
granian, runserver).

Each request leaves reference cycles behind (DRF links a view to its request, response and
bound action methods, a serializer to its data), and with them the page's rows and rendered body:
only the cycle collector frees them, and its full collections are rare. Between two of them a
worker's heap grows by what the cycles hold, and stays that size. Here what the application
loaded is frozen first (out of the collector's reach, so that forked workers do not copy those
pages by collecting them), then a full collection runs every COLLECT_EVERY finished requests: it
walks only what requests left (docs/performance.md has the figures).
"""

import gc
import itertools
from typing import Any

from django.core.signals import request_finished

COLLECT_EVERY = 10

_finished = itertools.count(1)


def freeze_then_collect_every_few_requests() -> None:
    """Called once the application is loaded (todo_project.wsgi)."""
    gc.collect()
    gc.freeze()
    request_finished.connect(_collect_now_and_then, dispatch_uid="tasks.memory")


def _collect_now_and_then(**kwargs: Any) -> None:
    if next(_finished) % COLLECT_EVERY == 0:
        gc.collect()
