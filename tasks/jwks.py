"""Better Auth's public keys, fetched from its JWKS endpoint and cached.

Keys are cached per process and, where a cache is configured (Redis), shared through Django's
cache, for `JWKS_CACHE_SECONDS`; while that cache fails, each process keeps its own. A token
whose `kid` is unknown triggers one refetch, at most once per `JWKS_MISS_REFETCH_SECONDS` in
each process, so a flood of invented `kid`s cannot hammer the auth server. Such a token is
refused (401) only once a fetch made after it arrived lacks its `kid`; until then it waits for
the fetch in flight or is answered 503 with `Retry-After`, because it may be signed with a key
rotated in since the last fetch, and a 401 signs its user out. When the keys cannot be fetched
(no answer within `JWKS_FETCH_TIMEOUT_SECONDS`, or a body that is not a key set with at least one
usable key), the cached ones keep working; with nothing cached the request is answered 503. A
fetch is made by one request at a time; the others whose key is cached do not wait for it.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import math
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
from django.core.cache import cache
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework_simplejwt.exceptions import TokenError

logger = logging.getLogger(__name__)

MAX_JWKS_BYTES = 256 * 1024
CACHE_KEY = "tasks:jwks-keys:{url}"


class KeyNotFound(TokenError):
    """No configured key source has a key for this token's header (algorithm, `kid`)."""


