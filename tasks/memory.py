"""Each request leaves reference cycles behind (DRF links a view to its request, response and
bound action methods, a serializer to its data), and with them the page's rows and rendered body:
only the cycle collector frees them, and its full collections are rare. Between two of them a
worker's heap grows by what the cycles hold, and stays that size. A full collection every
COLLECT_EVERY requests keeps it small at no measured cost: what the server preloaded is frozen
(gunicorn.conf.py), so a collection walks only what requests left (docs/performance.md).
"""

import gc
import itertools
from typing import Any

COLLECT_EVERY = 10

_finished = itertools.count(1)


def collect_now_and_then(**kwargs: Any) -> None:
    """A `request_finished` receiver (every server sends it when a response is closed)."""
    if next(_finished) % COLLECT_EVERY == 0:
        gc.collect()
