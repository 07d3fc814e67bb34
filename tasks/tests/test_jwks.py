"""JWKS mode: tokens signed by a Better Auth server's keys, served here by a local JWKS endpoint."""

import contextlib
import itertools
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from django.core.cache import cache
from django.test import override_settings

from tasks.authentication import token_backend

pytestmark = pytest.mark.database_independent

ALGORITHMS = ["EdDSA", "ES256", "ES512", "PS256", "RS256"]


def private_key_for(algorithm: str):
    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "ES512":
        return ec.generate_private_key(ec.SECP521R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class SigningKey:
    """A key pair as Better Auth keeps one: a `kid`, an algorithm, a public JWK."""

    def __init__(self, algorithm: str = "EdDSA", kid: str | None = None) -> None:
        self.algorithm = algorithm
        self.kid = kid or f"kid-{algorithm}-{id(self)}"
        self.private_key = private_key_for(algorithm)
        algorithm_object = jwt.get_algorithm_by_name(algorithm)
        self.jwk = {
            **json.loads(algorithm_object.to_jwk(self.private_key.public_key())),
            "alg": algorithm,
            "kid": self.kid,
        }

    def sign(self, claims: dict, **header) -> str:
        headers = {"kid": self.kid, **header}
        return jwt.encode(claims, self.private_key, algorithm=self.algorithm, headers=headers)


class JwksServer:
    """A local JWKS endpoint whose keys, availability, speed and request count the test controls."""

    def __init__(self) -> None:
        self.keys: list[SigningKey] = []
        self.failing = False
        self.body: bytes | None = None  # served instead of the keys' JWKS when set
        self.trickle: str | None = None  # "headers" or "body": sent from there a byte at a time
        self.gate: threading.Event | None = None  # when set, each answer waits for it
        self.fetches = 0
        self.fetch_times: list[float] = []  # time.monotonic() of each request
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.fetches += 1
                server.fetch_times.append(time.monotonic())
                if server.gate:
                    server.gate.wait(timeout=30)
                if server.failing or self.path != "/api/auth/jwks":
                    self.send_error(503 if server.failing else 404)
                    return
                body = server.body
                if body is None:
                    body = json.dumps({"keys": [key.jwk for key in server.keys]}).encode()
                head = (
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
                )
                answer = head + body
                at_once = {None: len(answer), "headers": 0, "body": len(head)}[server.trickle]
                self.wfile.write(answer[:at_once])
                for byte in answer[at_once:]:
                    time.sleep(0.05)
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()

            def handle(self):
                with contextlib.suppress(OSError):  # a client that gave up on a slow answer
                    super().handle()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def claims(self, **overrides) -> dict:
        now = int(time.time())
        values = {"sub": "eytewwOfsiESENxhipop102ubH2xjN5g", "iat": now, "exp": now + 900,
                  "iss": self.url, "aud": self.url, "email": "a@example.com", "name": "A",
                  **overrides}  # fmt: skip
        return {k: v for k, v in values.items() if v is not None}


@pytest.fixture
def jwks():
    server = JwksServer()
    server.keys.append(SigningKey("EdDSA"))
    with override_settings(
        BETTER_AUTH_URL=server.url,
        BETTER_AUTH_JWKS_URL=f"{server.url}/api/auth/jwks",
        JWT_ALGORITHMS=["HS256", *ALGORITHMS],
        JWKS_CACHE_SECONDS=600,
        JWKS_MISS_REFETCH_SECONDS=30,
        JWKS_FETCH_TIMEOUT_SECONDS=2,
    ):
        token_backend.cache_clear()
        cache.clear()
        yield server
    if server.gate:
        server.gate.set()
    server.httpd.shutdown()
    token_backend.cache_clear()
    cache.clear()


def call(api_client, token: str):
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return api_client.get("/v1/tasks")


def assert_401(response):
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer ")
    assert response.json()["errors"][0]["code"] == "token_not_valid"


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_tokens_signed_with_each_better_auth_algorithm_are_accepted(
    api_client, db, jwks, algorithm
):
    key = SigningKey(algorithm)
    jwks.keys = [key]
    response = call(api_client, key.sign(jwks.claims()))
    assert response.status_code == 200
    created = api_client.post("/v1/tasks", {"title": "x"}, format="json").json()
    assert created["user_id"] == "eytewwOfsiESENxhipop102ubH2xjN5g"


def test_better_auth_tokens_need_no_jti_or_token_type(api_client, db, jwks):
    claims = jwks.claims()
    assert "jti" not in claims and "token_type" not in claims
    assert call(api_client, jwks.keys[0].sign(claims)).status_code == 200


def test_the_shared_secret_mode_still_works_alongside(alice, jwks):
    assert alice.get("/v1/tasks").status_code == 200


@pytest.mark.parametrize(
    "overrides",
    [{"iss": "https://evil.example.com"}, {"aud": "https://other.example.com"}, {"iss": None},
     {"aud": None}, {"exp": int(time.time()) - 3600}, {"sub": ""}, {"exp": None}],
    ids=["wrong-iss", "wrong-aud", "no-iss", "no-aud", "expired", "empty-sub", "no-exp"],
)  # fmt: skip
def test_issuer_audience_and_claims_are_checked(api_client, db, jwks, overrides):
    assert_401(call(api_client, jwks.keys[0].sign(jwks.claims(**overrides))))


def test_a_tampered_token_is_401(api_client, db, jwks):
    header, _, signature = jwks.keys[0].sign(jwks.claims()).split(".")
    forged = jwt.utils.base64url_encode(json.dumps(jwks.claims(sub="someone-else")).encode())
    assert_401(call(api_client, f"{header}.{forged.decode()}.{signature}"))


def test_an_alg_that_does_not_match_the_keys_type_is_401(api_client, db, jwks):
    ec_key = SigningKey("ES256")
    # Signed with an ES256 key but naming the EdDSA key's kid.
    assert_401(call(api_client, ec_key.sign(jwks.claims(), kid=jwks.keys[0].kid)))
    # The right kid, but a header alg the key is not bound to.
    rsa_key = SigningKey("RS256")
    jwks.keys.append(rsa_key)
    forged = jwt.encode(
        jwks.claims(), rsa_key.private_key, algorithm="PS256", headers={"kid": rsa_key.kid}
    )
    assert_401(call(api_client, forged))


def test_an_hs256_token_signed_with_a_jwks_public_key_is_401(api_client, db, jwks):
    public_x = jwks.keys[0].jwk["x"].encode()
    token = jwt.encode(
        jwks.claims(), public_x, algorithm="HS256", headers={"kid": jwks.keys[0].kid}
    )
    assert_401(call(api_client, token))


def test_an_unsigned_alg_none_token_is_401(api_client, db, jwks):
    token = jwt.encode(jwks.claims(), None, algorithm="none", headers={"kid": jwks.keys[0].kid})
    assert_401(call(api_client, token))


def test_an_algorithm_outside_the_allow_list_is_401(api_client, db, jwks):
    key = SigningKey("ES512")
    jwks.keys = [key]
    with override_settings(JWT_ALGORITHMS=["EdDSA"]):
        token_backend.cache_clear()
        assert_401(call(api_client, key.sign(jwks.claims())))


def test_a_token_without_kid_is_accepted_only_when_the_jwks_has_one_key(api_client, db, jwks):
    only = jwks.keys[0]
    token = jwt.encode(jwks.claims(), only.private_key, algorithm="EdDSA")
    assert call(api_client, token).status_code == 200
    jwks.keys.append(SigningKey("EdDSA"))
    token_backend.cache_clear()
    cache.clear()
    assert_401(call(api_client, token))


def test_cached_keys_mean_no_network_call_and_no_query(
    api_client, db, jwks, django_assert_num_queries
):
    token = jwks.keys[0].sign(jwks.claims())
    assert call(api_client, token).status_code == 200
    fetches = jwks.fetches
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    for _ in range(5):
        with django_assert_num_queries(1):  # the list query itself; authentication adds none
            assert api_client.get("/v1/tasks").status_code == 200
    assert jwks.fetches == fetches == 1


def test_rotation_new_kid_is_fetched_once_and_old_tokens_still_verify(api_client, db, jwks):
    old_key = jwks.keys[0]
    old_token = old_key.sign(jwks.claims())
    assert call(api_client, old_token).status_code == 200
    new_key = SigningKey("EdDSA")
    jwks.keys.append(new_key)  # Better Auth keeps the old key published for a grace period
    assert call(api_client, new_key.sign(jwks.claims())).status_code == 200
    assert jwks.fetches == 2
    assert call(api_client, old_token).status_code == 200
    assert jwks.fetches == 2


def test_unknown_kids_refetch_at_most_once_per_window(api_client, db, jwks):
    assert call(api_client, jwks.keys[0].sign(jwks.claims())).status_code == 200
    # The keys fetched for it (after it arrived) do not have its kid: it is invalid.
    assert_401(call(api_client, SigningKey("EdDSA", kid="bogus-0").sign(jwks.claims())))
    for n in range(1, 20):
        response = call(api_client, SigningKey("EdDSA", kid=f"bogus-{n}").sign(jwks.claims()))
        # No refetch in the window: the kid might be a key rotated in since, so not 401.
        assert response.status_code == 503
        assert 0 < int(response["Retry-After"]) <= 30
    assert jwks.fetches == 2  # the first fetch, then one for the first unknown kid


def test_a_rotated_key_is_accepted_within_one_window_while_unknown_kids_flood_in(
    api_client, db, jwks
):
    """A frontend signs its user out on a 401: a token signed with a new key is never one, and
    unknown kids, however many, cost at most one fetch per refetch window."""
    window = 1
    with override_settings(JWKS_MISS_REFETCH_SECONDS=window):
        token_backend.cache_clear()
        assert call(api_client, jwks.keys[0].sign(jwks.claims())).status_code == 200
        assert_401(call(api_client, SigningKey("EdDSA", kid="bogus").sign(jwks.claims())))
        rotated_in = SigningKey("EdDSA")
        jwks.keys.append(rotated_in)
        rotated_at = time.monotonic()
        answers = []  # (seconds since the rotation, status) for the new key's token
        n = 0
        while time.monotonic() - rotated_at < 3 * window:
            n += 1
            bogus = SigningKey("EdDSA", kid=f"bogus-{n}").sign(jwks.claims())
            assert call(api_client, bogus).status_code in (401, 503)
            response = call(api_client, rotated_in.sign(jwks.claims(name=f"B{n}")))
            answers.append((time.monotonic() - rotated_at, response.status_code))
            if response.status_code == 503:
                assert 0 < int(response["Retry-After"]) <= window
    statuses = [answer for _, answer in answers]
    assert set(statuses) == {503, 200}
    first_accepted = statuses.index(200)
    assert answers[first_accepted][0] < window + 0.5
    assert set(statuses[first_accepted:]) == {200}
    refetches = jwks.fetch_times[1:]
    assert min(b - a for a, b in itertools.pairwise(refetches)) > window - 0.05
    assert len(refetches) <= 1 + (time.monotonic() - rotated_at) / window


def test_workers_share_the_fetched_keys(api_client, db, jwks):
    assert call(api_client, jwks.keys[0].sign(jwks.claims())).status_code == 200
    token_backend.cache_clear()  # as if another worker process: no keys of its own in memory
    assert call(api_client, jwks.keys[0].sign(jwks.claims(name="B"))).status_code == 200
    assert jwks.fetches == 1


def test_keys_are_refetched_when_the_cache_expires(api_client, db, jwks):
    with override_settings(JWKS_CACHE_SECONDS=0):
        token_backend.cache_clear()
        token = jwks.keys[0].sign(jwks.claims())
        assert call(api_client, token).status_code == 200
        assert call(api_client, token).status_code == 200
    assert jwks.fetches == 2


def test_no_reachable_jwks_and_nothing_cached_is_503_with_retry_after(api_client, db, jwks):
    jwks.failing = True
    response = call(api_client, jwks.keys[0].sign(jwks.claims()))
    assert response.status_code == 503
    assert int(response["Retry-After"]) > 0
    assert response.json()["errors"][0]["code"] == "auth_server_unavailable"


def test_an_unreachable_auth_server_is_503_within_the_fetch_timeout(api_client, db, jwks):
    with override_settings(BETTER_AUTH_JWKS_URL="http://127.0.0.1:9/api/auth/jwks"):
        token_backend.cache_clear()
        started = time.monotonic()
        response = call(api_client, jwks.keys[0].sign(jwks.claims()))
    assert response.status_code == 503
    assert time.monotonic() - started < 3


def test_known_keys_keep_working_while_the_auth_server_is_down(api_client, db, jwks):
    with override_settings(JWKS_CACHE_SECONDS=0):
        token_backend.cache_clear()
        token = jwks.keys[0].sign(jwks.claims())
        assert call(api_client, token).status_code == 200
        jwks.failing = True
        for _ in range(3):
            assert call(api_client, token).status_code == 200
        # Stale keys are kept, and the dead server is not asked on every request.
        assert jwks.fetches == 2


def test_other_claims_are_available_on_the_request_user(jwks, rf):
    from tasks.authentication import BearerTokenAuthentication

    token = jwks.keys[0].sign(jwks.claims())
    request = rf.get("/v1/tasks", HTTP_AUTHORIZATION=f"Bearer {token}")
    user, _ = BearerTokenAuthentication().authenticate(request)
    assert user.id == "eytewwOfsiESENxhipop102ubH2xjN5g"
    assert user.claims["email"] == "a@example.com"


def test_an_unreachable_jwks_is_not_asked_again_on_every_request(api_client, db, jwks):
    jwks.failing = True
    token = jwks.keys[0].sign(jwks.claims())
    statuses = [call(api_client, token).status_code for _ in range(5)]
    assert statuses == [503] * 5
    assert jwks.fetches == 1  # then 503 from memory until JWKS_MISS_REFETCH_SECONDS pass


def test_an_unknown_kid_while_the_auth_server_is_down_is_503_not_401(api_client, db, jwks):
    assert call(api_client, jwks.keys[0].sign(jwks.claims())).status_code == 200
    jwks.failing = True
    minted_during_the_outage = SigningKey("EdDSA")
    response = call(api_client, minted_during_the_outage.sign(jwks.claims()))
    assert response.status_code == 503
    assert int(response["Retry-After"]) > 0
    # Known keys still verify.
    assert call(api_client, jwks.keys[0].sign(jwks.claims())).status_code == 200
