"""Per-user rate limits, counted atomically where every gunicorn worker sees the same count.

DRF's stock cache throttle reads a history, then writes it back: concurrent requests all read
the same history and slip past the limit. Here each request is one Redis `INCR` on a fixed
window's counter (with its expiry set in the same round trip), so the limit holds across
workers and hosts. Without `REDIS_URL` the counter lives in each process's memory: the limit is
then per worker (documented in the README).
"""

from __future__ import annotations

import logging
import math
import time
from functools import cache

from django.conf import settings
from django.core.cache import caches
from rest_framework.throttling import BaseThrottle

logger = logging.getLogger(__name__)

WINDOW_SECONDS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60,
                  "h": 3600, "hour": 3600, "d": 86400, "day": 86400}  # fmt: skip


class CounterUnavailable(Exception):
    """Redis did not answer."""


@cache
def parse_rate(rate: str) -> tuple[int, int] | None:
    """`"600/minute"` → (600, 60); `"off"` → None. Raises ValueError for anything else (the
    `tasks.E001` system check reports it at start-up)."""
    if rate.strip().lower() == "off":
        return None
    count, _, period = rate.partition("/")
    if not count.strip().isdigit() or period.strip().lower() not in WINDOW_SECONDS:
        raise ValueError(f"{rate!r} is not COUNT/PERIOD (e.g. 600/minute) or off")
    return int(count), WINDOW_SECONDS[period.strip().lower()]


@cache
def redis_client():
    """A client for `REDIS_URL`, or None. redis-py is imported only then: it adds about 20 MB
    to every worker."""
    if not settings.REDIS_URL:
        return None
    import redis

    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=0.5, socket_connect_timeout=0.5)


def count_hit(key: str, window: int) -> int:
    """Add one to `key`'s counter, which expires with its window; returns the new count."""
    client = redis_client()
    if client is None:
        local = caches["default"]
        if local.add(key, 1, timeout=window):
            return 1
        return local.incr(key)
    import redis  # already loaded by redis_client()

    pipeline = client.pipeline()
    pipeline.incr(key)
    pipeline.expire(key, window, nx=True)
    try:
        count, _ = pipeline.execute()
    except redis.RedisError as exc:
        raise CounterUnavailable(str(exc)) from exc
    return count


class UserRateThrottle(BaseThrottle):
    """`RATE_LIMIT` requests per window per user (the token's `sub`)."""

    policy_name = "user"

    def allow_request(self, request, view) -> bool:
        rate = parse_rate(settings.RATE_LIMIT)
        if rate is None or request.user is None:
            return True
        limit, window = rate
        now = time.time()
        window_start = int(now // window) * window
        reset = max(1, math.ceil(window_start + window - now))
        try:
            count = count_hit(f"ratelimit:{request.user.id}:{window}:{window_start}", window)
        except CounterUnavailable as exc:
            # Fail open: a cache outage must not take the API down with it.
            logger.warning("Rate limit counter unavailable: %s", exc)
            return True
        request.rate_limit_headers = {
            "RateLimit-Policy": f'"{self.policy_name}";q={limit};w={window}',
            "RateLimit": f'"{self.policy_name}";r={max(0, limit - count)};t={reset}',
        }
        self.retry_after = reset
        return count <= limit

    def wait(self) -> int:
        return self.retry_after
