"""Better Auth's public keys, fetched from its JWKS endpoint and cached.

Keys are cached per process and, where a cache is configured (Redis), shared through Django's
cache, for `JWKS_CACHE_SECONDS`. A token whose `kid` is unknown triggers one refetch, at most
once per `JWKS_MISS_REFETCH_SECONDS`, so a flood of invented `kid`s cannot hammer the auth
server. When the keys cannot be fetched, the cached ones keep working; with nothing cached the
request is answered 503 (an auth outage must not log users out with 401s).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
from dataclasses import dataclass

import jwt
from django.core.cache import cache
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework_simplejwt.exceptions import TokenError

logger = logging.getLogger(__name__)

MAX_JWKS_BYTES = 256 * 1024
CACHE_KEY = "tasks:jwks:{url}"
MISS_FETCH_LOCK_KEY = "tasks:jwks-miss-fetch:{url}"


class KeyNotFound(TokenError):
    """No configured key source has a key for this token's header (algorithm, `kid`)."""


class AuthServerUnavailable(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The authentication server's keys cannot be fetched; retry shortly."
    default_code = "auth_server_unavailable"


@dataclass(frozen=True)
class KeySet:
    keys: dict[str, jwt.PyJWK]
    fetched_at: float


def parse_jwks(document: dict, allowed_algorithms: frozenset[str]) -> dict[str, jwt.PyJWK]:
    """Each usable key by `kid`, bound to exactly one algorithm (RFC 8725 §3.1)."""
    keys = {}
    for jwk in document.get("keys", []):
        if not isinstance(jwk, dict) or jwk.get("use", "sig") != "sig" or "kid" not in jwk:
            continue
        try:
            key = jwt.PyJWK.from_dict(jwk)
        except jwt.PyJWKError as exc:
            logger.warning("Ignoring JWKS key %s: %s", jwk.get("kid"), exc)
            continue
        if key.algorithm_name in allowed_algorithms:
            keys[jwk["kid"]] = key
    return keys


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
        self.reverify_seconds = cache_seconds
        self.miss_refetch_seconds = miss_refetch_seconds
        self.fetch_timeout = fetch_timeout
        self._key_set: KeySet | None = None
        self._last_failed_fetch = float("-inf")
        self._lock = threading.Lock()

    def key_for(self, header: dict) -> jwt.PyJWK | None:
        """The key for this token header; None when the algorithm is not one of ours."""
        algorithm = header.get("alg")
        if algorithm not in self.algorithms:
            return None
        keys = self.current_keys()
        kid = header.get("kid")
        if kid is None:
            if len(keys) != 1:
                raise KeyNotFound("Token is invalid: no kid, and the JWKS has several keys")
            (key,) = keys.values()
        else:
            if kid not in keys:
                keys = self.keys_after_miss()
            if kid not in keys:
                raise KeyNotFound("Token is invalid: unknown signing key (kid)")
            key = keys[kid]
        if key.algorithm_name != algorithm:
            raise KeyNotFound("Token is invalid: its alg does not match its key")
        return key

    def current_keys(self) -> dict[str, jwt.PyJWK]:
        key_set = self._key_set
        if key_set and time.time() - key_set.fetched_at < self.cache_seconds:
            return key_set.keys
        with self._lock:
            key_set = self._key_set
            if key_set and time.time() - key_set.fetched_at < self.cache_seconds:
                return key_set.keys
            shared = self._from_shared_cache()
            if shared and time.time() - shared.fetched_at < self.cache_seconds:
                self._key_set = shared
                return shared.keys
            return self._refresh(stale=key_set or shared).keys

    def keys_after_miss(self) -> dict[str, jwt.PyJWK]:
        """Refetch for an unknown `kid`, unless another miss (in any worker) just did.

        With the auth server unreachable, an unknown `kid` is a 503: it may be a key minted
        during the outage, and a real user must not be told their token is invalid.
        """
        with self._lock:
            shared = self._from_shared_cache()
            if shared and (not self._key_set or shared.fetched_at > self._key_set.fetched_at):
                self._key_set = shared
            if time.time() - self._last_failed_fetch < self.miss_refetch_seconds:
                raise self._unavailable()
            lock_key = MISS_FETCH_LOCK_KEY.format(url=self.url)
            if not cache.add(lock_key, True, timeout=self.miss_refetch_seconds):
                return self._key_set.keys if self._key_set else {}
            return self._refresh(stale=None).keys

    def _refresh(self, *, stale: KeySet | None) -> KeySet:
        # The auth server just failed us: do not ask again on every request (each would wait
        # for the timeout) but answer from what is cached, or 503, until the window passes.
        if time.time() - self._last_failed_fetch < self.miss_refetch_seconds:
            if stale:
                return stale
            raise self._unavailable()
        try:
            document = self._fetch()
        except (OSError, ValueError) as exc:
            self._last_failed_fetch = time.time()
            if stale:
                logger.warning("JWKS fetch from %s failed (%s); using cached keys", self.url, exc)
                return stale
            logger.error("JWKS fetch from %s failed (%s) and no keys are cached", self.url, exc)
            raise self._unavailable() from exc
        key_set = KeySet(parse_jwks(document, self.algorithms), time.time())
        self._key_set = key_set
        cache.set(
            CACHE_KEY.format(url=self.url),
            {"document": document, "fetched_at": key_set.fetched_at},
            timeout=self.cache_seconds,
        )
        return key_set

    def _unavailable(self) -> AuthServerUnavailable:
        unavailable = AuthServerUnavailable()
        unavailable.wait = self.miss_refetch_seconds
        return unavailable

    def _from_shared_cache(self) -> KeySet | None:
        entry = cache.get(CACHE_KEY.format(url=self.url))
        if not entry:
            return None
        return KeySet(parse_jwks(entry["document"], self.algorithms), entry["fetched_at"])

    def _fetch(self) -> dict:
        request = urllib.request.Request(self.url, headers={"Accept": "application/json"})
        with urllib.request.urlopen(request, timeout=self.fetch_timeout) as response:
            body = response.read(MAX_JWKS_BYTES + 1)
        if len(body) > MAX_JWKS_BYTES:
            raise ValueError("JWKS document too large")
        document = json.loads(body)
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise ValueError("not a JWKS document")
        return document