class AuthServerUnavailable(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The authentication server's keys cannot be fetched; retry shortly."
    default_code = "auth_server_unavailable"
    wait: int  # seconds: DRF's handler sends it as Retry-After when it is set


class FetchFailed(Exception):
    """The JWKS did not arrive in time, or what arrived is not a key set this service can use."""


@dataclass(frozen=True)
class KeySet:
    keys: dict[str, jwt.PyJWK]
    entries: list[dict[str, Any]]  # the usable JWKs as published: what other workers are given
    fetched_at: float  # time.time() when the fetch started

    @classmethod
    def parse(cls, entries: object, algorithms: frozenset[str], fetched_at: float) -> KeySet:
        """The usable keys among `entries`, each by `kid` and bound to exactly one algorithm
        (RFC 8725 §3.1). An entry this service cannot use (another algorithm, an encryption key,
        a curve PyJWT does not know, a malformed field) is skipped, so that it cannot take the
        good keys down with it; none usable at all is a failed fetch."""
        if not isinstance(entries, list):
            raise FetchFailed("not a JWKS document")
        keys: dict[str, jwt.PyJWK] = {}
        usable: list[dict[str, Any]] = []
        for entry in entries:
            if isinstance(entry, dict) and entry.get("use", "sig") != "sig":
                continue  # an encryption key
            try:
                kid = entry["kid"]
                if not isinstance(kid, str):
                    raise TypeError("kid is not a string")
                key = jwt.PyJWK.from_dict(entry)
            # Whatever PyJWT or cryptography raise on a hostile entry, it is this entry's fault.
            except Exception as exc:
                logger.warning("Ignoring JWKS entry %.200r: %s", entry, exc)
                continue
            if key.algorithm_name in algorithms:
                keys[kid] = key
                usable.append(entry)
        if not keys:
            raise FetchFailed("no usable key in the JWKS")
        return cls(keys, usable, fetched_at)


def fetch_jwks(url: str, timeout: float) -> object:
    """The `keys` of the JWKS at `url`, all of it received within `timeout` seconds.

    A socket timeout bounds each read, not the fetch: a server sending a byte a second would
    hold the request for as long as it liked. At the deadline a timer shuts the socket down,
    which ends the connect, TLS handshake or read in progress. Redirects are not followed.
    """
    deadline = time.monotonic() + timeout
    parts = urllib.parse.urlsplit(url)
    connection_class = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    # A URL without a host gives None here, which http.client does not accept (not checked at
    # startup).
    connection = connection_class(parts.hostname, parts.port, timeout=timeout)  # type: ignore[arg-type]
    connected: list[
        socket.socket
    ] = []  # the socket: the connection lets go of it when the answer says "close"

    def shut_down() -> None:
        # Not connected yet, or closed already: the checks of the deadline below end the fetch.
        for sock in [connection.sock, *connected]:
            with contextlib.suppress(AttributeError, OSError):
                sock.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(timeout, shut_down)
    timer.start()
    try:
        connection.connect()
        connected.append(connection.sock)
        if time.monotonic() >= deadline:
            raise FetchFailed("timed out connecting")
        path = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
        connection.request("GET", path, headers={"Accept": "application/json"})
        with connection.getresponse() as response:
            if response.status != status.HTTP_200_OK:
                raise FetchFailed(f"HTTP {response.status}")
            body = response.read(MAX_JWKS_BYTES + 1)
    except (OSError, ValueError, http.client.HTTPException) as exc:
        raise FetchFailed(str(exc) or type(exc).__name__) from exc
    finally:
        timer.cancel()
        connection.close()
    if time.monotonic() >= deadline:
        raise FetchFailed(f"no complete answer within {timeout} s")
    if len(body) > MAX_JWKS_BYTES:
        raise FetchFailed("JWKS document too large")
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:  # RecursionError: nesting too deep
        raise FetchFailed(f"not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise FetchFailed("not a JWKS document")
    return document.get("keys")


class JwksKeys:
    """The key source for tokens signed by a Better Auth server (EdDSA by default)."""

    def __init__(
        self,
        url: str,
        *,
        algorithms: frozenset[str],
        issuer: str | None,
        audience: str | None,
        cache_seconds: int,
        miss_refetch_seconds: int,
        fetch_timeout: float,
    ) -> None:
        self.url = url
        self.algorithms = algorithms
        self.issuer = issuer
        self.audience = audience
        self.cache_seconds = cache_seconds
        # A token verified with a key is trusted no longer than the key set is.
        self.reverify_seconds: float = cache_seconds
        self.miss_refetch_seconds = miss_refetch_seconds
        self.fetch_timeout = fetch_timeout
        self._key_set: KeySet | None = None
        # time.monotonic() before which no fetch is made (after a failure), and no fetch for an
        # unknown kid (after one, or a failure).
        self._next_fetch = float("-inf")
        self._next_miss_fetch = float("-inf")
        self._shared_cache_back = float("-inf")  # the shared cache failed: skipped until then
        self._fetching = threading.Lock()  # held by the one request fetching

    def key_for(self, header: dict[str, Any]) -> jwt.PyJWK | None:
        """The key for this token header; None when the algorithm is not one of ours."""
        algorithm, kid = header.get("alg"), header.get("kid")
        # A header holds any JSON: only a string can name an algorithm or a key.
        if not isinstance(algorithm, str) or algorithm not in self.algorithms:
            return None
        if kid is not None and not isinstance(kid, str):
            raise KeyNotFound("Token is invalid: its kid is not a string")
        keys = self._key_set_for(kid, arrived=time.time()).keys
        if kid is None:
            if len(keys) != 1:
                raise KeyNotFound("Token is invalid: no kid, and the JWKS has several keys")
            (key,) = keys.values()
        elif kid in keys:
            key = keys[kid]
        else:
            raise KeyNotFound("Token is invalid: unknown signing key (kid)")
        if key.algorithm_name != algorithm:
            raise KeyNotFound("Token is invalid: its alg does not match its key")
        return key

    def _key_set_for(self, kid: str | None, *, arrived: float) -> KeySet:
        """Keys that decide this token: ones that have its `kid`, or were fetched after it
        arrived (so a missing `kid` is not a key rotated in since). 503 when there are none."""
        key_set = self._key_set
        if key_set and self._decides(key_set, kid, arrived):
            if self._is_fresh(key_set):
                return key_set
            # Expired: one request refetches, the others answer from the old copy meanwhile.
            if not self._fetching.acquire(blocking=False):
                return key_set
        else:
            self._fetching.acquire()  # the fetch in flight, if any, may bring this kid
        try:
            return self._refreshed(kid, arrived)
        finally:
            self._fetching.release()

    def _refreshed(self, kid: str | None, arrived: float) -> KeySet:
        key_set = self._key_set
        if not (key_set and self._is_fresh(key_set) and self._decides(key_set, kid, arrived)):
            shared = self._from_shared_cache(newer_than=key_set.fetched_at if key_set else None)
            if shared:
                key_set = self._key_set = shared
        expired = not key_set or not self._is_fresh(key_set)
        if key_set and not expired and self._decides(key_set, kid, arrived):
            return key_set
        now = time.monotonic()
        if now >= (self._next_fetch if expired else self._next_miss_fetch):
            if not expired:
                self._next_miss_fetch = now + self.miss_refetch_seconds
            started = time.time()
            try:
                key_set = KeySet.parse(
                    fetch_jwks(self.url, self.fetch_timeout), self.algorithms, started
                )
            except FetchFailed as exc:
                # Do not ask a failing server again on every request (each would wait for the
                # timeout): answer from what is cached, or 503, until the window passes.
                self._next_fetch = self._next_miss_fetch = now + self.miss_refetch_seconds
                if key_set:
                    logger.warning("JWKS fetch from %s failed (%s); keys cached", self.url, exc)
                else:
                    logger.error("JWKS fetch from %s failed (%s), no keys cached", self.url, exc)
            else:
                self._key_set = key_set
                self._to_shared_cache(key_set)
                return key_set
        if key_set and self._decides(key_set, kid, arrived):
            return key_set
        unavailable = AuthServerUnavailable()
        unavailable.wait = max(1, math.ceil(self._next_miss_fetch - time.monotonic()))
        raise unavailable

    def _decides(self, key_set: KeySet, kid: str | None, arrived: float) -> bool:
        return kid is None or kid in key_set.keys or key_set.fetched_at >= arrived

    def _is_fresh(self, key_set: KeySet) -> bool:
        return time.time() - key_set.fetched_at < self.cache_seconds

    def _from_shared_cache(self, *, newer_than: float | None) -> KeySet | None:
        """The keys another worker fetched, if they are newer than `newer_than`."""
        entry = self._shared_cache(cache.get, CACHE_KEY.format(url=self.url))
        try:
            fetched_at = float(entry["fetched_at"])
            if newer_than is not None and fetched_at <= newer_than:
                return None
            return KeySet.parse(entry["entries"], self.algorithms, fetched_at)
        except (TypeError, KeyError, ValueError, FetchFailed):
            return None  # nothing there (None), or not written by this version of the service

    def _to_shared_cache(self, key_set: KeySet) -> None:
        entry = {"entries": key_set.entries, "fetched_at": key_set.fetched_at}
        self._shared_cache(
            cache.set, CACHE_KEY.format(url=self.url), entry, timeout=self.cache_seconds
        )

    def _shared_cache(self, operation: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """`operation` on Django's cache, or None while it fails: a Redis outage costs each
        process its own fetches, never a login."""
        if time.monotonic() < self._shared_cache_back:
            return None
        try:
            return operation(*args, **kwargs)
        # Django's cache has no exception of its own: each backend raises its client's.
        except Exception as exc:
            self._shared_cache_back = time.monotonic() + self.miss_refetch_seconds
            logger.warning(
                "The shared JWKS cache failed (%s); this process keeps its own keys for %s s",
                exc,
                self.miss_refetch_seconds,
            )
            return None
