"""Per-user rate limits, counted atomically where every gunicorn worker sees the same count.

DRF's stock cache throttle reads a history, then writes it back: concurrent requests all read
the same history and slip past the limit. Here each request is one Redis `INCRBY` on a fixed
window's counter (with its expiry set in the same round trip), so the limit holds across
workers and hosts. Without `REDIS_URL`, or while Redis does not answer, the counter lives in
each process's memory: the limit is then per worker (documented in docs/reliability.md).
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from functools import cache
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.base import BaseCache
from django.core.cache.backends.locmem import LocMemCache
from rest_framework.exceptions import Throttled
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

if TYPE_CHECKING:
    import redis

logger = logging.getLogger(__name__)

WINDOW_SECONDS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60,
                  "h": 3600, "hour": 3600, "d": 86400, "day": 86400}  # fmt: skip


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
def redis_client() -> redis.Redis | None:
    """A client for `REDIS_URL`, or None. redis-py is imported only then: it adds about 20 MB
    to every worker."""
    if not settings.REDIS_URL:
        return None
    import redis

    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=0.5, socket_connect_timeout=0.5)


# After Redis fails, each process counts on its own for this long before asking Redis again:
# a Redis that hangs then costs one client timeout per process per back-off, not every request.
REDIS_RETRY_SECONDS = 2
redis_retry_at = 0.0  # time.monotonic() until which Redis is skipped; 0 while it answers

# Each process's own counters while Redis is unreachable (the default cache is Redis then).
fallback_counters = LocMemCache("tasks.throttling.fallback", {"OPTIONS": {"MAX_ENTRIES": 100_000}})


def count_locally(counters: BaseCache, key: str, window: int, units: int) -> int:
    if counters.add(key, units, timeout=window):
        return units
    return counters.incr(key, units)


def count_hits(key: str, window: int, units: int) -> int:
    """Add `units` to `key`'s counter, which expires with its window; returns the new count."""
    global redis_retry_at
    client = redis_client()
    if client is None:
        return count_locally(caches["default"], key, window, units)
    now = time.monotonic()
    if now < redis_retry_at:
        return count_locally(fallback_counters, key, window, units)
    if redis_retry_at:
        # This request probes Redis; the process's other threads keep counting locally meanwhile.
        redis_retry_at = now + REDIS_RETRY_SECONDS
    import redis  # already loaded by redis_client()

    pipeline = client.pipeline()
    pipeline.incrby(key, units)
    pipeline.expire(key, window, nx=True)
    count: int
    try:
        count, _ = pipeline.execute()
    except redis.RedisError as exc:
        redis_retry_at = time.monotonic() + REDIS_RETRY_SECONDS
        logger.warning(
            "Redis unavailable (%s): rate limits counted per process for the next %s s",
            exc,
            REDIS_RETRY_SECONDS,
        )
        return count_locally(fallback_counters, key, window, units)
    if redis_retry_at:
        redis_retry_at = 0.0
        logger.info("Redis answers again: rate limits are shared again")
    return count


class UserRateThrottle(BaseThrottle):
    """`RATE_LIMIT` requests per window per user (the token's `sub`)."""

    policy_name = "user"

    def allow_request(self, request: Request, view: Any) -> bool:
        return self.count(request, 1)

    def count(self, request: Request, units: int, *, give_back_if_refused: bool = False) -> bool:
        """Count `units` against the user; False if that goes over the limit. Records the
        RateLimit headers the response carries."""
        rate = parse_rate(settings.RATE_LIMIT)
        if rate is None or request.user is None:
            return True
        limit, window = rate
        now = time.time()
        window_start = int(now // window) * window
        reset = max(1, math.ceil(window_start + window - now))
        # A digest: a user id may be 255 characters of anything, too long or odd for a key.
        # The user is authentication.TokenClaimsUser, whose id is the token's `sub` (a str).
        user_id: str = request.user.id  # type: ignore[assignment]
        user = hashlib.blake2b(user_id.encode(), digest_size=16).hexdigest()
        key = f"ratelimit:{user}:{window}:{window_start}"
        count = count_hits(key, window, units)
        allowed = count <= limit
        if not allowed and give_back_if_refused:
            count = count_hits(key, window, -units)
        request.rate_limit_headers = {  # type: ignore[attr-defined]  # the view sends them
            "RateLimit-Policy": f'"{self.policy_name}";q={limit};w={window}',
            "RateLimit": f'"{self.policy_name}";r={max(0, limit - count)};t={reset}',
        }
        self.retry_after = reset
        return allowed

    def wait(self) -> int:
        return self.retry_after


def charge(request: Request, units: int) -> None:
    """Count `units` more requests against the caller, after the throttle counted the request
    itself (a bulk costs one per operation). Over the limit they are given back and the request
    is refused: 429, with Retry-After."""
    throttle = UserRateThrottle()
    if units > 0 and not throttle.count(request, units, give_back_if_refused=True):
        raise Throttled(throttle.wait())
