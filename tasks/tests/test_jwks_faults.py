"""JWKS mode against hostile input: malformed token headers, unusable keys, bodies that are not a
key set, a server that answers a byte at a time, and a shared cache (Redis) that is down."""

import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import x25519
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from tasks.authentication import token_backend
from tasks.tests import test_jwks
from tasks.tests.conftest import in_thread
from tasks.tests.live_server import free_port
from tasks.tests.test_jwks import SigningKey, assert_401, call
from tasks.throttling import redis_client

pytestmark = pytest.mark.database_independent

jwks = test_jwks.jwks  # the fixture: a local JWKS server, and the settings that point at it


def b64(data: bytes) -> str:
    return jwt.utils.base64url_encode(data).decode()


def signed_with_header(key: SigningKey, header: object, claims: dict) -> str:
    """A token whose header is any JSON value, correctly signed by the EdDSA `key`."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64(key.private_key.sign(signing_input.encode()))}"


def assert_503_with_retry_after(response):
    assert response.status_code == 503
    assert int(response["Retry-After"]) > 0
    assert response.json()["errors"][0]["code"] == "auth_server_unavailable"


def jwks_warnings(caplog, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "tasks.jwks" and text in r.getMessage()]


# --- Malformed token headers: 401, never 500 ---------------------------------------------------

ODD_VALUES = {"list": ["EdDSA"], "object": {"alg": "EdDSA"}, "number": 1, "null": None,
              "bool": True, "huge-string": "x" * 10_000}  # fmt: skip


@pytest.mark.parametrize("value", ODD_VALUES.values(), ids=ODD_VALUES.keys())
@pytest.mark.parametrize("name", ["alg", "kid"])
def test_an_alg_or_kid_of_any_json_type_is_401(api_client, db, jwks, name, value):
    key = jwks.keys[0]
    header = {"alg": "EdDSA", "kid": key.kid, "typ": "JWT", name: value}
    assert_401(call(api_client, signed_with_header(key, header, jwks.claims())))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
HEADER_NAMES = ["alg", "kid", "typ", "crit", "b64", "cty", "jku", "jwk", "x5u", "x5c", "zip"]


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    header=st.dictionaries(st.sampled_from(HEADER_NAMES) | st.text(max_size=5), JSON_VALUES)
    | JSON_VALUES
)
def test_no_token_header_is_a_500(api_client, db, jwks, header):
    key = jwks.keys[0]
    if isinstance(header, dict):
        header = {"alg": "EdDSA", "kid": key.kid, **header}
    response = call(api_client, signed_with_header(key, header, jwks.claims()))
    assert response.status_code in (200, 401, 503), response.content
    if response.status_code == 401:
        assert response["WWW-Authenticate"].startswith("Bearer ")


# --- Keys the service cannot use: skipped, the others keep working -----------------------------


def x25519_jwk() -> dict:
    """A key-agreement key, published (as some servers do) without `use`."""
    public_key = x25519.X25519PrivateKey.generate().public_key()
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"kty": "OKP", "crv": "X25519", "x": b64(raw), "kid": "key-agreement"}


UNUSABLE_ENTRIES = {
    "x25519-without-use": x25519_jwk,
    "list-kid": lambda: {**SigningKey().jwk, "kid": ["a"]},
    "object-alg": lambda: {**SigningKey().jwk, "alg": {"name": "EdDSA"}},
    "number-kid": lambda: {**SigningKey().jwk, "kid": 7},
    "malformed-x": lambda: {**SigningKey().jwk, "x": 5},
    "not-an-object": lambda: "key",
}


@pytest.mark.parametrize("entry", UNUSABLE_ENTRIES.values(), ids=UNUSABLE_ENTRIES.keys())
def test_an_unusable_jwks_entry_is_skipped_once_and_the_others_keep_working(
    api_client, db, jwks, caplog, entry
):
    jwks.body = json.dumps({"keys": [entry(), jwks.keys[0].jwk]}).encode()
    token = jwks.keys[0].sign(jwks.claims())
    for _ in range(3):
        assert call(api_client, token).status_code == 200
    token_backend.cache_clear()  # another worker: it takes the keys from the shared cache
    assert call(api_client, jwks.keys[0].sign(jwks.claims(name="B"))).status_code == 200
    assert jwks.fetches == 1
    assert len(jwks_warnings(caplog, "Ignoring JWKS entry")) == 1


# --- Bodies that are not a key set: a failed fetch ---------------------------------------------

NOT_A_KEY_SET = {
    "deeply-nested": b'{"keys": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "no-usable-entry": b'{"keys": [1, "x", null, {"kty": "OKP"}, {"kid": "a"}]}',
    "keys-not-a-list": b'{"keys": {"kid": "a"}}',
    "not-an-object": b"[]",
    "not-json": b"<html>",
    "not-utf-8": b'{"keys": "\xff"}',
}


@pytest.mark.parametrize("body", NOT_A_KEY_SET.values(), ids=NOT_A_KEY_SET.keys())
def test_a_body_that_is_not_a_key_set_is_a_failed_fetch(api_client, db, jwks, body):
    jwks.body = body
    for _ in range(3):
        assert_503_with_retry_after(call(api_client, jwks.keys[0].sign(jwks.claims())))
    assert jwks.fetches == 1  # then 503 from memory until the refetch window passes


@pytest.mark.parametrize("body", NOT_A_KEY_SET.values(), ids=NOT_A_KEY_SET.keys())
def test_after_a_body_that_is_not_a_key_set_the_cached_keys_keep_working(
    api_client, db, jwks, body
):
    known = jwks.keys[0]
    assert call(api_client, known.sign(jwks.claims())).status_code == 200
    token_backend.cache_clear()  # another worker: the keys from the shared cache, its own window
    jwks.body = body
    for n in range(3):
        unknown = SigningKey("EdDSA", kid=f"new-{n}")
        assert_503_with_retry_after(call(api_client, unknown.sign(jwks.claims())))
        assert call(api_client, known.sign(jwks.claims(name=f"B{n}"))).status_code == 200
    assert jwks.fetches == 2


# --- A slow auth server: the fetch timeout is a deadline --------------------------------------


@pytest.mark.parametrize("trickle", ["headers", "body"])
def test_a_jwks_sent_a_byte_at_a_time_is_503_within_the_fetch_timeout(
    api_client, db, jwks, trickle
):
    jwks.trickle = trickle
    with override_settings(JWKS_FETCH_TIMEOUT_SECONDS=1):
        token_backend.cache_clear()
        started = time.monotonic()
        response = call(api_client, jwks.keys[0].sign(jwks.claims()))
        elapsed = time.monotonic() - started
    assert_503_with_retry_after(response)
    assert elapsed < 2  # the promise of JWKS_FETCH_TIMEOUT_SECONDS, with room for a slow CI


def test_requests_with_a_cached_key_do_not_wait_for_a_fetch_in_flight(api_client, db, jwks):
    """While one request waits for the keys that may hold its new `kid`, a request whose key is
    cached (here in an expired copy) is answered at once; the first gets the fetched keys."""
    with override_settings(
        JWKS_CACHE_SECONDS=0, JWKS_MISS_REFETCH_SECONDS=0, JWKS_FETCH_TIMEOUT_SECONDS=5
    ):
        token_backend.cache_clear()
        known = jwks.keys[0].sign(jwks.claims())
        assert call(api_client, known).status_code == 200
        rotated_in = SigningKey("EdDSA")
        jwks.keys.append(rotated_in)
        jwks.gate = threading.Event()
        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(
                in_thread(call), APIClient(), rotated_in.sign(jwks.claims(name="B"))
            )
            while jwks.fetches < 2 and not waiting.done():
                time.sleep(0.01)
            assert call(api_client, known).status_code == 200
            jwks.gate.set()  # the fetch answers only now: the request above did not wait for it
            assert waiting.result().status_code == 200
    assert jwks.fetches == 2


# --- The shared cache (Redis) is down ----------------------------------------------------------


def test_jwks_logins_keep_working_while_redis_is_down(api_client, db, jwks, caplog):
    closed = f"redis://127.0.0.1:{free_port()}/0"
    redis_down = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                              "LOCATION": closed}}  # fmt: skip
    with override_settings(REDIS_URL=closed, CACHES=redis_down):
        redis_client.cache_clear()
        token_backend.cache_clear()
        try:
            for n in range(3):
                token = jwks.keys[0].sign(jwks.claims(name=f"A{n}"))
                assert call(api_client, token).status_code == 200
                unknown = SigningKey("EdDSA", kid=f"unknown-{n}")
                assert call(api_client, unknown.sign(jwks.claims())).status_code in (401, 503)
        finally:
            redis_client.cache_clear()
            token_backend.cache_clear()
    assert jwks.fetches == 2  # the keys, then one refetch for the first unknown kid
    assert len(jwks_warnings(caplog, "shared JWKS cache failed")) == 1
